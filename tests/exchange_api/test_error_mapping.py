"""``problem_of``: the one mapping from an exception to the API's error body, complete over the error tree."""

from __future__ import annotations

import logging

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from exchange_api import errors
from exchange_api.errors import ApiProblem, error_response, problem_of
from hub.errors import ApiError, HubError, InvalidIdentifier, RateLimited, SnapshotError


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


@pytest.mark.parametrize("cls", [ApiError, *_subclasses(ApiError)], ids=lambda c: c.__name__)
def test_every_api_error_keeps_its_status_and_code(cls: type[ApiError]) -> None:
    error = cls.__new__(cls)  # some take more than a message (SignatureRefused: its code first)
    ApiError.__init__(error, "what went wrong")
    problem = problem_of(error)
    assert (problem.status, problem.code, problem.message) == (cls.status, cls.code, "what went wrong")


def test_the_other_kinds() -> None:
    assert problem_of(InvalidIdentifier("resident_id", "check digit")) == ApiProblem(
        422, "invalid_request", "invalid resident_id: check digit")
    assert problem_of(SnapshotError("/x/CURRENT")) == ApiProblem(503, "snapshot_unavailable",
                                                                 "no published snapshot is available")
    assert problem_of(HTTPException(405, headers={"Allow": "POST"})) == ApiProblem(
        405, "method_not_allowed", "Method Not Allowed", {"Allow": "POST"})
    assert problem_of(HTTPException(418, "I'm a teapot")) == ApiProblem(418, "http_error", "request refused")
    invalid = RequestValidationError([{"loc": ("body", "11010519491231002X"), "msg": "extra", "input": "secret"}])
    assert problem_of(invalid) == ApiProblem(422, "invalid_request", "body.<field>: extra")


def test_a_retry_after_becomes_a_header() -> None:
    error = RateLimited("slow down")
    error.retry_after = 7  # type: ignore[attr-defined]
    assert problem_of(error).headers == {"Retry-After": "7"}
    assert problem_of(errors.AuditUnavailable("down")).headers == {"Retry-After": "30"}


def test_anything_else_is_500_without_its_details(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="exchange_api.errors"):
        problem = problem_of(KeyError("11010519491231002X"), "req-1")
    assert problem == ApiProblem(500, "internal_error", "internal error")
    assert "req-1" in caplog.text and "KeyError" in caplog.text  # the details in the server log only
    assert problem_of(HubError("x")).status == 500


def test_the_body() -> None:
    response = error_response(ApiProblem(429, "rate_limited", "slow down", {"Retry-After": "1"}), "req-2")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-ID"] == "req-2"
    assert response.body == b'{"error":{"code":"rate_limited","message":"slow down","request_id":"req-2"}}'

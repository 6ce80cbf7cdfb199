"""Every request that names a registered key is audited, whatever refuses it and however early."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from exchange_api.audit import audit_salt
from exchange_api.client import generate_department_key, sign_request
from hub.masking import hash_id
from tests.exchange_api.conftest import PERSON_ID, json_request, lookup_body
from tests.exchange_api.test_errors import assert_error_shape


def send(request: httpx.Request) -> httpx.Response:
    with httpx.Client() as client:
        return client.send(request)


def signed(hub, kid: str, key, body: dict | bytes | None = None) -> httpx.Request:
    request = json_request(hub.url, body if body is not None else lookup_body())
    sign_request(request, kid, key)
    return request


def with_alg(alg: str) -> Callable[[httpx.Request], None]:
    def change(request: httpx.Request) -> None:
        request.headers["Signature-Input"] = request.headers["Signature-Input"].replace('alg="ed25519"', alg)
    return change


def with_extra_param(request: httpx.Request) -> None:
    request.headers["Signature-Input"] += ';context="anything"'


def with_two_signatures(request: httpx.Request) -> None:
    label, inner = request.headers["Signature-Input"].split("=", 1)
    request.headers["Signature-Input"] = f"{label}={inner}, second={inner}"
    request.headers["Signature"] += ", second=" + request.headers["Signature"].split("=", 1)[1]


def without_signature(request: httpx.Request) -> None:
    del request.headers["Signature"]


REFUSALS = {
    "alg hmac-sha256": (with_alg('alg="hmac-sha256"'), "signature_malformed"),
    "alg rsa-pss-sha512": (with_alg('alg="rsa-pss-sha512"'), "signature_malformed"),
    "alg as a token": (with_alg("alg=ed25519"), "signature_malformed"),  # not a string: the general parser
    "unknown parameter": (with_extra_param, "signature_malformed"),
    "two signatures": (with_two_signatures, "signature_malformed"),
    "Signature-Input without Signature": (without_signature, "signature_missing"),
}


@pytest.mark.parametrize("change, code", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_malformed_signature_naming_a_registered_key_is_audited(hub, change, code):
    dept = hub.department()
    request = signed(hub, dept.kid, dept.private_key)
    change(request)
    response = send(request)
    assert_error_shape(response, 401, code)
    row = hub.audit_row(response.headers["X-Request-ID"])
    assert row is not None, "refused without an audit row"
    assert (row.department, row.kid, row.authenticated, row.status, row.code, row.outcome) == (
        dept.code, dept.kid, False, 401, code, "refused")
    assert row.operation == "lookup"
    assert row.key_hash == hash_id(PERSON_ID, audit_salt(hub.settings.keys_dir))  # a person sees the attempt


@pytest.mark.parametrize("change, code", REFUSALS.values(), ids=REFUSALS.keys())
def test_the_same_refusals_with_an_unregistered_key_are_not_audited(hub, change, code):
    kid, key, _ = generate_department_key()
    request = signed(hub, kid, key)
    change(request)
    response = send(request)
    assert_error_shape(response, 401, code)
    assert hub.audit_row(response.headers["X-Request-ID"]) is None


def test_a_body_over_the_limit_naming_a_registered_key_is_audited(hub):
    dept = hub.department()
    response = send(signed(hub, dept.kid, dept.private_key, lookup_body(case_number="x" * 70_000)))
    assert_error_shape(response, 413, "payload_too_large")
    row = hub.audit_row(response.headers["X-Request-ID"])
    assert row is not None, "refused without an audit row"
    assert (row.department, row.kid, row.authenticated, row.status, row.code, row.outcome) == (
        dept.code, dept.kid, False, 413, "payload_too_large", "refused")


def test_a_streamed_body_over_the_limit_is_audited_too(hub):
    """No Content-Length: the hub reads up to the limit, then refuses; still the key's department's attempt."""
    dept = hub.department()
    body = json.dumps(lookup_body(case_number="x" * 70_000)).encode()
    request = signed(hub, dept.kid, dept.private_key, body)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    streamed = httpx.Request("POST", request.url, content=chunks(),
                             headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"})
    response = send(streamed)
    assert_error_shape(response, 413, "payload_too_large")
    row = hub.audit_row(response.headers["X-Request-ID"])
    assert row is not None and (row.department, row.status, row.code) == (dept.code, 413, "payload_too_large")


def test_a_body_over_the_limit_without_a_registered_key_is_not_audited(hub):
    kid, key, _ = generate_department_key()
    response = send(signed(hub, kid, key, lookup_body(case_number="x" * 70_000)))
    assert_error_shape(response, 413, "payload_too_large")
    assert hub.audit_row(response.headers["X-Request-ID"]) is None

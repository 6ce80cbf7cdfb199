"""One JSON error body for every failure: ``{"error": {"code", "message", "request_id"}}``, never echoing input."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.errors import ApiError, InvalidIdentifier, SnapshotError

log = logging.getLogger(__name__)

# Status codes Starlette raises itself (unknown route, wrong method), mapped to stable codes.
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class InvalidRequest(ApiError):
    """422: the request body is not a valid lookup."""

    status = 422
    code = "invalid_request"


class AsOfUnavailable(ApiError):
    """422: the snapshot keeps no history to answer "as of" a date."""

    status = 422
    code = "as_of_unavailable"


class ServiceUnavailable(ApiError):
    """503: the hub cannot answer yet (no published snapshot)."""

    status = 503
    code = "snapshot_unavailable"


class AuditUnavailable(ApiError):
    """503: the audit row can't be written (disk full, database down), so the answer is withheld."""

    status = 503
    code = "audit_unavailable"
    retry_after = 30  # seconds: long enough for an operator's alert, short enough for a caller's retry loop


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


@dataclass(frozen=True)
class ApiProblem:
    """A failure as the API answers it: status, stable code, a message that never echoes input, extra headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] | None = None


def error_response(problem: ApiProblem, request_id: str | None) -> JSONResponse:
    """The one error body."""
    all_headers = {"X-Request-ID": request_id} if request_id else {}
    all_headers.update(problem.headers or {})
    return JSONResponse(
        {"error": {"code": problem.code, "message": problem.message, "request_id": request_id}},
        status_code=problem.status, headers=all_headers or None,
    )


def describe_validation_errors(errors: list[Any], known_names: set[str] | None = None) -> str:
    """Where and what, never the offending value: pydantic's ``input`` is dropped and unknown keys are not named."""
    parts = []
    for err in errors:
        loc = []
        for part in err.get("loc", ()):
            if isinstance(part, int) or part in {"body", "query", "path", "header"}:
                loc.append(str(part))
            elif known_names is not None and part in known_names:
                loc.append(part)
            else:
                # A key the caller made up may itself be an ID number: describe it, do not repeat it.
                loc.append("<field>")
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def retry_headers(exc: Exception) -> dict[str, str] | None:
    """``Retry-After`` for 429s and 503s that know how long to wait."""
    retry_after = getattr(exc, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after else None


def problem_of(exc: BaseException, request_id: str | None = None, known_names: set[str] | None = None) -> ApiProblem:
    """The one mapping from an exception to the API's error: every handler and the signed pipeline use it."""
    if isinstance(exc, ApiError):
        return ApiProblem(exc.status, exc.code, str(exc), retry_headers(exc))
    if isinstance(exc, InvalidIdentifier):
        # It names the failing part (length, check digit, ...) and never the value.
        return ApiProblem(422, InvalidRequest.code, str(exc))
    if isinstance(exc, SnapshotError):
        log.error("no usable snapshot: %s", exc)
        return ApiProblem(503, ServiceUnavailable.code, "no published snapshot is available")
    if isinstance(exc, RequestValidationError):
        return ApiProblem(422, InvalidRequest.code, describe_validation_errors(list(exc.errors()), known_names))
    if isinstance(exc, StarletteHTTPException):
        code = HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) and exc.status_code in HTTP_CODES else "request refused"
        # Starlette's own headers (Allow on a 405) are part of the answer; the body is ours.
        return ApiProblem(exc.status_code, code, message, dict(exc.headers) if exc.headers else None)
    # The details go to the server log only: they may hold record values or identifiers.
    log.error("unexpected error in request %s", request_id, exc_info=exc)
    return ApiProblem(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI, known_names: set[str] | None = None) -> None:
    """Route every exception the app can meet to the one error body."""

    async def respond(request: Request, exc: Exception) -> JSONResponse:
        request_id = request_id_of(request)
        problem = problem_of(exc, request_id, known_names)
        # The metrics read the code from here: error bodies are streamed, not parsed back.
        request.state.error_code = problem.code
        return error_response(problem, request_id)

    for kind in (ApiError, InvalidIdentifier, SnapshotError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, respond)

"""Per-request plumbing: a request id on every response, and the audit write before a lookup's answer leaves."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from exchange_api.audit import AuditDraft, AuditLog
from exchange_api.errors import error_response

log = logging.getLogger(__name__)

AUDITED_PATHS = frozenset({"/v1/lookup"})


class RequestId(BaseHTTPMiddleware):
    """Gives each request an id, echoed in ``X-Request-ID``, in error bodies and in answers."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request.state.request_id = uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response


class AuditTrail(BaseHTTPMiddleware):
    """Writes one audit row per audited request before its response is released; no row, no answer."""

    def __init__(self, app: ASGIApp, audit: AuditLog):
        super().__init__(app)
        self.audit = audit

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.scope["path"] not in AUDITED_PATHS:
            return await call_next(request)
        draft = AuditDraft(request_id=request.state.request_id, at=dt.datetime.now(dt.UTC))
        request.state.audit = draft
        try:
            response = await call_next(request)
        except Exception:
            # The 500 body is rendered outside this middleware; record the failure, then let it through.
            try:
                await self._write(draft, 500, "internal_error", None)
            except Exception:
                log.exception("audit write failed for request %s", draft.request_id)
            raise
        try:
            await self._write(draft, response.status_code, getattr(request.state, "error_code", None),
                              getattr(request.state, "error_message", None))
        except Exception:
            log.exception("audit write failed for request %s; withholding the answer", draft.request_id)
            return error_response(500, "internal_error", "internal error", draft.request_id)
        return response

    async def _write(self, draft: AuditDraft, status: int, code: str | None, message: str | None) -> None:
        if not draft.attributable:
            return
        if status >= 400 and message and not draft.reason:
            draft.reason = message
        await run_in_threadpool(self.audit.append, draft, status, code)

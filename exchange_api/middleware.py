"""Per-request plumbing as plain ASGI: a request id on every response, and the request's metrics.

(Starlette's ``BaseHTTPMiddleware`` runs each request through extra tasks and memory streams; at a few
thousand requests a second on one core that costs more than the lookup itself.)
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange_api.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"


class RequestIds:
    """Unique request ids without a system call each: a random per-process prefix and a counter (32 hex digits)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


class RequestContext:
    """Gives each request an id (``X-Request-ID``, error bodies, answers) and records status, reason and latency."""

    def __init__(self, app: ASGIApp | None, metrics: Metrics, endpoints: dict[str, str], ids: RequestIds | None = None):
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints  # path -> metric label; anything else is "other"
        self.ids = ids or RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[misc]
            return
        await self.run(scope, receive, send, self.app)  # type: ignore[arg-type]

    async def run(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Serve one HTTP request with ``app``, giving it an id and recording it."""
        started = time.perf_counter()
        request_id = self.ids.next()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(k.lower() == REQUEST_ID_HEADER for k, _ in headers):
                    headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            endpoint = self.endpoints.get(scope["path"], "other")
            self.metrics.observe(endpoint, status, state.get("error_code"), time.perf_counter() - started)

"""A fake department REST API for tests and benchmarks: both pagination styles, bearer or signed auth, scripted trouble.

::

    app = fake_rest_app(make_records(100), token="t", fail_plan=[503, Fail(429, retry_after=1)])
    with serving(app) as base_url:
        RestConnector(base_url, path="/items", key="id", watermark="updated_at", auth="bearer", token="t")
    app.state.source.requests   # what was asked, with monotonic times and the status answered
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import datetime as dt
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import HTTPMessageSignaturesException, HTTPMessageVerifier, MappingKeyResolver
from http_message_signatures.algorithms import ED25519
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from hub.serving import serving  # noqa: F401 - tests serve the fake with it


@dataclass(frozen=True)
class Fail:
    """What the fake does to one request: wait ``delay`` seconds, then answer ``status`` (None: answer normally)."""

    status: int | None = 503
    retry_after: float | str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    at: float  # time.monotonic()
    path: str
    query: dict[str, str]
    status: int


@dataclass
class FakeSource:
    """The records in (watermark, key) order, the failures still to serve, and every request seen."""

    key: str
    watermark: str
    fail_plan: list[Fail] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    by_key: dict[Any, dict] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    positions: list[tuple] = field(default_factory=list)

    def put(self, records: Sequence[dict]) -> None:
        """Insert or replace records by key, as a department system's updates would."""
        self.by_key.update({r[self.key]: r for r in records})
        self.rows = sorted(self.by_key.values(), key=self._position)
        self.positions = [self._position(r) for r in self.rows]

    def _position(self, record: dict) -> tuple:
        return (record[self.watermark], record[self.key])

    def start(self, updated_since: str | None) -> int:
        """Index of the first record updated at or after ``updated_since`` (inclusive, as many APIs are)."""
        return bisect.bisect_left(self.positions, (updated_since,)) if updated_since else 0


@dataclass
class _Message:
    """The view of a request the signature library verifies."""

    method: str
    url: str
    headers: Any


def make_records(n: int, *, start: int = 0, updated: str = "2026-01-01T00:00:00", ties: int = 10) -> list[dict]:
    """``n`` enterprise-like records of every JSON type; ``ties`` records share each update time."""
    base = dt.datetime.fromisoformat(updated)
    return [{
        "id": f"E{i:07d}",
        "name": f"企业{i}有限公司",
        "capital": i * 1000 + 0.5,
        "employees": i % 500,
        "active": i % 7 != 0,
        "address": {"city": "北京市", "street": f"建国路{i}号"},
        "tags": ["a", i % 3],
        "closed_on": None if i % 4 else f"2025-{i % 12 + 1:02d}-01",
        "updated_at": (base + dt.timedelta(seconds=i // ties)).isoformat(),
    } for i in range(start, start + n)]


def _cursor(position: tuple) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def _retyped(value: Any) -> Any:
    # A number turns into its text (the classic drift), anything else into a one-element list.
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else [value]


def fake_rest_app(records: Sequence[dict], *, key: str = "id", watermark: str = "updated_at", page_size: int = 100,
                  max_page_size: int = 1000, path: str = "/items", changes_path: str = "/changes",
                  token: str | None = None, public_keys: Mapping[str, Ed25519PublicKey] | None = None,
                  fail_plan: Sequence[Fail | int] | None = None, drift_after_page: int | None = None,
                  drift_field: str | None = None, drift_drop: bool = False) -> Starlette:
    """The fake API: ``GET path?page&size|offset&updated_since`` and ``GET changes_path?cursor&limit&updated_since``.

    ``fail_plan`` is consumed one entry per data request (an int is ``Fail(status)``); after page
    ``drift_after_page`` the field ``drift_field`` changes type, or disappears with ``drift_drop``.
    """
    source = FakeSource(key, watermark, [f if isinstance(f, Fail) else Fail(f) for f in fail_plan or ()])
    source.put(records)
    keys = MappingKeyResolver(public_keys=dict(public_keys or {}), private_keys={})
    verifier = HTTPMessageVerifier(signature_algorithm=ED25519, key_resolver=keys)
    nonces: set[str] = set()

    def refusal(request: Request) -> str | None:
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
                return "missing or invalid bearer token"
        if public_keys:
            message = _Message(request.method, str(request.url), request.headers)
            try:
                result = verifier.verify(message, require_components=("@method", "@target-uri"), body=b"",
                                         max_age=dt.timedelta(minutes=5))[0]
            except HTTPMessageSignaturesException as exc:
                return f"signature refused: {exc}"
            if not result.nonce or result.nonce in nonces:
                return "signature nonce missing or replayed"
            nonces.add(result.nonce)
        return None

    def page_of(start: int, size: int, since_start: int) -> list[dict]:
        items = source.rows[start:start + size]
        page = (start - since_start) // size + 1
        if drift_field and drift_after_page is not None and page > drift_after_page:
            items = [{n: v for n, v in r.items() if n != drift_field} if drift_drop
                     else {**r, drift_field: _retyped(r[drift_field])} for r in items]
        return items

    async def serve(request: Request, answer: Any) -> JSONResponse:
        fail = source.fail_plan.pop(0) if source.fail_plan else Fail(None)
        if fail.delay:
            await asyncio.sleep(fail.delay)
        problem = refusal(request)
        if problem:
            response = JSONResponse({"detail": problem}, 401)
        elif fail.status is not None:
            headers = {"Retry-After": str(fail.retry_after)} if fail.retry_after is not None else None
            response = JSONResponse({"detail": "scripted failure"}, fail.status, headers=headers)
        else:
            response = JSONResponse(answer(request.query_params))
        seen = Seen(time.monotonic(), request.url.path, dict(request.query_params), response.status_code)
        source.requests.append(seen)
        return response

    def size_of(query: Mapping[str, str]) -> int:
        return min(int(query.get("size") or query.get("limit") or page_size), max_page_size)

    def pages(query: Mapping[str, str]) -> dict:
        since_start, size = source.start(query.get("updated_since")), size_of(query)
        if "offset" in query:
            start = since_start + int(query["offset"])
        else:
            start = since_start + (int(query.get("page", 1)) - 1) * size
        return {"total": len(source.rows) - since_start, "page": int(query.get("page", 1)), "size": size,
                "items": page_of(start, size, since_start)}

    def changes(query: Mapping[str, str]) -> dict:
        since_start, size = source.start(query.get("updated_since")), size_of(query)
        start = since_start
        if query.get("cursor"):
            position = tuple(json.loads(base64.urlsafe_b64decode(query["cursor"])))
            start = bisect.bisect_right(source.positions, position)
        items = page_of(start, size, since_start)
        end = start + len(items)
        return {"items": items, "next_cursor": _cursor(source.positions[end - 1]) if items and end < len(source.rows)
                else None}

    async def items_route(request: Request) -> JSONResponse:
        return await serve(request, pages)

    async def changes_route(request: Request) -> JSONResponse:
        return await serve(request, changes)

    app = Starlette(routes=[Route(path, items_route), Route(changes_path, changes_route)])
    app.state.source = source
    return app

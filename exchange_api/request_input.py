"""What a signed request brings, read and checked: its target URI, its body within the limit, the validated model, dates in range."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from exchange_api.audit import AuditDraft
from exchange_api.errors import InvalidRequest, describe_validation_errors
from exchange_api.lookup import normalise_key
from hub.errors import InvalidIdentifier, PayloadTooLarge
from schemas import LIBRARIES

M = TypeVar("M", bound=BaseModel)

# The days a request may name: the start and end of each are representable in UTC whatever the time zone
# (answers and the audit write UTC), so no date a client sends can overflow a conversion.
FIRST_DAY, LAST_DAY = dt.date(1, 1, 2), dt.date(9999, 12, 30)
EARLIEST = dt.datetime.combine(FIRST_DAY, dt.time(), tzinfo=dt.UTC)
LATEST = dt.datetime.combine(LAST_DAY, dt.time.max, tzinfo=dt.UTC)


def target_uri(request: Request) -> str:
    """The absolute target URI as the client addressed it: scheme, Host header, raw (still encoded) path, query."""
    scope = request.scope
    host = request.headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = f"{server[0]}:{server[1]}" if server[1] else server[0]
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def note_unproven_body(draft: AuditDraft, body: bytes) -> None:
    """Record what a refused request asked for, best effort: it helps a person see attempts on their record."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(data, dict):
        return
    for name, limit in (("library", 64), ("purpose", 64), ("case_number", 128)):
        if isinstance(data.get(name), str):
            setattr(draft, name, data[name][:limit])
    key = data.get("key")
    if isinstance(key, str) and len(key) <= 64:
        draft.key = key.strip().upper()
        if draft.library in LIBRARIES:
            # The canonical form, so the attempt hashes like the person's other lookups.
            with contextlib.suppress(InvalidIdentifier):
                draft.key = normalise_key(draft.library, key)


def check_in_range(name: str, value: dt.date | dt.datetime, tz: dt.tzinfo) -> None:
    """422 ``invalid_request`` naming ``name`` unless the date or time lies within FIRST_DAY … LAST_DAY."""
    if isinstance(value, dt.datetime):
        try:
            inside = EARLIEST <= (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(dt.UTC) <= LATEST
        except OverflowError:
            inside = False
    else:
        inside = FIRST_DAY <= value <= LAST_DAY
    if not inside:
        raise InvalidRequest(f"{name}: {value.isoformat()} is out of the range the hub answers about "
                             f"({FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()})")


def parse(model: type[M], body: bytes) -> M:
    """The validated body; 422 ``invalid_request`` describing what is wrong without echoing it."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        known = set(model.model_fields)
        raise InvalidRequest(describe_validation_errors(exc.errors(include_input=False, include_url=False), known)) from None

"""What a lookup route needs, declared as FastAPI dependencies: services, a signed caller, a valid body, field access.

Each check fills in the request's audit draft as it passes, so a refusal at any step is audited with
everything known up to that point. The order is fixed: size (413), signature (401), body (422), grant (403).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

from exchange_api.audit import AuditDraft, AuditLog
from exchange_api.errors import InvalidRequest
from exchange_api.hub_keys import HubKeyring
from exchange_api.lookup import LookupRequest, normalise_key
from exchange_api.permissions import AccessDecision, decide, unknown_fields
from exchange_api.registry import live_grants
from exchange_api.request_signatures import RequestVerifier, SignatureRefused, SignedMessage, VerifiedCaller
from hub.errors import Forbidden, InvalidIdentifier, PayloadTooLarge
from hub.settings import Settings
from schemas import LIBRARIES, library
from warehouse.published import CurrentSnapshot

MAX_BODY_BYTES = 16 * 1024  # a lookup is a few hundred bytes; anything near this is not a lookup


@dataclass
class Services:
    """The long-lived parts of one API process, built once by ``create_app``."""

    settings: Settings
    sessions: sessionmaker
    keyring: HubKeyring
    snapshots: CurrentSnapshot
    verifier: RequestVerifier
    audit: AuditLog


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_draft(request: Request) -> AuditDraft:
    draft = getattr(request.state, "audit", None)
    if draft is None:  # a route declared these dependencies without being in the audited paths
        raise RuntimeError(f"{request.url.path} is not an audited path")
    return draft


ServicesDep = Annotated[Services, Depends(get_services)]
Draft = Annotated[AuditDraft, Depends(get_draft)]


async def raw_body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY_BYTES without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


RawBody = Annotated[bytes, Depends(raw_body)]


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


def _note_unproven_body(draft: AuditDraft, body: bytes) -> None:
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


async def signed_caller(request: Request, body: RawBody, services: ServicesDep, draft: Draft) -> VerifiedCaller:
    """The department whose signature this request carries; 401 with a stable code otherwise."""
    message = SignedMessage(request.method, target_uri(request), request.headers)
    try:
        caller = await run_in_threadpool(services.verifier.verify, message, body)
    except SignatureRefused as exc:
        if exc.claimant is not None:
            draft.department, draft.kid = exc.claimant.department, exc.claimant.kid
            _note_unproven_body(draft, body)
        raise
    draft.department, draft.kid, draft.authenticated = caller.department, caller.kid, True
    return caller


Caller = Annotated[VerifiedCaller, Depends(signed_caller)]


def lookup_request(caller: Caller, body: RawBody, draft: Draft) -> LookupRequest:
    """The validated lookup body with its key normalised; 422 ``invalid_request`` otherwise."""
    try:
        req = LookupRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None
    draft.library, draft.purpose, draft.case_number = req.library, req.purpose, req.case_number
    draft.fields_requested = tuple(req.fields) if req.fields is not None else None
    draft.key = req.key.upper()
    key = normalise_key(req.library, req.key)
    draft.key = key
    return req.model_copy(update={"key": key})


Lookup = Annotated[LookupRequest, Depends(lookup_request)]


def field_access(caller: Caller, req: Lookup, services: ServicesDep, draft: Draft) -> AccessDecision:
    """The fields this caller may receive; 403 ``fields_not_granted`` if it named any it may not have."""
    lib = library(req.library)
    if req.fields is not None:
        unknown = unknown_fields(lib, req.fields)
        if unknown:
            # Counted, not named: a made-up field name could be anything, an ID number included.
            raise InvalidRequest(f"{len(unknown)} requested field(s) are not lookup fields of {lib.name}")
    with services.sessions() as session:
        grants = live_grants(session, caller.department, lib.name, req.purpose, dt.datetime.now(dt.UTC))
    decision = decide(lib, caller.department, req.purpose, grants, req.fields)
    draft.reason = decision.reason
    if decision.refuses_requested:
        names = ", ".join(d.field for d in decision.refused)
        raise Forbidden(
            f"requested field(s) not granted to this department for this purpose: {names}", code="fields_not_granted"
        )
    return decision


FieldAccess = Annotated[AccessDecision, Depends(field_access)]

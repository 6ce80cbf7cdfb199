"""The exchange API application: ``POST /v1/lookup``, ``GET /.well-known/jwks.json``, ``GET /healthz``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from exchange_api.answers import MEDIA_TYPE, build_payload, sign_answer
from exchange_api.audit import ANSWERED, NOT_ALLOWED, NOT_FOUND, AuditLog, audit_salt
from exchange_api.dependencies import Caller, Draft, FieldAccess, Lookup, Services, ServicesDep
from exchange_api.errors import install_error_handlers
from exchange_api.hub_keys import HubKeyring
from exchange_api.lookup import LookupRequest
from exchange_api.middleware import AuditTrail, RequestId
from exchange_api.models import exchange_sessions
from exchange_api.nonces import NonceStore
from exchange_api.request_signatures import RequestVerifier
from hub.settings import Settings, get_settings
from warehouse.published import CurrentSnapshot

JWKS_MAX_AGE = 300  # clients may cache the key set this long; rotation keeps old keys published longer than that

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"}},
        }
    },
}
ERROR_CODES = {
    401: "signature_missing, signature_malformed, signature_incomplete, digest_mismatch, unknown_key, "
    "stale_request, replayed_nonce, signature_invalid",
    403: "fields_not_granted",
    413: "payload_too_large",
    422: "invalid_request",
    500: "internal_error",
    503: "snapshot_unavailable",
}


def build_services(settings: Settings) -> Services:
    """Open everything one API process holds: metadata sessions, keys, the snapshot follower, verifier, audit."""
    sessions = exchange_sessions(settings)
    return Services(
        settings=settings,
        sessions=sessions,
        keyring=HubKeyring(settings.keys_dir),
        snapshots=CurrentSnapshot(settings.snapshots_dir),
        verifier=RequestVerifier(sessions, NonceStore(sessions), settings.signature_window_seconds),
        audit=AuditLog(sessions, audit_salt(settings.keys_dir)),
    )


def lookup(caller: Caller, req: Lookup, access: FieldAccess, services: ServicesDep, draft: Draft) -> Response:
    """Look a record up in the serving snapshot and answer with a signed JWS of the fields this caller may have."""
    snapshot = services.snapshots.get()
    # Nothing releasable: the record is not even read, so the answer cannot depend on whether it exists.
    record = snapshot.lookup(req.library, req.key) if access.released else None
    payload = build_payload(
        request_id=draft.request_id,
        snapshot_version=snapshot.version,
        library=req.library,
        record=record,
        released=access.released,
        department=caller.department,
        nonce=caller.nonce,
    )
    draft.snapshot_version = snapshot.version
    if payload["found"]:
        draft.outcome, draft.fields_released = ANSWERED, access.released
    else:
        draft.outcome = NOT_FOUND if access.released else NOT_ALLOWED
    return Response(sign_answer(payload, services.keyring), media_type=MEDIA_TYPE)


def jwks(services: ServicesDep) -> JSONResponse:
    """The hub's public answer-signing keys, active first."""
    return JSONResponse(services.keyring.jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"})


def healthz(services: ServicesDep) -> dict[str, Any]:
    """Ready when the metadata database answers and a snapshot is published (SnapshotError → 503 otherwise)."""
    with services.sessions() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "snapshot_version": services.snapshots.get().version}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The exchange API for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    services = build_services(settings)
    app = FastAPI(title="Data-sharing hub exchange API", version="1", docs_url=None, redoc_url=None)
    app.state.services = services
    install_error_handlers(app, known_names=set(LookupRequest.model_fields))
    # Added innermost first: RequestId wraps AuditTrail so the audit row and the response share one id.
    app.add_middleware(AuditTrail, audit=services.audit)
    app.add_middleware(RequestId)
    error_responses: dict[int | str, dict[str, Any]] = {
        status: {"description": codes, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for status, codes in ERROR_CODES.items()
    }
    app.add_api_route(
        "/v1/lookup",
        lookup,
        methods=["POST"],
        response_class=Response,
        responses={200: {"description": "compact JWS answer", "content": {MEDIA_TYPE: {}}}, **error_responses},
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": LookupRequest.model_json_schema()}}}
        },
    )
    app.add_api_route("/.well-known/jwks.json", jwks, methods=["GET"])
    app.add_api_route("/healthz", healthz, methods=["GET"])
    return app

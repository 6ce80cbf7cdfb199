"""The exchange API application: its routes, their OpenAPI description with every error code, and the plumbing.

Signed (RFC 9421) and audited:
    POST /v1/lookup              one record, by resident ID number, credit code or licence number
    POST /v1/lookup/batch        up to ``HUB_API_MAX_BATCH`` records of one library
    POST /v1/verify/licence      is licence N valid for holder H today / on date D? (yes/no)
    POST /v1/verify/existence    does this person / company exist and is it active? (yes/no)
    POST /v1/licences/by-holder  the holder's licences, each with its status and validity today / on date D
    POST /v1/citizen/access-log  who looked at this person's record (citizen portal only)
    GET  /v1/catalogue           libraries, fields, sharing classes, the caller's grants, how to apply
    GET  /v1/usage               the caller's own usage figures per purpose
Open:
    GET /.well-known/jwks.json   the hub's answer-signing public keys
    GET /healthz  GET /ping  GET /metrics  GET /openapi.json
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from exchange_api.answers import MEDIA_TYPE
from exchange_api.config import ApiSettings
from exchange_api.errors import install_error_handlers
from exchange_api import licences_by_holder, metadata_answers
from exchange_api.lookup import (
    AccessLogRequest, BatchLookupRequest, ExistenceCheck, LicenceCheck, LicencesByHolderRequest, LookupRequest,
)
from exchange_api.metrics import CONTENT_TYPE
from exchange_api.middleware import RequestContext, RequestIds
from exchange_api.service import Exchange
from hub.settings import Settings, get_settings

JWKS_MAX_AGE = 300  # clients may cache the key set this long; rotation keeps old keys published longer than that

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "request_id": {"type": ["string", "null"]}},
        }
    },
}

# Every error code, by status. The same list is in PROTOCOL.md; a test checks the two agree with the code.
ERROR_CODES: dict[int, dict[str, str]] = {
    401: {
        "signature_missing": "no Signature / Signature-Input",
        "signature_malformed": "not structured fields, several signatures, wrong alg, bad parameter types or nonce length",
        "signature_incomplete": "@method, content-digest, @target-uri (or @path + @authority), created, keyid or nonce missing",
        "digest_mismatch": "Content-Digest missing or not matching the body",
        "unknown_key": "key id not registered, retired, not yet valid, expired, or its department inactive",
        "stale_request": "created outside the allowed window (either way) or expires passed",
        "signature_invalid": "the signature does not verify",
        "replayed_nonce": "the nonce was already used with this key",
    },
    403: {
        "fields_not_granted": "a named field is not granted for this purpose (names only the field, never a record)",
        "not_citizen_portal": "only the citizen portal department may read access logs",
    },
    404: {"not_found": "no such route (a missing record is a 200 answer with found=false)"},
    405: {"method_not_allowed": "wrong method (the Allow header lists the right ones)"},
    413: {"payload_too_large": "body above HUB_API_MAX_BODY_BYTES", "batch_too_large": "more keys than HUB_API_MAX_BATCH"},
    422: {"invalid_request": "body is not valid for the endpoint, or a key fails its check digit / format",
          "as_of_unavailable": "as_of or a past day asked of a snapshot that keeps no history",
          "unknown_purpose": "the purpose is not in the hub's purpose catalogue (or retired)",
          "purpose_not_for_library": "the purpose is registered, but not for the library asked about"},
    429: {"rate_limited": "over the department's requests/s in this process (Retry-After)",
          "quota_exceeded": "the department's daily record quota is used up (Retry-After)",
          "sweep_suspected": "the department's lookups look like an enumeration of keys: throttled (Retry-After)"},
    500: {"internal_error": "unexpected failure: no answer is released"},
    503: {"snapshot_unavailable": "no published snapshot yet",
          "audit_unavailable": "the audit row could not be written (disk full, database down): no answer is released "
                               "(Retry-After)"},
}

SIGNED_STATUSES = (401, 413, 422, 429, 500, 503)


def _error_responses(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": "; ".join(f"`{code}`: {what}" for code, what in ERROR_CODES[status].items()),
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        for status in statuses
    }


def _jws_response(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description + " — a compact JWS (EdDSA, kid in the header); verify it against "
                                               "/.well-known/jwks.json", "content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}}


def _body(model: Any) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


SIGNATURE_NOTE = ("Signed with HTTP Message Signatures (RFC 9421, Ed25519) covering @method, @target-uri, content-type "
                  "and content-digest, with created, keyid and nonce; see PROTOCOL.md.")


class ExchangeApp(FastAPI):
    """FastAPI, except that the signed routes go straight to their pipeline.

    ``Exchange.handle`` catches every error itself and answers with the one error body, so for those
    routes Starlette's error middlewares, exception handlers and router would only add time to each
    request (about a tenth of a lookup's CPU). Every other route, and any request under a root path,
    takes the usual way.
    """

    signed_endpoints: dict[tuple[str, str], ASGIApp]
    request_context: RequestContext

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            endpoint = self.signed_endpoints.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                await self.request_context.run(scope, receive, send, endpoint)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, api: ApiSettings | None = None) -> FastAPI:
    """The exchange API for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    exchange = Exchange(settings, api)
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        exchange.close()  # the writer commits what is queued, then stops

    app = ExchangeApp(title="Data-sharing hub exchange API", version="1", docs_url=None, redoc_url=None,
                  description=SIGNATURE_NOTE, lifespan=lifespan)
    app.state.exchange = app.state.services = exchange
    install_error_handlers(app, known_names=set(LookupRequest.model_fields))

    signed_paths: dict[str, dict[str, Any]] = {}
    app.signed_endpoints = {}

    def signed(path: str, method: str, operation: str, handler: Any, *, summary: str, model: Any = None,
               statuses: tuple[int, ...] = SIGNED_STATUSES, answer: str = "signed answer", json_answer: bool = False) -> None:
        # Plain Starlette routes: the pipeline parses, checks and answers itself, so FastAPI's dependency
        # solving would only add time to every request. Their OpenAPI entries are written here instead.
        async def endpoint(request: Request) -> Response:
            return await exchange.handle(request, operation, handler)

        async def direct(scope: Scope, receive: Receive, send: Send) -> None:
            response = await exchange.handle(Request(scope, receive), operation, handler)
            await response(scope, receive, send)

        app.router.routes.append(Route(path, endpoint, methods=[method], name=operation))
        app.signed_endpoints[(method, path)] = direct
        responses = ({200: {"description": answer, "content": {"application/json": {}}}} if json_answer
                     else _jws_response(answer))
        entry: dict[str, Any] = {"summary": summary, "description": SIGNATURE_NOTE, "operationId": operation,
                                 "responses": {str(k): v for k, v in {**responses, **_error_responses(statuses)}.items()}}
        if model is not None:
            entry.update(_body(model))
        signed_paths.setdefault(path, {})[method.lower()] = entry

    with_grants = (401, 403, 413, 422, 429, 500, 503)
    signed("/v1/lookup", "POST", "lookup", exchange.lookup, model=LookupRequest, statuses=with_grants,
           summary="Look one record up", answer="the released fields with provenance, or found=false")
    signed("/v1/lookup/batch", "POST", "batch", exchange.batch, model=BatchLookupRequest, statuses=with_grants,
           summary="Look up to the batch bound of records up", answer="one result per key, in order")
    signed("/v1/verify/licence", "POST", "verify_licence", exchange.verify_licence, model=LicenceCheck,
           summary="Is licence N valid for holder H today or on date D?", answer="answer: true or false")
    signed("/v1/verify/existence", "POST", "verify_existence", exchange.verify_existence, model=ExistenceCheck,
           summary="Does this person or company exist and is it active?", answer="answer: true or false")
    signed("/v1/licences/by-holder", "POST", "licences_by_holder",
           lambda call: licences_by_holder.answer(exchange, call), model=LicencesByHolderRequest,
           statuses=with_grants, summary="Which licences does this holder have, valid today or on date D?",
           answer="licences: each with its released fields, status and validity on that day")
    signed("/v1/citizen/access-log", "POST", "access_log", lambda call: metadata_answers.access_log(exchange, call), model=AccessLogRequest,
           statuses=with_grants, summary="Who looked at this person's record (citizen portal only)",
           answer="entries: when, which department, which fields, for what purpose")
    signed("/v1/catalogue", "GET", "catalogue", lambda call: metadata_answers.catalogue(exchange, call), json_answer=True,
           statuses=(401, 429, 500, 503), summary="What exists and what this department may see",
           answer="libraries and fields with labels and sharing classes, the caller's grants and purposes, how to apply")
    signed("/v1/usage", "GET", "usage", lambda call: metadata_answers.usage(exchange, call), json_answer=True, statuses=(401, 422, 429, 500, 503),
           summary="This department's usage figures per purpose", answer="requests and records per purpose")

    async def jwks() -> JSONResponse:
        """The hub's public answer-signing keys, active first; old keys stay so old answers still verify."""
        return JSONResponse(exchange.keyring.jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"})

    def _ready() -> dict[str, Any]:
        with exchange.sessions() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "snapshot_version": exchange.snapshots.get().version}

    async def healthz() -> dict[str, Any]:
        """Ready when the metadata database answers and a snapshot is published (503 otherwise)."""
        return await run_in_threadpool(_ready)

    async def ping() -> Response:
        """Liveness only: the cheapest answer this server gives (the benchmark's ceiling)."""
        return PlainTextResponse("pong")

    async def metrics() -> Response:
        """Prometheus metrics of this process: requests, refusals by reason, latency, audit commits."""
        return Response(exchange.metrics.render(), media_type=CONTENT_TYPE)

    app.add_api_route("/.well-known/jwks.json", jwks, methods=["GET"], summary="Hub public keys (JWKS)")
    app.add_api_route("/healthz", healthz, methods=["GET"], summary="Readiness",
                      responses=_error_responses((503,)))
    app.add_api_route("/ping", ping, methods=["GET"], response_class=PlainTextResponse, summary="Liveness")
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=PlainTextResponse,
                      summary="Prometheus metrics")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema["paths"] = {**signed_paths, **schema.get("paths", {})}
            schema["components"] = schema.get("components", {}) | {"x-error-codes": ERROR_CODES}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    endpoints = {route.path: route.path for route in app.routes if hasattr(route, "path")}
    ids = RequestIds()  # one counter for both ways in: request ids stay unique in the process
    app.add_middleware(RequestContext, metrics=exchange.metrics, endpoints=endpoints, ids=ids)
    app.request_context = RequestContext(None, exchange.metrics, endpoints, ids)
    return app

"""Answers: what the hub says, signed as a compact JWS (RFC 7515) with the hub's active key.

Every answer payload carries ``request_id``, ``snapshot_version``, ``issued_at``, ``department`` and
``nonce`` (the last two bind it to the request it answers) and one of:

- a lookup: ``library``, ``key``, ``found``, ``record`` ({field: {"value", "source_department", "updated_at"
  [, "conflict": {"golden_value", "rule", "values"}]}}), and ``as_of`` when asked for;
- a batch: ``library``, ``results`` (a list of the above per key, in request order), ``as_of``;
- a verification: ``question``, ``subject``, ``on``, ``answer`` (true/false);
- an access log: ``key``, ``entries``.

Every signed answer also carries ``audit``: ``{"seq", "hash"}``, the head of the audit chain just after the
answer's own audit row(s), so each department holds a witness the hub's database alone cannot rewrite. The
head is known only once the row is written, so the service builds a :class:`PendingAnswer` and signs it
after the audit commit.

"No such record" and "nothing may be released" give the same ``found: false, record: {}``.
The JWS is built here directly (header and payload base64url, Ed25519 over ``header.payload``): it is a
few lines, and a department verifies it with any JOSE library against ``/.well-known/jwks.json``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from exchange_api.hub_keys import HubKey, HubKeyring
from exchange_api.jose import JWS_ALG

MEDIA_TYPE = "application/jose"
ANSWER_TYP = "hub-answer+jws"


class SignatureRefused(ValueError):
    """A JWS that is malformed, of another type, or not signed by any of the hub's keys."""


def json_value(value: Any) -> Any:
    """A record value as JSON: dates and times in ISO 8601, decimals as strings so no precision is lost."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def field_entry(record: Mapping[str, Any], name: str, provenance: Mapping[str, Mapping[str, Any]] | None = None,
                conflicts: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One released field: its value, where it came from (per field when the warehouse records it), any conflict."""
    origin = (provenance or {}).get(name)
    entry = {
        "value": json_value(record.get(name)),
        "source_department": origin["source_department"] if origin else record.get("source_department"),
        "updated_at": json_value(origin["updated_at"] if origin else record.get("source_updated_at")),
    }
    conflict = (conflicts or {}).get(name)
    if conflict is not None:
        entry["conflict"] = {
            "golden_value": json_value(conflict.get("golden_value")),
            "rule": conflict.get("rule"),
            "values": [{k: json_value(v) for k, v in item.items()} for item in conflict.get("values") or []
                       if isinstance(item, dict)],
        }
    return entry


def record_result(key: str, record: Mapping[str, Any] | None, released: Sequence[str], *,
                  provenance: Mapping[str, Mapping[str, Any]] | None = None,
                  conflicts: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``key``, ``found`` and ``record``; a missing record and an empty release look the same."""
    found = record is not None and bool(released)
    return {
        "key": key,
        "found": found,
        "record": {n: field_entry(record, n, provenance, conflicts) for n in released} if found and record else {},
    }


def envelope(*, request_id: str, snapshot_version: str | None, department: str, nonce: str,
             issued_at: dt.datetime | None = None) -> dict[str, Any]:
    """The part of every answer that says when, from which snapshot and to which request."""
    return {
        "request_id": request_id,
        "snapshot_version": snapshot_version,
        "issued_at": json_value(issued_at or dt.datetime.now(dt.UTC)),
        "department": department,
        "nonce": nonce,
    }


def build_payload(
    *,
    request_id: str,
    snapshot_version: str | None,
    library: str,
    record: Mapping[str, Any] | None,
    released: Sequence[str],
    department: str,
    nonce: str,
    key: str | None = None,
    issued_at: dt.datetime | None = None,
    as_of: str | None = None,
    provenance: Mapping[str, Mapping[str, Any]] | None = None,
    conflicts: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A single lookup's answer payload."""
    payload = envelope(request_id=request_id, snapshot_version=snapshot_version, department=department, nonce=nonce,
                       issued_at=issued_at)
    payload["library"] = library
    payload.update(record_result(key or "", record, released, provenance=provenance, conflicts=conflicts))
    if key is None:
        del payload["key"]
    if as_of is not None:
        payload["as_of"] = as_of
    return payload


def b64url(data: bytes) -> str:
    """base64url without padding, as JWS uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """The bytes of a base64url segment (padding optional); ValueError if it is not one."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


_b64 = b64url
_HEADERS: dict[tuple[str, str], str] = {}


def _header(key: HubKey, typ: str = ANSWER_TYP) -> str:
    header = _HEADERS.get((key.kid, typ))
    if header is None:
        header = _HEADERS[(key.kid, typ)] = _b64(json.dumps({"alg": JWS_ALG, "kid": key.kid, "typ": typ},
                                                            separators=(",", ":")).encode())
    return header


def payload_json(payload: Mapping[str, Any]) -> bytes:
    """The payload as compact JSON (UTF-8, sorted keys): orjson, or the standard library for what orjson refuses."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign_answer(payload: Mapping[str, Any], keyring: HubKeyring, typ: str = ANSWER_TYP) -> str:
    """The payload as a compact JWS signed with the hub's active key, its kid in the header."""
    key = keyring.active()
    signing_input = f"{_header(key, typ)}.{_b64(payload_json(payload))}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{_b64(key.sign(signing_input))}"


def sign_detached(payload: Mapping[str, Any], keyring: HubKeyring, typ: str) -> str:
    """A detached compact JWS of ``payload`` (RFC 7515 appendix F): ``header..signature``, the payload kept beside it."""
    header, _, signature = sign_answer(payload, keyring, typ).split(".")
    return f"{header}..{signature}"


def verify_jws(token: str, keyring: HubKeyring, typ: str, *, detached: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The payload of a compact JWS of type ``typ`` signed by one of the hub's keys; SignatureRefused if it is not.

    With ``detached``, ``token`` is ``header..signature`` and the payload is ``detached`` in its canonical form.
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not parts[0] or not parts[2] or (detached is None) == (not parts[1]):
        raise SignatureRefused("not a compact JWS" if detached is None else "not a detached compact JWS")
    header_b64, payload_b64, signature_b64 = parts
    if detached is not None:
        payload_b64 = _b64(payload_json(detached))
    try:
        header = json.loads(b64url_decode(header_b64))
        signature = b64url_decode(signature_b64)
    except ValueError:
        raise SignatureRefused("its header or signature is not base64url JSON") from None
    if not isinstance(header, dict) or header.get("alg") != JWS_ALG or header.get("typ") != typ:
        raise SignatureRefused(f"its header is not alg {JWS_ALG}, typ {typ}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not keyring.verify(kid, f"{header_b64}.{payload_b64}".encode("ascii"), signature):
        raise SignatureRefused("its signature does not verify against the hub's keys")
    if detached is not None:
        return dict(detached)
    try:
        payload = json.loads(b64url_decode(payload_b64))
    except ValueError:
        raise SignatureRefused("its payload is not base64url JSON") from None
    if not isinstance(payload, dict):
        raise SignatureRefused("its payload is not a JSON object")
    return payload


class PendingAnswer(Response):
    """An answer's payload waiting for the audit chain's head after its own row; ``sign(head)`` makes it the JWS."""

    def __init__(self, payload: dict[str, Any], keyring: HubKeyring):
        super().__init__(media_type=MEDIA_TYPE)
        self.payload, self.keyring, self.signed = payload, keyring, False

    def sign(self, head: tuple[int, str]) -> PendingAnswer:
        """Sign the payload with ``audit`` set to ``head`` (sequence number, row hash)."""
        self.payload["audit"] = {"seq": head[0], "hash": head[1]}
        self.body = sign_answer(self.payload, self.keyring).encode("ascii")
        self.headers["content-length"] = str(len(self.body))
        self.signed = True
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.signed:
            # Fail closed: an answer that has no audit row behind it must never leave.
            raise RuntimeError("a signed answer was about to leave before its audit row was written")
        await super().__call__(scope, receive, send)

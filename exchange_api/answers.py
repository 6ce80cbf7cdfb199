"""Answers: the released fields of a record with their provenance, signed as a compact JWS with the hub's active key.

Payload::

    {"request_id", "snapshot_version", "issued_at", "library", "found",
     "record": {field: {"value", "source_department", "updated_at"}},
     "department", "nonce"}

``department`` and ``nonce`` bind the answer to the request it answers. "No such record" and
"nothing may be released" both give ``found: false`` and ``record: {}``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jws

from exchange_api.hub_keys import HubKeyring
from exchange_api.jose import JWS_ALG, REGISTRY

MEDIA_TYPE = "application/jose"
ANSWER_TYP = "hub-answer+jws"


def json_value(value: Any) -> Any:
    """A record value as JSON: dates and times in ISO 8601, decimals as strings so no precision is lost."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def provenance(record: Mapping[str, Any], field: str) -> dict[str, Any]:
    """Where a field's value came from; today per record, the place to read per-field provenance once stored."""
    return {
        "value": json_value(record.get(field)),
        "source_department": record.get("source_department"),
        "updated_at": json_value(record.get("source_updated_at")),
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
    issued_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The answer payload; ``record`` None or nothing released gives the same not-found shape."""
    found = record is not None and bool(released)
    return {
        "request_id": request_id,
        "snapshot_version": snapshot_version,
        "issued_at": json_value(issued_at or dt.datetime.now(dt.UTC)),
        "library": library,
        "found": found,
        "record": {name: provenance(record, name) for name in released} if found and record is not None else {},
        "department": department,
        "nonce": nonce,
    }


def sign_answer(payload: Mapping[str, Any], keyring: HubKeyring) -> str:
    """The payload as a compact JWS signed with the hub's active key, its kid in the header."""
    key = keyring.active()
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    header = {"alg": JWS_ALG, "kid": key.kid, "typ": ANSWER_TYP}
    return jws.serialize_compact(header, body, key.jwk, registry=REGISTRY)

"""``POST /v1/licences/by-holder``: which licences does this holder have, and were they valid on that day?

Found through the snapshot's holder index (``warehouse.published.SECONDARY_KEYS``), today's records or,
for a past day, the versions the licence history held then. The answer links licences to a holder,
which is what the conditional field ``holder_id`` discloses: the caller needs a grant of it for the
purpose; each licence then carries the fields its grants release, and its status and validity that
day by the same rule as ``/v1/verify/licence``. One audit row per answer, keyed by the holder.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.responses import Response

from exchange_api import answers
from exchange_api.audit import ANSWERED, NOT_FOUND
from exchange_api.lookup import LicencesByHolderRequest, normalise_key
from exchange_api.request_input import parse
from exchange_api.service import Call, Exchange
from hub.errors import Forbidden
from schemas import library
from schemas.licences import status_on, valid_on
from warehouse.published import PublishedSnapshot

HOLDER = "holder_id"
# What the rule of schemas.licences.valid_on reads, whatever the caller may see.
RULE_COLUMNS = ("licence_number", "licence_type", "holder_id", "valid_from", "valid_to", "status", "status_date",
                "status_history", "source_department", "source_updated_at")


def holder_key(raw: str) -> str:
    """The canonical holder: a resident ID number if it looks like one, else a credit code; 422 if it is neither."""
    text = raw.strip().upper()
    looks_personal = len(text) in (15, 18) and text[:15].isdigit()
    return normalise_key("population" if looks_personal else "legal_person", text)


def _records(exchange: Exchange, snapshot: PublishedSnapshot, holder: str, on: dt.date,
             columns: tuple[str, ...]) -> tuple[list[dict[str, Any]], bool]:
    """The holder's licence records as they stood on ``on`` and True, or today's and False when no history is kept."""
    if on < exchange.today() and snapshot.has("licence_history"):
        when = exchange._as_of(on)  # noqa: SLF001 - the end of that day, hub time, as every as_of
        return snapshot.lookup_by_as_of("licence", HOLDER, holder, when, columns), True  # type: ignore[arg-type]
    return snapshot.lookup_by("licence", HOLDER, holder, columns), on >= exchange.today()


def answer(exchange: Exchange, call: Call) -> Response:
    """The signed list of the holder's licences with their status and validity on the day asked."""
    req = parse(LicencesByHolderRequest, call.body)
    draft = call.draft
    draft.library, draft.purpose, draft.case_number = "licence", req.purpose, req.case_number
    holder = draft.key = holder_key(req.holder_id)
    exchange.check_purpose(req.purpose, "licence")  # noqa: SLF001 - the pipeline's own steps, in its order
    on = exchange._day_asked(req.on)  # noqa: SLF001
    exchange._charge(call, 1)  # noqa: SLF001
    lib = library("licence")
    decision = exchange._access(call, lib, req.purpose, None)  # noqa: SLF001
    if HOLDER not in decision.released:
        raise Forbidden("listing a holder's licences discloses holder_id: it needs a grant of licence field(s): "
                        "holder_id", code="fields_not_granted")
    snapshot = exchange.snapshots.get()
    draft.snapshot_version = snapshot.version
    columns = tuple(dict.fromkeys((*RULE_COLUMNS, *decision.released)))
    records, as_it_stood = _records(exchange, snapshot, holder, on, columns)
    wanted = set(req.licence_types) if req.licence_types else None
    items = []
    for record in records:
        if wanted is not None and record.get("licence_type") not in wanted:
            continue
        item = answers.record_result(record["licence_number"], record, decision.released)
        item["status"] = status_on(record, on, as_it_stood)
        item["valid"] = valid_on(record, on, as_it_stood)
        items.append(item)
    draft.outcome, draft.fields_released = (ANSWERED, decision.released) if items else (NOT_FOUND, ())
    draft.reason = f"{len(items)} licence(s) of the holder; {decision.reason}"
    payload = answers.envelope(request_id=draft.request_id, snapshot_version=snapshot.version,
                               department=call.caller.department, nonce=call.caller.nonce)
    payload.update(question="licences_by_holder", holder_id=holder, on=on.isoformat(),
                   licence_types=sorted(wanted) if wanted is not None else None, licences=items)
    return exchange.jose(payload)  # noqa: SLF001

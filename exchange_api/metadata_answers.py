"""The answers about the exchange itself and about its own records: the catalogue, a department's usage, a citizen's access log."""

from __future__ import annotations

import datetime as dt

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from exchange_api import answers
from exchange_api.audit import ANSWERED
from exchange_api.errors import InvalidRequest
from exchange_api.lookup import AccessLogRequest, normalise_key
from exchange_api.permissions import data_fields
from exchange_api.request_input import check_in_range, parse
from exchange_api.service import Call, Exchange
from hub.errors import Forbidden
from schemas import LIBRARIES

# The outcome of a catalogue or usage call: answered, but with nothing about anyone, so it is neither a record
# released nor a paper proof replaced in the usage figures.
METADATA = "metadata"


def catalogue(exchange: Exchange, call: Call) -> Response:
    draft = call.draft
    draft.outcome, draft.reason = METADATA, "catalogue"
    grants = exchange.registry.all_grants(call.caller.department, draft.at)
    used = exchange.audit.quota_used.get((call.caller.department, draft.at.astimezone(dt.UTC).date()))
    body = {
        "department": call.caller.department,
        "libraries": [
            {"name": lib.name, "label": lib.label, "description": lib.description, "key": lib.key,
             "fields": [{"name": f.name, "label": f.label, "type": f.type, "sharing": f.sharing.value,
                         "personal_data": f.personal.value} for f in data_fields(lib)],
             "provenance": "each released value carries source_department and updated_at"}
            for lib in LIBRARIES.values()
        ],
        "grants": [{"id": g.id, "library": g.library, "fields": list(g.field_names), "purpose": g.purpose,
                    "expires_at": answers.json_value(g.expires_at)} for g in grants],
        "purposes": [p.public() for p in exchange.registry.purposes().values() if p.active],
        "limits": {"rate_per_second": call.limits.rate_per_second, "burst": call.limits.burst,
                   "daily_quota": call.limits.daily_quota, "used_today": used},
        "verification": "POST /v1/verify/licence and /v1/verify/existence answer yes/no to any registered "
                        "department; they release no field",
        "licences_by_holder": "POST /v1/licences/by-holder lists a holder's licences with their status and "
                              "validity on a day; it needs a grant of licence.holder_id for the purpose",
        "how_to_apply": exchange.api.apply_instructions,
    }
    return JSONResponse(body)

async def usage(exchange: Exchange, call: Call) -> Response:
    draft = call.draft
    draft.outcome, draft.reason = METADATA, "own usage figures"
    since = call.request.query_params.get("since")
    try:
        day = dt.date.fromisoformat(since) if since else None
    except ValueError:
        raise InvalidRequest("since must be a date (YYYY-MM-DD)") from None
    if day is not None:
        check_in_range("since", day, exchange.tz)
    start = dt.datetime.combine(day, dt.time(), tzinfo=exchange.tz) if day else None
    rows = await run_in_threadpool(exchange.audit.usage, department=call.caller.department, since=start)
    return JSONResponse({"department": call.caller.department, "since": since, "figures": rows})

async def access_log(exchange: Exchange, call: Call) -> Response:
    req = parse(AccessLogRequest, call.body)
    draft = call.draft
    draft.library, draft.purpose, draft.case_number = "population", req.purpose, req.case_number
    key = draft.key = normalise_key("population", req.id_number)
    exchange.check_purpose(req.purpose, "population")
    if req.since:
        check_in_range("since", req.since, exchange.tz)
    # The body first, then who asks (PROTOCOL.md §5), so a refusal says the same whoever sends it.
    if call.caller.department not in exchange.api.citizen_portals:
        raise Forbidden("only the citizen portal may read access logs", code="not_citizen_portal")
    since = dt.datetime.combine(req.since, dt.time(), tzinfo=exchange.tz) if req.since else None
    rows = await run_in_threadpool(exchange.audit.access_log, key, since=since)
    names = exchange.registry.department_names()
    entries = [{"at": answers.json_value(r.at), "department": r.department,
                "department_name": names.get(r.department or "", r.department), "purpose": r.purpose,
                "library": r.library, "operation": r.operation,
                "fields": [f for f in r.fields_released.split(",") if f]}
               for r in rows if r.operation != "access_log"]
    draft.outcome, draft.reason = ANSWERED, f"access log of {len(entries)} entries"
    draft.fields_released = ("access_log",)
    draft.library = "access_log"  # not a lookup of the person's record: kept out of their own log
    payload = answers.envelope(request_id=draft.request_id, snapshot_version=None,
                               department=call.caller.department, nonce=call.caller.nonce)
    payload.update(key=key, since=req.since.isoformat() if req.since else None, entries=entries)
    return exchange.jose(payload)

"""The exchange: what one API process holds, and the one pipeline every signed request goes through.

::

    body size (413) → signature (401) → rate limit, sweep throttle, quota (429) → body, purpose (422)
      → batch bound (413) → permission (403) → answer from the snapshot → sweep watch → audit group commit
      → response

The audit commit decides the last two refusals: a nonce already seen (401 ``replayed_nonce``) and a daily
quota used up by other processes meanwhile (429 ``quota_exceeded``). Whatever the outcome, a request
that can be traced to a department gets its audit rows before its response leaves; if they cannot be
written, the answer is dropped and the response is 503 ``audit_unavailable``. The request's input is read
in ``exchange_api.request_input``; the catalogue, usage and access-log answers live in
``exchange_api.metadata_answers``, the licences of a holder in ``exchange_api.licences_by_holder``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from exchange_api import answers
from exchange_api.audit import (
    ANSWERED, NOT_ALLOWED, NOT_FOUND, OVER_QUOTA, REPLAYED, VERIFIED, AuditDraft, AuditItem, AuditLog, Ticket,
    audit_salt,
)
from exchange_api.audit_checkpoints import Checkpoints, checkpoint_dir
from exchange_api.config import ApiSettings
from exchange_api.errors import (
    AsOfUnavailable, AuditUnavailable, InvalidRequest, error_response, problem_of,
)
from exchange_api.hub_keys import HubKeyring
from exchange_api.limits import RateLimiter, check_quota
from exchange_api.lookup import (
    BatchLookupRequest, ExistenceCheck, LicenceCheck, LookupRequest, normalise_key,
)
from exchange_api.metrics import Metrics
from exchange_api.models import exchange_sessions
from exchange_api.permissions import AccessDecision, decide, unknown_fields
from exchange_api.purposes import check_purpose
from exchange_api.registry import Limits, RegistryCache
from exchange_api.request_input import check_in_range, note_unproven_body, parse, read_body, target_uri
from exchange_api.request_signatures import RequestVerifier, SignatureRefused, SignedMessage, VerifiedCaller
from exchange_api.sweeps import SweepDetector, alert_ticket, observed
from exchange_api.writer import GroupWriter
from hub.errors import AuthError, Forbidden, InvalidIdentifier, PayloadTooLarge, RateLimited, SnapshotError
from hub.settings import Settings
from schemas import Library, library
from schemas.licences import valid_on
from warehouse.published import CurrentSnapshot, PublishedSnapshot

log = logging.getLogger(__name__)

ACTIVE = {"population": ("life_status", frozenset({"living"})), "legal_person": ("status", frozenset({"active"}))}


@dataclass
class Call:
    """One signed request on its way through the pipeline."""

    request: Request
    body: bytes
    caller: VerifiedCaller
    draft: AuditDraft
    ticket: Ticket
    limits: Limits


class Exchange:
    """The long-lived parts of one API process and the signed-request pipeline."""

    def __init__(self, settings: Settings, api: ApiSettings | None = None):
        self.settings = settings
        self.api = api or ApiSettings()
        self.sessions: sessionmaker = exchange_sessions(settings)
        self.registry = RegistryCache(self.sessions, self.api.registry_cache_seconds,
                                      Limits(self.api.rate_per_second, self.api.burst, self.api.daily_quota))
        self.keyring = HubKeyring(settings.keys_dir)
        self.snapshots = CurrentSnapshot(settings.snapshots_dir)
        self.verifier = RequestVerifier(self.registry, settings.signature_window_seconds)
        checkpoints = Checkpoints(checkpoint_dir(settings.data_dir), self.keyring, every_rows=self.api.audit_checkpoint_rows,
                                  every_seconds=self.api.audit_checkpoint_seconds)
        self.audit = AuditLog(self.sessions, audit_salt(settings.keys_dir), synchronous=self.api.audit_synchronous,
                              checkpoints=checkpoints)
        self.writer = GroupWriter(self.audit, self.api.audit_group_max, self.api.audit_writer)
        self.rates = RateLimiter()
        self.metrics = Metrics()
        self.tz = zoneinfo.ZoneInfo(self.api.timezone)
        self.metrics.gauges.append(self._gauges)
        self.sweeps = SweepDetector(self.api)
        self.metrics.gauges.append(self.sweeps.gauges)

    def close(self) -> None:
        self.writer.close()
        self.audit.close()  # a last signed checkpoint of the chain head

    def today(self) -> dt.date:
        return dt.datetime.now(self.tz).date()

    def _gauges(self) -> list[str]:
        lines = ["# HELP hub_api_audit_commits_total Audit group commits, and the requests they carried.",
                 "# TYPE hub_api_audit_commits_total counter",
                 f"hub_api_audit_commits_total {self.writer.groups}",
                 "# TYPE hub_api_audit_committed_requests_total counter",
                 f"hub_api_audit_committed_requests_total {self.writer.grouped}",
                 "# HELP hub_api_audit_write_seconds_total Time the event loop spent writing audit groups (before COMMIT).",
                 "# TYPE hub_api_audit_write_seconds_total counter",
                 f"hub_api_audit_write_seconds_total {self.writer.write_seconds:.6f}",
                 "# HELP hub_api_audit_lock_busy_total Times a group found the chain lock held by another writer.",
                 "# TYPE hub_api_audit_lock_busy_total counter",
                 f"hub_api_audit_lock_busy_total {self.writer.lock_busy}"]
        version = self.snapshots.serving_name
        if version:
            lines += ["# HELP hub_api_snapshot_info The snapshot being served.", "# TYPE hub_api_snapshot_info gauge",
                      f'hub_api_snapshot_info{{version="{version}"}} 1']
        return lines

    # ----- the pipeline -------------------------------------------------------------------------------------

    async def handle(self, request: Request, operation: str, answer: Callable[[Call], Awaitable[Response] | Response],
                     *, body_limit: int | None = None) -> Response:
        """Run a signed request through every check, ``answer`` it, audit it, then let the response go."""
        state = request.scope.setdefault("state", {})
        request_id = state.get("request_id") or ""
        draft = AuditDraft(request_id=request_id, at=dt.datetime.now(dt.UTC), operation=operation)
        ticket = Ticket(draft, 200)
        code = message = None
        try:
            body = await read_body(request, body_limit or self.api.max_body_bytes)
            caller = self._authenticate(request, body, draft)
            ticket.nonce = (caller.kid, caller.nonce, caller.nonce_expires)
            limits = self.registry.limits(caller.department)
            ticket.daily_quota = limits.daily_quota
            self.rates.take(caller.department, limits)
            try:
                self.sweeps.check(caller.department, operation)
            except RateLimited:
                note_unproven_body(draft, body)  # which record a throttled sweep went on to ask for, for the audit
                raise
            call = Call(request, body, caller, draft, ticket, limits)
            result = answer(call)
            response = await result if isinstance(result, Awaitable) else result  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - every failure becomes the one error body, audited
            problem = problem_of(exc, request_id)
            code, message = problem.code, problem.message
            response = error_response(problem, request_id)
        ticket.status, ticket.code = response.status_code, code
        if not draft.attributable and response.status_code >= 400:
            self._attribute(request, draft)
        if draft.attributable:
            if message and not draft.reason:
                draft.reason = message
            detection = (self.sweeps.observe(draft.department, operation, *observed(draft))  # type: ignore[arg-type]
                         if response.status_code == 200 and draft.authenticated else None)
            try:
                if detection is None:
                    await self.writer.submit(ticket)
                else:  # the detection's own audit row goes in the same group commit as the request's
                    log.warning("department %s throttled: %s", draft.department, detection.reason)
                    await asyncio.gather(self.writer.submit(ticket), self.writer.submit(alert_ticket(draft, detection)))
            except Exception:
                # The writer logged the cause; the caller only learns that no answer leaves without its row.
                problem = problem_of(AuditUnavailable("the audit log cannot be written; no answer is released, retry later"))
                code = problem.code
                response = error_response(problem, request_id)
            else:
                if ticket.verdict == REPLAYED:
                    problem = problem_of(AuthError("this nonce has already been used", code="replayed_nonce"))
                    code = problem.code
                    response = error_response(problem, request_id)
                elif ticket.verdict == OVER_QUOTA:
                    # No Retry-After, as before: the commit knows the quota is used up, not when it frees.
                    problem = problem_of(RateLimited("the department's daily quota is used up", code="quota_exceeded"))
                    code = problem.code
                    response = error_response(problem, request_id)
                elif isinstance(response, answers.PendingAnswer) and ticket.head is not None:
                    response.sign(ticket.head)  # the chain head after its own row: known only now
        if code:
            state["error_code"] = code
        # Answers name people and what the hub holds on them; a refusal names the request: neither may be kept.
        response.headers["Cache-Control"] = "no-store"
        return response

    def _attribute(self, request: Request, draft: AuditDraft) -> None:
        """A request refused before its signature was read (a body too large) still belongs to the key it names."""
        try:
            claimant = self.verifier.claimant(request.headers)
        except Exception:  # noqa: BLE001 - the request is already refused; this only decides whether it is audited
            log.exception("could not attribute refused request %s", draft.request_id)
            return
        if claimant is not None:
            draft.department, draft.kid = claimant.department, claimant.kid

    def _authenticate(self, request: Request, body: bytes, draft: AuditDraft) -> VerifiedCaller:
        message = SignedMessage(request.method, target_uri(request), request.headers)
        try:
            caller = self.verifier.verify(message, body)
        except SignatureRefused as exc:
            if exc.claimant is not None:
                draft.department, draft.kid = exc.claimant.department, exc.claimant.kid
                note_unproven_body(draft, body)
            raise
        draft.department, draft.kid, draft.authenticated = caller.department, caller.kid, True
        return caller

    def _charge(self, call: Call, units: int) -> None:
        check_quota(self.audit.quota_used, call.caller.department, call.draft.at.astimezone(dt.UTC).date(),
                    call.limits, units)
        call.ticket.units = units

    def check_purpose(self, purpose: str, library_name: str) -> None:
        """422 ``unknown_purpose`` / ``purpose_not_for_library`` unless the catalogue allows it for this library."""
        check_purpose(self.registry.purposes(), purpose, library_name)

    def _access(self, call: Call, lib: Library, purpose: str, fields: list[str] | None) -> AccessDecision:
        """The fields this caller may receive; 403 ``fields_not_granted`` if it named any it may not have."""
        if fields is not None:
            unknown = unknown_fields(lib, fields)
            if unknown:
                # Counted, not named: a made-up field name could be anything, an ID number included.
                raise InvalidRequest(f"{len(unknown)} requested field(s) are not lookup fields of {lib.name}")
        grants = self.registry.grants(call.caller.department, lib.name, purpose, call.draft.at)
        decision = decide(lib, call.caller.department, purpose, grants, fields)
        call.draft.reason = decision.reason
        if decision.refuses_requested:
            names = ", ".join(d.field for d in decision.refused)
            raise Forbidden(f"requested field(s) not granted to this department for this purpose: {names}",
                            code="fields_not_granted")
        return decision

    def _as_of(self, value: dt.date | dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        check_in_range("as_of", value, self.tz)
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=self.tz)
        # A date means the end of that day on the hub's calendar.
        return dt.datetime.combine(value + dt.timedelta(days=1), dt.time(), tzinfo=self.tz) - dt.timedelta(microseconds=1)

    def jose(self, payload: dict[str, Any]) -> Response:
        return answers.PendingAnswer(payload, self.keyring)  # signed in handle(), once its audit row is written

    # ----- lookups ------------------------------------------------------------------------------------------

    def _fetch(self, snapshot: PublishedSnapshot, lib: Library, key: str, released: tuple[str, ...],
               when: dt.datetime | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The record (only what may be released, plus provenance) and extras for the answer."""
        if not released:
            return None, {}  # nothing releasable: the record is not even read, so nothing can depend on it
        columns = (*released, "source_department", "source_updated_at")
        if when is None:
            record = snapshot.lookup(lib.name, key, columns)
        else:
            try:
                record = snapshot.lookup_as_of(lib.name, key, when, columns)
            except SnapshotError:
                raise AsOfUnavailable(f"this snapshot keeps no history of {lib.name}; ask without as_of") from None
        if record is None:
            return None, {}
        return record, {"provenance": snapshot.provenance(lib.name, key), "conflicts": snapshot.conflicts(lib.name, key)}

    def lookup(self, call: Call) -> Response:
        req = parse(LookupRequest, call.body)
        draft = call.draft
        draft.library, draft.purpose, draft.case_number = req.library, req.purpose, req.case_number
        draft.fields_requested = tuple(req.fields) if req.fields is not None else None
        draft.key = req.key.strip().upper()  # what was asked, in case it is refused as invalid
        key = draft.key = normalise_key(req.library, draft.key)
        when = self._as_of(req.as_of)
        self.check_purpose(req.purpose, req.library)
        self._charge(call, 1)
        lib = library(req.library)
        decision = self._access(call, lib, req.purpose, req.fields)
        if when is not None and not decision.released:
            # Refuse as_of the same way whether or not anything may be released.
            self._require_history(lib)
        snapshot = self.snapshots.get()
        draft.snapshot_version = snapshot.version
        record, extras = self._fetch(snapshot, lib, key, decision.released, when)
        payload = answers.build_payload(
            request_id=draft.request_id, snapshot_version=snapshot.version, library=lib.name, record=record,
            released=decision.released, department=call.caller.department, nonce=call.caller.nonce, key=key,
            as_of=answers.json_value(when) if when else None, **extras)
        if payload["found"]:
            draft.outcome, draft.fields_released = ANSWERED, decision.released
        else:
            draft.outcome = NOT_FOUND if decision.released else NOT_ALLOWED
        return self.jose(payload)

    def _require_history(self, lib: Library) -> None:
        if not self.snapshots.get().has(lib.name + "_history"):
            raise AsOfUnavailable(f"this snapshot keeps no history of {lib.name}; ask without as_of")

    def batch(self, call: Call) -> Response:
        req = parse(BatchLookupRequest, call.body)
        draft = call.draft
        draft.library, draft.purpose, draft.case_number = req.library, req.purpose, req.case_number
        draft.fields_requested = tuple(req.fields) if req.fields is not None else None
        self.check_purpose(req.purpose, req.library)
        if len(req.keys) > self.api.max_batch:
            raise PayloadTooLarge(f"a batch holds at most {self.api.max_batch} keys", code="batch_too_large")
        keys = []
        for i, raw in enumerate(req.keys):
            try:
                keys.append(normalise_key(req.library, raw))
            except InvalidIdentifier as exc:
                raise InvalidRequest(f"keys[{i}]: {exc}") from None
        when = self._as_of(req.as_of)
        distinct = list(dict.fromkeys(keys))  # a key asked twice is answered twice but released, counted once
        self._charge(call, len(distinct))
        lib = library(req.library)
        decision = self._access(call, lib, req.purpose, req.fields)
        if when is not None:
            self._require_history(lib)
        snapshot = self.snapshots.get()
        draft.snapshot_version = snapshot.version
        by_key, items = {}, []
        for key in distinct:
            record, extras = self._fetch(snapshot, lib, key, decision.released, when)
            result = by_key[key] = answers.record_result(key, record, decision.released, **extras)
            outcome = ANSWERED if result["found"] else (NOT_FOUND if decision.released else NOT_ALLOWED)
            items.append(AuditItem(key, outcome, decision.released if result["found"] else ()))
        results = [by_key[key] for key in keys]
        draft.items = items
        payload = answers.envelope(request_id=draft.request_id, snapshot_version=snapshot.version,
                                   department=call.caller.department, nonce=call.caller.nonce)
        payload.update(library=lib.name, results=results)
        if when is not None:
            payload["as_of"] = answers.json_value(when)
        return self.jose(payload)

    # ----- verification without disclosure ----------------------------------------------------------------

    def _verification(self, call: Call, question: str, subject: dict[str, str], on: dt.date, answer: bool,
                      snapshot: PublishedSnapshot) -> Response:
        payload = answers.envelope(request_id=call.draft.request_id, snapshot_version=snapshot.version,
                                   department=call.caller.department, nonce=call.caller.nonce)
        payload.update(question=question, subject=subject, on=on.isoformat(), answer=answer)
        return self.jose(payload)

    def _record_on(self, snapshot: PublishedSnapshot, lib: Library, key: str,
                   on: dt.date) -> tuple[dict[str, Any] | None, bool]:
        """The record as it stood on ``on`` and True, or today's record and False when no history is kept."""
        if on >= self.today():
            return snapshot.lookup(lib.name, key), True
        if snapshot.has(lib.name + "_history"):
            return snapshot.lookup_as_of(lib.name, key, self._as_of(on)), True  # type: ignore[arg-type]
        return snapshot.lookup(lib.name, key), False

    def verify_licence(self, call: Call) -> Response:
        req = parse(LicenceCheck, call.body)
        draft = call.draft
        draft.library, draft.purpose, draft.case_number = "licence", req.purpose, req.case_number
        self.check_purpose(req.purpose, "licence")
        number = normalise_key("licence", req.licence_number)
        holder = req.holder_id.strip().upper()
        with contextlib.suppress(InvalidIdentifier):  # an ID number or a credit code: canonical if it is either
            holder = normalise_key("population" if len(holder) in (15, 18) and holder[:17].isdigit() else "legal_person",
                                   holder)
        on = self._day_asked(req.on)
        self._charge(call, 1)
        snapshot = self.snapshots.get()
        draft.snapshot_version = snapshot.version
        record, as_it_stood = self._record_on(snapshot, library("licence"), number, on)
        valid = record is not None and record.get("holder_id") == holder and valid_on(record, on, as_it_stood)
        draft.reason = "verification only: no field released"
        draft.fields_released = ("verification:licence_valid",)
        draft.items = [AuditItem(number, VERIFIED, draft.fields_released), AuditItem(holder, VERIFIED, draft.fields_released)]
        return self._verification(call, "licence_valid", {"licence_number": number, "holder_id": holder}, on, valid,
                                  snapshot)

    def _day_asked(self, on: dt.date | None) -> dt.date:
        """The day a verification is about: today unless given, never in the future."""
        today = self.today()
        if on is not None:
            check_in_range("on", on, self.tz)
        if on is not None and on > today:
            raise InvalidRequest("on: the day asked about must not be in the future")
        return on or today

    def verify_existence(self, call: Call) -> Response:
        req = parse(ExistenceCheck, call.body)
        draft = call.draft
        draft.library, draft.purpose, draft.case_number = req.library, req.purpose, req.case_number
        key = draft.key = normalise_key(req.library, req.key)
        self.check_purpose(req.purpose, req.library)
        on = self._day_asked(req.on)
        self._charge(call, 1)
        snapshot = self.snapshots.get()
        draft.snapshot_version = snapshot.version
        lib = library(req.library)
        if on < self.today() and not snapshot.has(lib.name + "_history"):
            raise AsOfUnavailable(f"this snapshot keeps no history of {lib.name}; ask about today")
        record, _ = self._record_on(snapshot, lib, key, on)
        column, active_values = ACTIVE[lib.name]
        answer = record is not None and record.get(column) in active_values
        draft.reason = "verification only: no field released"
        draft.outcome, draft.fields_released = VERIFIED, ("verification:exists_active",)
        return self._verification(call, "exists_and_active", {"library": lib.name, "key": key}, on, answer, snapshot)

    # ----- what a department may know about the hub and itself ---------------------------------------------

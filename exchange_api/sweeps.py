"""Sweep detection: a department enumerating keys (ID numbers one after another) is throttled, counted and audited.

Two signals, per department and per API process (like the rate limit):

- **distinct keys per window far above its own baseline**: the keys a department looks up in a window
  of ``HUB_API_SWEEP_WINDOW_SECONDS`` are counted; the baseline is a moving average of its past windows
  in this process, and the limit ``max(HUB_API_SWEEP_MIN_KEYS, HUB_API_SWEEP_BASELINE_FACTOR × baseline)``.
  Repeated lookups of the same people count once, so a busy department asking about its own cases is
  not a sweep; a department that grows slowly raises its own baseline.
- **many not-found answers in a row**: ``HUB_API_SWEEP_NOT_FOUND_RUN`` keys answered "no such record"
  with no record found between them (most of a sequence of valid ID numbers belongs to nobody).

Either one throttles the department's record requests for ``HUB_API_SWEEP_THROTTLE_SECONDS``
(429 ``sweep_suspected`` with ``Retry-After``), writes an audit row for the detection (operation
``sweep_detected``) beside the audit row every throttled request gets anyway, and counts both in
``/metrics``. ``hub api-status`` shows operators the detections and who is throttled.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from exchange_api.audit import NOT_FOUND, AuditDraft, AuditItem, Ticket
from exchange_api.config import ApiSettings
from exchange_api.models import AuditEntry
from hub.errors import RateLimited

DETECTED = "sweep_detected"  # the operation (and outcome) of a detection's audit row
CODE = "sweep_suspected"
DISTINCT_KEYS, NOT_FOUND_RUN = "distinct_keys", "not_found_run"
# Operations that read records by key: the ones a sweep uses, and the ones a throttle stops.
SWEPT_OPERATIONS = frozenset({"lookup", "batch", "verify_licence", "verify_existence", "licences_by_holder"})
BASELINE_WEIGHT = 0.2  # each finished window's share of the moving average
IDLE_WINDOWS_COUNTED = 60  # idle windows beyond this no longer lower the baseline


@dataclass(frozen=True)
class Detection:
    """A sweep found: which signal, and the figures behind it (no key, only counts)."""

    department: str
    signal: str
    reason: str
    throttle_seconds: float


@dataclass
class _Department:
    window_start: float
    keys: set[int] = field(default_factory=set)
    baseline: float = 0.0
    not_found_run: int = 0
    throttled_until: float = 0.0


class SweepDetector:
    """Watches each department's keys and not-found answers; throttles one that sweeps."""

    def __init__(self, api: ApiSettings, clock: Callable[[], float] = time.monotonic):
        self.enabled = api.sweep_detection
        self.window = api.sweep_window_seconds
        self.min_keys = api.sweep_min_keys
        self.factor = api.sweep_baseline_factor
        self.not_found_limit = api.sweep_not_found_run
        self.throttle_seconds = api.sweep_throttle_seconds
        self.clock = clock
        self._departments: dict[str, _Department] = {}
        self._lock = threading.Lock()
        self.detections: dict[str, int] = {DISTINCT_KEYS: 0, NOT_FOUND_RUN: 0}
        self.throttled_requests = 0

    def check(self, department: str, operation: str) -> None:
        """429 ``sweep_suspected`` (with ``retry_after``) if the department is throttled for a sweep."""
        if not self.enabled or operation not in SWEPT_OPERATIONS:
            return
        state = self._departments.get(department)
        if state is None:
            return
        remaining = state.throttled_until - self.clock()
        if remaining > 0:
            with self._lock:
                self.throttled_requests += 1
            error = RateLimited("this department's lookups look like an enumeration of keys; they are throttled "
                                "(the hub's operators have been alerted)", code=CODE)
            error.retry_after = max(1, math.ceil(remaining))  # type: ignore[attr-defined]
            raise error

    def observe(self, department: str, operation: str, keys: Sequence[str | None],
                not_found: Sequence[bool]) -> Detection | None:
        """Count one answered request's keys and not-found answers; the detection if this request tipped it."""
        if not self.enabled or operation not in SWEPT_OPERATIONS:
            return None
        now = self.clock()
        with self._lock:
            state = self._departments.get(department)
            if state is None:
                state = self._departments[department] = _Department(window_start=now)
            if state.throttled_until > now:
                return None  # already caught (a request that passed the check just before the throttle began)
            self._roll(state, now)
            # Hashes, not keys: a department's window holds no ID number, and ints are small.
            state.keys.update(hash(k) for k in keys if k)
            for missing in not_found:
                state.not_found_run = state.not_found_run + 1 if missing else 0
            limit = max(self.min_keys, math.ceil(self.factor * state.baseline))
            if len(state.keys) > limit:
                signal = DISTINCT_KEYS
                reason = (f"{len(state.keys)} distinct keys within {self.window:g} s, above the limit of {limit} "
                          f"(this department's baseline: {state.baseline:.0f} a window)")
            elif state.not_found_run >= self.not_found_limit:
                signal = NOT_FOUND_RUN
                reason = f"{state.not_found_run} not-found answers in a row"
            else:
                return None
            # The window that tripped is not learnt from: a sweep must not raise the baseline it is judged by.
            state.keys, state.not_found_run, state.window_start = set(), 0, now
            state.throttled_until = now + self.throttle_seconds
            self.detections[signal] += 1
        return Detection(department, signal, f"sweep suspected: {reason}; throttled for {self.throttle_seconds:g} s",
                         self.throttle_seconds)

    def _roll(self, state: _Department, now: float) -> None:
        """Close the windows that have ended: the finished one, then any idle ones, into the baseline."""
        elapsed = now - state.window_start
        if elapsed < self.window:
            return
        ended = int(elapsed // self.window)
        state.baseline += BASELINE_WEIGHT * (len(state.keys) - state.baseline)
        state.baseline *= (1 - BASELINE_WEIGHT) ** min(ended - 1, IDLE_WINDOWS_COUNTED)
        state.keys = set()
        state.window_start += ended * self.window

    def throttled_now(self) -> int:
        """How many departments are throttled at this moment."""
        now = self.clock()
        return sum(1 for s in list(self._departments.values()) if s.throttled_until > now)

    def gauges(self) -> list[str]:
        """The Prometheus lines of sweep detection (no department named: metrics carry no caller's identity)."""
        lines = ["# HELP hub_api_sweep_detections_total Departments found enumerating keys, by signal.",
                 "# TYPE hub_api_sweep_detections_total counter"]
        lines += [f'hub_api_sweep_detections_total{{signal="{s}"}} {n}' for s, n in sorted(self.detections.items())]
        lines += ["# HELP hub_api_sweep_throttled_requests_total Requests refused because their department swept.",
                  "# TYPE hub_api_sweep_throttled_requests_total counter",
                  f"hub_api_sweep_throttled_requests_total {self.throttled_requests}",
                  "# HELP hub_api_sweep_departments_throttled Departments throttled now for a suspected sweep (alert when > 0).",
                  "# TYPE hub_api_sweep_departments_throttled gauge",
                  f"hub_api_sweep_departments_throttled {self.throttled_now()}"]
        return lines


def observed(draft: AuditDraft) -> tuple[list[str | None], list[bool]]:
    """The keys an answered request looked up, and which of them were not found, from its audit draft."""
    items = draft.items or [AuditItem(draft.key, draft.outcome or "")]
    return [i.key for i in items], [i.outcome == NOT_FOUND for i in items]


def alert_ticket(draft: AuditDraft, detection: Detection) -> Ticket:
    """The audit row of a detection: the department, the request that tipped it, the figures; no key."""
    alert = AuditDraft(request_id=draft.request_id, at=dt.datetime.now(dt.UTC), operation=DETECTED,
                       department=draft.department, kid=draft.kid, authenticated=draft.authenticated,
                       library=draft.library, purpose=draft.purpose, case_number=draft.case_number,
                       outcome=DETECTED, reason=detection.reason, snapshot_version=draft.snapshot_version)
    return Ticket(alert, 200, CODE)


def sweep_report(sessions: Any, *, since: dt.datetime, throttle_seconds: float,
                 now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """What operators see: per department, the detections since ``since``, the last one, throttled requests, and
    whether a throttle may still be in force (any API process that made the last detection)."""
    now = now or dt.datetime.now(dt.UTC)
    e = AuditEntry
    detections = (select(e.department, func.count().label("detections"), func.max(e.at).label("last_detection"),
                         func.max(e.seq).label("last_seq"))
                  .where(e.operation == DETECTED, e.at >= since).group_by(e.department))
    throttled = (select(e.department, func.count().label("throttled"))
                 .where(e.code == CODE, e.status == 429, e.at >= since).group_by(e.department))
    with sessions() as session:
        rows = {r.department: dict(r._mapping) for r in session.execute(detections)}
        counts = {r.department: r.throttled for r in session.execute(throttled)}
        reasons = {r.department: r.reason for r in session.execute(
            select(e.department, e.reason).where(e.seq.in_([r["last_seq"] for r in rows.values()])))}
    report = []
    for department in sorted(set(rows) | set(counts), key=str):
        row = rows.get(department, {})
        last = row.get("last_detection")
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        until = last + dt.timedelta(seconds=throttle_seconds) if last else None
        report.append({"department": department, "detections": int(row.get("detections") or 0),
                       "last_detection": last.isoformat() if last else None,
                       "last_reason": reasons.get(department), "throttled_requests": int(counts.get(department, 0)),
                       "throttled_until": until.isoformat() if until and until > now else None})
    return report

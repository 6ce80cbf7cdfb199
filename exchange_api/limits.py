"""Per-department rate limits (a token bucket in each API process) and daily quotas (counted in the metadata DB).

The rate limit smooths bursts cheaply, in memory; with N processes a department gets at most N times its
rate. The daily quota is exact across processes: the audit writer charges it in the same transaction
as the audit rows, under the chain lock (see :mod:`exchange_api.audit`). The check here only refuses
early what the last commits already showed to be over quota.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time

from exchange_api.registry import Limits
from hub.errors import RateLimited
from hub.rate_limit import TokenBucket


class RateLimiter:
    """One token bucket per department: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, department: str, limits: Limits, now: float | None = None) -> None:
        """Spend one token; RateLimited (429 ``rate_limited``, with the wait in ``retry_after``) if there is none."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(department)
            if bucket is None:
                bucket = self._buckets[department] = TokenBucket(limits.rate_per_second, limits.burst, now)
            bucket.rate, bucket.burst = limits.rate_per_second, limits.burst
            wait = bucket.take(now)
        if wait:
            error = RateLimited("too many requests from this department; slow down", code="rate_limited")
            error.retry_after = max(1, math.ceil(wait))  # type: ignore[attr-defined]
            raise error


def check_quota(used: dict[tuple[str, dt.date], int], department: str, day: dt.date, limits: Limits, units: int) -> None:
    """Refuse early (429 ``quota_exceeded``) when the last commits already showed the quota used up."""
    if used.get((department, day), 0) + units > limits.daily_quota:
        error = RateLimited("the department's daily quota is used up", code="quota_exceeded")
        error.retry_after = seconds_to_midnight()  # type: ignore[attr-defined]
        raise error


def seconds_to_midnight(now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return max(1, int((tomorrow - now).total_seconds()))

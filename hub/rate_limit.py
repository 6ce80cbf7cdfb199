"""The one rate limiter: a token bucket, for the API's per-department limits and the REST connector's pace."""

from __future__ import annotations

import time


class TokenBucket:
    """``rate`` tokens a second on average, at most ``burst`` saved up; it starts full.

    ``rate`` and ``burst`` may be changed between calls (a department's limits are read at each request).
    """

    def __init__(self, rate: float, burst: float, now: float | None = None) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic() if now is None else now

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self, now: float | None = None) -> float:
        """Spend a token if there is one and return 0; else the seconds until there is one, nothing spent."""
        self._refill(time.monotonic() if now is None else now)
        if self.tokens < 1.0:
            return (1.0 - self.tokens) / self.rate
        self.tokens -= 1.0
        return 0.0

    def reserve(self, now: float | None = None) -> float:
        """Spend a token whether it is there yet or not: the seconds to wait before using it (0 if it was there)."""
        self._refill(time.monotonic() if now is None else now)
        self.tokens -= 1.0
        # In debt, the next token comes after this one's: any oversleep is credited to the next request.
        return max(0.0, -self.tokens / self.rate)

"""The one token bucket, on a clock the test sets (no sleeping, no timing)."""

from __future__ import annotations

import pytest

from hub.rate_limit import TokenBucket


def test_take_refuses_without_spending() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)  # the refusal spent nothing
    assert bucket.take(0.5) == 0.0


def test_saved_tokens_are_capped_by_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_reserve_spends_ahead_and_queues() -> None:
    bucket = TokenBucket(rate=10.0, burst=1.0, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, pytest.approx(0.1), pytest.approx(0.2)]
    # The fourth comes at 0.25: its turn is 0.3, right after the third's, whenever the third really went.
    assert bucket.reserve(0.25) == pytest.approx(0.05)


def test_limits_may_change_between_calls() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == pytest.approx(1.0)
    bucket.rate = 4.0
    assert bucket.take(0.0) == pytest.approx(0.25)

"""Named random streams derived from one seed, and the fixed reference date of the sample world."""

from __future__ import annotations

import datetime as dt
import zlib

import numpy as np

# The sample world is frozen at this date, not at "today": same seed, same bytes, any day.
AS_OF = dt.date(2026, 1, 1)
AS_OF_DAY = np.datetime64(AS_OF, "D")
# GXSJ and other update times fall in the two years before AS_OF.
UPDATES_FROM = np.datetime64("2024-01-01T00:00:00", "s")
UPDATES_TO = np.datetime64(AS_OF, "s")


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent generator for one part of the sample: a change in one part never shifts another."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


def years(n: int | np.ndarray) -> np.ndarray:
    """``n`` years as a number of days (365.25 each), for date arithmetic on day counts."""
    return (np.asarray(n) * 365.25).astype(np.int64)


def between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniform day in [lo, hi) per row (hi <= lo gives lo)."""
    lo64, hi64 = lo.astype("datetime64[D]").astype(np.int64), hi.astype("datetime64[D]").astype(np.int64)
    span = np.maximum(hi64 - lo64, 1)
    return (lo64 + (rng.random(len(lo64)) * span).astype(np.int64)).astype("datetime64[D]")

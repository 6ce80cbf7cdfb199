"""The licence rules every package shares: which statuses are in force, and whether a licence was valid on a day."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

# Statuses under which a licence is in force (within its validity period); the others suspend or end it.
IN_FORCE_STATUSES = ("issued", "renewed")
# The one date key of a status-history entry, as warehouse.life_events writes it.
HISTORY_DATE = "date"


def in_force_sql(column: str) -> str:
    """SQL: ``column`` holds an in-force status."""
    return f"{column} IN ({', '.join(repr(s) for s in IN_FORCE_STATUSES)})"


def validity_ended(valid_to: dt.date | None, on: dt.date) -> bool:
    """Whether the validity period ending on ``valid_to`` (inclusive) ran out before ``on``."""
    return valid_to is not None and valid_to < on


def validity_ended_sql(valid_to: str, on: str) -> str:
    """SQL of :func:`validity_ended`: NULL (not true) when ``valid_to`` is NULL."""
    return f"{valid_to} < {on}"


def _history(record: dict[str, Any]) -> list[Any] | None:
    """The record's status history as a list, parsed from JSON text if need be; None without one."""
    history = record.get("status_history")
    if isinstance(history, str):
        try:
            history = json.loads(history)
        except ValueError:
            return None
    return history if isinstance(history, list) and history else None


def status_on(record: dict[str, Any], on: dt.date, as_it_stood: bool) -> str | None:
    """The licence's status on ``on``: the record's own if it is as it stood then, else from its status history."""
    if as_it_stood:
        return record.get("status")
    history = _history(record)
    if history is not None:
        best: tuple[dt.date, str] | None = None
        for entry in history:
            if not isinstance(entry, dict) or "status" not in entry or not entry.get(HISTORY_DATE):
                continue
            try:
                when = dt.date.fromisoformat(str(entry[HISTORY_DATE])[:10])
            except ValueError:
                continue
            if when <= on and (best is None or when >= best[0]):
                best = (when, entry["status"])
        return best[1] if best else None
    status, status_date = record.get("status"), record.get("status_date")
    if status_date is None or status_date <= on:
        return status
    # Without a history, today's status is known to hold only from its own date on; before an expiry the
    # licence was in force (expiry is the end of its validity period), before anything else it is unknown.
    return "issued" if status == "expired" else None


def valid_on(record: dict[str, Any], on: dt.date, as_it_stood: bool) -> bool:
    """Whether a licence record was in force on ``on``: an in-force status and ``on`` within its validity period."""
    start = record.get("valid_from")
    if start is None or on < start or validity_ended(record.get("valid_to"), on):
        return False
    return status_on(record, on, as_it_stood) in IN_FORCE_STATUSES

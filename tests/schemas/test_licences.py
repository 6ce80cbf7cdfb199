"""The shared licence rules: in-force statuses and validity on a day (schemas.licences)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from schemas.codes import LICENCE_STATUS
from schemas.licences import IN_FORCE_STATUSES, in_force_sql, status_on, valid_on, validity_ended, validity_ended_sql

D = dt.date
RECORD = {"valid_from": D(2020, 1, 1), "valid_to": D(2025, 12, 31), "status": "issued", "status_date": D(2020, 1, 1)}


def test_in_force_statuses_are_licence_statuses() -> None:
    assert set(IN_FORCE_STATUSES) == {"issued", "renewed"} <= set(LICENCE_STATUS)


def test_sql_forms_agree_with_python() -> None:
    conn = duckdb.connect()
    for status in LICENCE_STATUS:
        (got,) = conn.execute(f"SELECT {in_force_sql('s')} FROM (SELECT ? AS s)", [status]).fetchone()
        assert got is (status in IN_FORCE_STATUSES)
    for valid_to in (None, D(2025, 12, 30), D(2025, 12, 31), D(2026, 1, 1)):
        (got,) = conn.execute(f"SELECT {validity_ended_sql('v', '?')} FROM (SELECT ?::DATE AS v)",
                              [D(2025, 12, 31), valid_to]).fetchone()
        assert bool(got) is validity_ended(valid_to, D(2025, 12, 31))


def test_valid_within_the_period_only() -> None:
    assert valid_on(RECORD, D(2020, 1, 1), True) and valid_on(RECORD, D(2025, 12, 31), True)
    assert not valid_on(RECORD, D(2019, 12, 31), True) and not valid_on(RECORD, D(2026, 1, 1), True)
    assert not valid_on({**RECORD, "valid_from": None}, D(2021, 1, 1), True)
    assert valid_on({**RECORD, "valid_to": None}, D(2099, 1, 1), True)
    assert not valid_on({**RECORD, "status": "suspended"}, D(2021, 1, 1), True)


def test_status_from_the_history_by_its_date_key() -> None:
    history = [{"status": "issued", "date": "2020-01-01"}, {"status": "suspended", "date": "2022-06-01"}]
    record = {**RECORD, "status": "suspended", "status_history": json.dumps(history)}
    assert status_on(record, D(2021, 1, 1), False) == "issued" and valid_on(record, D(2021, 1, 1), False)
    assert status_on(record, D(2023, 1, 1), False) == "suspended"
    assert status_on(record, D(2019, 1, 1), False) is None


def test_only_the_date_key_the_warehouse_writes_is_read() -> None:
    # warehouse.life_events writes {"status", "date", "source", "rule"}; other keys once accepted are not dates.
    for key in ("on", "at", "since", "from"):
        record = {**RECORD, "status_history": [{"status": "issued", key: "2020-01-01"}]}
        assert status_on(record, D(2021, 1, 1), False) is None


def test_without_history_before_its_own_date() -> None:
    expired = {**RECORD, "status": "expired", "status_date": D(2025, 12, 31)}
    assert status_on(expired, D(2024, 1, 1), False) == "issued"
    revoked = {**RECORD, "status": "revoked", "status_date": D(2023, 1, 1)}
    assert status_on(revoked, D(2022, 1, 1), False) is None and status_on(revoked, D(2023, 1, 1), False) == "revoked"

"""History with validity intervals: versions opened and closed from successive golden tables, on real DuckDB."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb
import pytest

from hub.errors import PipelineError
from schemas import LIBRARIES
from schemas.derive import duckdb_type
from tests.exchange_api.conftest import OTHER_PERSON_ID, PERSON_ID, person, resident_id
from tests.exchange_api.snapshots import library_table
from warehouse.history import record_history

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
THIRD_ID = resident_id(13, birth="19600202")


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI)


def set_golden(conn: duckdb.DuckDBPyConnection, rows: list[dict], library: str = "population") -> None:
    """Replace ``golden_<library>`` with ``rows``, typed exactly as the reconciliation types it."""
    batch = library_table(library, rows)  # noqa: F841 - read by DuckDB's replacement scan
    typed = ", ".join(f'CAST("{f.name}" AS {duckdb_type(f.type)}) AS "{f.name}"' for f in LIBRARIES[library].fields)
    conn.execute(f'CREATE OR REPLACE TABLE "golden_{library}" AS SELECT {typed} FROM batch')


def versions(conn: duckdb.DuckDBPyConnection, key: str, column: str = "marital_status") -> list[tuple]:
    rows = conn.execute(f'SELECT "{column}", _valid_from, _valid_to FROM history_population WHERE id_number = ? '
                        "ORDER BY _valid_from", [key]).fetchall()
    return [(value, start.astimezone(UTC), end and end.astimezone(UTC)) for value, start, end in rows]


def table(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return conn.execute("SELECT * FROM history_population ORDER BY ALL").fetchall()


@pytest.fixture
def conn(tmp_path):
    with duckdb.connect(str(tmp_path / "work.duckdb")) as c:
        yield c


def test_first_versions_reach_back_to_when_the_record_began(conn):
    dead = person(OTHER_PERSON_ID, birth_date=dt.date(1992, 3, 15), life_status="deceased",
                  life_status_date=dt.date(2025, 6, 1))
    undated = person(THIRD_ID, birth_date=None, source_updated_at=at(2025, 1, 1))
    set_golden(conn, [person(PERSON_ID), dead, undated])
    result = record_history(conn, "population", at(2026, 2, 1))
    assert (result.new, result.changed, result.vanished, result.versions) == (3, 0, 0, 4)
    # Found as of any day since birth, not only since the hub first saw the person.
    assert versions(conn, PERSON_ID) == [("20", midnight(dt.date(1980, 1, 1)), None)]
    # A death with its date: before it the person was living, from it deceased.
    assert versions(conn, OTHER_PERSON_ID, "life_status") == [
        ("living", midnight(dt.date(1992, 3, 15)), midnight(dt.date(2025, 6, 1))),
        ("deceased", midnight(dt.date(2025, 6, 1)), None)]
    (before,) = conn.execute("SELECT life_status_date, name FROM history_population WHERE id_number = ? "
                             "AND life_status = 'living'", [OTHER_PERSON_ID]).fetchall()
    assert before == (None, "张三")
    assert versions(conn, THIRD_ID) == [("20", at(2025, 1, 1), None)]  # no birth date: since the source's update
    again = record_history(conn, "population", at(2026, 2, 2))
    assert (again.new, again.changed, again.vanished, again.versions) == (0, 0, 0, 4)


def test_same_golden_twice_and_bookkeeping_only_changes_make_no_version(conn):
    set_golden(conn, [person(PERSON_ID), person(OTHER_PERSON_ID)])
    record_history(conn, "population", at(2026, 2, 1))
    first = table(conn)
    again = record_history(conn, "population", at(2026, 2, 1))
    assert (again.new, again.changed, again.vanished) == (0, 0, 0) and table(conn) == first
    # Re-ingested unchanged: new run, ingestion time, source record and update time.
    set_golden(conn, [person(PERSON_ID, run_id="r2", ingested_at=at(2026, 3, 1), source_updated_at=at(2026, 2, 20),
                             source_record_id="HJ-9"), person(OTHER_PERSON_ID, run_id="r2")])
    later = record_history(conn, "population", at(2026, 3, 1))
    assert (later.new, later.changed, later.vanished) == (0, 0, 0) and table(conn) == first


def test_a_change_closes_the_open_version_when_it_took_effect_at_its_source(conn):
    set_golden(conn, [person(PERSON_ID), person(OTHER_PERSON_ID)])
    record_history(conn, "population", at(2026, 2, 1))
    set_golden(conn, [person(PERSON_ID, marital_status="30", source_updated_at=at(2026, 2, 10, 9)),
                      person(OTHER_PERSON_ID, phone="13900000000", source_updated_at=at(2025, 12, 1))])
    result = record_history(conn, "population", at(2026, 3, 1))
    assert (result.new, result.changed, result.vanished, result.versions) == (0, 2, 0, 4)
    born = midnight(dt.date(1980, 1, 1))
    assert versions(conn, PERSON_ID) == [("20", born, at(2026, 2, 10, 9)), ("30", at(2026, 2, 10, 9), None)]
    # An update time before the source vouched for the open version says nothing about this change: the
    # reconciliation time.
    assert [(p, s, e) for p, s, e in versions(conn, OTHER_PERSON_ID, "phone")][1:] == [
        ("13900000000", at(2026, 3, 1), None)]


def test_a_status_change_takes_effect_on_its_own_date(conn):
    set_golden(conn, [person(PERSON_ID)])
    record_history(conn, "population", at(2026, 2, 1))
    set_golden(conn, [person(PERSON_ID, life_status="deceased", life_status_date=dt.date(2026, 2, 14),
                             source_updated_at=at(2026, 2, 20))])
    record_history(conn, "population", at(2026, 3, 1))
    assert versions(conn, PERSON_ID, "life_status") == [
        ("living", midnight(dt.date(1980, 1, 1)), midnight(dt.date(2026, 2, 14))),
        ("deceased", midnight(dt.date(2026, 2, 14)), None)]


def test_vanished_records_close_and_may_come_back(conn):
    set_golden(conn, [person(PERSON_ID), person(OTHER_PERSON_ID)])
    record_history(conn, "population", at(2026, 2, 1))
    set_golden(conn, [person(PERSON_ID)])
    gone = record_history(conn, "population", at(2026, 3, 1))
    assert (gone.new, gone.changed, gone.vanished) == (0, 0, 1)
    assert versions(conn, OTHER_PERSON_ID) == [("20", midnight(dt.date(1980, 1, 1)), at(2026, 3, 1))]
    assert record_history(conn, "population", at(2026, 3, 2)).vanished == 0  # closed once, not again
    set_golden(conn, [person(PERSON_ID), person(OTHER_PERSON_ID, marital_status="40",
                                                 source_updated_at=at(2026, 3, 20))])
    back = record_history(conn, "population", at(2026, 4, 1))
    assert (back.new, back.changed, back.vanished) == (1, 0, 0)
    assert versions(conn, OTHER_PERSON_ID)[1:] == [("40", at(2026, 3, 20), None)]  # the gap stays "not found"


def test_history_only_moves_forward_and_wants_an_aware_time(conn):
    set_golden(conn, [person(PERSON_ID)])
    record_history(conn, "population", at(2026, 2, 1))
    set_golden(conn, [person(PERSON_ID, marital_status="30")])
    record_history(conn, "population", at(2026, 3, 1))  # no better evidence: the change dates from then
    with pytest.raises(PipelineError, match="only moves forward"):
        record_history(conn, "population", at(2026, 2, 15))
    with pytest.raises(ValueError, match="timezone"):
        record_history(conn, "population", dt.datetime(2026, 3, 1))
    with pytest.raises(PipelineError, match="no golden_licence"):
        record_history(conn, "licence", at(2026, 3, 1))


def test_a_failure_leaves_the_history_as_it_was(conn):
    set_golden(conn, [person(PERSON_ID)])
    record_history(conn, "population", at(2026, 2, 1))
    before = table(conn)
    set_golden(conn, [person(PERSON_ID, marital_status="30")])
    conn.execute("ALTER TABLE golden_population ADD COLUMN surprise VARCHAR")  # INSERT BY NAME then fails
    with pytest.raises(duckdb.Error):
        record_history(conn, "population", at(2026, 3, 1))
    assert table(conn) == before


def test_licences_keep_their_own_validity_period_beside_the_interval(conn):
    revoked = {"licence_number": "L-1", "licence_type": "food_business", "holder_type": "legal_person",
               "holder_id": "91310000MA1FL8XQ3A", "issued_on": dt.date(2024, 1, 1), "valid_from": dt.date(2024, 1, 1),
               "valid_to": dt.date(2029, 1, 1), "status": "revoked", "status_date": dt.date(2025, 5, 5),
               "source_updated_at": at(2025, 5, 6)}
    set_golden(conn, [revoked], "licence")
    record_history(conn, "licence", at(2026, 2, 1))
    rows = conn.execute("SELECT status, valid_from, valid_to, _valid_from, _valid_to FROM history_licence "
                        "ORDER BY _valid_from").fetchall()
    assert [(s, f, t) for s, f, t, _, _ in rows] == [("issued", dt.date(2024, 1, 1), dt.date(2029, 1, 1)),
                                                  ("revoked", dt.date(2024, 1, 1), dt.date(2029, 1, 1))]
    assert rows[0][3] == midnight(dt.date(2024, 1, 1)) and rows[0][4] == rows[1][3] == midnight(dt.date(2025, 5, 5))


def test_a_thousand_records_changed_and_vanished_together(conn):
    people = [person(resident_id(i, birth=f"19{50 + i % 40:02d}0101"), birth_date=dt.date(1950 + i % 40, 1, 1))
              for i in range(1000)]
    set_golden(conn, people)
    assert record_history(conn, "population", at(2026, 2, 1)).new == 1000
    changed = [dict(p, marital_status="30") if i % 10 == 0 else p for i, p in enumerate(people)]
    set_golden(conn, changed[:-5])
    result = record_history(conn, "population", at(2026, 3, 1))
    assert (result.new, result.changed, result.vanished, result.versions) == (0, 100, 5, 1100)
    (open_versions,) = conn.execute("SELECT count(*) FROM history_population WHERE _valid_to IS NULL").fetchone()
    assert open_versions == 995

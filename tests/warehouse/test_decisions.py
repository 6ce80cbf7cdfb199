"""Stewards' decisions live in the metadata database first; the working database's copy is replayed from there."""

from __future__ import annotations

import datetime as dt

import pytest

from hub import jobs
from hub.db import metadata_engine
from quality.quarantine import decide_batch, entries, reject, release
from tests.household import create_table, insert, person_row, valid_id
from tests.warehouse.test_life_events import stage as stage_rows
from warehouse.conflicts import apply_resolutions, conflicts, resolve
from warehouse.decisions import BATCH, CONFLICT, IDENTITY, QUARANTINE, all_decisions, record
from warehouse.identity_review import override
from warehouse.reconcile import build_golden
from warehouse.work import WORK_DB, open_work

LATE, EARLY = dt.datetime(2025, 6, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
PERSON = valid_id(7, birth="19800101")


@pytest.fixture
def household(settings):
    """The household source with a wrong check digit (record 3) and an empty ID number (record 4), staged."""
    settings.samples_dir.mkdir(parents=True)
    engine = create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}")
    rows = [person_row(i) for i in range(1, 21)]
    rows[2]["SFZH"] = rows[2]["SFZH"][:-1] + ("0" if rows[2]["SFZH"][-1] != "0" else "1")
    rows[3]["SFZH"] = None
    insert(engine, rows)
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    return rows


def _entry(conn, record_id: str):
    (found,) = [e for e in entries(conn, status=None, limit=100) if e.source_record_id == record_id]
    return found


def _lose_the_working_database(settings) -> None:
    (settings.warehouse_dir / WORK_DB).unlink()


def test_each_kind_of_decision_is_written_to_the_metadata_database_with_who_when_why(household, settings):
    fixed = valid_id(3, birth=household[2]["CSRQ"])
    with open_work(settings.warehouse_dir) as conn:
        released = release(conn, _entry(conn, "3").id, "张三", note="核对户籍底册", corrections={"id_number": fixed})
        override(conn, "household", "4", "merge", "李四", valid_id(1, birth=household[0]["CSRQ"]), note="同一人")
    logged = {d.kind: d for d in all_decisions(metadata_engine())}
    assert set(logged) == {QUARANTINE, IDENTITY}
    q = logged[QUARANTINE]
    assert (q.action, q.source, q.run_id, q.decided_by, q.note) == ("released", "household", "run-1", "张三", "核对户籍底册")
    assert q.subject["source_record_id"] == "3" and q.detail == {"corrections": {"id_number": fixed}}
    # The working database's copy is the log's: same time, and it names the decision it came from.
    assert released.decided_at == q.decided_at and released.decided_by == "张三"
    i = logged[IDENTITY]
    assert (i.action, i.subject["source_record_id"], i.decided_by, i.note) == ("merge", "4", "李四", "同一人")


def test_decisions_of_every_kind_survive_the_loss_of_the_working_database(household, settings):
    fixed = valid_id(3, birth=household[2]["CSRQ"])
    entity = valid_id(1, birth=household[0]["CSRQ"])
    with open_work(settings.warehouse_dir) as conn:
        release(conn, _entry(conn, "3").id, "张三", corrections={"id_number": fixed})
        reject(conn, _entry(conn, "4").id, "王五", note="无此人")
        override(conn, "household", "4", "split", "李四", entity)
        before = conn.execute("SELECT source_record_id, status, decided_by, decided_at, note, corrections FROM quarantine "
                              "ORDER BY source_record_id").fetchall()
    jobs.stage("household")  # the release re-enters staging
    _lose_the_working_database(settings)
    jobs.stage("household")  # re-staged from the landing: the entries come back open, then take their decisions
    jobs.stage("household")  # and the released record is staged again
    with open_work(settings.warehouse_dir) as conn:
        after = conn.execute("SELECT source_record_id, status, decided_by, decided_at, note, corrections FROM quarantine "
                             "ORDER BY source_record_id").fetchall()
        staged = conn.execute("SELECT count(*) FROM staging_population WHERE id_number = ?", [fixed]).fetchone()[0]
        overrides = conn.execute("SELECT source, source_record_id, action, entity_key, decided_by FROM "
                                 "identity_overrides").fetchall()
    assert after == before
    assert staged == 1
    assert overrides == [("household", "4", "split", entity, "李四")]


def test_a_conflict_resolution_survives_the_loss_of_the_working_database(settings):
    def reconcile(conn) -> None:
        stage_rows(conn, "population", "household", [{"id_number": PERSON, "source_department": "public_security",
                                                      "source_updated_at": LATE, "name": "王五"}])
        stage_rows(conn, "population", "marriages", [{"id_number": PERSON, "source_department": "civil_affairs",
                                                      "source_updated_at": EARLY, "name": "王伍"}])
        build_golden(conn, "population", ["household"])
        apply_resolutions(conn, "population")

    with open_work(settings.warehouse_dir) as conn:
        reconcile(conn)
        resolve(conn, "population", PERSON, "name", by="张三", source="civil_affairs", note="婚姻登记核实")
        resolve(conn, "population", PERSON, "name", by="李四", value="王伍")  # supersedes the first
    (first, second) = [d for d in all_decisions(metadata_engine()) if d.kind == CONFLICT]
    assert (first.decided_by, first.detail["chosen_source"], second.detail["chosen_value"]) == ("张三", "civil_affairs", "王伍")
    _lose_the_working_database(settings)
    with open_work(settings.warehouse_dir) as conn:
        reconcile(conn)
        (entry,) = conflicts(conn, "population", "name", open_only=False)
        name = conn.execute("SELECT name FROM golden_population WHERE id_number = ?", [PERSON]).fetchone()[0]
        statuses = conn.execute("SELECT resolved_by, status FROM conflict_resolutions ORDER BY id").fetchall()
    assert name == "王伍" and entry.status == "resolved" and entry.rule == "steward:李四"
    assert statuses == [("张三", "superseded"), ("李四", "active")]


def test_a_decision_logged_but_not_yet_in_the_working_database_is_applied_when_it_is_opened(household, settings):
    # What a crash between the metadata commit and the working database's update leaves behind.
    with open_work(settings.warehouse_dir) as conn:
        e = _entry(conn, "4")
    record(QUARANTINE, "rejected", by="王五", library="population", source="household", run_id="run-1",
           subject={"stage": "row", "source_record_id": "4", "file": None, "line": None}, note="无此人")
    with open_work(settings.warehouse_dir) as conn:
        again = _entry(conn, "4")
    assert (again.id, again.status, again.decided_by, again.note) == (e.id, "rejected", "王五", "无此人")


def test_a_held_batch_released_stays_released_after_the_loss_of_the_working_database(settings):
    settings.samples_dir.mkdir(parents=True)
    engine = create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}")
    insert(engine, [person_row(i) for i in range(1, 151)])
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    insert(engine, [person_row(i) | {"LXDH": None} for i in range(151, 301)])  # the phone column lost
    jobs.ingest("household", "run-2")
    assert list(jobs.stage("household").held) == ["run-2"]
    with open_work(settings.warehouse_dir) as conn:
        decide_batch(conn, "household", "run-2", "released", "张三", "phones moved to another system")
    (logged,) = [d for d in all_decisions(metadata_engine()) if d.kind == BATCH]
    assert (logged.action, logged.run_id, logged.decided_by) == ("released", "run-2", "张三")
    _lose_the_working_database(settings)
    result = jobs.stage("household")
    assert result.held == {}
    with open_work(settings.warehouse_dir) as conn:
        decided = conn.execute("SELECT status, decided_by, note FROM batch_checks WHERE run_id = 'run-2'").fetchone()
        (staged,) = conn.execute("SELECT count(*) FROM staging_population").fetchone()
    assert decided == ("released", "张三", "phones moved to another system") and staged == 300


def test_decisions_made_before_the_log_existed_are_adopted_into_it(household, settings):
    with open_work(settings.warehouse_dir) as conn:
        # A working database from before the log: the decision is only in the quarantine table.
        conn.execute("UPDATE quarantine SET status = 'rejected', decided_by = '王五', decided_at = now(), "
                     "note = '旧的决定', decision_id = NULL WHERE source_record_id = '4'")
    with open_work(settings.warehouse_dir):
        pass
    (adopted,) = all_decisions(metadata_engine())
    assert (adopted.kind, adopted.action, adopted.decided_by, adopted.note) == (QUARANTINE, "rejected", "王五", "旧的决定")
    _lose_the_working_database(settings)
    jobs.stage("household")
    with open_work(settings.warehouse_dir) as conn:
        assert (_entry(conn, "4").status, _entry(conn, "4").decided_by) == ("rejected", "王五")

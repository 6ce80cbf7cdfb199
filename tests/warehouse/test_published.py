"""The read side: memory-mapped snapshots with a sorted key index, optional side files, following CURRENT."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time

import pytest

from hub.errors import SnapshotError
from tests.exchange_api.conftest import OTHER_PERSON_ID, PERSON_ID, person, resident_id
from tests.exchange_api.snapshots import conflict, switch_current, version, write_snapshot
from warehouse.published import SERVING, CurrentSnapshot, is_prepared, open_current, open_snapshot, prepare

UTC = dt.UTC


def licence(number: str, holder: str, **overrides):
    row = {"licence_number": number, "licence_type": "food_business", "holder_type": "legal_person",
           "holder_id": holder, "holder_name": "示例餐饮有限公司", "issuer": "market_regulation",
           "issued_on": dt.date(2024, 1, 1), "valid_from": dt.date(2024, 1, 1), "valid_to": dt.date(2029, 1, 1),
           "status": "issued", "status_date": dt.date(2024, 1, 1), "status_history": None, "file_digest": None,
           "source_department": "market_regulation", "source_record_id": "L-1",
           "source_updated_at": dt.datetime(2026, 3, 1, tzinfo=UTC), "ingested_at": dt.datetime(2026, 3, 2, tzinfo=UTC),
           "run_id": "r"}
    row.update(overrides)
    return row


def test_lookup_returns_python_values_and_misses_cleanly(tmp_path):
    people = [person(resident_id(i, birth=f"19{50 + i % 40:02d}0101")) for i in range(500)]
    write_snapshot(tmp_path, "v000001", {"population": people})
    snap = open_current(tmp_path)
    wanted = people[123]["id_number"]
    record = snap.lookup("population", wanted)
    assert record["id_number"] == wanted and record["name"] == "张三"
    assert record["birth_date"] == dt.date(1980, 1, 1)
    assert record["source_updated_at"] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert snap.lookup("population", wanted, ["gender", "nonsense"]) == {"gender": "1"}
    for absent in (resident_id(999, birth="19000101"), "", "X" * 40, wanted[:-1]):
        assert snap.lookup("population", absent) is None
    assert snap.lookup("licence", "ANY") is None  # a library the snapshot does not hold
    assert is_prepared(snap.path) and (snap.path / SERVING / "population.keys.npy").exists()


def test_unsorted_files_and_variable_width_keys_still_work(tmp_path):
    licences = [licence(f"L-{i}" + "X" * (i % 7), "91310000MA1FL8XQ3A", licence_number=f"L-{i}" + "X" * (i % 7))
                for i in range(50)]
    write_snapshot(tmp_path, "v000001", {"licence": licences}, sort=False)
    snap = open_current(tmp_path)
    for row in licences:
        assert snap.lookup("licence", row["licence_number"])["licence_number"] == row["licence_number"]
    assert (snap.path / SERVING / "licence.order.npy").exists()  # the file was not sorted: a permutation was kept
    assert snap.lookup("licence", "L-1") is None  # a prefix of "L-1X" is not a match


def test_history_answers_as_of_a_time(tmp_path):
    history = [version(person(PERSON_ID, marital_status="10"), dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2020, 5, 1, tzinfo=UTC)),
               version(person(PERSON_ID, marital_status="20"), dt.datetime(2020, 5, 1, tzinfo=UTC), None)]
    write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID, marital_status="20")]},
                   history={"population": history})
    snap = open_current(tmp_path)
    at = lambda *a: dt.datetime(*a, tzinfo=UTC)  # noqa: E731
    assert snap.lookup_as_of("population", PERSON_ID, at(2010, 1, 1))["marital_status"] == "10"
    assert snap.lookup_as_of("population", PERSON_ID, at(2020, 5, 1))["marital_status"] == "20"  # valid_to exclusive
    assert snap.lookup_as_of("population", PERSON_ID, at(1999, 1, 1)) is None
    assert snap.lookup_as_of("population", OTHER_PERSON_ID, at(2010, 1, 1)) is None


def test_without_history_as_of_is_an_error_not_a_miss(tmp_path):
    write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID)]})
    with pytest.raises(SnapshotError, match="no history"):
        open_current(tmp_path).lookup_as_of("population", PERSON_ID, dt.datetime.now(UTC))


def test_conflicts_and_provenance_are_read_when_present(tmp_path):
    conflicts = [conflict("population", PERSON_ID, "residence_address", "北京市海淀区中关村大街1号", "most_recent",
                          [("北京市海淀区中关村大街1号", "public_security", "2026-01-02T00:00:00Z"),
                           ("北京市朝阳区望京街2号", "hrss", "2025-06-01T00:00:00Z")]),
                 conflict("legal_person", PERSON_ID, "name", "x", "authority", [])]  # same key, other library
    provenance = [{"library": "population", "key": PERSON_ID, "field": "marital_status",
                   "source_department": "civil_affairs", "updated_at": dt.datetime(2025, 9, 9, tzinfo=UTC)}]
    write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID)]}, conflicts=conflicts, provenance=provenance)
    snap = open_current(tmp_path)
    found = snap.conflicts("population", PERSON_ID)
    assert list(found) == ["residence_address"]
    assert found["residence_address"]["rule"] == "most_recent"
    assert [v["source_department"] for v in found["residence_address"]["values"]] == ["public_security", "hrss"]
    assert snap.conflicts("population", OTHER_PERSON_ID) == {}
    assert snap.provenance("population", PERSON_ID) == {
        "marital_status": {"source_department": "civil_affairs", "updated_at": dt.datetime(2025, 9, 9, tzinfo=UTC)}}


def test_a_snapshot_without_side_files_has_no_conflicts(tmp_path):
    write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID)]})
    snap = open_current(tmp_path)
    assert snap.conflicts("population", PERSON_ID) == {} and snap.provenance("population", PERSON_ID) == {}


def test_preparing_twice_at_once_is_safe(tmp_path):
    path = write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID)]})
    threads = [threading.Thread(target=prepare, args=(path,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads((path / SERVING / "READY").read_text())["tables"] == ["population"]
    assert open_snapshot(path).lookup("population", PERSON_ID) is not None


def test_a_big_snapshot_is_prepared_in_the_background_while_the_old_one_serves(tmp_path):
    write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID, name="旧")]})
    follower = CurrentSnapshot(tmp_path, sync_prepare_rows=0)  # every later snapshot counts as "big"
    assert follower.get().lookup("population", PERSON_ID)["name"] == "旧"
    write_snapshot(tmp_path, "v000002", {"population": [person(PERSON_ID, name="新")]})
    deadline = time.monotonic() + 10
    seen = set()
    while time.monotonic() < deadline:
        snap = follower.get()  # never blocks, never fails: the old one answers until the new one is ready
        seen.add(snap.version)
        if snap.version == "v000002":
            break
        time.sleep(0.005)
    assert follower.get().lookup("population", PERSON_ID)["name"] == "新"
    assert seen <= {"v000001", "v000002"}


def test_an_open_snapshot_keeps_answering_after_its_files_are_pruned(tmp_path):
    write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID, name="旧")]})
    follower = CurrentSnapshot(tmp_path)
    old = follower.get()
    write_snapshot(tmp_path, "v000002", {"population": [person(PERSON_ID, name="新")]})
    assert follower.get().version == "v000002"
    shutil.rmtree(tmp_path / "v000001")  # what prune does to a snapshot no longer current
    assert old.lookup("population", PERSON_ID)["name"] == "旧"  # a request still holding it finishes on it


def test_a_broken_new_snapshot_leaves_the_previous_one_serving(tmp_path):
    write_snapshot(tmp_path, "v000001", {"population": [person(PERSON_ID)]})
    follower = CurrentSnapshot(tmp_path)
    assert follower.get().version == "v000001"
    (tmp_path / "v000002").mkdir()
    (tmp_path / "v000002" / "manifest.json").write_text('{"version": "v000002", "tables": {"population": '
                                                         '{"rows": 1, "parquet": "population.parquet"}}}')
    (tmp_path / "v000002" / "population.parquet").write_text("not parquet")
    switch_current(tmp_path, "v000002")
    assert follower.get().version == "v000001"
    assert "v000002" in (follower.last_error or "")


def test_nothing_published_is_a_snapshot_error(tmp_path):
    with pytest.raises(SnapshotError):
        CurrentSnapshot(tmp_path).get()

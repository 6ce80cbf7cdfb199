"""Land → stage → reconcile → publish on the household source, through the same jobs the DAGs call."""

from __future__ import annotations

import json

import duckdb
import pytest

from hub import jobs
from warehouse.published import CURRENT, CurrentSnapshot, open_current
from warehouse.work import open_work
from tests.household import create_table, insert, person_row, valid_id


@pytest.fixture
def household(settings):
    settings.samples_dir.mkdir(parents=True)
    engine = create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}")
    rows = [person_row(i) for i in range(1, 21)]
    rows[2]["SFZH"] = rows[2]["SFZH"][:-1] + ("0" if rows[2]["SFZH"][-1] != "0" else "1")  # bad check digit
    rows[3]["SFZH"] = None  # no ID number
    rows[4]["SFZH"] = "".join(chr(ord(c) + 0xFEE0) for c in rows[4]["SFZH"])  # full-width digits
    insert(engine, rows)
    return engine, rows


def test_run_publishes_valid_records_and_quarantines_the_rest(household, settings):
    _, rows = household
    jobs.ingest("household", "run-1")
    staged = jobs.stage("household")
    assert (staged.staged, staged.quarantined) == (18, 2)
    result = jobs.reconcile_and_publish("run-1")
    snap = open_current(settings.snapshots_dir)
    assert snap.version == result.version == "v000001"
    assert snap.manifest["tables"]["population"]["rows"] == 18
    person = snap.lookup("population", valid_id(5, birth=rows[4]["CSRQ"]))  # full-width typed, normalised
    assert person["name"] == "王5" and person["gender"] == "1" and str(person["birth_date"]) == "1980-06-06"
    assert person["ethnicity"] == "01" and person["marital_status"] == "10" and person["life_status"] == "living"
    with open_work(settings.warehouse_dir) as conn:
        reasons = dict(conn.execute("SELECT source_record_id, reasons FROM quarantine").fetchall())
    assert reasons == {"3": ["id_number: check_digit"], "4": ["id_number: empty"]}


def test_rerunning_staging_and_publish_neither_loses_nor_duplicates(household, settings):
    engine, _ = household
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    jobs.stage("household")  # nothing new: a no-op
    first = jobs.reconcile_and_publish("run-1")
    insert(engine, [person_row(i) for i in range(21, 26)])
    updated = person_row(1)
    updated["XM"], updated["GXSJ"], updated["RKBH"] = "王一", updated["GXSJ"].replace(year=2026, month=6), 1
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE HJ_RKXX SET XM = ?, GXSJ = ? WHERE RKBH = 1", (updated["XM"], updated["GXSJ"]))
    jobs.ingest("household", "run-2")
    jobs.stage("household")
    second = jobs.reconcile_and_publish("run-2")
    assert first.tables["population"]["rows"] == 18 and second.tables["population"]["rows"] == 23
    snap = open_current(settings.snapshots_dir)
    assert snap.lookup("population", valid_id(1, birth=person_row(1)["CSRQ"]))["name"] == "王一"
    con = duckdb.connect()
    keys = con.execute(f"SELECT count(*), count(DISTINCT id_number) FROM '{snap.path / 'population.parquet'}'").fetchone()
    assert keys == (23, 23)


def test_publishing_the_same_inputs_twice_gives_the_same_data(household, settings):
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    a = jobs.reconcile_and_publish("run-1")
    b = jobs.reconcile_and_publish("run-1")
    assert a.version != b.version
    assert a.tables["population"]["rows"] == b.tables["population"]["rows"]
    con = duckdb.connect()
    diff = con.execute(f"SELECT count(*) FROM (SELECT * FROM '{a.path}/population.parquet' EXCEPT ALL "
                       f"SELECT * FROM '{b.path}/population.parquet')").fetchone()[0]
    assert diff == 0


def test_reader_follows_current_without_restart(household, settings):
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    jobs.reconcile_and_publish("run-1")
    follower = CurrentSnapshot(settings.snapshots_dir)
    assert follower.get().version == "v000001"
    jobs.reconcile_and_publish("run-1b")
    assert (settings.snapshots_dir / CURRENT).read_text().strip() == "v000002"
    assert follower.get().version == "v000002"


def test_failed_publish_keeps_the_previous_snapshot_serving(household, settings, monkeypatch):
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    jobs.reconcile_and_publish("run-1")
    import warehouse.publish as publish_module

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish_module, "_write_tables", disk_full)
    from hub.errors import PublishError

    with pytest.raises(PublishError, match="previous snapshot keeps serving"):
        jobs.reconcile_and_publish("run-2")
    assert open_current(settings.snapshots_dir).version == "v000001"
    assert not list(settings.snapshots_dir.glob("*.partial"))
    manifest = json.loads((settings.snapshots_dir / "v000001" / "manifest.json").read_text())
    assert manifest["tables"]["population"]["rows"] == 18


def test_old_snapshots_are_pruned_but_never_current(household, settings, monkeypatch):
    monkeypatch.setenv("HUB_SNAPSHOTS_KEEP", "2")
    from hub.settings import get_settings

    get_settings.cache_clear()
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    for i in range(4):
        jobs.reconcile_and_publish(f"run-{i}")
    kept = sorted(p.name for p in settings.snapshots_dir.glob("v*"))
    assert kept == ["v000003", "v000004"]
    assert open_current(settings.snapshots_dir).version == "v000004"

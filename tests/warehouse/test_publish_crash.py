"""A publish SIGKILLed at any step leaves a snapshot serving, intact; the next one completes; same inputs, same data."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from hub.checksums import sha256_file
from schemas import POPULATION
from schemas.derive import arrow_schema
from tests.household import valid_id
from warehouse.history import record_history
from warehouse.publish import publish
from warehouse.published import CURRENT, open_current
from warehouse.reconcile import build_golden
from warehouse.work import WORK_DB, open_work

UTC = dt.UTC
PEOPLE = 300
KEY = valid_id(1, birth="19800101")  # the first person, 王0
# Every step of warehouse.publish.publish, in order (the names it passes to its _reached hook).
STEPS = ["parquet:population", "database", "parquet:population_history", "parquet:conflicts", "parquet:provenance",
         "manifest", "renamed", "prepared", "current.tmp", "switched", "pruning:v000001"]
# Runs one publish in a child process that kills itself with SIGKILL when the publish reaches ``step``.
CHILD = """
import os, signal, sys
from pathlib import Path
import duckdb
import warehouse.publish as publishing

work, snapshots, step = sys.argv[1:]
def reached(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)
publishing._reached = reached
with duckdb.connect(work, read_only=True) as conn:
    publishing.publish(conn, Path(snapshots), ["run-2"], keep=1)
"""


def _stage(conn: duckdb.DuckDBPyConnection) -> None:
    """Two sources that disagree on some people: golden records, provenance and conflicts to publish."""
    rows = []
    for i in range(PEOPLE):
        base = {f.name: None for f in POPULATION.fields}
        base.update(id_number=valid_id(i + 1, birth="19800101"), name=f"王{i}", gender="1",
                    birth_date=dt.date(1980, 1, 1), marital_status="10", life_status="living",
                    source_department="public_security", source_record_id=f"H{i}", run_id="run-1",
                    source_updated_at=dt.datetime(2025, 1, 1, tzinfo=UTC),
                    ingested_at=dt.datetime(2025, 1, 2, tzinfo=UTC), _source="household")
        rows.append(base)
        if i % 3 == 0:
            rows.append(dict(base, marital_status="20", source_department="civil_affairs", source_record_id=f"M{i}",
                             _source="marriages"))
    schema = arrow_schema(POPULATION).append(pa.field("_source", pa.string())).remove_metadata()
    incoming = pa.Table.from_pylist(rows, schema=schema)  # noqa: F841 - read by DuckDB's replacement scan
    conn.execute('INSERT INTO "staging_population" BY NAME SELECT * FROM incoming')


@pytest.fixture
def published(settings):
    """A work database with golden records and history, published once as v000001; the work file closed."""
    with open_work(settings.warehouse_dir) as conn:
        _stage(conn)
        build_golden(conn, "population", ["household"])
        record_history(conn, "population", dt.datetime(2025, 2, 1, tzinfo=UTC))
        publish(conn, settings.snapshots_dir, ["run-1"])
    return settings


def _contents(snapshot: Path) -> dict[str, list[tuple]]:
    """Every table of a snapshot's manifest, row by row in file order, and the DuckDB file's tables sorted."""
    manifest = json.loads((snapshot / "manifest.json").read_text())
    con = duckdb.connect()
    found = {name: con.execute(f"SELECT * FROM '{snapshot / entry['parquet']}'").fetchall()
             for name, entry in manifest["tables"].items()}
    db = duckdb.connect(str(snapshot / "hub.duckdb"), read_only=True)
    for (table,) in db.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall():
        found[f"hub.duckdb:{table}"] = db.execute(f'SELECT * FROM "{table}" ORDER BY ALL').fetchall()
    db.close()
    return found


def _assert_serving_intact(snapshots: Path) -> str:
    """The snapshot CURRENT names: files matching its manifest's checksums, opened, answering a lookup."""
    name = (snapshots / CURRENT).read_text().strip()
    manifest = json.loads((snapshots / name / "manifest.json").read_text())
    for entry in manifest["tables"].values():
        assert sha256_file(snapshots / name / entry["parquet"]) == entry["sha256"], entry["parquet"]
    snap = open_current(snapshots)
    assert snap.version == name and snap.lookup("population", KEY)["name"] == "王0"
    assert snap.lookup_as_of("population", KEY, dt.datetime(2000, 1, 1, tzinfo=UTC))["marital_status"] == "20"
    snap.close()
    return name


@pytest.mark.parametrize("step", STEPS)
def test_a_publish_killed_at_any_step_leaves_a_snapshot_serving_and_the_next_one_completes(published, step):
    snapshots = published.snapshots_dir
    before = _contents(snapshots / "v000001")
    killed = subprocess.run([sys.executable, "-c", CHILD, str(published.warehouse_dir / WORK_DB), str(snapshots), step],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]  # it really died at that step
    switched = STEPS.index(step) >= STEPS.index("switched")
    assert _assert_serving_intact(snapshots) == ("v000002" if switched else "v000001")
    if not switched:
        assert _contents(snapshots / "v000001") == before

    with duckdb.connect(str(published.warehouse_dir / WORK_DB), read_only=True) as conn:
        result = publish(conn, snapshots, ["run-2"], keep=1)
    assert _assert_serving_intact(snapshots) == result.version
    assert _contents(result.path) == before
    assert not [p.name for p in snapshots.iterdir() if p.name.endswith((".partial", ".pruning"))]


def test_publishing_the_same_inputs_twice_gives_the_same_files(published):
    snapshots = published.snapshots_dir
    with duckdb.connect(str(published.warehouse_dir / WORK_DB), read_only=True) as conn:
        again = publish(conn, snapshots, ["run-1"])
    first = json.loads((snapshots / "v000001" / "manifest.json").read_text())
    assert _contents(snapshots / "v000001") == _contents(again.path)
    # Sorted on a unique order, the Parquet files come out byte for byte the same.
    assert {n: t["sha256"] for n, t in first["tables"].items()} == {n: t["sha256"] for n, t in again.tables.items()}
    assert set(first["tables"]) == {"population", "population_history", "_conflicts", "_provenance"}

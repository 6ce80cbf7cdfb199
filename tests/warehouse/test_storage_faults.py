"""A damaged or busy working database and a full disk: hub errors saying what to do, recorded in the run records."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import jobs
from hub.db import metadata_engine
from hub.errors import DiskFull, WorkDatabaseBusy, WorkDatabaseDamaged
from tests.household import create_table, insert, person_row
from warehouse.landing import landed_runs
from warehouse.runs import RunRecord
from warehouse.work import WORK_DB

# Runs in a private mount namespace: ``folder`` is a small tmpfs there, filled up before ``step`` runs, so the
# step meets a real ENOSPC from the kernel (unshare -r: no root needed where user namespaces are allowed).
FULL_DISK = """
import os, subprocess, sys
from hub import jobs
from hub.settings import get_settings
from warehouse.work import open_work

folder, step = sys.argv[1:]
if step == "stage":
    jobs.ingest("household", "run-1")
    with open_work(get_settings().warehouse_dir):
        pass  # the working file exists before the disk fills, as it does after a first run
subprocess.run(["dd", "if=/dev/zero", f"of={folder}/filler", "bs=64k"], capture_output=True)
try:
    jobs.ingest("household", "run-2") if step == "land" else jobs.stage("household")
except Exception as exc:
    print(type(exc).__name__)
    print(" ".join(str(exc).split()))
print(sorted(name for name in os.listdir(folder) if name != "filler"))  # what the failed step left on that disk
"""


@pytest.fixture
def household(settings):
    settings.samples_dir.mkdir(parents=True)
    insert(create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}"), [person_row(i) for i in range(1, 2001)])
    return settings


def _failed(step: str) -> RunRecord:
    with Session(metadata_engine()) as session:
        (record,) = session.scalars(select(RunRecord).where(RunRecord.step == step, RunRecord.status == "failed"))
        return record


def _staged_once(settings) -> None:
    jobs.ingest("household", "run-1")
    jobs.stage("household")


def test_a_truncated_working_database_is_a_clear_error_recorded_with_the_staging(household):
    _staged_once(household)
    work = household.warehouse_dir / WORK_DB
    os.truncate(work, work.stat().st_size // 2)
    with pytest.raises(WorkDatabaseDamaged, match="damaged.*rebuild the working database from the landings"):
        jobs.stage("household")
    record = _failed("stage")
    assert record.subject == "household" and "damaged" in record.detail and str(work) in record.detail


def test_a_garbage_working_database_stops_hub_run_without_a_traceback(household):
    (household.warehouse_dir).mkdir(parents=True)
    (household.warehouse_dir / WORK_DB).write_bytes(os.urandom(300_000))
    done = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--direct", "--source", "household"],
                          capture_output=True, text=True, timeout=600)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1 and "Traceback" not in said, said[-3000:]
    assert "the working database is damaged" in said and "not a valid DuckDB database" in said
    assert "What to do:" in said
    assert "damaged" in _failed("stage").detail


def test_a_working_database_another_process_has_open_is_named_not_a_traceback(household):
    _staged_once(household)
    work = household.warehouse_dir / WORK_DB
    other = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                              "print('open', flush=True); sys.stdin.read()", str(work)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "open"
        with pytest.raises(WorkDatabaseBusy, match=f"open in another process.*PID {other.pid}.*wait until"):
            jobs.stage("household")
    finally:
        other.stdin.close()
        other.wait(timeout=60)
    assert f"PID {other.pid}" in _failed("stage").detail
    assert jobs.stage("household").landings == 0  # once it has let go, staging works again


def _on_a_full_disk(folder, step: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    script = 'mount -t tmpfs -o size=8m tmpfs "$1" && exec "$2" -c "$3" "$1" "$4"'
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(folder), sys.executable, FULL_DISK, step],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_a_full_disk_during_staging_is_a_clear_error_recorded_with_the_staging(household):
    kind, message, _left = _on_a_full_disk(household.warehouse_dir, "stage")
    assert kind == DiskFull.__name__
    assert "the disk is full" in message and "No space left on device" in message and "free space" in message
    assert "No space left on device" in _failed("stage").detail


def test_a_full_disk_during_landing_leaves_nothing_and_is_recorded(household):
    (household.landing_dir / "household").mkdir(parents=True)
    kind, message, left = _on_a_full_disk(household.landing_dir / "household", "land")
    assert kind == DiskFull.__name__ and "No space left on device" in message
    assert left == "[]"  # no half-written run-2.partial
    assert landed_runs(household.landing_dir, "household") == []
    assert "No space left on device" in _failed("land").detail

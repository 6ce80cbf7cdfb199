"""One run at a time: a second ``hub run`` or an Airflow task stops before extracting, naming the running one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db import metadata_engine
from hub.run_lock import holder, source_scope
from tests.household import create_table, insert, person_row
from warehouse.landing import landed_runs
from warehouse.runs import RunRecord, get_watermark

ROWS = 20_000
RUN = [sys.executable, "-m", "hub.cli", "run", "--direct", "--source", "household"]
# Another process holding the locks a ``hub run -s household`` takes, until its standard input closes.
HOLDER = """
import sys
from pathlib import Path
from hub.run_lock import WAREHOUSE, run_lock
with run_lock(Path(sys.argv[1]), ["source:household", WAREHOUSE], "cli__other", "hub run"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def household(settings, tmp_path):
    """The household source with ROWS people, read in small batches so a run lasts long enough to be caught."""
    from connectors.config import SAMPLE_SOURCES

    settings.samples_dir.mkdir(parents=True)
    engine = create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}")
    for start in range(1, ROWS + 1, 10_000):
        insert(engine, [person_row(i) for i in range(start, start + 10_000)])
    sources = tmp_path / "sources.yaml"
    sources.write_text(SAMPLE_SOURCES.read_text().replace("batch_size: 200000", "batch_size: 500"))
    return {**os.environ, "HUB_SOURCES_FILE": str(sources)}


def _landed_keys(settings) -> list[int]:
    keys: list[int] = []
    for run_dir, manifest in landed_runs(settings.landing_dir, "household"):
        if manifest.rows:
            keys += pq.read_table(run_dir / manifest.file, columns=["RKBH"]).column(0).to_pylist()
    return keys


def _wait_until_holding(settings, proc: subprocess.Popen) -> dict:
    """The lock record of ``proc`` once it holds the household source's lock."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = holder(settings.data_dir, source_scope("household"))
        if found and found.get("pid") == proc.pid:
            return found
        assert proc.poll() is None, "the run ended before it took its lock"
        time.sleep(0.01)
    raise AssertionError("the run never took its lock")


def _words(text: str) -> str:
    return " ".join(text.split())  # the console wraps long lines


def _runs(status: str) -> list[RunRecord]:
    with Session(metadata_engine()) as session:
        return list(session.scalars(select(RunRecord).where(RunRecord.status == status)))


def test_a_second_hub_run_stops_before_extracting_and_names_the_running_one(household, settings):
    first = subprocess.Popen(RUN, env=household, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        running = _wait_until_holding(settings, first)
        os.kill(first.pid, signal.SIGSTOP)  # frozen while holding its lock: the second run meets it for sure
        try:
            second = subprocess.run(RUN, env=household, capture_output=True, text=True, timeout=300)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        said = _words(second.stdout + second.stderr)
        assert second.returncode == 1, said
        assert "Traceback" not in said
        assert f"pid {first.pid}" in said and running["run_id"] in said and running["host"] in said
        assert "hub run" in said and running["started_at"] in said and "stopped before extracting" in said
        assert first.wait(timeout=900) == 0, first.stderr.read()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    keys = _landed_keys(settings)
    assert len(keys) == ROWS and len(set(keys)) == ROWS  # extracted once, not twice
    assert len(landed_runs(settings.landing_dir, "household")) == 1
    (refused,) = _runs("refused")
    assert refused.step == "run" and f"pid {first.pid}" in refused.detail


def test_a_killed_run_releases_its_lock_and_the_next_run_sweeps_what_it_left(household, settings):
    first = subprocess.Popen(RUN, env=household, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    landing = settings.landing_dir / "household"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        parts = list(landing.glob("*.partial/part-0.parquet")) if landing.exists() else []
        if parts and parts[0].stat().st_size > 0:
            break
        assert first.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert list(landing.glob("*.partial"))  # what the killed run left behind
    assert holder(settings.data_dir, source_scope("household")) is None  # the kernel released its lock

    done = subprocess.run(RUN, env=household, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(landing.glob("*.partial"))
    keys = _landed_keys(settings)
    assert len(keys) == ROWS and len(set(keys)) == ROWS


def test_an_airflow_task_is_refused_while_another_process_holds_the_lock(settings, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from hub.airflow_env import DAGS_FOLDER, ensure_database
    from hub.settings import get_settings

    settings.samples_dir.mkdir(parents=True)
    insert(create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}"), [person_row(i) for i in range(1, 21)])
    monkeypatch.setenv("HUB_TASK_RETRIES", "0")
    get_settings.cache_clear()
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(settings.data_dir)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        ensure_database()
        run = DagBag(dag_folder=str(DAGS_FOLDER)).dags["ingest_household"].test()
    finally:
        other.stdin.close()
        other.wait(timeout=60)
    assert str(getattr(run.state, "value", run.state)) == "failed"
    land = next(ti for ti in run.get_task_instances() if ti.task_id == "land")
    assert str(getattr(land.state, "value", land.state)) == "failed"
    assert landed_runs(settings.landing_dir, "household") == [] and get_watermark(metadata_engine(), "household") is None
    (refused,) = _runs("refused")
    assert refused.step == "land" and f"pid {other.pid}" in refused.detail and "cli__other" in refused.detail

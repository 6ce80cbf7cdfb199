"""A process killed in the middle of an extraction: the next run lands exactly the rows not landed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from hub.db import metadata_engine
from warehouse.landing import landed_runs
from warehouse.runs import get_watermark
from tests.household import create_table, insert, person_row

ROWS = 60_000


def _landed_keys(settings) -> list[int]:
    keys: list[int] = []
    for run_dir, manifest in landed_runs(settings.landing_dir, "household"):
        if manifest.rows:
            keys += [int(k) for k in pq.read_table(run_dir / manifest.file, columns=["RKBH"]).column(0).to_pylist()]
    return keys


def test_sigkill_mid_extraction_then_next_run_lands_every_row_once(settings, tmp_path):
    settings.samples_dir.mkdir(parents=True)
    engine = create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}")
    for start in range(1, ROWS + 1, 10_000):
        insert(engine, [person_row(i) for i in range(start, start + 10_000)])
    sources = tmp_path / "sources.yaml"
    # Small batches, so the process is surely killed while batches are still being written.
    sources.write_text(_small_batches())
    env = {**os.environ, "HUB_SOURCES_FILE": str(sources)}
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--direct", "--source", "household"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = settings.landing_dir / "household"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        parts = list(partial.glob("*.partial/part-0.parquet")) if partial.exists() else []
        if parts and parts[0].stat().st_size > 0:
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert get_watermark(metadata_engine(), "household") is None
    assert _landed_keys(settings) == []

    done = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--direct", "--source", "household"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = _landed_keys(settings)
    assert len(keys) == ROWS and len(set(keys)) == ROWS


def _small_batches() -> str:
    from connectors.config import SAMPLE_SOURCES

    return SAMPLE_SOURCES.read_text().replace("batch_size: 200000", "batch_size: 500")

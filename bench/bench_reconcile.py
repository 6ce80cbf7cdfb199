"""Benchmark of reconcile + publish at full size: ``python bench/bench_reconcile.py [--people 10000000]``.

10 M people give the generator's 2 M legal persons and ~4.8 M licences (with their status events).
Two cached preparations under ``--dir``, each in a child process and timed: the sample systems
(every defect at 1 %), then every source ingested and staged through the same job functions the
DAGs call (``hub.jobs.ingest`` / ``stage``); the staged working database is kept as a checkpoint.
The measured part, in a fresh child process from a copy of that checkpoint, is the whole
``hub.jobs.reconcile_and_publish`` step: identity resolution, golden records of the three
libraries, steward resolutions, life events, history, the shared-table quality suites, the
snapshot (Parquet, DuckDB file, serving files, manifest, CURRENT) and the quality report. It
prints the wall time and the child's peak memory (RSS), and the snapshot's row counts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

TARGET_SECONDS, TARGET_GIB = 600, 8.0


def _environment(data_dir: Path) -> None:
    os.environ["HUB_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("AIRFLOW_HOME", str(data_dir / "airflow"))


def _generate(data_dir: Path, people: int) -> None:
    _environment(data_dir)
    from samples.generate import generate_samples
    from hub.settings import get_settings

    generate_samples(get_settings().samples_dir, people, seed=42)


def _ingest_and_stage(data_dir: Path) -> None:
    _environment(data_dir)
    from hub import jobs
    from hub.commands.demo import sample_registry
    from hub.settings import get_settings

    with sample_registry(get_settings()):
        for name in jobs.sources():
            started = time.perf_counter()
            landed = jobs.ingest(name, "bench_ingest")
            staged = jobs.stage(name)
            print(f"  {name}: landed {landed.rows:,}, staged {staged.staged:,}, quarantined {staged.quarantined:,} "
                  f"in {time.perf_counter() - started:.1f} s", flush=True)


def _reconcile_and_publish(data_dir: Path, out: Path) -> None:
    _environment(data_dir)
    from hub import jobs

    started = time.perf_counter()
    result = jobs.reconcile_and_publish("bench_publish")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out.write_text(json.dumps({"seconds": seconds, "peak_bytes": peak, "version": result.version,
                               "tables": result.tables}))


def _child(target, *args) -> float:  # type: ignore[no-untyped-def]
    """Run ``target(*args)`` in a fresh process; the wall time, or exit on failure."""
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=target, args=args)
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"{target.__name__} failed (exit code {child.exitcode})")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/hub-bench-reconcile"))
    args = parser.parse_args()
    base = args.dir / str(args.people)
    data_dir, checkpoint = base / "data", base / "staged"
    work_file = data_dir / "warehouse" / "work.duckdb"

    if not (data_dir / "samples" / "manifest.json").exists():
        print(f"generating {args.people:,} people …", flush=True)
        print(f"generated in {_child(_generate, data_dir, args.people):.1f} s", flush=True)
    if not (checkpoint / "work.duckdb").exists():
        print("ingesting and staging every source …", flush=True)
        print(f"ingested and staged in {_child(_ingest_and_stage, data_dir):.1f} s", flush=True)
        checkpoint.mkdir(parents=True, exist_ok=True)
        shutil.copy2(work_file, checkpoint / "work.duckdb")
        shutil.copy2(data_dir / "metadata.db", checkpoint / "metadata.db")

    # The measured step always starts from the staged checkpoint, with nothing published.
    shutil.copy2(checkpoint / "work.duckdb", work_file)
    shutil.copy2(checkpoint / "metadata.db", data_dir / "metadata.db")
    shutil.rmtree(data_dir / "snapshots", ignore_errors=True)
    out = base / "result.json"
    print("reconcile and publish …", flush=True)
    _child(_reconcile_and_publish, data_dir, out)
    result = json.loads(out.read_text())
    gib = result["peak_bytes"] / 2**30
    print(f"\nsnapshot {result['version']}:")
    for name, table in result["tables"].items():
        print(f"  {name:<20} {table['rows']:>12,} rows")
    print(f"\nreconcile + publish: {result['seconds']:.1f} s wall (target < {TARGET_SECONDS} s), "
          f"peak RSS {gib:.2f} GiB (target < {TARGET_GIB} GiB); load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

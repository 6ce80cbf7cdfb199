"""Benchmark of the quality gate over population rows: ``python bench/bench_quality.py [--people 10000000]``.

The household registration of the sample generator (one row per person, 1% of each defect, the
duplicates on top) is built once in a child process and kept as Parquet under ``--work``; this
process then maps it to canonical records (timed apart: that is staging's mapping, not the gate)
and runs the whole gate as ``hub stage`` does: the row rules of the household suite, vectorised;
the batch profile and whole-batch rules; writing the quarantine, the notes and the suite results
into a working DuckDB file; then the suite result as a Great Expectations validation result and
its Data Docs. It prints each part, rows per second and the peak memory (RSS) of this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

import pyarrow.parquet as pq  # noqa: E402

SOURCE = "household"


def _generate(people: int, path: Path) -> None:
    from samples.defects import DefectRates
    from samples.household import build_household
    from samples.people import build_population

    pop = build_population(people, 42)
    table = build_household(pop, DefectRates(), 42).table
    pq.write_table(table, path.with_suffix(".tmp"), compression="zstd", row_group_size=1 << 20)
    path.with_suffix(".tmp").rename(path)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hub-bench-quality"))
    parser.add_argument("--no-data-docs", action="store_true", help="skip the GX results and Data Docs step")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    raw_file = args.work / f"household_{args.people}.parquet"
    if not raw_file.exists():
        started = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=_generate, args=(args.people, raw_file))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"generation failed ({child.exitcode})")
        print(f"generated {raw_file} in {time.perf_counter() - started:.1f} s (child process)")

    import duckdb

    from connectors.config import load_sources
    from connectors.mapping import to_canonical
    from quality import batch as batch_rules
    from quality.gate import SourceGate, run_rules, suite_result
    from quality.quarantine import quarantine_rows, record_notes
    from warehouse.staging import with_lineage
    from warehouse.tables import schema

    cfg = load_sources()[SOURCE]
    t0 = time.perf_counter()
    raw = pq.read_table(raw_file)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = with_lineage(to_canonical(raw, cfg, "bench-run", dt.datetime.now(dt.UTC)), raw, 1)
    t_map = time.perf_counter() - t0
    n = records.num_rows
    print(f"{n:,} population rows ({raw.nbytes / 1e6:,.0f} MB raw); read {t_read:.2f} s, mapped to canonical "
          f"{t_map:.2f} s (staging's mapping, not the gate); peak RSS so far {_rss_mb():,.0f} MB")

    db_file = args.work / "work.duckdb"
    db_file.unlink(missing_ok=True)
    conn = duckdb.connect(str(db_file))
    for ddl in schema():
        conn.execute(ddl)
    gate = SourceGate(cfg)
    parts: dict[str, float] = {}

    t_all = time.perf_counter()
    t0 = time.perf_counter()
    rows = run_rules(gate.suite, records, raw, 1)
    parts["row rules (vectorised)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prof = batch_rules.profile(records, gate.library, gate.present)
    verdict = batch_rules.judge(prof, batch_rules.history(conn, SOURCE), gate.library, gate.rules_config.batch)
    parts["batch profile and rules"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = suite_result(gate.suite, rows.results, "bench-run", {"source": SOURCE, "run_id": "bench-run", "rows": n})
    conn.execute("BEGIN")
    quarantined = quarantine_rows(conn, gate.library, SOURCE, "bench-run", rows.failed)
    record_notes(conn, gate.library, SOURCE, "bench-run", rows.notes)
    import json

    conn.execute("INSERT INTO quality_results (suite, kind, subject, library, run_id, success, result) "
                 "VALUES (?, 'source', ?, ?, ?, ?, ?)", [gate.suite.name, SOURCE, gate.library, "bench-run",
                                                         result["success"], json.dumps(result, default=str)])
    conn.execute("INSERT OR REPLACE INTO batch_profiles VALUES (?, ?, ?, true, now())", [SOURCE, "bench-run", prof.as_json()])
    conn.execute("COMMIT")
    parts["quarantine, notes, results written"] = time.perf_counter() - t0
    if not args.no_data_docs:
        t0 = time.perf_counter()
        from quality.gx import DataDocs  # GX import counted here: the report step pays it once per process

        parts["import great_expectations"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        docs_root = args.work / "reports"
        shutil.rmtree(docs_root, ignore_errors=True)
        docs = DataDocs(args.work / "gx", docs_root / "data_docs")
        docs.build([docs.add(result, dt.datetime.now(dt.UTC), f"{SOURCE}-bench-run")])
        parts["GX validation result and Data Docs"] = time.perf_counter() - t0
    total = time.perf_counter() - t_all
    t0 = time.perf_counter()
    from warehouse.staging import merge

    conn.execute("BEGIN")
    staged = merge(conn, gate.library, SOURCE, rows.checked)
    conn.execute("COMMIT")
    t_merge = time.perf_counter() - t0
    conn.close()

    print(f"suite {gate.suite.name}: {len(gate.suite.rules)} rules; passed {rows.passed_count:,}, quarantined "
          f"{quarantined:,}, notes {rows.notes.num_rows:,}; batch rules: {'passed' if verdict.passed else verdict.failures}")
    for name, seconds in parts.items():
        print(f"  {name:<40}{seconds:8.2f} s")
    gate_only = total - parts.get("import great_expectations", 0.0)
    print(f"whole gate over {n:,} rows: {total:.2f} s including the GX import, {gate_only:.2f} s without "
          f"= {n / gate_only / 1e6:.2f} M rows/s; peak RSS {_rss_mb():,.0f} MB")
    print(f"(then staging's merge of the {staged:,} passed rows into DuckDB: {t_merge:.2f} s; not part of the gate)")


if __name__ == "__main__":
    main()

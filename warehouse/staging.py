"""Staging: landed rows mapped to canonical records, checked, and merged per source record.

Staging one landing is idempotent: a landing's rows replace that source's earlier versions of the
same records, and a landing already staged is skipped, so a retry neither loses nor duplicates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.landing import landed_runs

Mapper = Callable[[pa.Table, str, dt.datetime], pa.Table]  # (raw, run_id, ingested_at) -> canonical
Checker = Callable[[pa.Table], "object"]  # canonical -> RowCheck(passed, failed)


@dataclass(frozen=True)
class StageResult:
    source: str
    landings: int
    staged: int
    quarantined: int


def _already_staged(conn: duckdb.DuckDBPyConnection, source: str) -> set[tuple[str, str]]:
    rows = conn.execute("SELECT run_id, sha256 FROM staged_landings WHERE source = ?", [source]).fetchall()
    return {(r, s) for r, s in rows}


def stage_pending(conn: duckdb.DuckDBPyConnection, source: str, library: str, landing_dir: Path, mapper: Mapper,
                  checker: Checker) -> StageResult:
    """Stage every complete landing of ``source`` not staged yet, oldest first, each in one transaction."""
    done = _already_staged(conn, source)
    landings = staged = quarantined = 0
    for run_dir, manifest in landed_runs(landing_dir, source):
        if (manifest.run_id, manifest.sha256) in done:
            continue
        if manifest.rows:
            result = checker(mapper(pq.read_table(run_dir / manifest.file), manifest.run_id, dt.datetime.now(dt.UTC)))
            passed, failed = result.passed, result.failed
        else:
            passed = failed = pa.table({})
        conn.execute("BEGIN")
        try:
            conn.execute("DELETE FROM staged_landings WHERE source = ? AND run_id = ?", [source, manifest.run_id])
            conn.execute("DELETE FROM quarantine WHERE source = ? AND run_id = ?", [source, manifest.run_id])
            _merge(conn, library, source, passed)
            _quarantine(conn, library, source, manifest.run_id, failed)
            conn.execute("INSERT INTO staged_landings VALUES (?, ?, ?, ?, ?, now())",
                         [source, manifest.run_id, manifest.sha256, passed.num_rows, failed.num_rows])
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        landings, staged, quarantined = landings + 1, staged + passed.num_rows, quarantined + failed.num_rows
    return StageResult(source, landings, staged, quarantined)


def _merge(conn: duckdb.DuckDBPyConnection, library: str, source: str, passed: pa.Table) -> None:
    if passed.num_rows == 0:
        return
    conn.register("incoming", passed)
    try:
        # The newest landing wins for a source record: replace, never append twice.
        conn.execute(f'DELETE FROM "staging_{library}" WHERE _source = ? AND source_record_id IN '
                     "(SELECT source_record_id FROM incoming)", [source])
        cols = ", ".join(f'"{c}"' for c in passed.column_names)
        conn.execute(f'INSERT INTO "staging_{library}" ({cols}, _source) SELECT {cols}, ? FROM incoming', [source])
    finally:
        conn.unregister("incoming")


def _quarantine(conn: duckdb.DuckDBPyConnection, library: str, source: str, run_id: str, failed: pa.Table) -> None:
    if failed.num_rows == 0:
        return
    conn.register("rejected", failed)
    try:
        record_cols = [c for c in failed.column_names if c != "reasons"]
        struct = ", ".join(f"'{c}': \"{c}\"" for c in record_cols)
        conn.execute(
            "INSERT INTO quarantine (library, source, run_id, source_record_id, line, reasons, record) "
            f"SELECT ?, ?, ?, source_record_id, NULL, reasons, to_json({{{struct}}}) FROM rejected",
            [library, source, run_id],
        )
    finally:
        conn.unregister("rejected")

"""Staging: landed rows mapped to canonical records, put through the quality gate, and merged per source record.

Staging one landing is idempotent: a landing's rows replace that source's earlier versions of the
same records, and a landing already staged is skipped, so a retry neither loses nor duplicates.
Every record of a landing ends up in exactly one place: staged, quarantined (with its reasons), or,
when a whole-batch rule holds the batch back, still in its landing until a steward decides; later
landings of the same source wait behind a held one, so the newest version always wins.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import LIBRARIES
from schemas.derive import duckdb_type
from schemas.events import EVENT_TYPES, record_type
from warehouse import db
from warehouse.landing import LandingManifest, landed_runs

Mapper = Callable[[pa.Table, str, dt.datetime], pa.Table]  # (raw, run_id, ingested_at) -> canonical
CONNECTOR_QUARANTINE = "_quarantine.json"
PASS = "_pass"  # a gate's flag column: only the rows where it is true are staged  # rows the connector could not read, written beside the landing

# Where a staged record came from: the landed file (relative to the drop folder) and its line, when the source has them.
LINEAGE = (("_file", "VARCHAR"), ("_line", "BIGINT"))


def _staging_ddl(name: str) -> str:
    """``staging_<name>`` for a library or an event record type (``schemas.events``)."""
    rt = record_type(name)
    cols = ",\n".join(f'    "{f.name}" {duckdb_type(f.type)}' for f in rt.fields)
    lineage = ",\n".join(f'    "{c}" {t}' for c, t in LINEAGE)
    return f'CREATE TABLE IF NOT EXISTS "staging_{rt.name}" (\n{cols},\n    "_source" VARCHAR NOT NULL,\n{lineage}\n);'


SCHEMA = [
    *(_staging_ddl(name) for name in (*LIBRARIES, *EVENT_TYPES)),
    # Working files written before lineage was kept get the columns (empty) on first open.
    *(f'ALTER TABLE "staging_{name}" ADD COLUMN IF NOT EXISTS "{c}" {t}' for name in LIBRARIES for c, t in LINEAGE),
    """CREATE TABLE IF NOT EXISTS staged_landings (
        source VARCHAR, run_id VARCHAR, sha256 VARCHAR, rows BIGINT, quarantined BIGINT,
        staged_at TIMESTAMPTZ DEFAULT now(), PRIMARY KEY (source, run_id))""",
]
db.declare("staging", SCHEMA)


class Checked(Protocol):
    """What the quality gate made of one landing."""

    passed: pa.Table  # canonical records that may be staged (those flagged ``_pass``, if the column is there)
    held: list[str]  # why the whole batch is held back (empty: it is not)
    rejected: bool  # a steward rejected the batch: nothing of it is staged

    def record(self, conn: duckdb.DuckDBPyConnection, *, staged: bool) -> int:
        """Write quarantine, findings, results and the batch verdict; returns the rows quarantined."""


class Gate(Protocol):
    def check(self, conn: duckdb.DuckDBPyConnection, batch: Landed) -> Checked: ...

    def released(self, conn: duckdb.DuckDBPyConnection) -> tuple[pa.Table, Callable[[], None]]:
        """Quarantined records a steward released, as canonical records, and how to mark them staged."""


@dataclass(frozen=True)
class Landed:
    """One landing, read and mapped: raw rows, canonical records (with lineage), connector quarantine."""

    manifest: LandingManifest
    raw: pa.Table
    records: pa.Table
    parts: int  # records per raw row (a marriage row holds two people)
    unreadable: list[dict]  # {"file", "line", "reason", "raw"} from the connector


@dataclass(frozen=True)
class StageResult:
    source: str
    landings: int
    staged: int
    quarantined: int
    held: dict[str, list[str]] = field(default_factory=dict)  # run_id -> reasons its batch is held back
    released: int = 0


def _already_staged(conn: duckdb.DuckDBPyConnection, source: str) -> set[tuple[str, str]]:
    rows = conn.execute("SELECT run_id, sha256 FROM staged_landings WHERE source = ?", [source]).fetchall()
    return {(r, s) for r, s in rows}


def with_lineage(records: pa.Table, raw: pa.Table, parts: int) -> pa.Table:
    """Canonical records plus ``_file`` and ``_line`` of the raw row each came from (null when the source has none)."""
    n = records.num_rows
    for name, kind in LINEAGE:
        arrow_type = pa.string() if kind == "VARCHAR" else pa.int64()
        if name in raw.column_names and raw.num_rows:
            column = raw.column(name).combine_chunks().cast(arrow_type)
            column = pa.concat_arrays([column] * parts) if parts > 1 else column
        else:
            column = pa.nulls(n, arrow_type)
        records = records.append_column(name, column)
    return records


def read_landing(run_dir: Path, manifest: LandingManifest, mapper: Mapper, parts: int) -> Landed:
    """Read one complete landing and map it to canonical records."""
    raw = pq.read_table(run_dir / manifest.file) if manifest.rows else pa.table({})
    unreadable_file = run_dir / CONNECTOR_QUARANTINE
    unreadable = json.loads(unreadable_file.read_text()) if unreadable_file.exists() else []
    if raw.num_rows:
        # Ingested when it landed, not when staged: a rebuild from the landings gives the same records.
        landed_at = dt.datetime.fromisoformat(manifest.finished_at)
        records = with_lineage(mapper(raw, manifest.run_id, landed_at), raw, parts)
    else:
        records = pa.table({})
    return Landed(manifest, raw, records, parts, unreadable)


def stage_pending(conn: duckdb.DuckDBPyConnection, source: str, library: str, landing_dir: Path, mapper: Mapper,
                  gate: Gate, *, parts: int = 1) -> StageResult:
    """Stage every complete landing of ``source`` not staged yet, oldest first, each in one transaction."""
    done = _already_staged(conn, source)
    landings = staged = quarantined = 0
    held: dict[str, list[str]] = {}
    for run_dir, manifest in landed_runs(landing_dir, source):
        if (manifest.run_id, manifest.sha256) in done:
            continue
        checked = gate.check(conn, read_landing(run_dir, manifest, mapper, parts))
        with _transaction(conn):
            if checked.held:
                checked.record(conn, staged=False)
                held[manifest.run_id] = checked.held
            else:
                conn.execute("DELETE FROM staged_landings WHERE source = ? AND run_id = ?", [source, manifest.run_id])
                count = checked.record(conn, staged=True)
                passed = checked.passed if not checked.rejected else pa.table({})
                taken = merge(conn, library, source, passed)
                conn.execute("INSERT INTO staged_landings VALUES (?, ?, ?, ?, ?, now())",
                             [source, manifest.run_id, manifest.sha256, taken, count])
                staged, quarantined = staged + taken, quarantined + count
        if checked.held:
            break  # later landings wait: staging them first would let an older version win later
        landings += 1
    released, mark = gate.released(conn)
    if released.num_rows:
        with _transaction(conn):
            merge(conn, library, source, released, newest_wins=True)
            mark()
    return StageResult(source, landings, staged, quarantined, held, released.num_rows)


class _transaction:
    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN")

    def __exit__(self, kind, _value, _tb) -> None:  # type: ignore[no-untyped-def]
        self.conn.execute("ROLLBACK" if kind else "COMMIT")


def merge(conn: duckdb.DuckDBPyConnection, library: str, source: str, passed: pa.Table, *,
          newest_wins: bool = False) -> int:
    """Put records into ``staging_<library>``, replacing the source's earlier versions of them; returns how many.

    Only rows whose ``_pass`` flag is true are taken when the table has that column (the gate flags
    rows instead of copying the batch). A landing is newer than what is staged, so it simply
    replaces; released records (from an older landing, perhaps) replace only versions ingested no
    later than themselves (``newest_wins``).
    """
    if passed.num_rows == 0:
        return 0
    flag = PASS in passed.column_names
    conn.register("incoming", passed)
    try:
        target = f'"staging_{library}"'
        cols = ", ".join(f'"{c}"' for c in passed.column_names if c != PASS)
        where = f" WHERE {PASS}" if flag else ""
        if newest_wins:
            conn.execute(f"DELETE FROM {target} s USING incoming i WHERE s._source = ? AND "
                         "s.source_record_id = i.source_record_id AND (s.ingested_at IS NULL OR s.ingested_at <= i.ingested_at)"
                         + (f" AND i.{PASS}" if flag else ""), [source])
            conn.execute(f"INSERT INTO {target} ({cols}, _source) SELECT {cols}, ? FROM incoming i WHERE NOT EXISTS "
                         f"(SELECT 1 FROM {target} s WHERE s._source = ? AND s.source_record_id = i.source_record_id)"
                         + (f" AND i.{PASS}" if flag else ""), [source, source])
        else:
            conn.execute(f"DELETE FROM {target} WHERE _source = ? AND source_record_id IN "
                         f"(SELECT source_record_id FROM incoming{where})", [source])
            conn.execute(f"INSERT INTO {target} ({cols}, _source) SELECT {cols}, ? FROM incoming{where}", [source])
        return int(conn.execute(f"SELECT count(*) FROM incoming{where}").fetchall()[0][0])
    finally:
        conn.unregister("incoming")

"""The pipeline's working DuckDB file: staging, quarantine, quality records and golden tables. One writer at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from schemas import LIBRARIES
from schemas.derive import duckdb_type
from schemas.events import EVENT_TYPES, record_type
from warehouse.faults import storage_fault

WORK_DB = "work.duckdb"
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
    "CREATE SEQUENCE IF NOT EXISTS quarantine_id START 1",
    # One row per quarantined record: every failed rule, the source, run, file and line; nothing else
    # leaves the pipeline. ``stage``: connector (unreadable line), row (row rules), reference (after
    # reconciliation). ``status``: open, released, rejected, superseded (a later landing passed).
    """CREATE TABLE IF NOT EXISTS quarantine (
        library VARCHAR, source VARCHAR, run_id VARCHAR, source_record_id VARCHAR, line BIGINT,
        reasons VARCHAR[], record JSON, status VARCHAR DEFAULT 'open',
        quarantined_at TIMESTAMPTZ DEFAULT now(), decided_by VARCHAR, decided_at TIMESTAMPTZ)""",
    *(f"ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS {c}" for c in (
        "id BIGINT DEFAULT nextval('quarantine_id')", "file VARCHAR", "stage VARCHAR DEFAULT 'row'",
        "note VARCHAR", "corrections JSON", "restaged_at TIMESTAMPTZ")),
    # Findings on records that passed: normalised identifiers, duplicates (recorded, never repaired silently).
    """CREATE TABLE IF NOT EXISTS quality_notes (
        library VARCHAR, source VARCHAR, run_id VARCHAR, source_record_id VARCHAR, file VARCHAR, line BIGINT,
        rule VARCHAR, field VARCHAR, reason VARCHAR, noted_at TIMESTAMPTZ DEFAULT now())""",
    # Whole-batch verdicts: blocked batches wait for a steward (released or rejected, by whom and when).
    """CREATE TABLE IF NOT EXISTS batch_checks (
        source VARCHAR, run_id VARCHAR, sha256 VARCHAR, status VARCHAR, reasons VARCHAR[],
        checked_at TIMESTAMPTZ DEFAULT now(), decided_by VARCHAR, decided_at TIMESTAMPTZ, note VARCHAR,
        PRIMARY KEY (source, run_id))""",
    """CREATE TABLE IF NOT EXISTS batch_profiles (
        source VARCHAR, run_id VARCHAR, profile JSON, accepted BOOLEAN, checked_at TIMESTAMPTZ DEFAULT now(),
        PRIMARY KEY (source, run_id))""",
    # Suite results (GX-shaped JSON), turned into GX validation results and Data Docs by the report.
    """CREATE TABLE IF NOT EXISTS quality_results (
        suite VARCHAR, kind VARCHAR, subject VARCHAR, library VARCHAR, run_id VARCHAR, success BOOLEAN,
        result JSON, evaluated_at TIMESTAMPTZ DEFAULT now(), documented BOOLEAN DEFAULT false)""",
    # Disagreements between departments and unresolved references, as of the last reconciliation.
    """CREATE TABLE IF NOT EXISTS quality_findings (
        library VARCHAR, field VARCHAR, kind VARCHAR, key VARCHAR, source VARCHAR, source_record_id VARCHAR,
        file VARCHAR, line BIGINT, detail VARCHAR, run_id VARCHAR, found_at TIMESTAMPTZ DEFAULT now())""",
    # One value per metric, subject and report: the trends of the quality page.
    """CREATE TABLE IF NOT EXISTS quality_metrics (
        run_id VARCHAR, measured_at TIMESTAMPTZ, scope VARCHAR, subject VARCHAR, metric VARCHAR, value DOUBLE)""",
]


def _schema() -> list[str]:
    """Every table of the working database: the pipeline's own, then the steps' that keep state between runs."""
    from warehouse import conflicts, identity, replay
    from warehouse.history import history_ddl

    return [*SCHEMA, *identity.SCHEMA, *conflicts.SCHEMA, *(history_ddl(lib) for lib in LIBRARIES.values()),
            *replay.SCHEMA]


@contextmanager
def open_work(warehouse_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The working database, read-write; DuckDB's file lock keeps it to one writer process.

    A file another process has open, a damaged file and a full disk raise hub errors (``hub.errors.StorageFault``)
    that say what to do, whether met on opening or by the step using the connection.
    """
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    from hub.settings import get_settings

    path = warehouse_dir / WORK_DB
    try:
        # A memory limit keeps a 10-million-row reconcile within the machine: DuckDB spills beyond it.
        conn = duckdb.connect(str(path), config={"memory_limit": get_settings().warehouse_memory_limit})
    except (duckdb.Error, OSError) as exc:
        fault = storage_fault(exc, str(path))
        if fault is None:
            raise
        raise fault from exc
    try:
        for ddl in _schema():
            conn.execute(ddl)
        from warehouse.replay import replay

        replay(conn)  # stewards' decisions come from the metadata database: the working copy follows it
        yield conn
    except (duckdb.Error, OSError) as exc:
        # A damaged file or a full disk may show only when a step reads or writes: the same clear error then.
        fault = storage_fault(exc, str(path))
        if fault is None:
            raise
        raise fault from exc
    finally:
        conn.close()

"""The quarantine: records that failed, with every reason, and the stewards' decisions on them.

A quarantined record stays until a steward decides: ``release`` (after correction, or accepting it
as it is) lets it re-enter staging on the source's next stage; ``reject`` closes it. Both record
who and when. A record whose source later delivers a version that passes is closed as
``superseded`` by the pipeline, with the run that superseded it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable

import duckdb
import pyarrow as pa

from hub.errors import ConfigError, HubError
from schemas.events import record_type
from schemas.derive import arrow_schema, duckdb_type
from warehouse import db

OPEN, RELEASED, REJECTED, SUPERSEDED, HELD = "open", "released", "rejected", "superseded", "held"
STAGES = ("connector", "row", "reference")
# The quality gate's tables in the working database: the quarantine, notes, batch verdicts, results, metrics.
SCHEMA = [
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
db.declare("quality", SCHEMA)


class DecisionError(HubError):
    """A steward's decision cannot be applied (unknown entry, already decided, correction still failing)."""


def quarantine_rows(conn: duckdb.DuckDBPyConnection, library: str, source: str, run_id: str, failed: pa.Table,
                    stage: str = "row") -> int:
    """Insert the failed records (canonical columns, lineage, ``reasons``); returns how many."""
    if failed.num_rows == 0:
        return 0
    conn.register("rejected_rows", failed)
    try:
        record_cols = [c for c in failed.column_names if c not in ("reasons", "_file", "_line", "_partial")]
        struct = ", ".join(f"'{c}': \"{c}\"" for c in record_cols)
        record = f"to_json({{{struct}}})"
        if "_partial" in failed.column_names:  # what the record's typed columns cannot hold: "1985-03" as birth date
            record = f"""json_merge_patch({record}, coalesce('{{"_partial":' || "_partial" || '}}', '{{}}'))"""
        file_col = '"_file"' if "_file" in failed.column_names else "NULL"
        line_col = '"_line"' if "_line" in failed.column_names else "NULL"
        conn.execute(
            "INSERT INTO quarantine (library, source, run_id, source_record_id, file, line, reasons, record, stage) "
            f"SELECT ?, ?, ?, source_record_id, {file_col}, {line_col}, reasons, {record}, ? FROM rejected_rows",
            [library, source, run_id, stage],
        )
    finally:
        conn.unregister("rejected_rows")
    return failed.num_rows


def quarantine_unreadable(conn: duckdb.DuckDBPyConnection, library: str, source: str, run_id: str,
                          entries: list[dict]) -> int:
    """Rows the connector could not decode or parse: file, line, reason and the raw text as read."""
    if not entries:
        return 0
    conn.executemany(
        "INSERT INTO quarantine (library, source, run_id, source_record_id, file, line, reasons, record, stage) "
        "VALUES (?, ?, ?, NULL, ?, ?, ?, ?, 'connector')",
        [[library, source, run_id, e.get("file"), e.get("line"), [f"row: {e.get('reason') or 'unreadable'}"],
          json.dumps({"raw": e.get("raw", "")}, ensure_ascii=False)] for e in entries])
    return len(entries)


def record_notes(conn: duckdb.DuckDBPyConnection, library: str, source: str, run_id: str, notes: pa.Table) -> None:
    if notes.num_rows == 0:
        return
    conn.register("new_notes", notes)
    try:
        conn.execute("INSERT INTO quality_notes (library, source, run_id, source_record_id, file, line, rule, field, reason) "
                     "SELECT ?, ?, ?, source_record_id, file, line, rule, field, reason FROM new_notes",
                     [library, source, run_id])
    finally:
        conn.unregister("new_notes")


def supersede(conn: duckdb.DuckDBPyConnection, source: str, run_id: str, passed: pa.Table) -> None:
    """Close open entries of records that this landing delivered again and that passed this time."""
    if passed.num_rows == 0:
        return
    flag = "_pass" in passed.column_names
    conn.register("passed_ids", passed.select(["source_record_id", *(["_pass"] if flag else [])]))
    try:
        conn.execute("UPDATE quarantine SET status = 'superseded', decided_by = 'pipeline', decided_at = now(), "
                     "note = 'run ' || ? || ' delivered a version that passed' "
                     "WHERE source = ? AND status = 'open' AND stage = 'row' AND run_id <> ? "
                     "AND source_record_id IN (SELECT source_record_id FROM passed_ids"
                     + (" WHERE _pass)" if flag else ")"), [run_id, source, run_id])
    finally:
        conn.unregister("passed_ids")


def _struct_type(library: str) -> str:
    fields = ", ".join(f'"{f.name}": "{duckdb_type(f.type)}"' for f in record_type(library).fields)
    return "{" + fields + "}"


def released_records(conn: duckdb.DuckDBPyConnection, source: str, library: str) -> tuple[pa.Table, Callable[[], None]]:
    """Released, not yet restaged row entries of ``source`` as canonical records (corrections applied), and the marker."""
    lib = record_type(library)
    rows = conn.execute("SELECT id FROM quarantine WHERE source = ? AND status = 'released' AND stage = 'row' "
                        "AND restaged_at IS NULL", [source]).fetchall()
    ids = [r[0] for r in rows]
    if not ids:
        return pa.table({}), lambda: None
    struct = _struct_type(library)
    names = ", ".join(f'r."{f.name}"' for f in lib.fields)
    table = conn.sql(
        f"SELECT {names}, file AS _file, line AS _line FROM (SELECT from_json(json_merge_patch(record, "
        f"coalesce(corrections, '{{}}')), '{struct.replace(chr(39), chr(39) * 2)}') AS r, file, line FROM quarantine "
        "WHERE id IN (SELECT unnest($ids::BIGINT[])))", params={"ids": ids}).to_arrow_table()
    schema = arrow_schema(lib, include_metadata=True).remove_metadata()
    columns = [table.column(f.name).cast(schema.field(f.name).type) for f in lib.fields]
    records = pa.Table.from_arrays(columns + [table.column("_file"), table.column("_line").cast(pa.int64())],
                                   names=[*lib.field_names, "_file", "_line"])

    def mark() -> None:
        conn.execute("UPDATE quarantine SET restaged_at = now() WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids])

    return records, mark


# --- stewards' view and decisions ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    id: int
    library: str
    source: str
    run_id: str
    source_record_id: str | None
    file: str | None
    line: int | None
    stage: str
    reasons: list[str]
    status: str
    record: dict[str, Any]
    quarantined_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    note: str | None
    corrections: dict[str, Any] | None


_COLUMNS = ("id, library, source, run_id, source_record_id, file, line, stage, reasons, status, record, "
            "quarantined_at, decided_by, decided_at, note, corrections")


def _entry(row: tuple) -> Entry:
    values = list(row)
    values[10] = json.loads(values[10]) if values[10] else {}
    values[15] = json.loads(values[15]) if values[15] else None
    return Entry(*values)


def entries(conn: duckdb.DuckDBPyConnection, *, source: str | None = None, status: str | None = OPEN,
            reason: str | None = None, run_id: str | None = None, limit: int = 50) -> list[Entry]:
    """Quarantine entries, newest first, filtered."""
    where, params = [], []
    for column, value in (("source", source), ("status", status), ("run_id", run_id)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if reason:
        where.append("list_contains(list_transform(reasons, lambda r: contains(r, ?)), true)")
        params.append(reason)
    sql = f"SELECT {_COLUMNS} FROM quarantine" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY quarantined_at DESC, id LIMIT ?"
    return [_entry(r) for r in db.run(conn, "quarantine.entries", sql, [*params, limit]).fetchall()]


def entry(conn: duckdb.DuckDBPyConnection, entry_id: int) -> Entry:
    row = db.run(conn, "quarantine.entry", f"SELECT {_COLUMNS} FROM quarantine WHERE id = ?", [entry_id]).fetchone()
    if row is None:
        raise DecisionError(f"no quarantine entry {entry_id}")
    return _entry(row)


def _check_decidable(e: Entry) -> None:
    if e.status != OPEN:
        raise DecisionError(f"entry {e.id} is already {e.status}"
                            + (f" (by {e.decided_by} at {e.decided_at:%Y-%m-%d %H:%M})" if e.decided_by else ""))


def release(conn: duckdb.DuckDBPyConnection, entry_id: int, by: str, *, note: str | None = None,
            corrections: dict[str, Any] | None = None,
            recheck: Callable[[Entry, dict[str, Any]], list[str]] | None = None) -> Entry:
    """Release an open entry (with optional corrections); it re-enters staging on the source's next stage.

    ``recheck(entry, corrected_record)`` returns the row rules the corrected record still fails; a
    release after correction is refused while there are any. A release without corrections is the
    steward accepting the record as it is, and needs no recheck.
    """
    if not by.strip():
        raise DecisionError("a decision needs the steward's name (--by)")
    e = entry(conn, entry_id)
    _check_decidable(e)
    if e.stage == "connector":
        raise DecisionError(f"entry {e.id} is a line the connector could not read: it has no record to release; "
                            "have the department deliver it again, then reject this entry")
    if corrections:
        unknown = sorted(set(corrections) - set(record_type(e.library).field_names))
        if unknown:
            raise ConfigError(f"{e.library} has no field(s) {', '.join(unknown)}")
        corrected = {**e.record, **corrections}
        still = recheck(e, corrected) if recheck else []
        if still:
            raise DecisionError(f"entry {e.id} still fails after correction: {'; '.join(still)}")
    _decide(conn, e, RELEASED, by, note, {"corrections": corrections} if corrections else {})
    return entry(conn, entry_id)


def reject(conn: duckdb.DuckDBPyConnection, entry_id: int, by: str, *, note: str | None = None) -> Entry:
    """Mark an open entry rejected: it never enters staging."""
    if not by.strip():
        raise DecisionError("a decision needs the steward's name (--by)")
    e = entry(conn, entry_id)
    _check_decidable(e)
    _decide(conn, e, REJECTED, by, note, {})
    return entry(conn, entry_id)


def _decide(conn: duckdb.DuckDBPyConnection, e: Entry, status: str, by: str, note: str | None,
            detail: dict[str, Any]) -> None:
    """Log the decision in the metadata database first, then give the entry its copy (``warehouse.replay``)."""
    from warehouse import decisions
    from warehouse.replay import apply, quarantine_subject

    (reasons, record) = conn.execute("SELECT reasons, record FROM quarantine WHERE id = ?", [e.id]).fetchone()
    decision = decisions.record(decisions.QUARANTINE, status, by=by, library=e.library, source=e.source,
                                run_id=e.run_id, subject=quarantine_subject(e.stage, e.source_record_id, e.file, e.line,
                                                                            reasons, record),
                                detail=detail, note=note)
    apply(conn, decision, entry_id=e.id)


def decide_batch(conn: duckdb.DuckDBPyConnection, source: str, run_id: str, status: str, by: str,
                 note: str | None = None) -> None:
    """Release or reject a held batch; the next stage of its source then stages it (or skips it)."""
    if status not in (RELEASED, REJECTED):
        raise DecisionError(f"a batch is released or rejected, not {status!r}")
    if not by.strip():
        raise DecisionError("a decision needs the steward's name (--by)")
    row = conn.execute("SELECT status FROM batch_checks WHERE source = ? AND run_id = ?", [source, run_id]).fetchone()
    if row is None:
        raise DecisionError(f"no held batch {run_id} of {source}")
    if row[0] != HELD:
        raise DecisionError(f"batch {run_id} of {source} is already {row[0]}")
    from warehouse import decisions
    from warehouse.replay import apply

    sha256, reasons = conn.execute("SELECT sha256, reasons FROM batch_checks WHERE source = ? AND run_id = ?",
                                   [source, run_id]).fetchone()
    apply(conn, decisions.record(decisions.BATCH, status, by=by, source=source, run_id=run_id,
                                 subject={"sha256": sha256, "reasons": list(reasons or [])}, note=note))


def counts_by_reason(conn: duckdb.DuckDBPyConnection, status: str = OPEN) -> list[tuple[str, str, str, int]]:
    """(library, source, reason, open entries) for every reason (an entry counts once per reason it has)."""
    return conn.execute(
        "SELECT library, source, r AS reason, count(*) FROM (SELECT library, source, unnest(reasons) AS r "
        "FROM quarantine WHERE status = ?) GROUP BY ALL ORDER BY 4 DESC", [status]).fetchall()

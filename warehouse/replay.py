"""The working database's copy of the stewards' decisions, derived from the log in the metadata database.

``replay`` runs whenever the working database is opened: every decision of the log that the working
database does not hold yet is applied, in the order taken. A row a decision wrote carries its
``decision_id``, so the two can't disagree and a decision is applied once. A quarantine decision
whose record is not staged yet (a rebuild re-stages landing by landing) waits for a later open.
Decisions found only in the working database (taken before the log existed) are first adopted into
the log.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import duckdb
from sqlalchemy.engine import Engine

from warehouse import db
from warehouse import decisions as log
from warehouse.decisions import BATCH, CONFLICT, IDENTITY, QUARANTINE, Decision

DECIDED_TABLES = ("quarantine", "batch_checks", "conflict_resolutions", "identity_overrides")
# Run after every other table is created (``warehouse.work``): each decided row names its decision.
SCHEMA = [f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS decision_id BIGINT" for t in DECIDED_TABLES]
STEWARD_STATUSES = ("released", "rejected")  # of quarantine entries and batches; the others are the pipeline's


@dataclass(frozen=True)
class ReplayResult:
    applied: int  # decisions of the log applied to the working database now
    pending: int  # quarantine decisions whose record is not in the working database (yet)
    adopted: int  # decisions found only in the working database, written to the log


def applied_ids(conn: duckdb.DuckDBPyConnection) -> set[int]:
    """The decisions of the log the working database holds."""
    union = " UNION ".join(f"SELECT decision_id FROM {t} WHERE decision_id IS NOT NULL" for t in DECIDED_TABLES)
    return {int(i) for (i,) in db.run(conn, "replay.applied_ids", union).fetchall()}


def replay(conn: duckdb.DuckDBPyConnection, engine: Engine | None = None) -> ReplayResult:
    """Adopt the working database's unlogged decisions, then apply every logged decision it lacks."""
    adopted = adopt(conn, engine)
    done = applied_ids(conn)
    todo = [d for d in log.all_decisions(engine) if d.id not in done]
    applied = pending = 0
    if not todo:
        return ReplayResult(0, 0, adopted)
    db.run(conn, "replay.replay", "BEGIN")
    try:
        for decision in todo:
            if apply(conn, decision):
                applied += 1
            else:
                pending += 1
        db.run(conn, "replay.replay", "COMMIT")
    except BaseException:
        db.run(conn, "replay.replay", "ROLLBACK")
        raise
    return ReplayResult(applied, pending, adopted)


def apply(conn: duckdb.DuckDBPyConnection, d: Decision, *, entry_id: int | None = None) -> bool:
    """Write one logged decision into the working database; False if its subject is not there (yet).

    ``entry_id``: the quarantine entry a steward just decided, so that only it takes the decision (a
    landing may hold the same record twice); a replay finds entries by what names them across rebuilds.
    """
    if d.kind == QUARANTINE:
        return _quarantine(conn, d, entry_id)
    return _APPLY[d.kind](conn, d)


def _quarantine(conn: duckdb.DuckDBPyConnection, d: Decision, entry_id: int | None = None) -> bool:
    s = d.subject
    corrections = d.detail.get("corrections")
    values = [d.action, d.decided_by, d.decided_at, d.note,
              json.dumps(corrections, ensure_ascii=False) if corrections else None, d.id]
    where = [d.source, d.run_id, s.get("stage", "row"), s.get("source_record_id"), s.get("file"), s.get("line")]
    # A superseded entry is one a rebuild closed before the decision came back: the decision was taken first.
    rows = conn.execute(
        "UPDATE quarantine SET status = ?, decided_by = ?, decided_at = ?, note = ?, corrections = ?, decision_id = ? "
        "WHERE source = ? AND run_id = ? AND stage = ? AND source_record_id IS NOT DISTINCT FROM ? "
        "AND file IS NOT DISTINCT FROM ? AND line IS NOT DISTINCT FROM ? AND status IN ('open', 'superseded') "
        "AND decision_id IS NULL" + (" AND id = ?" if entry_id is not None else "") + " RETURNING id",
        [*values, *where, *([entry_id] if entry_id is not None else [])]).fetchall()
    if rows:
        return True
    if s.get("stage") != "reference" or "record" not in s:
        return False
    # Reference entries are made by the reconcile that finds the dangling reference; the decision must be there first.
    conn.execute("INSERT INTO quarantine (library, source, run_id, source_record_id, file, line, reasons, record, stage, "
                 "status, decided_by, decided_at, note, corrections, decision_id) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'reference', ?, ?, ?, ?, ?, ?)",
                 [d.library, d.source, d.run_id, s.get("source_record_id"), s.get("file"), s.get("line"),
                  s.get("reasons") or [], s["record"], *values])
    return True


def _batch(conn: duckdb.DuckDBPyConnection, d: Decision) -> bool:
    # Written before the batch is checked again, so the gate stages (or skips) it instead of holding it.
    conn.execute("INSERT INTO batch_checks (source, run_id, sha256, status, reasons, decided_by, decided_at, note, "
                 "decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, run_id) DO UPDATE SET "
                 "status = excluded.status, decided_by = excluded.decided_by, decided_at = excluded.decided_at, "
                 "note = excluded.note, decision_id = excluded.decision_id",
                 [d.source, d.run_id, d.subject.get("sha256"), d.action, d.subject.get("reasons") or [], d.decided_by,
                  d.decided_at, d.note, d.id])
    return True


def _conflict(conn: duckdb.DuckDBPyConnection, d: Decision) -> bool:
    key, field = d.subject["key"], d.subject["field"]
    conn.execute("UPDATE conflict_resolutions SET status = 'superseded', closed_at = ? "
                 "WHERE library = ? AND key = ? AND field = ? AND status = 'active'", [d.decided_at, d.library, key, field])
    conn.execute("INSERT INTO conflict_resolutions (library, key, field, chosen_value, chosen_source, seen_values, "
                 "resolved_by, note, resolved_at, status, closed_at, decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [d.library, key, field, d.detail.get("chosen_value"), d.detail.get("chosen_source"),
                  d.detail.get("seen_values") or [], d.decided_by, d.note, d.decided_at, d.outcome or "active",
                  d.closed_at, d.id])
    return True


def _identity(conn: duckdb.DuckDBPyConnection, d: Decision) -> bool:
    conn.execute("INSERT INTO identity_overrides (library, source, source_record_id, action, entity_key, decided_by, "
                 "decided_at, note, decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [d.library, d.source, d.subject["source_record_id"], d.action, d.subject.get("entity_key"),
                  d.decided_by, d.decided_at, d.note, d.id])
    return True


_APPLY = {BATCH: _batch, CONFLICT: _conflict, IDENTITY: _identity}


def quarantine_subject(stage: str, source_record_id: str | None, file: str | None, line: int | None,
                       reasons: list[str], record: str | None) -> dict:
    """What names a quarantine entry across rebuilds; a reference entry also keeps its record (a rebuild remakes it late)."""
    subject = {"stage": stage, "source_record_id": source_record_id, "file": file, "line": line}
    if stage == "reference":
        subject |= {"reasons": list(reasons), "record": record}
    return subject


def adopt(conn: duckdb.DuckDBPyConnection, engine: Engine | None = None) -> int:
    """Write the working database's decisions that have no ``decision_id`` to the log; returns how many."""
    found = 0
    statuses = ", ".join(f"'{s}'" for s in STEWARD_STATUSES)
    for qid, library, source, run_id, stage, record_id, file, line, reasons, record, status, by, at, note, fixes in \
            conn.execute("SELECT id, library, source, run_id, stage, source_record_id, file, line, reasons, record, status, "
                         f"decided_by, decided_at, note, corrections FROM quarantine WHERE status IN ({statuses}) "
                         "AND decision_id IS NULL ORDER BY decided_at, id").fetchall():
        d = log.record(QUARANTINE, status, by=by or "unknown", library=library, source=source, run_id=run_id,
                       subject=quarantine_subject(stage, record_id, file, line, reasons, record),
                       detail={"corrections": json.loads(fixes)} if fixes else {}, note=note, at=at, engine=engine)
        db.run(conn, "replay.adopt", "UPDATE quarantine SET decision_id = ? WHERE id = ?", [d.id, qid])
        found += 1
    for source, run_id, sha, reasons, status, by, at, note in conn.execute(
            "SELECT source, run_id, sha256, reasons, status, decided_by, decided_at, note FROM batch_checks "
            f"WHERE status IN ({statuses}) AND decision_id IS NULL ORDER BY decided_at").fetchall():
        d = log.record(BATCH, status, by=by or "unknown", source=source, run_id=run_id,
                       subject={"sha256": sha, "reasons": list(reasons or [])}, note=note, at=at, engine=engine)
        conn.execute("UPDATE batch_checks SET decision_id = ? WHERE source = ? AND run_id = ?", [d.id, source, run_id])
        found += 1
    for rid, library, key, field, value, chosen, seen, by, note, at, status, closed in conn.execute(
            "SELECT id, library, key, field, chosen_value, chosen_source, seen_values, resolved_by, note, resolved_at, "
            "status, closed_at FROM conflict_resolutions WHERE decision_id IS NULL ORDER BY id").fetchall():
        d = log.record(CONFLICT, "resolve", by=by, library=library, subject={"key": key, "field": field},
                       detail={"chosen_value": value, "chosen_source": chosen, "seen_values": list(seen)},
                       note=note, at=at, engine=engine)
        if status in ("reopened", "lapsed"):
            log.close({d.id: status}, closed or dt.datetime.now(dt.UTC), engine)
        db.run(conn, "replay.adopt", "UPDATE conflict_resolutions SET decision_id = ? WHERE id = ?", [d.id, rid])
        found += 1
    for oid, library, source, record_id, action, entity, by, at, note in conn.execute(
            "SELECT id, library, source, source_record_id, action, entity_key, decided_by, decided_at, note "
            "FROM identity_overrides WHERE decision_id IS NULL ORDER BY decided_at, id").fetchall():
        d = log.record(IDENTITY, action, by=by, library=library, source=source,
                       subject={"source_record_id": record_id, "entity_key": entity}, note=note, at=at, engine=engine)
        db.run(conn, "replay.adopt", "UPDATE identity_overrides SET decision_id = ? WHERE id = ?", [d.id, oid])
        found += 1
    return found

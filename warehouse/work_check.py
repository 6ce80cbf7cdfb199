"""Is the working database whole? Open it read-only, read every table, compare its decisions with the log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from sqlalchemy.engine import Engine

from hub.errors import HubError, WorkDatabaseBusy
from warehouse import db
from warehouse.work import WORK_DB

OK, MISSING, LOCKED, DAMAGED = "ok", "missing", "locked", "damaged"
BATCH_ROWS = 100_000  # rows read at a time: every block is read (and its checksum checked) without holding a table


@dataclass(frozen=True)
class WorkCheck:
    """What ``check_work`` found: the state, each table's rows, every problem, and the decisions' agreement."""

    path: Path
    state: str  # ok | missing | locked | damaged
    tables: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    decisions_logged: int = 0
    decisions_applied: int = 0
    decisions_pending: list[int] = field(default_factory=list)  # in the log, not (yet) in the working database
    decisions_unknown: list[int] = field(default_factory=list)  # in the working database, not in the log

    @property
    def ok(self) -> bool:
        return self.state == OK and not self.problems


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_work(warehouse_dir: Path, engine: Engine | None = None) -> WorkCheck:
    """Open the working database read-only, read every row of every table, and compare its decisions with the log."""
    path = warehouse_dir / WORK_DB
    if not path.exists():
        return WorkCheck(path, MISSING, problems=[f"there is no working database at {path}"])
    try:
        conn = db.connect(path, read_only=True)
    except WorkDatabaseBusy as exc:
        return WorkCheck(path, LOCKED, problems=[" ".join(str(exc).split())])
    except (HubError, duckdb.Error) as exc:
        return WorkCheck(path, DAMAGED, problems=[f"{path} cannot be opened: {_first_line(exc.__cause__ or exc)}"])
    tables: dict[str, int] = {}
    problems: list[str] = []
    try:
        for name in sorted(db.tables(conn, stored=True)):
            try:
                reader = conn.sql(f'SELECT * FROM "{name}"').to_arrow_reader(BATCH_ROWS)
                tables[name] = sum(batch.num_rows for batch in reader)
            except duckdb.Error as exc:
                problems.append(f"table {name} cannot be read: {_first_line(exc)}")
        check = _decisions(conn, engine)
    except (duckdb.Error, HubError) as exc:  # the decisions' query (warehouse.db) maps a damaged block to a hub error
        problems.append(f"{path} cannot be read: {_first_line(exc)}")
        check = {}
    finally:
        conn.close()
    state = DAMAGED if problems else OK
    problems += check.pop("problems", [])
    return WorkCheck(path, state, tables, problems, **check)


def _decisions(conn: duckdb.DuckDBPyConnection, engine: Engine | None) -> dict:
    from warehouse.decisions import all_decisions
    from warehouse.replay import applied_ids

    logged = {d.id for d in all_decisions(engine)}
    try:
        applied = applied_ids(conn)
    except duckdb.CatalogException:  # a working database no step has opened since the log was introduced
        applied = set()
    unknown = sorted(applied - logged)
    problems = [f"{len(unknown)} decision(s) in the working database are not in the metadata database's log "
                "(was the metadata database restored from an older backup?)"] if unknown else []
    return {"decisions_logged": len(logged), "decisions_applied": len(applied & logged),
            "decisions_pending": sorted(logged - applied), "decisions_unknown": unknown, "problems": problems}


def move_aside(warehouse_dir: Path, at: dt.datetime | None = None) -> Path | None:
    """Rename the working database (and its write-ahead log) out of the way, kept for inspection; None if absent."""
    path = warehouse_dir / WORK_DB
    if not path.exists():
        return None
    stamp = f"{(at or dt.datetime.now(dt.UTC)):%Y%m%dT%H%M%S}"
    target = path.with_name(f"{WORK_DB}.damaged-{stamp}")
    wal = path.with_name(WORK_DB + ".wal")
    if wal.exists():
        wal.rename(target.with_name(target.name + ".wal"))
    path.rename(target)
    return target

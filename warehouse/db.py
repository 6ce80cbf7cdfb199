"""The one way the warehouse talks to DuckDB: open a file, run a named step, list the tables, the tables declared.

::

    conn = connect(path, read_only=True)        # hub errors for a busy, damaged or full-disk file
    run(conn, "quarantine.entries", sql, params) # a failure names the step and the SQL's first line
    tables(conn)                                 # which tables exist (the one answer)
    declare("identity", [ddl, ...])             # a feature's tables, created by whoever opens read-write

The parameters never go into an error: they may hold ID numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from warehouse.faults import storage_fault

# Each feature's DDL, in the order declared (a feature's tables before the ALTERs of a later one).
_DECLARED: dict[str, list[str]] = {}


def declare(feature: str, ddl: Iterable[str]) -> None:
    """Register ``feature``'s tables; declaring a feature again replaces its DDL (a module reloaded)."""
    _DECLARED[feature] = list(ddl)


def declared() -> list[str]:
    """Every declared statement, feature by feature in the order declared."""
    return [ddl for statements in _DECLARED.values() for ddl in statements]


def features() -> list[str]:
    """The features that declared tables, in order."""
    return list(_DECLARED)


def first_line(sql: str) -> str:
    """The SQL's first non-empty line: enough to find the statement, never its parameters."""
    return next((line.strip() for line in sql.splitlines() if line.strip()), "")


def connect(path: Path | str, *, read_only: bool = False, config: dict[str, Any] | None = None,
            ) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file at ``path``; a busy, damaged or unwritable file raises the hub error for it."""
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config or {})
    except (duckdb.Error, OSError) as exc:
        fault = storage_fault(exc, str(path))
        if fault is None:
            raise
        raise fault from exc


def run(conn: duckdb.DuckDBPyConnection, step: str, sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """Execute ``sql`` as ``step``: a storage fault becomes its hub error, any other DuckDB error notes step and SQL."""
    try:
        return conn.execute(sql, params) if params is not None else conn.execute(sql)
    except (duckdb.Error, OSError) as exc:
        where = f"step {step}: {first_line(sql)}"
        fault = storage_fault(exc, where)
        if fault is not None and fault is not exc:
            raise fault from exc
        exc.add_note(where)  # a bug, not the disk: the original error, told where it happened
        raise


def tables(conn: duckdb.DuckDBPyConnection, *, stored: bool = False, database: str | None = None) -> set[str]:
    """The tables and views the connection sees, temporary ones too; ``stored``/``database``: a file's own tables."""
    if database is None and not stored:
        sql = "SELECT table_name FROM information_schema.tables"
        return {name for (name,) in run(conn, "db.tables", sql).fetchall()}
    where = "database_name = ?" if database else "database_name = current_database()"
    sql = f"SELECT table_name FROM duckdb_tables() WHERE {where} AND NOT temporary"
    return {name for (name,) in run(conn, "db.tables", sql, [database] if database else None).fetchall()}

"""The pipeline's working DuckDB file: staging, quarantine, quality records and golden tables. One writer at a time.

Its tables are declared by the features (``warehouse.tables``); this module only opens the file,
read-write for the pipeline and the stewards' decisions, read-only for the commands that only read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from warehouse import db
from warehouse.faults import storage_fault
from warehouse.replay import replay
from warehouse.tables import schema

WORK_DB = "work.duckdb"


@contextmanager
def open_work(warehouse_dir: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The working database; DuckDB's file lock keeps it to one writer process.

    Read-write creates the declared tables and replays the stewards' decisions. Read-only creates
    nothing: no file (a data dir without one reads as empty tables, in memory), no table, no replay.
    A file another process has open, a damaged file and a full disk raise hub errors
    (``hub.errors.StorageFault``) that say what to do, whether met on opening or by the step using the connection.
    """
    from hub.settings import get_settings

    path = warehouse_dir / WORK_DB
    # A memory limit keeps a 10-million-row reconcile within the machine: DuckDB spills beyond it.
    config = {"memory_limit": get_settings().warehouse_memory_limit}
    if read_only and not path.exists():
        conn = db.connect(":memory:", config=config)
    else:
        if not read_only:
            warehouse_dir.mkdir(parents=True, exist_ok=True)
        conn = db.connect(path, read_only=read_only, config=config)
    try:
        if not read_only or not path.exists():
            for ddl in schema():
                db.run(conn, "work.schema", ddl)
        if not read_only:
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

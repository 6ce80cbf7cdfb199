"""The pipeline's working DuckDB file: staging, quarantine and golden tables. One writer at a time."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

import duckdb

from schemas import LIBRARIES
from schemas.derive import duckdb_type

WORK_DB = "work.duckdb"


def _staging_ddl(name: str) -> str:
    lib = LIBRARIES[name]
    cols = ",\n".join(f'    "{f.name}" {duckdb_type(f.type)}' for f in lib.fields)
    return f'CREATE TABLE IF NOT EXISTS "staging_{lib.name}" (\n{cols},\n    "_source" VARCHAR NOT NULL\n);'


SCHEMA = [
    *(_staging_ddl(name) for name in LIBRARIES),
    """CREATE TABLE IF NOT EXISTS staged_landings (
        source VARCHAR, run_id VARCHAR, sha256 VARCHAR, rows BIGINT, quarantined BIGINT,
        staged_at TIMESTAMPTZ DEFAULT now(), PRIMARY KEY (source, run_id))""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        library VARCHAR, source VARCHAR, run_id VARCHAR, source_record_id VARCHAR, line BIGINT,
        reasons VARCHAR[], record JSON, status VARCHAR DEFAULT 'open',
        quarantined_at TIMESTAMPTZ DEFAULT now(), decided_by VARCHAR, decided_at TIMESTAMPTZ)""",
]


@contextmanager
def open_work(warehouse_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The working database, read-write; DuckDB's file lock keeps it to one writer process."""
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(warehouse_dir / WORK_DB))
    try:
        for ddl in SCHEMA:
            conn.execute(ddl)
        yield conn
    finally:
        conn.close()

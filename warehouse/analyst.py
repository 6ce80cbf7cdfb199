"""Analyst access: the current snapshot, read-only, through masked views derived from ``schemas/``.

ID numbers are reduced to region and birth year, names and addresses masked, non-shareable fields
left out. The raw tables need an explicit role with a stated reason; every query is logged.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from hub.db import Base
from hub.errors import AccessRefused
from hub.masking import ANALYST
from schemas import LIBRARIES
from schemas.catalogue import Field, Library, PersonalData, Sharing
from warehouse import db
from warehouse.published import DATABASE, current_name


class AnalystQuery(Base):
    """One analyst query: who, when, with which role and why, what ran, how many rows came back."""

    __tablename__ = "analyst_queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    analyst: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    snapshot: Mapped[str] = mapped_column(String(50))
    sql: Mapped[str] = mapped_column(Text)
    rows: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


def masked_expression(field: Field, column: str | None = None) -> str | None:
    """The masked SQL expression of ``field``'s values (held in ``column``, the field's own column by default).

    None when the field must not be shown at all. Which fields ``hub.masking.ANALYST`` masks, and how; also
    applied to values of the field held elsewhere (the entity keys of identity links).
    """
    column = column or f'"{field.name}"'
    if field.sharing is Sharing.NOT_SHAREABLE and not field.metadata:
        return None
    if field.personal is PersonalData.IDENTIFIER:
        return ANALYST.identifier_sql(column)
    if field.personal in (PersonalData.PERSONAL, PersonalData.SENSITIVE) and field.type == "string" \
            and field.code_table is None:
        return ANALYST.text_sql(column)
    return column


def _masked(field: Field) -> str | None:
    """The masked expression of one column, named as the column, or None when it must not be shown at all."""
    expr = masked_expression(field)
    column = f'"{field.name}"'
    return None if expr is None else column if expr == column else f"{expr} AS {column}"


def masked_view_sql(lib: Library, source: str) -> str:
    """``SELECT`` of the masked view of ``lib`` over ``source``."""
    columns = [expr for f in lib.fields if (expr := _masked(f)) is not None]
    return f"SELECT {', '.join(columns)} FROM {source}"


@dataclass
class AnalystSession:
    """A read-only DuckDB session over one snapshot, every query logged."""

    conn: duckdb.DuckDBPyConnection
    engine: Engine
    snapshot: str
    role: str
    reason: str | None
    analyst: str

    def query(self, sql: str) -> pa.Table | None:
        """Run ``sql`` once and return its result; the log entry is written whether it succeeds or not."""
        entry = AnalystQuery(at=dt.datetime.now(dt.UTC), analyst=self.analyst, role=self.role, reason=self.reason,
                             snapshot=self.snapshot, sql=sql)
        try:
            relation = self.conn.sql(sql)  # None for a statement without a result
            result = None if relation is None else relation.to_arrow_table()
            entry.rows = None if result is None else result.num_rows
            return result
        except duckdb.Error as exc:
            entry.error = str(exc).splitlines()[0][:500]
            raise
        finally:
            with Session(self.engine) as session, session.begin():
                session.add(entry)


def analyst_role(raw: bool, reason: str | None) -> str:
    """``raw`` or ``masked``; the raw role only with a stated reason (``AccessRefused`` otherwise)."""
    if raw and not (reason and reason.strip()):
        raise AccessRefused("the raw role needs a stated reason; it is recorded with every query")
    return "raw" if raw else "masked"


def open_analyst(snapshots_dir: Path, engine: Engine, *, raw: bool = False, reason: str | None = None,
                 analyst: str | None = None) -> AnalystSession:
    """The current snapshot for an analyst: masked views by default, raw tables only with a reason."""
    role = analyst_role(raw, reason)
    name = current_name(snapshots_dir)
    conn = duckdb.connect()
    conn.execute(f"ATTACH '{snapshots_dir / name / DATABASE}' AS snapshot (READ_ONLY)")
    tables = db.tables(conn, database="snapshot")
    for lib in LIBRARIES.values():
        if lib.table in tables:
            source = f'snapshot."{lib.table}"'
            if raw:
                conn.execute(f'CREATE VIEW "{lib.name}" AS SELECT * FROM {source}')
            else:
                # Materialised in memory, so the raw tables can be detached and never named.
                conn.execute(f'CREATE TABLE "{lib.name}" AS {masked_view_sql(lib, source)}')
    if not raw:
        conn.execute("DETACH snapshot")
        # No other file may be opened either (read_parquet, ATTACH), and the setting can't be undone.
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    return AnalystSession(conn, engine, name, role, reason, analyst or getpass.getuser())

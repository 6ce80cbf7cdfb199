"""Run records and source watermarks, in the operational metadata database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from hub.db import Base


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Watermark(Base):
    """How far each source has been landed; advanced only after a landing is complete."""

    __tablename__ = "source_watermarks"
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunRecord(Base):
    """One pipeline step's run: what it did and how it ended."""

    __tablename__ = "pipeline_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(200), index=True)
    step: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(100))  # source or library
    status: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


def get_watermark(engine: Engine, source: str) -> str | None:
    """The last landed watermark of ``source``, or None before its first run."""
    with Session(engine) as session:
        row = session.get(Watermark, source)
        return row.value if row else None


def set_watermark(engine: Engine, source: str, value: str | None, run_id: str) -> None:
    """Record that ``source`` is landed up to ``value`` by ``run_id``."""
    with Session(engine) as session, session.begin():
        row = session.get(Watermark, source)
        if row is None:
            session.add(Watermark(source=source, value=value, run_id=run_id, updated_at=utcnow()))
        else:
            row.value, row.run_id, row.updated_at = value, run_id, utcnow()


def record_run(engine: Engine, run_id: str, step: str, subject: str, status: str, rows: int = 0,
               detail: str | None = None, started_at: dt.datetime | None = None) -> None:
    """Append a run record."""
    with Session(engine) as session, session.begin():
        session.add(RunRecord(run_id=run_id, step=step, subject=subject, status=status, rows=rows, detail=detail,
                              started_at=started_at or utcnow(), finished_at=utcnow()))


def recent_runs(engine: Engine, limit: int = 20) -> list[RunRecord]:
    """The latest run records, newest first."""
    with Session(engine) as session:
        return list(session.scalars(select(RunRecord).order_by(RunRecord.id.desc()).limit(limit)))

"""The stewards' decision log, in the metadata database: what survives the loss of the working database.

Every human decision the pipeline honours is written here first, with who, when and why:

- ``quarantine``: a quarantined record released (with its corrections) or rejected;
- ``batch``: a batch held back by a whole-batch rule released or rejected;
- ``conflict``: a conflict between departments resolved (a value, or a department's value);
- ``identity``: a record merged into an entity, split from one, or declared no entity.

The working database's copy is derived from this log (``warehouse.replay``), so a rebuild from the
landings loses none of them. A decision names its subject by what a rebuild gives back (source, run,
record, file and line; library, key and field), never by an id of the working database.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from hub.db import Base
from hub.errors import PipelineError

QUARANTINE, BATCH, CONFLICT, IDENTITY = "quarantine", "batch", "conflict", "identity"
KINDS = (QUARANTINE, BATCH, CONFLICT, IDENTITY)


class DecisionLogError(PipelineError):
    """The metadata database could not record or give back the stewards' decisions."""


class StewardDecision(Base):
    """One steward's decision, as it was taken; ``outcome`` is what the pipeline later made of it (conflicts)."""

    __tablename__ = "steward_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    action: Mapped[str] = mapped_column(String(20))
    library: Mapped[str | None] = mapped_column(String(50))
    source: Mapped[str | None] = mapped_column(String(100))
    run_id: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)  # JSON: what the decision is about
    detail: Mapped[str] = mapped_column(Text)  # JSON: corrections, chosen value or department, values seen
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(20))  # a resolution reopened or lapsed by later data
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Decision:
    """A decision of the log, as the replay reads it."""

    id: int
    kind: str
    action: str
    library: str | None
    source: str | None
    run_id: str | None
    subject: dict[str, Any]
    detail: dict[str, Any]
    decided_by: str
    decided_at: dt.datetime
    note: str | None
    outcome: str | None = None
    closed_at: dt.datetime | None = None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite gives back naive datetimes: they were written in UTC.
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def _decision(row: StewardDecision) -> Decision:
    return Decision(row.id, row.kind, row.action, row.library, row.source, row.run_id, json.loads(row.subject),
                    json.loads(row.detail), row.decided_by, _utc(row.decided_at), row.note, row.outcome,
                    _utc(row.closed_at))


def _engine(engine: Engine | None) -> Engine:
    if engine is not None:
        return engine
    from hub.db import metadata_engine

    try:
        return metadata_engine()
    except SQLAlchemyError as exc:
        raise DecisionLogError(f"the metadata database cannot be opened, so stewards' decisions cannot be read "
                               f"or recorded: {str(exc).splitlines()[0]}") from exc


def record(kind: str, action: str, *, by: str, library: str | None = None, source: str | None = None,
           run_id: str | None = None, subject: dict[str, Any] | None = None, detail: dict[str, Any] | None = None,
           note: str | None = None, at: dt.datetime | None = None, engine: Engine | None = None) -> Decision:
    """Write one decision to the log (committed before anything else changes) and return it."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of decision {kind!r}")
    at = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    row = StewardDecision(kind=kind, action=action, library=library, source=source, run_id=run_id,
                          subject=json.dumps(subject or {}, ensure_ascii=False, sort_keys=True, default=str),
                          detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, default=str),
                          decided_by=by.strip(), decided_at=at, note=note)
    try:
        with Session(_engine(engine)) as session, session.begin():
            session.add(row)
            session.flush()
            return _decision(row)
    except SQLAlchemyError as exc:
        raise DecisionLogError(f"the decision could not be recorded in the metadata database, nothing was changed: "
                               f"{str(exc).splitlines()[0]}") from exc


def all_decisions(engine: Engine | None = None) -> list[Decision]:
    """Every decision of the log, in the order they were taken."""
    try:
        with Session(_engine(engine)) as session:
            return [_decision(r) for r in session.scalars(select(StewardDecision).order_by(StewardDecision.id))]
    except SQLAlchemyError as exc:
        raise DecisionLogError(f"the stewards' decisions could not be read from the metadata database: "
                               f"{str(exc).splitlines()[0]}") from exc


def close(outcomes: dict[int, str], at: dt.datetime, engine: Engine | None = None) -> None:
    """Record what later data made of decisions (a resolution reopened or lapsed), so a rebuild gives the same."""
    if not outcomes:
        return
    try:
        with Session(_engine(engine)) as session, session.begin():
            for decision_id, outcome in outcomes.items():
                session.execute(update(StewardDecision).where(StewardDecision.id == decision_id)
                                .values(outcome=outcome, closed_at=at.astimezone(dt.UTC)))
    except SQLAlchemyError as exc:
        raise DecisionLogError(f"the outcome of stewards' decisions could not be recorded: "
                               f"{str(exc).splitlines()[0]}") from exc

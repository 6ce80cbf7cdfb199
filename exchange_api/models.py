"""The exchange API's metadata tables: departments, their keys, grants, nonces and the audit log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from hub.db import Base, engine_for, session_factory
from hub.settings import Settings


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as naive UTC and read back aware, so comparisons behave the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Department(Base):
    """A department allowed to call the exchange API."""

    __tablename__ = "exchange_departments"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class DepartmentKey(Base):
    """One Ed25519 public key of a department; requests name it by ``kid`` in their signature."""

    __tablename__ = "exchange_department_keys"
    kid: Mapped[str] = mapped_column(String(128), primary_key=True)
    department: Mapped[str] = mapped_column(ForeignKey("exchange_departments.code"), index=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    not_after: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Grant(Base):
    """An approved conditional-sharing grant: these fields of this library, for this purpose, until expiry."""

    __tablename__ = "exchange_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    department: Mapped[str] = mapped_column(ForeignKey("exchange_departments.code"))
    library: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(Text)  # comma-separated catalogue field names
    purpose: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    approved_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_exchange_grants_lookup", "department", "library", "purpose"),)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.fields.split(",") if name)


class Nonce(Base):
    """A request nonce already used with a key; the unique constraint is the replay check across processes."""

    __tablename__ = "exchange_nonces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    keyid: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)

    __table_args__ = (UniqueConstraint("keyid", "nonce", name="uq_exchange_nonces_keyid_nonce"),)


class AuditEntry(Base):
    """One audited lookup, allowed or refused; rows are chained by hash and never updated.

    ``seq`` is assigned by the writer (not autoincremented) so that two writers racing for the
    same place in the chain collide on the primary key instead of forking the chain.
    """

    __tablename__ = "exchange_audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    department: Mapped[str | None] = mapped_column(String(64))
    operation: Mapped[str | None] = mapped_column(String(32))  # lookup, batch, verify_licence, ...; None on old rows
    kid: Mapped[str | None] = mapped_column(String(128))
    authenticated: Mapped[bool] = mapped_column(Boolean)
    library: Mapped[str | None] = mapped_column(String(64))
    key_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # finds a person's accesses again
    key_masked: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(64))
    case_number: Mapped[str | None] = mapped_column(String(128))
    fields_requested: Mapped[str | None] = mapped_column(Text)  # comma-separated; None = "all I may get"
    fields_released: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    snapshot_version: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    # Few indexes on purpose: each one is a random B-tree insert per row on the hot path. The chain is checked
    # by walking it in seq order; usage figures scan; a person's accesses are found by key_hash.
    row_hash: Mapped[str] = mapped_column(String(64))


class DepartmentLimits(Base):
    """A department's own rate limit and daily quota; absent or null columns take the ``HUB_API_*`` defaults."""

    __tablename__ = "exchange_department_limits"
    department: Mapped[str] = mapped_column(ForeignKey("exchange_departments.code"), primary_key=True)
    rate_per_second: Mapped[float | None] = mapped_column(Float)
    burst: Mapped[int | None] = mapped_column(Integer)
    daily_quota: Mapped[int | None] = mapped_column(Integer)


class QuotaUsage(Base):
    """Records released to a department on one UTC day, counted by the audit writer of every process."""

    __tablename__ = "exchange_quota_usage"
    department: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


def _add_missing_columns(engine: Engine) -> None:
    """Columns added after a table first shipped; ``create_all`` only creates missing tables."""
    columns = {c["name"] for c in inspect(engine).get_columns(AuditEntry.__tablename__)}
    if "operation" not in columns:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {AuditEntry.__tablename__} ADD COLUMN operation VARCHAR(32)")


_prepared: set[str] = set()


def exchange_engine(settings: Settings) -> Engine:
    """The metadata engine of ``settings``, with the tables created."""
    if settings.metadata_url is None:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    url = settings.metadata_database_url
    engine = engine_for(url)
    if url not in _prepared or not inspect(engine).has_table(AuditEntry.__tablename__):
        Base.metadata.create_all(engine)
        _add_missing_columns(engine)
        _prepared.add(url)
    return engine


def exchange_sessions(settings: Settings) -> sessionmaker:
    """A session factory on the metadata database of ``settings``."""
    return session_factory(exchange_engine(settings))

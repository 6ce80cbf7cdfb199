"""The audit writer's connection to its database: its engine (SQLite in WAL mode, write lock first; or PostgreSQL) and the statements per driver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, create_engine, event

from exchange_api.audit_chain import STORED_COLUMNS
from exchange_api.models import AuditEntry, Nonce, QuotaUsage

def sqlite_synchronous(synchronous: str) -> tuple[str, bool]:
    """The SQLite mode the writer's connection runs in, and whether the writer syncs the WAL itself after COMMIT.

    FULL (the default) means: durable before any answer leaves. SQLite's own FULL fsyncs the WAL inside
    COMMIT, with the write lock held, so every process waits for every other's fsync in turn. Instead the
    connection commits in NORMAL mode (same atomicity; no fsync) and the writer then fsyncs the WAL file
    itself, on another thread, before it releases the group's answers: the next group (of this process
    or another) is written meanwhile. A transaction whose WAL frames are on disk survives a power loss.
    """
    mode = synchronous.upper() if synchronous.upper() in {"OFF", "NORMAL", "FULL", "EXTRA"} else "FULL"
    return ("NORMAL", True) if mode in ("FULL", "EXTRA") else (mode, False)


def writer_engine(url: str, synchronous: str = "FULL") -> Engine:
    """A dedicated engine for chain appends: SQLite transactions begin IMMEDIATE (write lock first), WAL mode."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    mode, _ = sqlite_synchronous(synchronous)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={mode}")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes' hot pages stay in memory
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:  # pragma: no cover - trivial
        # Take the write lock before reading the tip: the read and the append are one atomic step.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_AUDIT, _NONCES, _QUOTA = AuditEntry.__tablename__, Nonce.__tablename__, QuotaUsage.__tablename__
_COLUMNS = (*STORED_COLUMNS, "row_hash")


class AuditSql:
    """The writer's statements and value encodings for one DB-API driver (sqlite3 or psycopg)."""

    def __init__(self, sqlite: bool):
        p = "?" if sqlite else "%s"
        self.sqlite = sqlite
        self.begin = "BEGIN IMMEDIATE" if sqlite else f"LOCK TABLE {_AUDIT} IN SHARE ROW EXCLUSIVE MODE"
        ignore = ("INSERT OR IGNORE INTO", "") if sqlite else ("INSERT INTO", " ON CONFLICT DO NOTHING")
        self.insert_nonce = f"{ignore[0]} {_NONCES} (keyid, nonce, expires_at) VALUES ({p}, {p}, {p}){ignore[1]}"
        self.purge_nonces = f"DELETE FROM {_NONCES} WHERE expires_at < {p}"
        self.select_quota = f"SELECT used FROM {_QUOTA} WHERE department = {p} AND day = {p}"
        self.insert_quota = f"INSERT INTO {_QUOTA} (department, day, used) VALUES ({p}, {p}, {p})"
        self.update_quota = f"UPDATE {_QUOTA} SET used = {p} WHERE department = {p} AND day = {p}"
        self.tip = f"SELECT seq, row_hash FROM {_AUDIT} ORDER BY seq DESC LIMIT 1"
        self.insert_audit = (f"INSERT INTO {_AUDIT} ({', '.join(_COLUMNS)}) "
                             f"VALUES ({', '.join([p] * len(_COLUMNS))})")

    _cache: dict[bool, AuditSql] = {}

    @classmethod
    def of(cls, dbapi_connection: Any) -> AuditSql:
        sqlite = type(dbapi_connection).__module__.startswith("sqlite3")
        if sqlite not in cls._cache:
            cls._cache[sqlite] = cls(sqlite)
        return cls._cache[sqlite]

    def time(self, value: dt.datetime) -> Any:
        """As models.UtcDateTime stores it: naive UTC (SQLAlchemy's SQLite text format on SQLite)."""
        naive = value.astimezone(dt.UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else naive

    def day(self, value: dt.date) -> Any:
        return value.isoformat() if self.sqlite else value

    def audit_params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        values = []
        for column in _COLUMNS:
            value = row[column]
            if column == "at":
                value = self.time(value)
            elif column == "authenticated" and self.sqlite:
                value = int(bool(value))
            values.append(value)
        return tuple(values)

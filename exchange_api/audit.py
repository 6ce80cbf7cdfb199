"""The audit log: append-only, hash-chained rows, one per looked-up key; identifiers stored hashed and masked, never raw.

Rows are appended in groups (see :mod:`exchange_api.writer`): one transaction takes the chain lock,
records the group's request nonces (a nonce already seen turns its request into a ``replayed_nonce``
refusal), charges daily quotas, chains the rows after the current tip and commits. Only then are the
group's answers released, so no answer ever leaves without its durable audit row.

The chain has anchors outside the database: each ticket learns the head (sequence number and hash) just
after its own rows, which its signed answer carries, and the durable heads are handed to
:mod:`exchange_api.audit_checkpoints`, which signs one now and then into files of its own. ``verify``
checks the rows against their hashes and against any such anchors, so cutting or rewriting the table
shows. What a row's hash covers lives in :mod:`exchange_api.audit_chain`; the writer's engine and its
statements per driver in :mod:`exchange_api.audit_sql`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import sessionmaker

from exchange_api.audit_chain import GENESIS, STORED_COLUMNS, Anchor, ChainProblem, ChainReport, row_hash
from exchange_api.audit_sql import AuditSql, sqlite_synchronous, writer_engine
from exchange_api.models import AuditEntry
from hub.masking import hash_id, mask_id

if TYPE_CHECKING:
    from exchange_api.audit_checkpoints import Checkpoints

SALT_FILE = "audit-salt"
COMMIT_ATTEMPTS = 5
NONCE_PURGE_SECONDS = 60.0
MAX_PROBLEMS = 100  # a verification lists at most this many problems: the first one is what matters

# Outcomes: what happened, independent of what the department was told (not_allowed and not_found look alike to it).
ANSWERED, NOT_FOUND, NOT_ALLOWED, REFUSED, ERROR = "answered", "not_found", "not_allowed", "refused", "error"
VERIFIED = "verified"  # a yes/no verification was answered (whichever the answer)
OUTCOMES_SEEN_BY_CITIZENS = (ANSWERED, VERIFIED)

# Verdicts of the group commit on a request that was otherwise fine.
ACCEPTED, REPLAYED, OVER_QUOTA = "accepted", "replayed", "over_quota"



def audit_salt(keys_dir: Path) -> str:
    """The secret salt of key hashes, created on first use; without it a hash of an ID number could be brute-forced."""
    path = Path(keys_dir) / SALT_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()  # another process won the race
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_text().strip()


@dataclass
class AuditItem:
    """One looked-up key of a request and what became of it (a batch has one per key)."""

    key: str | None
    outcome: str
    fields_released: tuple[str, ...] = ()


@dataclass
class AuditDraft:
    """What is known about a request so far; filled in as it passes each check, written once at the end."""

    request_id: str
    at: dt.datetime
    operation: str | None = None
    department: str | None = None
    kid: str | None = None
    authenticated: bool = False
    library: str | None = None
    key: str | None = None  # raw, in memory only: hashed and masked when written
    purpose: str | None = None
    case_number: str | None = None
    fields_requested: tuple[str, ...] | None = None
    fields_released: tuple[str, ...] = ()
    outcome: str | None = None
    reason: str | None = None
    snapshot_version: str | None = None
    items: list[AuditItem] | None = None  # set by batch lookups: one row each

    @property
    def attributable(self) -> bool:
        """Only requests traceable to a department are audited; anonymous noise is not."""
        return self.department is not None


@dataclass
class Ticket:
    """A request's audit draft waiting for its group commit, with what the commit must decide for it."""

    draft: AuditDraft
    status: int
    code: str | None = None
    nonce: tuple[str, str, dt.datetime] | None = None  # (kid, nonce, remember until): set once the signature is proven
    units: int = 0  # records charged to the department's daily quota if the request is accepted
    daily_quota: int | None = None
    verdict: str = ACCEPTED
    extra: dict[str, Any] = field(default_factory=dict)
    head: tuple[int, str] | None = None  # (seq, row_hash) of the chain just after this ticket's rows, once written


def _joined(names: Sequence[str] | None) -> str | None:
    return None if names is None else ",".join(names)


def _utc_day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.UTC).date()


class GroupCommit:
    """A group written but not yet committed; ``finish()`` commits it, releases the chain lock and makes it durable."""

    def __init__(self, log: AuditLog, used: dict[tuple[str, dt.date], int], span: tuple[int, int, str] | None = None):
        self.log, self.used = log, used
        self.span = span  # (seq before the group, seq and hash of its last row); None if it wrote no row

    def finish(self, *, sync: bool = True) -> None:
        """COMMIT and release the chain lock; then, unless ``sync`` is off (the caller will call ``log.sync()``
        before it lets any answer of the group go), wait until the group is on disk."""
        log = self.log
        try:
            log._raw.commit()  # noqa: SLF001
        except BaseException:
            log._abandon()  # noqa: SLF001
            raise
        log._unlock()  # noqa: SLF001
        log.quota_used.update(self.used)
        log._committed(self.span)  # noqa: SLF001
        if sync:
            log.sync()


class AuditLog:
    """Appends groups of rows to the chain, charging nonces and quotas in the same transaction; verifies the chain."""

    def __init__(self, sessions: sessionmaker, salt: str, *, engine: Engine | None = None, synchronous: str = "FULL",
                 checkpoints: Checkpoints | None = None):
        self.sessions = sessions
        self.salt = salt
        self.checkpoints = checkpoints
        self._head_lock = threading.Lock()
        self._undurable: tuple[int, int, str] | None = None  # rows committed since the last sync began
        bind = sessions.kw["bind"]
        self.engine = engine or writer_engine(str(bind.url.render_as_string(hide_password=False)), synchronous)
        database = self.engine.url.database if self.engine.url.get_backend_name() == "sqlite" else None
        file_db = bool(database) and database != ":memory:"
        # The WAL file this writer fsyncs after each COMMIT (None: COMMIT itself is durable, or nothing is asked).
        self.wal_path = database + "-wal" if file_db and sqlite_synchronous(synchronous)[1] else None  # type: ignore[operator]

        self._lock = threading.Lock()
        self._raw: Any = None
        self._purged_at = 0.0
        lock_path = self._lock_file(bind)
        self._file_lock = open(lock_path, "a+") if lock_path else None  # noqa: SIM115 - held for the process
        self.quota_used: dict[tuple[str, dt.date], int] = {}  # what the last commits saw, all processes included

    @staticmethod
    def _lock_file(bind: Engine) -> Path | None:
        # SQLite's busy handler sleeps 1, 2, 5, 10, 15 ms ... between tries; processes sharing one file
        # instead queue on an flock, which wakes the next writer the moment the previous one commits.
        database = bind.url.database if bind.url.get_backend_name() == "sqlite" else None
        return Path(database + ".audit-lock") if database and database != ":memory:" else None

    # ----- rows -----------------------------------------------------------------------------------------

    def contents(self, ticket: Ticket) -> list[dict[str, Any]]:
        """The stored columns of a ticket's rows, minus chain position; identifiers only hashed and masked."""
        draft, status, code = ticket.draft, ticket.status, ticket.code
        reason = draft.reason
        if ticket.verdict == REPLAYED:
            status, code, reason = 401, "replayed_nonce", "this nonce has already been used"
        elif ticket.verdict == OVER_QUOTA:
            status, code, reason = 429, "quota_exceeded", "the department's daily quota is used up"
        accepted = ticket.verdict == ACCEPTED
        items = draft.items if draft.items else [AuditItem(draft.key, draft.outcome or "", draft.fields_released)]
        rows = []
        for item in items:
            outcome = (ERROR if status >= 500 else REFUSED) if status >= 400 else (item.outcome or ANSWERED)
            rows.append({
                "request_id": draft.request_id,
                "at": draft.at.astimezone(dt.UTC),
                "operation": draft.operation,
                "department": draft.department,
                "kid": draft.kid,
                "authenticated": draft.authenticated,
                "library": draft.library,
                "key_hash": hash_id(item.key, self.salt) if item.key else None,
                "key_masked": mask_id(item.key) if item.key else None,
                "purpose": draft.purpose,
                "case_number": draft.case_number,
                "fields_requested": _joined(draft.fields_requested),
                "fields_released": ",".join(item.fields_released) if accepted and status < 400 else "",
                "outcome": outcome,
                "status": status,
                "code": code,
                "reason": reason,
                "snapshot_version": draft.snapshot_version,
            })
        return rows

    def append(self, draft: AuditDraft, status: int, code: str | None = None) -> None:
        """Append one request's rows now, in the caller's thread; raises if they cannot be written."""
        self.commit([Ticket(draft, status, code)])

    # ----- the group commit -----------------------------------------------------------------------------

    def commit(self, tickets: Sequence[Ticket]) -> None:
        """Decide each ticket's verdict (nonce, quota) and append all their rows in one transaction; raises on failure."""
        last: Exception | None = None
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                self.begin_group(tickets).finish(sync=False)
            except Exception as exc:  # noqa: BLE001 - DB-API errors of either driver; retried, then raised
                # A writer that does not take the chain lock took our place, or the database was locked too long.
                last = exc
                time.sleep(0.005 * (attempt + 1))
                continue
            self.sync()  # committed: not retried (that would append the rows twice); an fsync error is raised
            return
        raise RuntimeError("could not append to the audit log") from last

    def sync(self) -> None:
        """Make every commit so far durable: fsync the WAL (a no-op when the database syncs its own commits)."""
        if self.wal_path is None:
            return
        span = self._take_undurable()
        try:
            self._fsync_wal()
        except BaseException:
            self._note_undurable(span)  # the next sync covers these rows again
            raise
        self._anchor(span)

    def _fsync_wal(self) -> None:
        try:
            # Opened each time (a few µs beside the fsync): always the current WAL file, and no descriptor shared
            # between the threads that may sync at once.
            fd = os.open(self.wal_path, os.O_RDONLY)  # type: ignore[arg-type]
        except FileNotFoundError:
            return  # no WAL: the last connection checkpointed it into the database file, which SQLite synced
        try:
            os.fdatasync(fd)  # the GIL is released meanwhile
        finally:
            os.close(fd)

    # ----- anchors ------------------------------------------------------------------------------------------

    def _committed(self, span: tuple[int, int, str] | None) -> None:
        """A group is committed: anchor its head now if COMMIT is durable by itself, else after the next sync."""
        if span is None or self.checkpoints is None:
            return
        if self.wal_path is None:
            self._anchor(span)
        else:
            self._note_undurable(span)

    def _note_undurable(self, span: tuple[int, int, str] | None) -> None:
        if span is None:
            return
        with self._head_lock:
            pending = self._undurable
            if pending is None:
                self._undurable = span
            else:
                high = span[1:] if span[1] > pending[1] else pending[1:]
                self._undurable = (min(pending[0], span[0]), *high)

    def _take_undurable(self) -> tuple[int, int, str] | None:
        with self._head_lock:
            span, self._undurable = self._undurable, None
        return span

    def _anchor(self, span: tuple[int, int, str] | None) -> None:
        if span is not None and self.checkpoints is not None:
            try:
                self.checkpoints.durable(*span)
            except Exception:  # noqa: BLE001 - the rows are committed: a late anchor must not withhold answers
                logging.getLogger(__name__).exception("audit checkpoint failed")

    def close(self) -> None:
        """Checkpoint the last head this process committed (the API is stopping)."""
        if self.checkpoints is not None:
            self._anchor(self._take_undurable())  # the writer has stopped: what it committed was synced
            self.checkpoints.close()

    def lock(self, *, wait: bool = True) -> bool:
        """Take the chain lock of this process and, on SQLite, of every process; False if ``wait`` is off and it is held."""
        if not self._lock.acquire(blocking=wait):
            return False
        if self._file_lock is not None:
            try:
                fcntl.flock(self._file_lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                self._lock.release()
                return False
        return True

    def begin_group(self, tickets: Sequence[Ticket], *, locked: bool = False) -> GroupCommit:
        """Take the chain lock (unless ``locked``) and write the group's nonces, quota counts and chained rows.

        Nothing is committed yet: the caller must call ``finish()`` on the result (from any thread), which
        commits and releases the lock. If writing fails, the lock is released and the error raised.
        """
        if not locked:
            self.lock()
        for ticket in tickets:
            ticket.verdict = ACCEPTED
        try:
            raw = self._connection()
            cur = raw.cursor()
            try:
                used, span = self._write_group(raw, cur, tickets)
            finally:
                cur.close()
        except BaseException:
            self._abandon()
            raise
        return GroupCommit(self, used, span)

    def _abandon(self) -> None:
        raw = self._raw
        try:
            if raw is not None:
                raw.rollback()
        except Exception:  # noqa: BLE001 - the connection is dropped below anyway
            pass
        finally:
            self._drop_connection()  # a broken connection is not reused
            self._unlock()

    def unlock(self) -> None:
        """Release the chain lock taken with ``lock()`` without writing anything."""
        self._unlock()

    def _unlock(self) -> None:
        if self._file_lock is not None:
            fcntl.flock(self._file_lock, fcntl.LOCK_UN)
        self._lock.release()

    def _write_group(self, raw: Any, cur: Any,
                     tickets: Sequence[Ticket]) -> tuple[dict[tuple[str, dt.date], int], tuple[int, int, str] | None]:
        # Plain DB-API on one dedicated connection: building SQLAlchemy statements would cost more than the commit.
        sql = AuditSql.of(raw.dbapi_connection)
        cur.execute(sql.begin)  # SQLite: BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE (self-conflicting)
        self._record_nonces(cur, sql, tickets)
        used = self._charge_quotas(cur, sql, tickets)
        cur.execute(sql.tip)
        tip = cur.fetchone()
        seq, prev = (tip[0], tip[1]) if tip else (0, GENESIS)
        low = seq
        rows = []
        for ticket in tickets:
            for content in self.contents(ticket):
                seq += 1
                row = {**content, "seq": seq, "prev_hash": prev}
                prev = row["row_hash"] = row_hash(row)
                rows.append(sql.audit_params(row))
            ticket.head = (seq, prev)  # what its signed answer carries: the chain just after its own rows
        if rows:
            cur.executemany(sql.insert_audit, rows)
        if time.monotonic() - self._purged_at > NONCE_PURGE_SECONDS:
            self._purged_at = time.monotonic()
            cur.execute(sql.purge_nonces, (sql.time(dt.datetime.now(dt.UTC)),))
        return used, ((low, seq, prev) if rows else None)

    def _connection(self) -> Any:
        # One connection held by the appender (commits are serialised by self._lock): no pool round trip each time.
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        return self._raw

    def _drop_connection(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.invalidate()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    def _record_nonces(self, cur: Any, sql: AuditSql, tickets: Sequence[Ticket]) -> None:
        seen: set[tuple[str, str]] = set()
        for ticket in tickets:
            if ticket.nonce is None:
                continue
            kid, nonce, expires = ticket.nonce
            if (kid, nonce) in seen:
                ticket.verdict = REPLAYED  # the same nonce twice in one group: the first one wins
                continue
            seen.add((kid, nonce))
            # The unique (keyid, nonce) constraint decides: a row not inserted is a nonce already used.
            cur.execute(sql.insert_nonce, (kid, nonce, sql.time(expires)))
            if cur.rowcount != 1:
                ticket.verdict = REPLAYED

    def _charge_quotas(self, cur: Any, sql: AuditSql, tickets: Sequence[Ticket]) -> dict[tuple[str, dt.date], int]:
        charged: dict[tuple[str, dt.date], list[Ticket]] = {}
        for ticket in tickets:
            if ticket.units > 0 and ticket.verdict == ACCEPTED and ticket.draft.department:
                charged.setdefault((ticket.draft.department, _utc_day(ticket.draft.at)), []).append(ticket)
        used_now: dict[tuple[str, dt.date], int] = {}
        for (department, day), group in charged.items():
            cur.execute(sql.select_quota, (department, sql.day(day)))
            found = cur.fetchone()
            used = current = found[0] if found else 0
            for ticket in group:
                quota = ticket.daily_quota
                if quota is not None and used + ticket.units > quota:
                    ticket.verdict = OVER_QUOTA
                else:
                    used += ticket.units
            if found is None:
                cur.execute(sql.insert_quota, (department, sql.day(day), used))
            elif used != current:
                cur.execute(sql.update_quota, (used, department, sql.day(day)))
            used_now[(department, day)] = used
        return used_now

    # ----- reading ------------------------------------------------------------------------------------------

    def verify(self, anchors: Sequence[Anchor] = (), problems: Sequence[ChainProblem] = ()) -> ChainReport:
        """Walk the chain from the start against its hashes and ``anchors``; every problem found, first bad row first.

        Read the anchors before calling: a checkpoint or answer made after the walk began may name rows it
        has not seen. ``problems`` (of the files the anchors came from) are reported with the chain's own.
        """
        by_seq: dict[int, list[Anchor]] = {}
        for anchor in anchors:
            by_seq.setdefault(anchor.seq, []).append(anchor)
        found: list[ChainProblem] = []
        disagreeing: list[tuple[Anchor, str, int]] = []  # (anchor, the database's hash, highest row vouched before it)
        prev, expected, rows, last_seq, vouched = GENESIS, 1, 0, 0, 0
        with self.sessions() as session:
            for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).yield_per(1000):
                seq = entry.seq
                content = {c: getattr(entry, c) for c in STORED_COLUMNS}
                if seq != expected:
                    gap = (f"row {expected} is missing" if seq == expected + 1
                           else f"rows {expected} to {seq - 1} are missing")
                    found.append(ChainProblem(expected, "missing", gap))
                elif entry.prev_hash != prev:
                    found.append(ChainProblem(seq, "unlinked", f"row {seq} does not link to the previous row"))
                if row_hash(content) != entry.row_hash:
                    found.append(ChainProblem(seq, "edited", f"row {seq}'s content does not match its hash"))
                before = vouched
                for anchor in by_seq.pop(seq, ()):
                    if anchor.hash == entry.row_hash:
                        vouched = seq
                    else:
                        disagreeing.append((anchor, entry.row_hash, before))
                # Go on from this row whatever it was: each later problem is then one of its own.
                prev, expected, rows, last_seq = entry.row_hash, seq + 1, rows + 1, seq
        if disagreeing:
            found.append(_rewritten(disagreeing))
        beyond = [a for group in by_seq.values() for a in group if a.seq > last_seq]  # rows in a gap are reported above
        if beyond:
            found.append(_truncated(beyond, last_seq))
        ordered = sorted([*found, *problems], key=lambda p: (p.seq is None, p.seq or 0))
        if len(ordered) > MAX_PROBLEMS:
            rest = len(ordered) - MAX_PROBLEMS + 1
            ordered = [*ordered[:MAX_PROBLEMS - 1], ChainProblem(None, "more", f"and {rest} more problems")]
        return ChainReport(rows, last_seq, len(anchors), tuple(ordered))

    def access_log(self, key: str, *, since: dt.datetime | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Who was given something about the person or entity ``key`` (normalised), newest first."""
        query = (select(AuditEntry)
                 .where(AuditEntry.key_hash == hash_id(key, self.salt), AuditEntry.authenticated.is_(True),
                        AuditEntry.outcome.in_(OUTCOMES_SEEN_BY_CITIZENS))
                 .order_by(AuditEntry.seq.desc()).limit(limit))
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        with self.sessions() as session:
            return list(session.scalars(query))

    def usage(self, *, department: str | None = None, since: dt.datetime | None = None,
              until: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Requests per department and purpose: records released (paper proofs replaced), verifications, refusals."""
        e = AuditEntry
        counted = lambda outcome: func.sum(func.cast(e.outcome == outcome, e.status.type))  # noqa: E731
        query = (select(e.department, e.purpose, func.count(func.distinct(e.request_id)).label("requests"),
                        counted(ANSWERED).label("records_released"), counted(VERIFIED).label("verifications"),
                        counted(NOT_FOUND).label("not_found"), counted(NOT_ALLOWED).label("nothing_releasable"),
                        counted(REFUSED).label("refused"))
                 .where(e.department.is_not(None))
                 .group_by(e.department, e.purpose).order_by(e.department, e.purpose))
        if department is not None:
            query = query.where(e.department == department)
        if since is not None:
            query = query.where(e.at >= since)
        if until is not None:
            query = query.where(e.at < until)
        with self.sessions() as session:
            return [dict(row._mapping) | {k: int(row._mapping[k] or 0) for k in (
                "records_released", "verifications", "not_found", "nothing_releasable", "refused")}
                    for row in session.execute(query)]



def _rewritten(disagreeing: list[tuple[Anchor, str, int]]) -> ChainProblem:
    """Rows rewritten with their hashes recomputed: somewhere after the last row an anchor vouches for."""
    anchor, stored, vouched = disagreeing[0]
    where = f"row {anchor.seq} was" if vouched + 1 == anchor.seq else f"a row from {vouched + 1} to {anchor.seq} was"
    more = f"; {len(disagreeing) - 1} later anchor(s) disagree too" if len(disagreeing) > 1 else ""
    return ChainProblem(vouched + 1, "rewritten",
                        f"{where} rewritten and the hashes after it recomputed: {anchor.source} holds row {anchor.seq} "
                        f"as {anchor.hash[:16]}…, the database as {stored[:16]}…{more}")


def _truncated(beyond: list[Anchor], last_seq: int) -> ChainProblem:
    """Rows cut off the end: an anchor saw the chain longer than the database holds it."""
    furthest = max(beyond, key=lambda a: a.seq)
    ends = "every row was deleted" if last_seq == 0 else f"the database ends at row {last_seq}"
    span = f"row {furthest.seq} is" if furthest.seq == last_seq + 1 else f"rows {last_seq + 1} to {furthest.seq} are"
    return ChainProblem(last_seq + 1, "truncated", f"{span} missing: {furthest.source} saw the chain at row "
                                                   f"{furthest.seq}, {ends}")

"""The audit log: one append-only, hash-chained row per lookup; identifiers stored hashed and masked, never raw."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from exchange_api.models import AuditEntry
from hub.masking import hash_id, mask_id

GENESIS = "0" * 64
SALT_FILE = "audit-salt"
APPEND_ATTEMPTS = 8

# Outcomes: what happened, independent of what the department was told (not_allowed and not_found look alike to it).
ANSWERED, NOT_FOUND, NOT_ALLOWED, REFUSED, ERROR = "answered", "not_found", "not_allowed", "refused", "error"

# The columns covered by each row's hash, in a fixed order; adding a column means adding it here.
HASHED_COLUMNS = (
    "seq", "request_id", "at", "department", "kid", "authenticated", "library", "key_hash", "key_masked",
    "purpose", "case_number", "fields_requested", "fields_released", "outcome", "status", "code", "reason",
    "snapshot_version", "prev_hash",
)


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
class AuditDraft:
    """What is known about a lookup so far; filled in as the request passes each check, written once at the end."""

    request_id: str
    at: dt.datetime
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

    @property
    def attributable(self) -> bool:
        """Only lookups traceable to a department are audited; anonymous noise is not."""
        return self.department is not None


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the chain: how many rows were good, and the first broken one."""

    rows: int
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def row_hash(content: dict[str, Any]) -> str:
    """The hash of a row's content (which includes the previous row's hash)."""
    canonical = json.dumps({c: _value(content[c]) for c in HASHED_COLUMNS}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _joined(names: tuple[str, ...] | None) -> str | None:
    return None if names is None else ",".join(names)


class AuditLog:
    """Appends rows to the chain and verifies it."""

    def __init__(self, sessions: sessionmaker, salt: str):
        self.sessions = sessions
        self.salt = salt
        self._lock = threading.Lock()

    def content(self, draft: AuditDraft, status: int, code: str | None) -> dict[str, Any]:
        """The stored columns of a draft, minus chain position; identifiers only hashed and masked."""
        outcome = draft.outcome or (ERROR if status >= 500 else REFUSED)
        return {
            "request_id": draft.request_id,
            "at": draft.at.astimezone(dt.UTC),
            "department": draft.department,
            "kid": draft.kid,
            "authenticated": draft.authenticated,
            "library": draft.library,
            "key_hash": hash_id(draft.key, self.salt) if draft.key else None,
            "key_masked": mask_id(draft.key) if draft.key else None,
            "purpose": draft.purpose,
            "case_number": draft.case_number,
            "fields_requested": _joined(draft.fields_requested),
            "fields_released": ",".join(draft.fields_released),
            "outcome": outcome,
            "status": status,
            "code": code,
            "reason": draft.reason,
            "snapshot_version": draft.snapshot_version,
        }

    def append(self, draft: AuditDraft, status: int, code: str | None = None) -> AuditEntry:
        """Append one row at the end of the chain; raises if it cannot be written (the lookup must then fail)."""
        content = self.content(draft, status, code)
        last_error: Exception | None = None
        with self._lock:
            for attempt in range(APPEND_ATTEMPTS):
                try:
                    return self._append_once(content)
                except (IntegrityError, OperationalError) as exc:
                    # Another process took this place in the chain (or held the write lock): re-read the tip.
                    last_error = exc
                    time.sleep(0.01 * (attempt + 1))
        raise RuntimeError("could not append to the audit log") from last_error

    def _append_once(self, content: dict[str, Any]) -> AuditEntry:
        with self.sessions.begin() as session:
            tip = session.execute(
                select(AuditEntry.seq, AuditEntry.row_hash).order_by(AuditEntry.seq.desc()).limit(1)
            ).first()
            seq, prev = (tip.seq + 1, tip.row_hash) if tip else (1, GENESIS)
            row = {**content, "seq": seq, "prev_hash": prev}
            entry = AuditEntry(**row, row_hash=row_hash(row))
            session.add(entry)
        return entry

    def verify(self) -> ChainReport:
        """Walk the chain from the start; the first row whose link or content does not check out is reported."""
        prev, expected_seq, rows = GENESIS, 1, 0
        with self.sessions() as session:
            for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).yield_per(500):
                content = {c: getattr(entry, c) for c in HASHED_COLUMNS}
                if entry.seq != expected_seq:
                    return ChainReport(rows, entry.seq, f"row {expected_seq} is missing")
                if entry.prev_hash != prev:
                    return ChainReport(rows, entry.seq, "does not link to the previous row")
                if row_hash(content) != entry.row_hash:
                    return ChainReport(rows, entry.seq, "content does not match its hash")
                prev, expected_seq, rows = entry.row_hash, expected_seq + 1, rows + 1
        return ChainReport(rows)

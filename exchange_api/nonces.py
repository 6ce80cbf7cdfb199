"""The nonce store: each (key id, nonce) is accepted once, across every API process sharing the metadata database."""

from __future__ import annotations

import datetime as dt
import threading
import time

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from exchange_api.models import Nonce

# Purging costs a DELETE; once a minute per process keeps the table small without taxing every request.
PURGE_INTERVAL_SECONDS = 60.0


class NonceStore:
    """Remembers nonces until they expire; the database's unique constraint is the arbiter, not this process."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions
        self._purged_at = 0.0
        self._lock = threading.Lock()

    def remember(self, keyid: str, nonce: str, expires_at: dt.datetime) -> bool:
        """Record the nonce; False if it was already used with this key."""
        self._maybe_purge()
        try:
            with self.sessions.begin() as session:
                session.add(Nonce(keyid=keyid, nonce=nonce, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def purge(self, now: dt.datetime | None = None) -> int:
        """Delete expired nonces; returns how many."""
        with self.sessions.begin() as session:
            result = session.execute(delete(Nonce).where(Nonce.expires_at < (now or dt.datetime.now(dt.UTC))))
            return result.rowcount or 0  # type: ignore[attr-defined]

    def _maybe_purge(self) -> None:
        with self._lock:
            if time.monotonic() - self._purged_at < PURGE_INTERVAL_SECONDS:
                return
            self._purged_at = time.monotonic()
        self.purge()

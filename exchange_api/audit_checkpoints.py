"""Signed checkpoints of the audit chain's head, kept apart from the database in append-only JSON-lines files.

Layout::

    <data_dir>/audit-checkpoints/
        YYYY-MM-DD.jsonl   one line per checkpoint, by the UTC day it was written; appended, never rewritten:
                           {"at": "<RFC 3339>", "hash": "<row_hash of row seq>", "jws": "<header>..<signature>", "seq": 3000}

``jws`` is a detached compact JWS (RFC 7515 appendix F; ``alg`` EdDSA, the hub key's ``kid``, ``typ``
``hub-audit-checkpoint+jws``) over the canonical JSON (sorted keys, compact, UTF-8) of the line's ``at``,
``hash`` and ``seq``: put that payload back between the dots and any JOSE library verifies it against the JWKS.

A process checkpoints only heads it committed itself and saw made durable, never what it reads back from
the database, so rewriting the database cannot rewrite them. One is written when a committed group passes a
multiple of ``every_rows`` (whichever process commits that group), at most ``every_seconds`` after rows no
checkpoint of this process covers yet, and when the API stops: never on every request.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path

from exchange_api.answers import SignatureRefused, sign_detached, verify_jws
from exchange_api.audit_chain import Anchor, ChainProblem, is_row_hash
from exchange_api.hub_keys import HubKeyring

log = logging.getLogger(__name__)

FOLDER = "audit-checkpoints"
CHECKPOINT_TYP = "hub-audit-checkpoint+jws"


def checkpoint_dir(data_dir: Path) -> Path:
    """Where the checkpoints of the hub with this data directory are kept."""
    return Path(data_dir) / FOLDER


class Checkpoints:
    """Writes a signed checkpoint of the chain head every ``every_rows`` rows or ``every_seconds``, off the answer path."""

    def __init__(self, folder: Path, keyring: HubKeyring, *, every_rows: int = 1000, every_seconds: float = 60.0):
        self.folder, self.keyring = Path(folder), keyring
        self.every_rows, self.every_seconds = every_rows, every_seconds
        self.written = 0  # checkpoints this process wrote: for the metrics
        self._lock = threading.Lock()
        self._latest: tuple[int, str] | None = None  # the newest durable head this process committed
        self._covered: tuple[int, str] | None = None  # the newest it checkpointed
        self._last_write = time.monotonic()
        self._timer: threading.Timer | None = None
        self._closed = False

    def durable(self, low: int, seq: int, row_hash: str) -> None:
        """Rows ``low + 1`` … ``seq`` (head hash ``row_hash``) are committed and on disk: checkpoint them if due."""
        with self._lock:
            if self._latest is None or seq > self._latest[0]:
                self._latest = (seq, row_hash)
            # Passing a multiple is decided by the rows alone: exactly one group of all processes passes each.
            passed = low // self.every_rows != seq // self.every_rows
            if passed or time.monotonic() - self._last_write >= self.every_seconds:
                self._write((seq, row_hash))
            elif self._timer is None and not self._closed:
                self._start_timer()

    def close(self) -> None:
        """Checkpoint the last head if no checkpoint covers it yet, and stop the timer."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._latest is not None and self._latest != self._covered:
                self._write(self._latest)

    def _start_timer(self) -> None:
        delay = max(0.0, self.every_seconds - (time.monotonic() - self._last_write))
        self._timer = threading.Timer(delay, self._tick)
        self._timer.daemon = True
        self._timer.start()

    def _tick(self) -> None:
        with self._lock:
            self._timer = None
            if not self._closed and self._latest is not None and self._latest != self._covered:
                self._write(self._latest)

    def _write(self, head: tuple[int, str]) -> None:
        at = dt.datetime.now(dt.UTC)
        signed = {"at": at.isoformat(), "hash": head[1], "seq": head[0]}
        line = {**signed, "jws": sign_detached(signed, self.keyring, CHECKPOINT_TYP)}
        data = (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode()
        self._last_write = time.monotonic()  # also after a failure: retried by the timer, not by every request
        try:
            _append(self.folder / f"{at:%Y-%m-%d}.jsonl", data)
        except OSError:
            # The rows are committed and the answers may go; only this anchor is late. Say so loudly.
            log.exception("could not write the audit checkpoint of row %d to %s", head[0], self.folder)
            if not self._closed and self._timer is None:
                self._start_timer()
            return
        self._covered = head if self._covered is None or head[0] >= self._covered[0] else self._covered
        self.written += 1


def _append(path: Path, data: bytes) -> None:
    """Append one whole line and make it durable; several processes may append to the same file."""
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one line at a time, never interleaved with another process's
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the flock
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name survives a crash too
        finally:
            os.close(dir_fd)


def read_checkpoints(folder: Path, keyring: HubKeyring) -> tuple[list[Anchor], list[ChainProblem]]:
    """Every checkpoint in ``folder`` whose signature verifies, and a problem for each line that is not one."""
    anchors: list[Anchor] = []
    problems: list[ChainProblem] = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        try:
            raw_lines = _read_whole_lines(path)
        except OSError as exc:
            problems.append(ChainProblem(None, "bad_checkpoint",
                                         f"checkpoint file {path.name} cannot be read: {exc.strerror}"))
            continue
        for number, raw in enumerate(raw_lines, 1):
            if not raw.strip():
                continue
            source = f"checkpoint {path.name}:{number}"
            try:
                anchors.append(_checkpoint(raw, keyring, source))
            except SignatureRefused as exc:
                problems.append(ChainProblem(None, "bad_checkpoint", f"{source} is not a checkpoint signed by the hub: "
                                                                       f"{exc} (a forged or edited line)"))
    return anchors, problems


def _read_whole_lines(path: Path) -> list[bytes]:
    """The file's lines, read under a shared lock: never half a line an API process is appending."""
    with path.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        return fh.read().splitlines()


def _checkpoint(raw: bytes, keyring: HubKeyring, source: str) -> Anchor:
    try:
        line = json.loads(raw)
    except ValueError:
        raise SignatureRefused("not JSON") from None
    if not isinstance(line, dict) or set(line) != {"at", "hash", "jws", "seq"}:
        raise SignatureRefused("not the members at, hash, jws, seq")
    seq, row_hash, at = line["seq"], line["hash"], line["at"]
    if type(seq) is not int or seq < 1 or not is_row_hash(row_hash) or not isinstance(at, str):
        raise SignatureRefused("seq, hash or at malformed")
    verify_jws(line["jws"], keyring, CHECKPOINT_TYP, detached={"at": at, "hash": row_hash, "seq": seq})
    return Anchor(seq, row_hash, source)

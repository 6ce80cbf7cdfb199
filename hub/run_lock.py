"""The run lock: one run of a pipeline step at a time, refused at once, released by the kernel when its holder dies.

Each scope is an OS file lock (``fcntl.flock``) on ``<data>/locks/<scope>.lock``: ``source:<name>``
for an extraction, ``warehouse`` for the working database and the snapshots. ``hub run`` takes all
of its scopes before it extracts anything; the jobs the DAG tasks call take theirs, so Airflow's
task runs and the command line exclude each other. The holder writes who it is into the file, so a
refused run can name the running one. The lock is reentrant within a process (the command line
runs the DAGs' tasks in its own process), and a killed holder's lock goes with its file descriptor.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hub.errors import PipelineBusy

WAREHOUSE = "warehouse"
LOCKS = "locks"


def source_scope(name: str) -> str:
    """The scope of one source's extraction."""
    return f"source:{name}"


def lock_path(data_dir: Path, scope: str) -> Path:
    """The lock file of ``scope`` under the data directory."""
    return Path(data_dir) / LOCKS / (re.sub(r"[^A-Za-z0-9._-]+", "_", scope) + ".lock")


@dataclass
class _Held:
    handle: IO[str]
    depth: int
    holder: dict[str, Any]


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def holder(data_dir: Path, scope: str) -> dict[str, Any] | None:
    """Who holds ``scope`` now (pid, host, started_at, run_id, step), or None when nobody does."""
    path = lock_path(data_dir, scope)
    if not path.exists():
        return None
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(handle)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextmanager
def run_lock(data_dir: Path, scopes: Iterable[str], run_id: str, step: str) -> Iterator[None]:
    """Hold every lock of ``scopes``, all or none and without waiting; PipelineBusy names the run holding one."""
    taken: list[Path] = []
    try:
        for scope in sorted(set(scopes)):  # one order everywhere, though non-blocking takes cannot deadlock anyway
            taken.append(_acquire(Path(data_dir), scope, run_id, step))
        yield
    finally:
        for path in reversed(taken):
            _release(path)


def _acquire(data_dir: Path, scope: str, run_id: str, step: str) -> Path:
    path = lock_path(data_dir, scope)
    with _guard:
        held = _held.get(path)
        if held is not None:
            held.depth += 1
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found = _read_holder(handle)
            handle.close()
            raise PipelineBusy(scope, found) from None
        info = {"scope": scope, "step": step, "run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(info))
        handle.flush()
        _held[path] = _Held(handle, 1, info)
        return path


def _release(path: Path) -> None:
    with _guard:
        held = _held[path]
        held.depth -= 1
        if held.depth:
            return
        del _held[path]
        # Emptied before unlocking: a file left with a holder in it is the trace of a holder that died.
        held.handle.seek(0)
        held.handle.truncate()
        held.handle.flush()
        fcntl.flock(held.handle, fcntl.LOCK_UN)
        held.handle.close()


def _read_holder(handle: IO[str]) -> dict[str, Any]:
    # The holder writes its line just after it takes the lock: a reader in between finds it empty, so look again.
    for _ in range(50):
        handle.seek(0)
        text = handle.read()
        try:
            return dict(json.loads(text))
        except ValueError:
            threading.Event().wait(0.01)
    return {}

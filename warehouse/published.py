"""The read side of the store: published snapshots, opened read-only, never blocking the pipeline.

Layout under ``snapshots_dir``::

    v000003/              one complete snapshot
        population.parquet  legal_person.parquet  licence.parquet
        hub.duckdb        the same tables, ready for point lookups
        manifest.json     version, created_at, row counts and checksums, runs it came from
    CURRENT               the name of the serving snapshot; replaced by atomic rename
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from hub.errors import SnapshotError
from schemas import library

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DATABASE = "hub.duckdb"


def current_name(snapshots_dir: Path) -> str:
    """The directory name of the serving snapshot."""
    try:
        return (snapshots_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        raise SnapshotError("no snapshot has been published yet") from None


@dataclass
class PublishedSnapshot:
    """One published snapshot, opened read-only."""

    path: Path
    manifest: dict[str, Any]

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._conn = duckdb.connect(str(self.path / DATABASE), read_only=True)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # DuckDB connections are not thread-safe; each thread gets its own cursor.
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._conn.cursor()
        return cur

    def lookup(self, library_name: str, key: str) -> dict[str, Any] | None:
        """The record of ``library_name`` whose key is ``key``, or None."""
        lib = library(library_name)
        if lib.name not in self.manifest.get("tables", {}):
            return None
        cur = self._cursor().execute(f'SELECT * FROM "{lib.table}" WHERE "{lib.key}" = ?', [key])
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def close(self) -> None:
        self._conn.close()


def open_snapshot(path: Path) -> PublishedSnapshot:
    """Open the snapshot in ``path`` read-only, checking it has its manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {path.name} has no manifest") from None
    return PublishedSnapshot(path, manifest)


def open_current(snapshots_dir: Path) -> PublishedSnapshot:
    """Open the serving snapshot read-only."""
    return open_snapshot(snapshots_dir / current_name(snapshots_dir))


class CurrentSnapshot:
    """Follows ``CURRENT``: swaps to a newly published snapshot without a restart or a dropped request."""

    def __init__(self, snapshots_dir: Path):
        self.snapshots_dir = snapshots_dir
        self._lock = threading.Lock()
        self._name: str | None = None
        self._snapshot: PublishedSnapshot | None = None

    def get(self) -> PublishedSnapshot:
        """The serving snapshot, reopened when ``CURRENT`` names another one."""
        name = current_name(self.snapshots_dir)
        if name != self._name:
            with self._lock:
                if name != self._name:
                    # The old snapshot is left open: requests still using it finish on it.
                    self._snapshot = open_snapshot(self.snapshots_dir / name)
                    self._name = name
        assert self._snapshot is not None
        return self._snapshot

"""The read side of the store: published snapshots, opened read-only, never blocking the pipeline.

Layout under ``snapshots_dir``::

    v000003/              one complete snapshot
        population.parquet  legal_person.parquet  licence.parquet     sorted by key
        hub.duckdb        the same tables, for analysts' SQL
        manifest.json     version, created_at, row counts and checksums, runs it came from
        conflicts.parquet            optional: the warehouse's conflict register
        provenance.parquet           optional: per-field source department and update time
        <library>_history.parquet    optional: the library's columns + _valid_from, _valid_to
        serving/          built by the read side at first open (never by the pipeline), see below
    CURRENT               the name of the serving snapshot; replaced by atomic rename

Point lookups do not query DuckDB: at first open each table is rewritten once as an uncompressed
Arrow IPC file plus a sorted, fixed-width key array (``.keys.npy``), both memory-mapped. A lookup
is a binary search over the key array and a read of one row's columns: microseconds, no locks,
and the operating system's page cache is shared by every process serving the same snapshot.
Columns searched by something other than the key (a licence's ``holder_id``: "which licences does
this holder have?") get a second sorted array and its permutation (``<table>.by_<column>.keys.npy``,
``.order.npy``), built at the same time, for the library and its history alike.

Optional files and their columns (absent files mean "nothing recorded")::

    conflicts.parquet    library, key, field, golden_value, rule, values
                         (values: JSON list of {"value", "source_department", "updated_at"})
    provenance.parquet   library, key, field, source_department, updated_at
    <lib>_history.parquet  every column of <lib>, _valid_from, _valid_to (aware timestamps; the version
                         holds from _valid_from inclusive to _valid_to exclusive, null = still current);
                         sorted by key, then _valid_from. The underscore keeps them apart from the
                         licence's own valid_from / valid_to (its validity period).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hub.checksums import damaged_files, sha256_file
from hub.errors import SnapshotDamaged, SnapshotError
from schemas import LIBRARIES, library

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DATABASE = "hub.duckdb"
SERVING = "serving"
READY = "READY"
# 2: secondary indexes (SECONDARY_KEYS); 3: READY records each serving file's size and SHA-256, checked at every
# open. A snapshot prepared in an older format is prepared again.
SERVING_FORMAT = 3
CONFLICTS = "conflicts"
PROVENANCE = "provenance"
HISTORY_SUFFIX = "_history"
VALID_FROM, VALID_TO = "_valid_from", "_valid_to"  # a history version's validity interval
SIDE_KEY = "_side_key"  # the composite "library<US>key" column of side tables
SEPARATOR = "\x1f"
BATCH_ROWS = 1 << 20
# Snapshots up to this many rows are prepared by whoever meets them first (tens of milliseconds);
# bigger ones are prepared in the background while the previous snapshot keeps serving.
SYNC_PREPARE_ROWS = 1_000_000
# Columns searched besides the key, per library (its history gets the same index).
SECONDARY_KEYS: dict[str, tuple[str, ...]] = {"licence": ("holder_id",)}
RETRY_SECONDS = 5.0  # a snapshot that failed to open is retried this often while the previous one serves
DAMAGED_RETRY_SECONDS = 60.0  # a damaged one is re-checked (hashed whole) less often: it rarely heals by itself
log = logging.getLogger(__name__)


def current_name(snapshots_dir: Path) -> str:
    """The directory name of the serving snapshot."""
    try:
        return (Path(snapshots_dir) / CURRENT).read_text().strip()
    except FileNotFoundError:
        raise SnapshotError("no snapshot has been published yet") from None


def _fixed_width(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A string column as a numpy ``S<width>`` array (nulls as empty), the form searchsorted works on."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = pc.fill_null(arr.cast(pa.large_binary()), b"")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype="S1")
    lengths = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    width = max(1, int(lengths.max()))
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + n + 1]
    data = arr.buffers()[2]
    if int(lengths.min()) == width:  # the usual case (ID numbers, credit codes): one reshape, no loop
        raw = np.frombuffer(data, dtype=np.uint8)[offsets[0]: offsets[0] + n * width]
        return raw.view(f"S{width}").copy()
    out = np.empty(n, dtype=f"S{width}")
    for start in range(0, n, BATCH_ROWS):
        out[start: start + BATCH_ROWS] = arr.slice(start, BATCH_ROWS).to_pylist()
    return out


def _encode_key(key: str, width: int) -> bytes | None:
    raw = key.encode()
    return raw if 0 < len(raw) <= width else None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_UNIT_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}


def _reader(chunk: pa.Array) -> Any:
    """A function row -> Python value for one column chunk; dates and times decoded here, not by ``as_py``."""
    kind = chunk.type
    if pa.types.is_timestamp(kind):
        ints, scale = chunk.view(pa.int64()), _UNIT_MICROS[kind.unit]
        aware = kind.tz is not None

        def timestamp(i: int) -> Any:
            v = ints[i].as_py()
            if v is None:
                return None
            value = _EPOCH + dt.timedelta(microseconds=v * scale)
            return value if aware else value.replace(tzinfo=None)

        return timestamp
    if pa.types.is_date32(kind):
        days = chunk.view(pa.int32())

        def date(i: int) -> Any:
            v = days[i].as_py()
            return None if v is None else dt.date.fromordinal(_EPOCH_ORDINAL + v)

        return date
    return lambda i: chunk[i].as_py()


class KeyedTable:
    """A memory-mapped Arrow table and its sorted key array: a lookup is a binary search and one row's columns."""

    def __init__(self, table: pa.Table, keys: np.ndarray, order: np.ndarray | None):
        self.table = table
        self.keys = keys
        self.order = order
        self.width = keys.dtype.itemsize
        self.names = table.column_names
        self._chunks = {name: [_reader(c) for c in table.column(name).chunks] for name in self.names}
        first = table.column(0).chunks if self.names else []
        self._starts = list(np.cumsum([0] + [len(c) for c in first])[:-1])
        self.secondary: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    @classmethod
    def open(cls, folder: Path, name: str, secondary: tuple[str, ...] = ()) -> KeyedTable:
        table = pa.ipc.open_file(pa.memory_map(str(folder / f"{name}.arrow"))).read_all()
        keyed = cls(table, *_load_index(folder, name))
        for column in secondary:
            keyed.secondary[column] = _load_index(folder, f"{name}.by_{column}")
        return keyed

    def __len__(self) -> int:
        return self.table.num_rows

    def rows(self, key: str) -> list[int]:
        """Every row whose key is ``key`` (table positions)."""
        return _search(self.keys, self.order, key)

    def rows_by(self, column: str, value: str) -> list[int]:
        """Every row whose ``column`` is ``value``, through that column's secondary index (in table order)."""
        index = self.secondary.get(column)
        if index is None:
            raise SnapshotError(f"no index on {column}")
        return sorted(_search(*index, value))

    def first(self, key: str) -> int | None:
        found = self.rows(key)
        return found[0] if found else None

    def value(self, row: int, name: str) -> Any:
        chunk = bisect.bisect_right(self._starts, row) - 1
        return self._chunks[name][chunk](row - self._starts[chunk])

    def record(self, row: int, columns: Any = None) -> dict[str, Any]:
        """The row's values as Python objects (dates, aware datetimes, Decimals), for ``columns`` or all."""
        chunk = bisect.bisect_right(self._starts, row) - 1
        local = row - self._starts[chunk]
        names = self.names if columns is None else [c for c in columns if c in self._chunks]
        return {name: self._chunks[name][chunk](local) for name in names}


def _search(keys: np.ndarray, order: np.ndarray | None, key: str) -> list[int]:
    """Binary search of a sorted key array: the table positions whose key is ``key``."""
    raw = _encode_key(key, keys.dtype.itemsize)
    if raw is None or not len(keys):
        return []
    probe = np.array(raw, dtype=keys.dtype)
    lo = int(np.searchsorted(keys, probe, side="left"))
    if lo >= len(keys) or keys[lo] != raw:
        return []
    hi = int(np.searchsorted(keys, probe, side="right"))
    positions = range(lo, hi)
    return [int(order[p]) for p in positions] if order is not None else list(positions)


def _load_index(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    keys = np.load(folder / f"{name}.keys.npy", mmap_mode="r")
    order_path = folder / f"{name}.order.npy"
    return keys, (np.load(order_path, mmap_mode="r") if order_path.exists() else None)


def _batches(source: Path, side: bool) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The Parquet file's rows batch by batch (side tables with their composite key appended)."""
    parquet = pq.ParquetFile(source)
    schema = parquet.schema_arrow

    def composite(batch: pa.RecordBatch) -> pa.RecordBatch:
        key = pc.binary_join_element_wise(batch.column("library").cast(pa.string()),
                                          batch.column("key").cast(pa.string()), SEPARATOR)
        return pa.RecordBatch.from_arrays([*batch.columns, key], schema=batch.schema.append(pa.field(SIDE_KEY, pa.string())))

    batches = parquet.iter_batches(batch_size=BATCH_ROWS)
    if side:
        return schema.append(pa.field(SIDE_KEY, pa.string())), (composite(b) for b in batches)
    return schema, iter(batches)


def _write_keyed(source: Path, key_column: str, folder: Path, name: str) -> None:
    """Write the rows of ``source`` as ``name.arrow`` plus its key index; every file appears whole (tmp + rename).

    Streamed a batch at a time: only the key column is held whole, so a 20-million-row side table
    costs its keys' memory, not its own.
    """
    schema, batches = _batches(source, key_column == SIDE_KEY)
    pid = f"{os.getpid()}.{threading.get_ident()}"
    tmp = folder / f".{name}.arrow.{pid}"
    key_chunks = []
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            key_chunks.append(batch.column(key_column))
    os.replace(tmp, folder / f"{name}.arrow")
    _write_index(pa.chunked_array(key_chunks, schema.field(key_column).type), folder, name)


def _write_index(column: pa.ChunkedArray, folder: Path, name: str) -> None:
    """The sorted key array of ``column`` (``name.keys.npy``) and, unless already sorted, its permutation."""
    pid = f"{os.getpid()}.{threading.get_ident()}"
    keys = _fixed_width(column)
    order = None
    if len(keys) > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
        # The publisher sorts by key; a file that is not sorted still works, through a permutation.
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
    for suffix, array in (("keys", keys), ("order", order)):
        if array is None:
            continue
        tmp_npy = folder / f".{name}.{suffix}.{pid}.npy"
        np.save(tmp_npy, array)
        os.replace(tmp_npy, folder / f"{name}.{suffix}.npy")


def _secondary_columns(name: str) -> tuple[str, ...]:
    """The secondary-index columns of a served table (a library or its history)."""
    return SECONDARY_KEYS.get(name.removesuffix(HISTORY_SUFFIX), ())


def _write_secondary(folder: Path, name: str) -> None:
    """The secondary indexes of ``name``, read from its serving file (only the indexed column is held whole)."""
    columns = _secondary_columns(name)
    if not columns:
        return
    table = pa.ipc.open_file(pa.memory_map(str(folder / f"{name}.arrow"))).read_all()
    for column in columns:
        if column in table.column_names:
            _write_index(table.column(column), folder, f"{name}.by_{column}")


def _sources(path: Path, manifest: dict[str, Any]) -> dict[str, tuple[Path, str]]:
    """What the read side serves from this snapshot: name -> (parquet file, key column)."""
    sources: dict[str, tuple[Path, str]] = {}
    for name, entry in manifest.get("tables", {}).items():
        if name not in LIBRARIES:
            continue
        lib = LIBRARIES[name]
        parquet = path / entry.get("parquet", f"{name}.parquet")
        if parquet.exists():
            sources[name] = (parquet, lib.key)
        history = path / f"{name}{HISTORY_SUFFIX}.parquet"
        if history.exists():
            sources[name + HISTORY_SUFFIX] = (history, lib.key)
    for side in (CONFLICTS, PROVENANCE):
        if (path / f"{side}.parquet").exists():
            sources[side] = (path / f"{side}.parquet", SIDE_KEY)
    return sources


def is_prepared(path: Path) -> bool:
    """Whether the serving files of the snapshot in ``path`` have been built."""
    try:
        return json.loads((path / SERVING / READY).read_text()).get("format") == SERVING_FORMAT
    except (FileNotFoundError, ValueError):
        return False


def prepare(path: Path, manifest: dict[str, Any] | None = None) -> None:
    """Build the memory-mappable serving files of a snapshot, once; safe to run from several processes at once."""
    if is_prepared(path):
        return
    manifest = manifest if manifest is not None else json.loads((path / MANIFEST).read_text())
    folder = path / SERVING
    folder.mkdir(exist_ok=True)
    lock = open(folder / ".lock", "a+")  # noqa: SIM115 - held for the duration of the build
    try:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds READY
        if is_prepared(path):
            return
        built = []
        for name, (source, key) in _sources(path, manifest).items():
            _write_keyed(source, key, folder, name)
            _write_secondary(folder, name)
            built.append(name)
        files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
                 for p in sorted(folder.iterdir()) if p.name.endswith((".arrow", ".npy")) and not p.name.startswith(".")}
        tmp = folder / f".{READY}.{os.getpid()}"
        tmp.write_text(json.dumps({"format": SERVING_FORMAT, "tables": built, "files": files}))
        os.replace(tmp, folder / READY)
    finally:
        lock.close()


def _as_of_value(value: Any, when: dt.datetime) -> Any:
    """``when`` in the type of a validity bound (date or aware datetime), for comparison."""
    if isinstance(value, dt.datetime):
        return when if value.tzinfo else when.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return when.date()
    return when


def _valid_at(history: KeyedTable, row: int, when: dt.datetime) -> bool:
    """Whether the history version in ``row`` held at ``when``: from _valid_from inclusive to _valid_to exclusive."""
    start, end = history.value(row, VALID_FROM), history.value(row, VALID_TO)
    if start is not None and _as_of_value(start, when) < start:
        return False
    return end is None or _as_of_value(end, when) < end


@dataclass
class PublishedSnapshot:
    """One published snapshot, opened read-only, its tables memory-mapped."""

    path: Path
    manifest: dict[str, Any]
    _tables: dict[str, KeyedTable] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        prepare(self.path, self.manifest)
        ready = json.loads((self.path / SERVING / READY).read_text())
        if damaged_files(self.path / SERVING, ready.get("files", {})):
            ready = self._rebuild_serving(ready)
        self._tables = {name: KeyedTable.open(self.path / SERVING, name, _secondary_columns(name))
                        for name in ready["tables"]}

    def _rebuild_serving(self, ready: dict[str, Any]) -> dict[str, Any]:
        """Serving files are derived from the Parquet files (already checked): a damaged one is built again."""
        log.warning("snapshot %s: serving files damaged (%s); rebuilding them from its Parquet files", self.version,
                    "; ".join(damaged_files(self.path / SERVING, ready.get("files", {}))))
        (self.path / SERVING / READY).unlink(missing_ok=True)
        prepare(self.path, self.manifest)
        ready = json.loads((self.path / SERVING / READY).read_text())
        problems = damaged_files(self.path / SERVING, ready.get("files", {}))
        if problems:
            raise SnapshotDamaged(self.version, [f"{SERVING}/{p}" for p in problems])
        return ready

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def has(self, name: str) -> bool:
        """Whether the snapshot serves ``name`` (a library, ``<library>_history``, ``conflicts``, ``provenance``)."""
        return name in self._tables

    def lookup(self, library_name: str, key: str, columns: Any = None) -> dict[str, Any] | None:
        """The record of ``library_name`` whose key is ``key`` (only ``columns`` if given), or None."""
        table = self._tables.get(library(library_name).name)
        if table is None:
            return None
        row = table.first(key)
        return None if row is None else table.record(row, columns)

    def lookup_as_of(self, library_name: str, key: str, when: dt.datetime, columns: Any = None) -> dict[str, Any] | None:
        """The version of the record valid at ``when`` (aware), from ``<library>_history``; SnapshotError if absent."""
        name = library(library_name).name
        table = self._tables.get(name + HISTORY_SUFFIX)
        if table is None:
            raise SnapshotError(f"snapshot {self.version} keeps no history of {name}")
        for row in table.rows(key):
            if _valid_at(table, row, when):
                return table.record(row, columns)
        return None

    def lookup_by(self, library_name: str, column: str, value: str, columns: Any = None) -> list[dict[str, Any]]:
        """Every record of ``library_name`` whose ``column`` (one of SECONDARY_KEYS) is ``value``, in key order."""
        table = self._tables.get(library(library_name).name)
        if table is None:
            return []
        return [table.record(row, columns) for row in table.rows_by(column, value)]

    def lookup_by_as_of(self, library_name: str, column: str, value: str, when: dt.datetime,
                        columns: Any = None) -> list[dict[str, Any]]:
        """The versions valid at ``when`` of every record whose ``column`` was ``value`` then; SnapshotError without history."""
        name = library(library_name).name
        table = self._tables.get(name + HISTORY_SUFFIX)
        if table is None:
            raise SnapshotError(f"snapshot {self.version} keeps no history of {name}")
        return [table.record(row, columns) for row in table.rows_by(column, value) if _valid_at(table, row, when)]

    def conflicts(self, library_name: str, key: str) -> dict[str, dict[str, Any]]:
        """The conflict register's entries for one record: field -> {golden_value, rule, values}."""
        table = self._tables.get(CONFLICTS)
        if table is None:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for row in table.rows(f"{library_name}{SEPARATOR}{key}"):
            entry = table.record(row, ("field", "golden_value", "rule", "values"))
            values = entry["values"]
            if isinstance(values, str):
                try:
                    values = json.loads(values)
                except ValueError:
                    values = []
            found[entry["field"]] = {"golden_value": entry["golden_value"], "rule": entry["rule"],
                                     "values": values or []}
        return found

    def provenance(self, library_name: str, key: str) -> dict[str, dict[str, Any]]:
        """Per-field provenance of one record: field -> {source_department, updated_at}."""
        table = self._tables.get(PROVENANCE)
        if table is None:
            return {}
        return {
            entry["field"]: {"source_department": entry["source_department"], "updated_at": entry["updated_at"]}
            for entry in (table.record(row, ("field", "source_department", "updated_at"))
                          for row in table.rows(f"{library_name}{SEPARATOR}{key}"))
        }

    def close(self) -> None:
        """Drop the memory maps (they also go when the last reference does)."""
        self._tables = {}


def check_snapshot(path: Path) -> dict[str, Any]:
    """The manifest of the snapshot in ``path``, once its files match it; SnapshotDamaged names each one that does not."""
    name = Path(path).name
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {name} has no manifest") from None
    except ValueError:
        raise SnapshotDamaged(name, [f"{MANIFEST}: not valid JSON"]) from None
    written = {e["parquet"]: e for e in manifest.get("tables", {}).values() if "sha256" in e and "parquet" in e}
    problems = damaged_files(Path(path), written)
    if problems:
        raise SnapshotDamaged(name, problems)
    return manifest


def open_snapshot(path: Path) -> PublishedSnapshot:
    """Open the snapshot in ``path`` read-only once its files match its manifest (prepares it if needed)."""
    manifest = check_snapshot(path)
    try:
        return PublishedSnapshot(Path(path), manifest)
    except SnapshotError:
        raise
    except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
        raise SnapshotError(f"snapshot {Path(path).name} cannot be opened: {exc}") from exc


def last_good(snapshots_dir: Path, below: str) -> PublishedSnapshot | None:
    """The newest snapshot older than ``below`` that opens with its files intact, or None."""
    older = sorted((p.name for p in Path(snapshots_dir).glob("v*") if p.is_dir() and p.name[1:].isdigit()
                    and p.name < below), reverse=True)
    for name in older:
        try:
            return open_snapshot(Path(snapshots_dir) / name)
        except SnapshotError as exc:
            log.error("snapshot %s is not usable either: %s", name, exc)
    return None


def open_current(snapshots_dir: Path) -> PublishedSnapshot:
    """Open the serving snapshot read-only."""
    return open_snapshot(Path(snapshots_dir) / current_name(snapshots_dir))


def _rows(path: Path) -> int:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (FileNotFoundError, ValueError):
        return 0
    return sum(int(t.get("rows", 0)) for t in manifest.get("tables", {}).values())


class CurrentSnapshot:
    """Follows ``CURRENT``: swaps to a newly published snapshot without a restart or a dropped request.

    A request holds the snapshot object it started with, so a swap never changes data under it; the old
    snapshot's memory maps stay valid until its last reader lets go, even if the pipeline prunes its files.
    A snapshot that still needs its serving files and is too big to prepare in passing is prepared in a
    background thread while the previous one keeps answering.
    """

    def __init__(self, snapshots_dir: Path, *, sync_prepare_rows: int = SYNC_PREPARE_ROWS):
        self.snapshots_dir = Path(snapshots_dir)
        self.sync_prepare_rows = sync_prepare_rows
        self._lock = threading.Lock()
        self._name: str | None = None
        self._snapshot: PublishedSnapshot | None = None
        self._preparing: str | None = None
        self._failed: tuple[str | None, float] = (None, 0.0)
        self._stamp: tuple[int, int, int] | None = None
        self.last_error: str | None = None

    @property
    def serving_name(self) -> str | None:
        """The name of the snapshot answering now (None before the first get), without checking CURRENT."""
        return self._name

    def get(self) -> PublishedSnapshot:
        """The serving snapshot, reopened when ``CURRENT`` names another one."""
        # A publish replaces CURRENT by rename, so a new inode (or mtime) means "read it again": one stat a request.
        try:
            st = os.stat(self.snapshots_dir / CURRENT)
        except FileNotFoundError:
            raise SnapshotError("no snapshot has been published yet") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp or self._snapshot is None or self._preparing is not None:
            name = current_name(self.snapshots_dir)
            if name != self._name:
                self._switch(name)
            if name == self._name:
                self._stamp = stamp
        if self._snapshot is None:
            raise SnapshotError("the published snapshot is still being prepared")
        return self._snapshot

    def _switch(self, name: str) -> None:
        path = self.snapshots_dir / name
        if self._resting(name):
            return  # keep serving the previous snapshot; do not retry a broken one on every request
        # Checking a big snapshot's checksums takes seconds too: done aside as well, while the previous one serves.
        background = self._snapshot is not None and _rows(path) > self.sync_prepare_rows
        if background:
            with self._lock:
                if self._preparing != name:
                    self._preparing = name
                    threading.Thread(target=self._prepare_then_swap, args=(name,), daemon=True,
                                     name=f"prepare-{name}").start()
            return
        with self._lock:
            if name == self._name or self._resting(name):
                return
            try:
                self._snapshot = open_snapshot(path)
            except Exception as exc:
                self.last_error, self._failed = f"{name}: {exc}", (name, time.monotonic())
                if self._snapshot is None:
                    # Nothing serving yet (a restart): the newest intact older version answers instead of a 503.
                    fallback = last_good(self.snapshots_dir, name)
                    if fallback is None:
                        log.error("snapshot %s refused and no older one is intact: %s", name, exc)
                        raise SnapshotError(f"snapshot {name} cannot be opened") from exc
                    self._snapshot, self._name = fallback, fallback.version
                log.error("snapshot %s refused, %s keeps serving: %s", name, self._name, exc)
                return
            self._name = name

    def _resting(self, name: str) -> bool:
        """Whether ``name`` failed to open a moment ago while another snapshot serves."""
        failed_name, failed_at = self._failed
        wait = DAMAGED_RETRY_SECONDS if self.last_error and " is damaged" in self.last_error else RETRY_SECONDS
        return self._snapshot is not None and failed_name == name and time.monotonic() - failed_at < wait

    def _prepare_then_swap(self, name: str) -> None:
        try:
            snapshot = open_snapshot(self.snapshots_dir / name)
        except Exception as exc:  # noqa: BLE001 - the old snapshot keeps serving; the next get() retries
            self.last_error, self._failed = f"{name}: {exc}", (name, time.monotonic())
            log.error("snapshot %s refused, %s keeps serving: %s", name, self._name, exc)
            with self._lock:
                self._preparing = None
            return
        with self._lock:
            self._snapshot, self._name, self._preparing = snapshot, name, None

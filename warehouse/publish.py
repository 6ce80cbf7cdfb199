"""Publish: write a complete new snapshot, then switch ``CURRENT`` with an atomic rename.

A crash at any point before the rename leaves the previous snapshot serving and untouched; the
half-written folder is named ``.partial`` and removed by the next publish, as is a version renamed
but never switched to; a publish that fails (a full disk) removes what it wrote itself. Every file is on disk
(fsync) before the folder takes its final name, so a power cut cannot leave ``CURRENT`` naming
empty files. Pruning renames a snapshot to ``.pruning`` before deleting it, so a crash mid-delete
leaves no half-deleted ``vNNNNNN`` behind, only a leftover the next publish removes.

The same inputs give the same tables: every file is written sorted on a unique order.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from hub.errors import PublishError
from schemas import LIBRARIES
from schemas.derive import duckdb_ddl
from warehouse.db import tables as existing_tables
from warehouse.published import CURRENT, DATABASE, HISTORY_SUFFIX, MANIFEST, VALID_FROM, VALID_TO, current_name, prepare
from hub.checksums import sha256_file

_VERSION = re.compile(r"^v(\d{6})$")
LEFTOVERS = ("*.partial", "*.pruning")  # what a crashed publish or prune leaves; removed by the next publish


def _reached(step: str) -> None:
    """A step of the publish is done: a no-op, replaced in the crash tests to kill the process right there."""


@dataclass(frozen=True)
class PublishResult:
    version: str
    path: Path
    tables: dict[str, dict]


def _next_version(snapshots_dir: Path) -> str:
    numbers = [int(m.group(1)) for p in snapshots_dir.glob("v*") if (m := _VERSION.match(p.name))]
    return f"v{max(numbers, default=0) + 1:06d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def switch_current(snapshots_dir: Path, name: str) -> None:
    """Point ``CURRENT`` at ``name`` atomically: readers see the old name or the new, never neither."""
    tmp = snapshots_dir / (CURRENT + ".tmp")
    with tmp.open("w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    _reached("current.tmp")
    os.replace(tmp, snapshots_dir / CURRENT)
    _fsync_dir(snapshots_dir)


def publish(work: duckdb.DuckDBPyConnection, snapshots_dir: Path, runs: list[str], keep: int = 5) -> PublishResult:
    """Write every golden table of ``work``, with its history, as a new snapshot and make it current."""
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    for pattern in LEFTOVERS:
        for stale in snapshots_dir.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    version = _next_version(snapshots_dir)  # before the sweep: a number once given is not given again
    _sweep_unswitched(snapshots_dir)
    partial = snapshots_dir / f"{version}.partial"
    final = snapshots_dir / version
    partial.mkdir()
    try:
        tables = _write_tables(work, partial)
        manifest = {"version": version, "created_at": dt.datetime.now(dt.UTC).isoformat(), "tables": tables,
                    "runs": sorted(set(runs))}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        _fsync_files(partial)
        _reached("manifest")
        partial.rename(final)
        _fsync_dir(snapshots_dir)
        _reached("renamed")
        # The API's memory-mapped serving files are built before the switch, so it swaps instantly.
        prepare(final, manifest)
        _reached("prepared")
        switch_current(snapshots_dir, version)
        _reached("switched")
    except (OSError, duckdb.Error) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if final.exists() and _current_or_none(snapshots_dir) != version:
            _remove(snapshots_dir, version)  # renamed but never switched to: nobody reads it, and it fills the disk
        raise PublishError(f"publishing {version} failed; the previous snapshot keeps serving: {exc}") from exc
    prune(snapshots_dir, keep)
    return PublishResult(version, final, tables)


def _fsync_files(folder: Path) -> None:
    """Flush every file of ``folder`` and the folder itself to disk."""
    for path in sorted(folder.iterdir()):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _write_tables(work: duckdb.DuckDBPyConnection, target: Path) -> dict[str, dict]:
    golden = existing_tables(work)
    tables: dict[str, dict] = {}
    db = duckdb.connect(str(target / DATABASE))
    try:
        for lib in LIBRARIES.values():
            if f"golden_{lib.name}" not in golden:
                continue
            parquet = target / f"{lib.name}.parquet"
            # Sorted by key: row groups then answer a key range without reading the rest.
            work.execute(f'COPY (SELECT * FROM "golden_{lib.name}" ORDER BY "{lib.key}") TO \'{parquet}\' '
                         "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
            db.execute(duckdb_ddl(lib))
            db.execute(f'INSERT INTO "{lib.table}" SELECT * FROM read_parquet(\'{parquet}\')')
            (rows,) = db.execute(f'SELECT count(*) FROM "{lib.table}"').fetchone()
            tables[lib.name] = {"rows": rows, "parquet": parquet.name, "sha256": sha256_file(parquet)}
            _reached(f"parquet:{lib.name}")
        db.execute("CHECKPOINT")
    finally:
        db.close()
    _reached("database")
    tables.update(_write_history(work, target, golden))
    tables.update(_write_side_tables(work, target, golden))
    return tables


def _write_history(work: duckdb.DuckDBPyConnection, target: Path, present: set[str]) -> dict[str, dict]:
    """``<library>_history.parquet``: every version, sorted by key then start, for "as of" lookups."""
    written = {}
    for lib in LIBRARIES.values():
        if f"history_{lib.name}" not in present or f"golden_{lib.name}" not in present:
            continue
        name = lib.name + HISTORY_SUFFIX
        parquet = target / f"{name}.parquet"
        columns = ", ".join(f'"{f.name}"' for f in lib.fields)
        work.execute(f'COPY (SELECT {columns}, "{VALID_FROM}", "{VALID_TO}" FROM "history_{lib.name}" '
                     f'ORDER BY "{lib.key}", "{VALID_FROM}", "{VALID_TO}" NULLS LAST) TO \'{parquet}\' '
                     "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
        (rows,) = work.execute(f"SELECT count(*) FROM '{parquet}'").fetchone()
        written[name] = {"rows": rows, "parquet": parquet.name, "sha256": sha256_file(parquet)}
        _reached(f"parquet:{name}")
    return written


def _write_side_tables(work: duckdb.DuckDBPyConnection, target: Path, present: set[str]) -> dict[str, dict]:
    """The conflict register and per-field provenance of every library, for the exchange API."""
    selects = {
        "conflicts": "SELECT '{lib}' AS library, key, field, golden_value, rule, \"values\" FROM \"{table}\"",
        "provenance": "SELECT '{lib}' AS library, key, field, source_department, source_record_id, updated_at, "
                      "verified, rule FROM \"{table}\"",
    }
    written = {}
    for side, select in selects.items():
        parts = [select.format(lib=lib.name, table=f"golden_{lib.name}_{side}") for lib in LIBRARIES.values()
                 if f"golden_{lib.name}_{side}" in present]
        if not parts:
            continue
        parquet = target / f"{side}.parquet"
        work.execute(f"COPY ({' UNION ALL '.join(parts)} ORDER BY library, key, field) TO '{parquet}' "
                     "(FORMAT parquet, COMPRESSION zstd)")
        (rows,) = work.execute(f"SELECT count(*) FROM '{parquet}'").fetchone()
        written[f"_{side}"] = {"rows": rows, "parquet": parquet.name, "sha256": sha256_file(parquet)}
        _reached(f"parquet:{side}")
    return written


def _current_or_none(snapshots_dir: Path) -> str:
    try:
        return current_name(snapshots_dir)
    except Exception:  # noqa: BLE001 - nothing published: nothing to protect
        return ""


def _remove(snapshots_dir: Path, name: str) -> None:
    doomed = snapshots_dir / f"{name}.pruning"
    os.rename(snapshots_dir / name, doomed)  # gone at once under its own name, then deleted at leisure
    _reached(f"pruning:{name}")
    shutil.rmtree(doomed, ignore_errors=True)


def _sweep_unswitched(snapshots_dir: Path) -> list[str]:
    """Remove versions newer than ``CURRENT``: a publish killed after its rename and before its switch left them."""
    current = _current_or_none(snapshots_dir)
    if not current:
        return []  # without CURRENT nothing says which versions were ever served: keep them all
    # Publishes run one at a time (the warehouse run lock), so no other publish is writing one of these.
    orphans = [p.name for p in snapshots_dir.glob("v*") if _VERSION.match(p.name) and p.name > current]
    for name in sorted(orphans):
        _remove(snapshots_dir, name)
    return orphans


def prune(snapshots_dir: Path, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` snapshots; never the current one."""
    current = _current_or_none(snapshots_dir)
    versions = sorted(p.name for p in snapshots_dir.glob("v*") if _VERSION.match(p.name))
    removed = [v for v in versions[:-keep] if v != current]
    for name in removed:
        _remove(snapshots_dir, name)
    return removed

"""Published snapshots written in exactly the layout warehouse.publish produces, for read-side and API tests."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import LIBRARIES
from schemas.derive import arrow_schema
from warehouse.published import VALID_FROM, VALID_TO

UTC = dt.UTC


def library_table(name: str, rows: Sequence[Mapping[str, Any]], *, extra: Sequence[pa.Field] = (),
                  sort: bool = True) -> pa.Table:
    """Rows of library ``name`` as an Arrow table of its declared schema (plus ``extra`` columns), sorted by key."""
    lib = LIBRARIES[name]
    schema = arrow_schema(lib)
    for f in extra:
        schema = schema.append(f)
    if sort:
        rows = sorted(rows, key=lambda r: (r[lib.key], str(r.get(VALID_FROM, ""))))
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)


CONFLICT_SCHEMA = pa.schema([("library", pa.string()), ("key", pa.string()), ("field", pa.string()),
                             ("golden_value", pa.string()), ("rule", pa.string()), ("values", pa.string())])
PROVENANCE_SCHEMA = pa.schema([("library", pa.string()), ("key", pa.string()), ("field", pa.string()),
                               ("source_department", pa.string()), ("updated_at", pa.timestamp("us", tz="UTC"))])
HISTORY_FIELDS = (pa.field(VALID_FROM, pa.timestamp("us", tz="UTC")), pa.field(VALID_TO, pa.timestamp("us", tz="UTC")))


def version(row: Mapping[str, Any], start: dt.datetime, end: dt.datetime | None) -> dict:
    """One row of a ``<library>_history`` file: ``row`` valid from ``start`` (inclusive) to ``end`` (exclusive)."""
    return {**row, VALID_FROM: start, VALID_TO: end}


def conflict(library: str, key: str, field: str, golden: Any, rule: str, values: Sequence[tuple[Any, str, str]]) -> dict:
    """One row of the conflict register: ``values`` as (value, source_department, updated_at)."""
    return {"library": library, "key": key, "field": field, "golden_value": None if golden is None else str(golden),
            "rule": rule, "values": json.dumps([{"value": v, "source_department": d, "updated_at": u} for v, d, u in values],
                                               ensure_ascii=False)}


def write_snapshot(
    snapshots_dir: Path,
    version: str,
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    history: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    conflicts: Sequence[Mapping[str, Any]] | None = None,
    provenance: Sequence[Mapping[str, Any]] | None = None,
    make_current: bool = True,
    sort: bool = True,
) -> Path:
    """A published snapshot folder: one sorted parquet per library, optional side files, manifest; then CURRENT."""
    path = Path(snapshots_dir) / version
    path.mkdir(parents=True)
    manifest_tables = {}
    for name, rows in tables.items():
        pq.write_table(library_table(name, rows, sort=sort), path / f"{name}.parquet")
        manifest_tables[name] = {"rows": len(rows), "parquet": f"{name}.parquet"}
    for name, rows in (history or {}).items():
        pq.write_table(library_table(name, rows, extra=HISTORY_FIELDS), path / f"{name}_history.parquet")
    if conflicts is not None:
        pq.write_table(pa.Table.from_pylist(list(conflicts), schema=CONFLICT_SCHEMA), path / "conflicts.parquet")
    if provenance is not None:
        pq.write_table(pa.Table.from_pylist(list(provenance), schema=PROVENANCE_SCHEMA), path / "provenance.parquet")
    manifest = {"version": version, "created_at": dt.datetime.now(UTC).isoformat(), "tables": manifest_tables,
                "runs": ["test-run"]}
    (path / "manifest.json").write_text(json.dumps(manifest))
    if make_current:
        switch_current(snapshots_dir, version)
    return path


def switch_current(snapshots_dir: Path, version: str) -> None:
    """Point CURRENT at ``version`` by atomic rename, as a publish does."""
    tmp = Path(snapshots_dir) / f"CURRENT.tmp.{os.getpid()}"
    tmp.write_text(version + "\n")
    os.replace(tmp, Path(snapshots_dir) / "CURRENT")

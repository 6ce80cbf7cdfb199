"""What the generator did, for tests to measure against: every injected defect, every record's true entity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Columns with few distinct values are dictionary-encoded in memory already: the Parquet writer then
# stores their dictionaries as they are instead of hashing tens of millions of values.
_CODE = pa.dictionary(pa.int32(), pa.string())
DEFECTS_SCHEMA = pa.schema([
    ("system", _CODE), ("dataset", _CODE), ("source", _CODE), ("record_id", pa.string()),
    ("line", pa.int32()), ("defect", _CODE), ("field", _CODE),
])
ENTITIES_SCHEMA = pa.schema([
    ("system", _CODE), ("dataset", _CODE), ("source", _CODE), ("record_id", pa.string()),
    ("line", pa.int32()), ("role", _CODE), ("entity_kind", _CODE), ("entity_key", pa.string()),
])


def _code(value: pa.Array | str | None, n: int) -> pa.Array:
    """A dictionary column: a constant, or an array (dictionary-encoded unless it already is)."""
    if isinstance(value, pa.Array):
        value = value if pa.types.is_dictionary(value.type) else pc.dictionary_encode(value)
        return value.cast(_CODE)
    if value is None:
        return pa.DictionaryArray.from_arrays(pa.nulls(n, pa.int32()), pa.array([], pa.string()))
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string()))


def _text(value: pa.Array) -> pa.Array:
    return value if value.type == pa.string() else value.cast(pa.string())


def _lines(line: np.ndarray | None, n: int) -> pa.Array:
    return pa.nulls(n, pa.int32()) if line is None else pa.array(np.asarray(line, dtype=np.int32))


class GroundTruth:
    """Streams ``defects.parquet`` and ``entities.parquet`` as systems are generated; keeps the defect tally."""

    def __init__(self, out_dir: Path):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.dir = out_dir
        # Dictionary encoding only where values repeat: on IDs it is tried, found useless and dropped, slowly.
        codes = [f.name for f in ENTITIES_SCHEMA if f.type == _CODE]
        self._defects = pq.ParquetWriter(out_dir / "defects.parquet", DEFECTS_SCHEMA, compression="zstd",
                                         use_dictionary=[f.name for f in DEFECTS_SCHEMA if f.type == _CODE],
                                         write_statistics=["line"])
        # Identifiers are neither repeated (no dictionary) nor searched by range (no statistics).
        self._entities = pq.ParquetWriter(out_dir / "entities.parquet", ENTITIES_SCHEMA, compression="zstd",
                                          use_dictionary=codes, write_statistics=["line"])
        self.tally: list[dict] = []
        self.entity_rows = 0

    def defects(self, system: str, dataset: str, defect: str, field: str | None, eligible: int,
                source: pa.Array | str, record_id: pa.Array, line: np.ndarray | None = None) -> None:
        """One row per injected defect; ``eligible`` is how many records could have been hit."""
        n = len(record_id)
        self.tally.append({"system": system, "dataset": dataset, "defect": defect, "field": field,
                           "eligible": int(eligible), "injected": n})
        if n:
            self._defects.write_table(pa.table([
                _code(system, n), _code(dataset, n), _code(source, n), _text(record_id), _lines(line, n),
                _code(defect, n), _code(field, n),
            ], schema=DEFECTS_SCHEMA))

    def entities(self, system: str, dataset: str, source: pa.Array | str, record_id: pa.Array, role: str,
                 kind: str, key: pa.Array, line: np.ndarray | None = None) -> None:
        """The true entity behind each record (``key`` null: the record names no entity of any library)."""
        n = len(record_id)
        self.entity_rows += n
        columns = [_code(system, n), _code(dataset, n), _code(source, n), _text(record_id), _lines(line, n),
                   _code(role, n), _code(kind, n), _text(key)]
        for start in range(0, n, 2_000_000):  # bounded row groups
            self._entities.write_table(pa.table([c.slice(start, 2_000_000) for c in columns], schema=ENTITIES_SCHEMA))

    def close(self) -> None:
        """Finish both files (again: no-op)."""
        if self._defects.is_open:
            self._defects.close()
        if self._entities.is_open:
            self._entities.close()

    def injected(self) -> dict[str, int]:
        """Injected defects per defect type."""
        out: dict[str, int] = {}
        for row in self.tally:
            out[row["defect"]] = out.get(row["defect"], 0) + row["injected"]
        return out


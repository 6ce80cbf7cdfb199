"""File drops: CSV tables split into files of bounded size, each announced by a ``.done`` marker once complete."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from samples.text import coded

# Stands in the text for bytes no encoding can produce; never occurs in generated data otherwise.
RAW_PLACEHOLDER = "\x07"
INVALID_GBK = b"\xff"  # not a GBK, GB18030 or CP936 byte in any position


@dataclass(frozen=True)
class Written:
    """What one dataset of a system became: its files (relative to the sample root) and its row count."""

    files: list[str]
    rows: int


@dataclass(frozen=True)
class Drop:
    """Where a table's files go: ``<root>/<folder>/<stem>_001.csv`` ..., at most ``rows_per_file`` rows each."""

    root: Path
    folder: str
    stem: str
    rows_per_file: int

    def name(self, k: int) -> str:
        """Relative path of the k-th file (0-based)."""
        return f"{self.folder}/{self.stem}_{k + 1:03d}.csv"

    def files(self, rows: int) -> list[str]:
        """Relative paths of the files ``rows`` rows need (at least one: a header-only file for no rows)."""
        return [self.name(k) for k in range(max(1, -(-rows // self.rows_per_file)))]

    def locate(self, rows: np.ndarray, total: int) -> tuple[pa.Array, np.ndarray]:
        """File (relative path) and line number (header is line 1) of each row number."""
        rows = np.asarray(rows, dtype=np.int64)
        return coded(self.files(total), rows // self.rows_per_file), (rows % self.rows_per_file + 2).astype(np.int32)

    def write(self, table: pa.Table, encoding: str = "utf-8") -> Written:
        """Write the files; in GBK files, ``RAW_PLACEHOLDER`` becomes an undecodable byte."""
        folder = self.root / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        header = (",".join(table.column_names) + "\n").encode(encoding)
        written = []
        for k, name in enumerate(self.files(table.num_rows)):
            part = table.slice(k * self.rows_per_file, self.rows_per_file)
            buf = pa.BufferOutputStream()
            if part.num_rows:
                pcsv.write_csv(part, buf, pcsv.WriteOptions(include_header=False, quoting_style="none"))
            body = buf.getvalue()
            if encoding.lower() != "utf-8":
                body = body.to_pybytes().decode("utf-8").encode(encoding).replace(RAW_PLACEHOLDER.encode(), INVALID_GBK)
            path = self.root / name
            tmp = path.with_name(path.name + ".part")
            with open(tmp, "wb") as fh:
                fh.write(header)
                fh.write(body)
            # Complete before it gets its final name, and only then announced.
            os.replace(tmp, path)
            path.with_name(path.name + ".done").write_bytes(b"")
            written.append(name)
        return Written(written, table.num_rows)

"""Writing HJ_RKXX into a database: SQLite (default), PostgreSQL by COPY, MariaDB by multi-row INSERT."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import sqlalchemy as sa

from samples.text import timestamps
from hub.errors import HubError

TABLE = "HJ_RKXX"
COLUMNS = ("RKBH", "SFZH", "XM", "XB", "CSRQ", "MZ", "HJDZ", "HJQH", "XZZ", "HYZK", "SWBZ", "ZXRQ", "LXDH", "GXSJ")
# (column, SQL type); GXSJ is TIMESTAMP, except on MariaDB where DATETIME avoids time-zone conversion.
TYPES = (
    ("RKBH", "BIGINT"), ("SFZH", "VARCHAR(32)"), ("XM", "VARCHAR(64)"), ("XB", "VARCHAR(2)"), ("CSRQ", "VARCHAR(8)"),
    ("MZ", "VARCHAR(16)"), ("HJDZ", "VARCHAR(255)"), ("HJQH", "VARCHAR(6)"), ("XZZ", "VARCHAR(255)"),
    ("HYZK", "VARCHAR(2)"), ("SWBZ", "VARCHAR(1)"), ("ZXRQ", "VARCHAR(8)"), ("LXDH", "VARCHAR(20)"), ("GXSJ", "TIMESTAMP"),
)
NOT_NULL = {"RKBH", "XM", "XB", "CSRQ", "GXSJ"}
LOW_CARDINALITY = {"XB", "CSRQ", "MZ", "HJQH", "HYZK", "SWBZ", "ZXRQ"}  # shared Python strings: cheaper to bind
BATCH = 100_000
ROWS_PER_INSERT = 64  # 64 x 14 parameters: under SQLite's historical limit of 999
BACKGROUND_ROWS = 300_000  # below this, a separate process costs more than it saves

Progress = Callable[[int], None]


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file."""
    return f"sqlite:///{path}"


def _ddl(quote: Callable[[str], str], mariadb: bool = False) -> list[str]:
    """Drop and create HJ_RKXX (no index yet: it is built after the load)."""
    cols = []
    for name, kind in TYPES:
        kind = "DATETIME" if mariadb and kind == "TIMESTAMP" else kind
        cols.append(f"{quote(name)} {kind}{' NOT NULL' if name in NOT_NULL else ''}{' PRIMARY KEY' if name == 'RKBH' else ''}")
    tail = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if mariadb else ""
    return [f"DROP TABLE IF EXISTS {quote(TABLE)}", f"CREATE TABLE {quote(TABLE)} ({', '.join(cols)}){tail}"]


def _index(quote: Callable[[str], str]) -> str:
    """The GXSJ index incremental extraction reads by."""
    return f"CREATE INDEX {quote('IX_' + TABLE + '_GXSJ')} ON {quote(TABLE)} ({quote('GXSJ')})"


def _as_text(table: pa.Table, plain: bool) -> pa.Table:
    """GXSJ as 'YYYY-MM-DD HH:MM:SS' text (every database parses that); dictionary columns decoded if ``plain``."""
    gxsj = table["GXSJ"].combine_chunks()
    text = timestamps(gxsj.cast(pa.timestamp("s")).cast(pa.int64()).to_numpy().astype("datetime64[s]"))
    table = table.set_column(table.column_names.index("GXSJ"), "GXSJ", text)
    if plain:
        for i, field in enumerate(table.schema):
            if pa.types.is_dictionary(field.type):
                table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table


def write_household(table: pa.Table, url: str, progress: Progress | None = None) -> None:
    """Drop and recreate HJ_RKXX at ``url`` (SQLAlchemy URL) and load ``table`` into it."""
    backend = sa.engine.make_url(url).get_backend_name()
    table = _as_text(table, plain=backend != "sqlite")
    if backend == "sqlite":
        _write_sqlite(table, Path(sa.engine.make_url(url).database), progress)
    elif backend == "postgresql":
        _write_postgres(table, url, progress)
    elif backend in {"mysql", "mariadb"}:
        _write_mariadb(table, url, progress)
    else:
        raise ValueError(f"household database must be SQLite, PostgreSQL or MariaDB, not {backend}")


class _Binder:
    """Columns of record batches as Python lists for ``executemany``; repeated values share one Python
    object, and a dictionary is converted to Python once however many batches use it."""

    def __init__(self) -> None:
        self._by_buffers: dict[tuple, np.ndarray] = {}
        self._by_value: list[tuple[pa.Array, np.ndarray]] = []

    def _words(self, dictionary: pa.Array) -> np.ndarray:
        # Batches read from one IPC file share their dictionary's buffers; HJDZ and XZZ hold equal copies.
        key = (len(dictionary), dictionary.offset, *(b.address if b else 0 for b in dictionary.buffers()))
        if key not in self._by_buffers:
            same = next((w for d, w in self._by_value if len(d) == len(dictionary) and d.equals(dictionary)), None)
            words = same if same is not None else np.array(dictionary.to_pylist() + [None], dtype=object)
            self._by_value.append((dictionary, words))
            self._by_buffers[key] = words
        return self._by_buffers[key]

    def lists(self, batch: pa.RecordBatch) -> list[list]:
        """One Python list per column of ``batch``."""
        out = []
        for name, col in zip(batch.schema.names, batch.columns):
            if pa.types.is_dictionary(col.type):
                words = self._words(col.dictionary)
                out.append(words[pc.fill_null(col.indices, len(words) - 1).to_numpy()].tolist())
            elif name in LOW_CARDINALITY:
                enc = pc.dictionary_encode(col)
                words = np.array(enc.dictionary.to_pylist() + [None], dtype=object)
                out.append(words[pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy()].tolist())
            else:
                out.append(col.to_pylist())
        return out


def _write_sqlite(table: pa.Table, path: Path, progress: Progress | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-journal")):
        stale.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # A fresh file nobody reads yet: no journal, no fsync; the index is built after the load.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        for stmt in _ddl(lambda s: f'"{s}"'):
            conn.execute(stmt)
        width = len(COLUMNS)
        one = f"({', '.join('?' * width)})"
        single = f'INSERT INTO "{TABLE}" VALUES {one}'
        # Many rows per statement: Python's per-statement overhead is paid once per ROWS_PER_INSERT rows.
        many = f'INSERT INTO "{TABLE}" VALUES {", ".join([one] * ROWS_PER_INSERT)}'
        step = width * ROWS_PER_INSERT
        binder = _Binder()
        conn.execute("BEGIN")
        for batch in table.to_batches(BATCH):
            columns = binder.lists(batch)
            full = batch.num_rows - batch.num_rows % ROWS_PER_INSERT
            flat: list = [None] * (width * full)
            for i, column in enumerate(columns):
                flat[i::width] = column[:full]  # row after row, without a tuple per row
            conn.executemany(many, (flat[i : i + step] for i in range(0, len(flat), step)))
            conn.executemany(single, zip(*(column[full:] for column in columns)))
            if progress:
                progress(batch.num_rows)
        conn.execute(_index(lambda s: f'"{s}"'))
        conn.execute("COMMIT")
    finally:
        conn.close()


def _write_postgres(table: pa.Table, url: str, progress: Progress | None) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection  # psycopg 3: COPY straight from CSV bytes
        quote = engine.dialect.identifier_preparer.quote_identifier  # always quoted: names stay upper case
        with conn.cursor() as cur:
            for stmt in _ddl(quote):
                cur.execute(stmt)
            cols = ", ".join(quote(c) for c in COLUMNS)
            with cur.copy(f"COPY {quote(TABLE)} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                for batch in table.to_batches(BATCH):
                    buf = pa.BufferOutputStream()
                    # Strings quoted, NULL unquoted-empty: the CSV form keeps '' and NULL apart.
                    pcsv.write_csv(batch, buf, pcsv.WriteOptions(include_header=False, quoting_style="needed"))
                    copy.write(buf.getvalue().to_pybytes())
                    if progress:
                        progress(batch.num_rows)
            cur.execute(_index(quote))
        conn.commit()
    finally:
        raw.close()
        engine.dispose()


def _sql_literals(col: pa.Array, numeric: bool) -> pa.Array:
    """MySQL literals: numbers as is, strings quoted and escaped, NULL."""
    if numeric:
        return col.cast(pa.string())
    escaped = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), "'", "\\'")
    return pc.if_else(pc.is_null(col), "NULL", pc.binary_join_element_wise("'", escaped, "'", ""))


def _write_mariadb(table: pa.Table, url: str, progress: Progress | None) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    raw = engine.raw_connection()
    try:
        quote = engine.dialect.identifier_preparer.quote_identifier
        cur = raw.cursor()
        for stmt in _ddl(quote, mariadb=True):
            cur.execute(stmt)
        head = f"INSERT INTO {quote(TABLE)} ({', '.join(quote(c) for c in COLUMNS)}) VALUES "
        for batch in table.to_batches(5_000):  # a statement stays well under max_allowed_packet
            parts = [_sql_literals(c, name == "RKBH") for name, c in zip(batch.schema.names, batch.columns)]
            rows = pc.binary_join_element_wise("(", *[x for p in parts for x in (p, ",")][:-1], ")", "")
            cur.execute(head + ",".join(rows.to_pylist()))
            if progress:
                progress(batch.num_rows)
        cur.execute(_index(quote))
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


class HouseholdWriter:
    """Loads HJ_RKXX, in a separate process for big tables so that the other systems are generated meanwhile.

    The process (``python -m samples.household_load``) starts before the table exists, so
    its imports overlap with building the population; ``submit`` hands it the table through an Arrow
    IPC file, ``wait`` joins it. The URL travels on its stdin, never on a command line.
    """

    def __init__(self, url: str, scratch: Path, background: bool):
        self.url, self.scratch, self.rows, self._written = url, scratch, 0, 0
        self._ipc: Path | None = None
        self._process: subprocess.Popen | None = None
        self._stderr: list[str] = []
        if background:
            root = str(Path(__file__).resolve().parents[1])  # the checkout: makes ``samples`` importable
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
            self._process = subprocess.Popen(
                [sys.executable, "-m", "samples.household_load"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            self._readers = [threading.Thread(target=self._read_progress, daemon=True),
                             threading.Thread(target=self._read_errors, daemon=True)]
            for reader in self._readers:
                reader.start()

    def _read_progress(self) -> None:
        for line in self._process.stdout:
            self._written = int(line)

    def _read_errors(self) -> None:
        self._stderr.extend(self._process.stderr)

    def submit(self, table: pa.Table) -> None:
        """Load ``table``: now, or in the background process."""
        self.rows = table.num_rows
        if self._process is None:
            try:
                write_household(table, self.url, self._count)
            except sa.exc.SQLAlchemyError as exc:
                raise HubError(f"household database load failed: {exc}") from exc
            return
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._ipc = self.scratch / f"household-{os.getpid()}.arrow"
        with pa.OSFile(str(self._ipc), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=BATCH)
        self._process.stdin.write(f"{self.url}\n{self._ipc}\n")
        self._process.stdin.close()

    def _count(self, rows: int) -> None:
        self._written += rows

    @property
    def written(self) -> int:
        """Rows loaded so far."""
        return self._written

    def wait(self) -> None:
        """Block until the load is done; raise if it failed."""
        if self._process is None:
            return
        if not self._process.stdin.closed:  # nothing submitted: let the process go
            self._process.stdin.close()
        code = self._process.wait()
        for reader in self._readers:
            reader.join()
        if self._ipc:
            self._ipc.unlink(missing_ok=True)
        if code != 0:
            raise HubError(f"household database load failed (exit code {code}):\n{''.join(self._stderr)}")

    def abort(self) -> None:
        """Stop the background process (the generation failed elsewhere)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._ipc:
            self._ipc.unlink(missing_ok=True)

"""SQL databases through SQLAlchemy: incremental by (update column, key), streamed in batches."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.exc import NoSuchTableError, OperationalError, SQLAlchemyError

from connectors.base import Connector, Extraction
from hub.errors import SchemaDrift, SourceError, SourceUnavailable

# Databases whose unquoted and quoted column names match whatever the case (PostgreSQL's quoted names do not).
_CASE_BLIND = ("sqlite", "mysql", "mariadb")


def _text(value: object) -> str | None:
    # Landing keeps department values raw, as text: types differ between department databases.
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _string_array(values: tuple) -> pa.Array:
    """A column of raw values as Arrow strings; the C fast path when they are already text."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_text(v) for v in values], pa.string())


class _CopyStream(io.RawIOBase):
    """PostgreSQL COPY output chunks as a readable byte stream for Arrow's CSV reader."""

    def __init__(self, chunks: Iterator[memoryview]):
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # Fill the whole buffer: PostgreSQL sends one message per row, Arrow wants megabytes.
        view, filled = memoryview(buffer).cast("B"), 0
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n], self._pending, filled = self._pending[:n], self._pending[n:], n
        while filled < len(view):
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            n = len(chunk)
            if filled + n <= len(view):
                view[filled:filled + n] = chunk
                filled += n
            else:
                room = len(view) - filled
                view[filled:], self._pending, filled = chunk[:room], bytes(chunk[room:]), len(view)
        return filled


class SqlConnector(Connector):
    """A table in a department database; rows ordered by (watermark column, key) so no tie is lost."""

    kind = "sql"

    def __init__(self, url: str, table: str, key: str, watermark: str | None, columns: list[str], batch_size: int = 100_000,
                 connect_timeout: int = 10):
        self.table, self.key, self.watermark_column = table, key, watermark
        self.columns = list(dict.fromkeys([key, *([watermark] if watermark else []), *columns]))
        self.batch_size = batch_size
        connect_args = {"connect_timeout": connect_timeout} if not url.startswith("sqlite") else {"timeout": connect_timeout}
        self.engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)

    def _query(self, since: str | None, full: bool, ordered: bool = True) -> tuple[sa.TextClause, dict]:
        q = self.engine.dialect.identifier_preparer.quote
        cols = ", ".join(q(c) for c in self.columns)
        order = [self.watermark_column, self.key] if self.watermark_column else [self.key]
        where, params = "", {}
        if since and not full:
            mark = json.loads(since)
            if self.watermark_column:
                where = f"WHERE {q(self.watermark_column)} > :w OR ({q(self.watermark_column)} = :w AND {q(self.key)} > :k)"
                params = {"w": mark["w"], "k": mark["k"]}
            else:
                where, params = f"WHERE {q(self.key)} > :k", {"k": mark["k"]}
        sql = f"SELECT {cols} FROM {q(self.table)} {where}"
        if ordered:
            sql += f" ORDER BY {', '.join(q(c) for c in order)}"
        else:  # only the last (watermark, key) is wanted: the highest, from the source's own ordering
            sql += f" ORDER BY {', '.join(q(c) + ' DESC' for c in order)} LIMIT 1"
        return sa.text(sql), params

    def extract(self, since: str | None, *, full: bool = False) -> Extraction:
        """Rows after the watermark ``since`` (a JSON text ``{"w": ..., "k": ...}``), or all when ``full``."""
        extraction = Extraction(batches=iter(()), since=None if full else since, watermark=since)
        extraction.batches = self._batches(extraction, full)
        return extraction

    def _check_columns(self) -> None:
        """SchemaDrift naming every configured column the table lacks, from the database's own catalogue."""
        # Checked first: SQLite reads a quoted unknown name as a string literal (every name "XM"), MariaDB
        # reports it as an OperationalError that looks like an outage, and PostgreSQL's COPY as a driver error.
        dialect = self.engine.dialect.name
        try:
            present = [c["name"] for c in sa.inspect(self.engine).get_columns(self.table)]
        except NoSuchTableError:
            present = []
        if not present:
            raise SchemaDrift(f"{dialect} source: table {self.table} does not exist (or has no columns we may read)")
        fold = str.casefold if dialect in _CASE_BLIND else str
        known = {fold(c) for c in present}
        missing = [c for c in self.columns if fold(c) not in known]
        if missing:
            raise SchemaDrift(f"{dialect} source: table {self.table} has no column {', '.join(missing)} "
                              f"(renamed or dropped? its columns: {', '.join(present)}); fix the source's mapping")

    def _batches(self, extraction: Extraction, full: bool) -> Iterator[pa.RecordBatch]:
        try:
            self._check_columns()
            if self.engine.dialect.name == "postgresql":
                yield from self._copy_batches(extraction, full)
            else:
                yield from self._ordered_batches(extraction, full)
        except OperationalError as exc:
            raise SourceUnavailable(f"{self.engine.dialect.name} source {self.table} unreachable: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise SourceError(f"{self.engine.dialect.name} source {self.table} failed: {exc}") from exc
        except self.engine.dialect.loaded_dbapi.Error as exc:  # COPY runs on the driver's own cursor, unwrapped
            kind = SourceUnavailable if isinstance(exc, self.engine.dialect.loaded_dbapi.OperationalError) else SourceError
            raise kind(f"{self.engine.dialect.name} source {self.table} failed: {type(exc).__name__}: {exc}") from exc

    def _ordered_batches(self, extraction: Extraction, full: bool) -> Iterator[pa.RecordBatch]:
        sql, params = self._query(extraction.since, full)
        for batch in self._fetch_batches(sql, params):
            last = batch.num_rows - 1
            mark = {"k": batch.column(0)[last].as_py()}
            if self.watermark_column:
                mark["w"] = batch.column(1)[last].as_py()
            yield batch
            # Advanced only after the batch was consumed: a consumer that stops early keeps the old mark.
            extraction.watermark = json.dumps(mark)

    def _fetch_batches(self, sql: sa.TextClause, params: dict) -> Iterator[pa.RecordBatch]:
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=self.batch_size).execute(sql, params)
            while rows := result.fetchmany(self.batch_size):
                yield pa.RecordBatch.from_arrays([_string_array(col) for col in zip(*rows)], names=self.columns)

    def _copy_batches(self, extraction: Extraction, full: bool) -> Iterator[pa.RecordBatch]:
        # PostgreSQL's COPY streams CSV at wire speed and Arrow parses it in C: no Python object per
        # value. Unordered (the sort would cost PostgreSQL a third more), so the new watermark is read
        # in the same repeatable-read snapshot and given only once every batch has been consumed.
        sql, params = self._query(extraction.since, full, ordered=False)
        last_sql, _ = self._query(extraction.since, full, ordered=False)
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            conn.execute(sa.text("SELECT 1"))  # takes the snapshot both statements below share
            unordered = str(sql.bindparams(**params).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            unordered = unordered.rsplit(" ORDER BY ", 1)[0]
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cur, cur.copy(f"COPY ({unordered}) TO STDOUT WITH (FORMAT csv)") as copy:
                chunks = iter(copy)
                first = next(chunks, None)
                if first is not None:  # nothing changed: Arrow refuses an empty CSV
                    reader = pacsv.open_csv(
                        io.BufferedReader(_CopyStream(itertools.chain([first], chunks)), buffer_size=1 << 20),
                        read_options=pacsv.ReadOptions(column_names=self.columns, block_size=1 << 24),
                        parse_options=pacsv.ParseOptions(newlines_in_values=True),
                        convert_options=pacsv.ConvertOptions(
                            column_types={c: pa.string() for c in self.columns},
                            strings_can_be_null=True, quoted_strings_can_be_null=False),
                    )
                    for batch in reader:
                        if batch.num_rows:
                            yield batch
            if first is None:
                return
            row = conn.execute(last_sql, params).one()
        mark = {"k": _text(row[0])}
        if self.watermark_column:
            mark["w"] = _text(row[1])
        extraction.watermark = json.dumps(mark)

    def close(self) -> None:
        self.engine.dispose()

"""SQL databases through SQLAlchemy: incremental by (update column, key), streamed in batches."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from connectors.base import Connector, Extraction
from hub.errors import SourceError, SourceUnavailable


def _text(value: object) -> str | None:
    # Landing keeps department values raw, as text: types differ between department databases.
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


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

    def _query(self, since: str | None, full: bool) -> tuple[sa.TextClause, dict]:
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
        sql = f"SELECT {cols} FROM {q(self.table)} {where} ORDER BY {', '.join(q(c) for c in order)}"
        return sa.text(sql), params

    def extract(self, since: str | None, *, full: bool = False) -> Extraction:
        """Rows after the watermark ``since`` (a JSON text ``{"w": ..., "k": ...}``), or all when ``full``."""
        extraction = Extraction(batches=iter(()), since=None if full else since, watermark=since)
        extraction.batches = self._batches(extraction, full)
        return extraction

    def _batches(self, extraction: Extraction, full: bool) -> Iterator[pa.RecordBatch]:
        sql, params = self._query(extraction.since, full)
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=self.batch_size).execute(sql, params)
                while rows := result.fetchmany(self.batch_size):
                    columns = list(zip(*rows))
                    batch = pa.RecordBatch.from_arrays(
                        [pa.array([_text(v) for v in col], pa.string()) for col in columns], names=self.columns
                    )
                    last = rows[-1]
                    mark = {"k": last[0]}
                    if self.watermark_column:
                        mark["w"] = _text(last[1])
                    yield batch
                    # Advanced only after the batch was consumed: a consumer that stops early keeps the old mark.
                    extraction.watermark = json.dumps(mark, default=str)
        except OperationalError as exc:
            raise SourceUnavailable(f"{self.engine.dialect.name} source {self.table} unreachable: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise SourceError(f"{self.engine.dialect.name} source {self.table} failed: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

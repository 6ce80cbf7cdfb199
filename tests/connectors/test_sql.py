"""The SQL connector against SQLite and the real PostgreSQL and MariaDB servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from connectors.sql import SqlConnector
from hub.errors import SourceUnavailable
from tests.conftest import MARIADB_URL, POSTGRES_URL
from tests.household import COLUMNS, create_table, insert, person_row

SAME_TIME = dt.datetime(2026, 2, 1, 12, 0, 0)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request, tmp_path):
    """Each database kind the hub reads departments from; the servers must be up (no skipping)."""
    return {"sqlite": f"sqlite:///{tmp_path / 'h.sqlite'}", "postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}[request.param]


def _connector(url: str, batch_size: int = 7) -> SqlConnector:
    return SqlConnector(url, "HJ_RKXX", "RKBH", "GXSJ", COLUMNS[1:], batch_size=batch_size)


def _drain(extraction) -> pa.Table:
    batches = list(extraction.batches)
    return pa.Table.from_batches(batches) if batches else pa.table({})


def test_incremental_extraction_loses_no_tie(db_url):
    engine = create_table(db_url)
    insert(engine, [person_row(i, updated=SAME_TIME) for i in range(1, 11)])
    first = _connector(db_url).extract(None)
    whole = _drain(first)
    assert sorted(int(v) for v in whole.column("RKBH").to_pylist()) == list(range(1, 11))
    assert int(json.loads(first.watermark)["k"]) == 10

    # Rows committed later with the very same update time: a watermark on time alone would lose them.
    insert(engine, [person_row(i, updated=SAME_TIME) for i in range(11, 16)])
    insert(engine, [person_row(i, updated=SAME_TIME + dt.timedelta(hours=1)) for i in range(16, 20)])
    second = _connector(db_url).extract(first.watermark)
    new = _drain(second)
    assert sorted(int(v) for v in new.column("RKBH").to_pylist()) == list(range(11, 20))

    third = _connector(db_url).extract(second.watermark)
    assert _drain(third).num_rows == 0
    assert third.watermark == second.watermark


def test_full_reextract_ignores_the_watermark(db_url):
    engine = create_table(db_url)
    insert(engine, [person_row(i) for i in range(1, 11)])
    first = _connector(db_url).extract(None)
    _drain(first)
    again = _connector(db_url).extract(first.watermark, full=True)
    assert _drain(again).num_rows == 10


def test_values_land_as_text_whatever_the_database(db_url):
    engine = create_table(db_url)
    insert(engine, [person_row(1), person_row(2, sfzh=None)])
    table = _drain(_connector(db_url).extract(None))
    assert all(pa.types.is_string(f.type) for f in table.schema)
    assert table.column("SFZH").to_pylist()[1] is None
    assert table.column("GXSJ").to_pylist()[0].startswith("2026-01-01 00:00:01")


def test_watermark_only_advances_for_consumed_batches(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    insert(create_table(url), [person_row(i) for i in range(1, 21)])
    extraction = _connector(url, batch_size=5).extract(None)
    next(extraction.batches)
    assert extraction.watermark is None  # the first batch is not yet known to be landed
    next(extraction.batches)
    assert int(json.loads(extraction.watermark)["k"]) == 5
    extraction.batches.close()


def test_unreachable_source_is_a_clear_error():
    connector = SqlConnector("postgresql+psycopg://nobody@127.0.0.1:1/none", "HJ_RKXX", "RKBH", "GXSJ", ["SFZH"],
                             connect_timeout=2)
    with pytest.raises(SourceUnavailable, match="unreachable"):
        list(connector.extract(None).batches)

"""The SQL connector against SQLite and the real PostgreSQL and MariaDB servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pyarrow as pa
import pytest
import sqlalchemy as sa

from connectors.sql import SqlConnector
from hub.errors import SchemaDrift, SourceUnavailable
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


@pytest.fixture
def renamed_table(db_url):
    """A household table of its own (other tests share the servers) whose XM column was renamed to XINGMING."""
    table = f"HJ_RKXX_{uuid.uuid4().hex[:8].upper()}"
    engine = sa.create_engine(db_url)
    meta = sa.MetaData()
    sa.Table(table, meta, sa.Column("RKBH", sa.BigInteger, primary_key=True, autoincrement=False),
             *(sa.Column(c, sa.String(255)) for c in COLUMNS[1:-1]), sa.Column("GXSJ", sa.DateTime))
    meta.create_all(engine)
    rows = [person_row(i) for i in range(1, 4)]
    with engine.begin() as conn:
        conn.execute(meta.tables[table].insert(), rows)
        q = engine.dialect.identifier_preparer.quote
        conn.execute(sa.text(f"ALTER TABLE {q(table)} RENAME COLUMN {q('XM')} TO {q('XINGMING')}"))
    yield db_url, table
    meta.drop_all(engine)
    engine.dispose()


def test_a_renamed_column_fails_the_extraction_naming_column_and_table(renamed_table):
    url, table = renamed_table
    connector = SqlConnector(url, table, "RKBH", "GXSJ", COLUMNS[1:])
    extraction = connector.extract(None)
    with pytest.raises(SchemaDrift) as drift:
        list(extraction.batches)  # SQLite would otherwise read "XM" as a string and land it as every name
    message = str(drift.value)
    assert not isinstance(drift.value, SourceUnavailable)  # not an outage: a retry will not bring XM back
    assert "XM" in message and table in message and "XINGMING" in message  # what is there, to fix the mapping
    assert extraction.watermark is None
    connector.close()


def test_a_missing_table_is_a_clear_error(db_url):
    connector = SqlConnector(db_url, "NO_SUCH_TABLE_X1", "RKBH", "GXSJ", ["XM"])
    with pytest.raises(SchemaDrift, match="NO_SUCH_TABLE_X1"):
        list(connector.extract(None).batches)
    connector.close()

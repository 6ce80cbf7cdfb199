"""Analysts: masked views by default, raw tables only with a stated reason, every query logged."""

from __future__ import annotations

import duckdb
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from hub import jobs
from hub.cli import app
from hub.db import metadata_engine
from warehouse.analyst import AnalystQuery, open_analyst
from tests.household import create_table, insert, person_row


@pytest.fixture
def published(settings):
    settings.samples_dir.mkdir(parents=True)
    insert(create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}"), [person_row(i) for i in range(1, 11)])
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    jobs.reconcile_and_publish("run-1")
    return settings


def test_masked_views_reduce_ids_to_region_and_birth_year_and_hide_what_is_not_shareable(published):
    session = open_analyst(published.snapshots_dir, metadata_engine(), analyst="ana")
    rows = [tuple(r.values()) for r in session.query(
        "SELECT id_number, name, household_region FROM population ORDER BY id_number").to_pylist()]
    assert len(rows) == 10
    assert all(len(i) == 10 and i.startswith("110105") for i, _n, _r in rows)  # region + birth year
    assert all(n.endswith("**") and len(n) == 3 for _i, n, _r in rows)
    assert "phone" not in session.query("SELECT * FROM population LIMIT 1").column_names  # not shareable
    for escape in ("SELECT * FROM snapshot.population", "SELECT * FROM read_parquet('*.parquet')",
                   "SET enable_external_access = true"):
        with pytest.raises(duckdb.Error):
            session.query(escape)


def test_raw_role_needs_a_reason_and_every_query_is_logged(published):
    with pytest.raises(PermissionError, match="reason"):
        open_analyst(published.snapshots_dir, metadata_engine(), raw=True)
    raw = open_analyst(published.snapshots_dir, metadata_engine(), raw=True, reason="case 2026-17", analyst="ana")
    full = raw.query("SELECT min(id_number) AS first FROM population").column("first")[0].as_py()
    assert len(full) == 18
    with Session(metadata_engine()) as session:
        logged = [(q.analyst, q.role, q.reason, q.rows) for q in session.query(AnalystQuery).order_by(AnalystQuery.id)]
    assert logged[-1] == ("ana", "raw", "case 2026-17", 1)


def test_hub_sql_prints_csv(published):
    result = CliRunner().invoke(app, ["sql", "SELECT count(*) AS people FROM population", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-2:] == ["people", "10"]

"""Ingestion DAGs run end to end through Airflow's own test runner, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag

from samples import generate_samples
from hub.airflow_env import DAGS_FOLDER, ensure_database
from hub.db import metadata_engine
from warehouse.landing import landed_runs
from warehouse.runs import get_watermark
from tests.conftest import MARIADB_URL, POSTGRES_URL

AIRFLOW_URI = {  # the same servers, as Airflow Connection URIs
    "sqlite": None,
    "postgresql": POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://"),
    "mariadb": MARIADB_URL.replace("mysql+pymysql://", "mysql://"),
}


def _run(dag_id: str):
    ensure_database()
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return bag.dags[dag_id].test()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_household_dag_lands_and_stages_every_row(kind, settings, monkeypatch):
    url = {"sqlite": None, "postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}[kind]
    generate_samples(settings.samples_dir, people=300, seed=7, household_url=url)
    if AIRFLOW_URI[kind]:
        monkeypatch.setenv("AIRFLOW_CONN_HUB_HOUSEHOLD", AIRFLOW_URI[kind])
    source_url = url or f"sqlite:///{settings.samples_dir / 'household.sqlite'}"
    with sa.create_engine(source_url).connect() as conn:
        (expected,) = conn.exec_driver_sql('SELECT count(*) FROM HJ_RKXX' if kind == "mariadb"
                                           else 'SELECT count(*) FROM "HJ_RKXX"').one()

    run = _run("ingest_household")
    assert str(getattr(run.state, "value", run.state)) == "success"
    landed = landed_runs(settings.landing_dir, "household")
    assert len(landed) == 1
    run_dir, manifest = landed[0]
    assert manifest.rows == expected == pq.read_metadata(run_dir / manifest.file).num_rows
    assert get_watermark(metadata_engine(), "household") == manifest.watermark

    again = _run("ingest_household")  # nothing changed at the source: nothing new lands
    assert str(getattr(again.state, "value", again.state)) == "success"
    assert sum(m.rows for _d, m in landed_runs(settings.landing_dir, "household")) == expected


def test_unreachable_source_fails_after_retries_and_keeps_the_watermark(settings, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HUB_HOUSEHOLD", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("HUB_TASK_RETRIES", "1")
    monkeypatch.setenv("HUB_TASK_RETRY_DELAY_SECONDS", "0")
    from hub.settings import get_settings

    get_settings.cache_clear()
    run = _run("ingest_household")
    assert str(getattr(run.state, "value", run.state)) == "failed"
    land = next(ti for ti in run.get_task_instances() if ti.task_id == "land")
    assert str(getattr(land.state, "value", land.state)) == "failed"
    assert land.try_number == 2  # the first try and one retry
    assert get_watermark(metadata_engine(), "household") is None
    assert landed_runs(settings.landing_dir, "household") == []

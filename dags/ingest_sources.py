"""One ingestion DAG per configured source: land what changed since the watermark, then stage it."""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import dag, task

from dags.assets import staged
from hub import jobs
from hub.airflow_env import WAREHOUSE_POOL
from hub.settings import get_settings

DEFAULT_ARGS = {
    "retries": get_settings().task_retries,
    "retry_delay": dt.timedelta(seconds=get_settings().task_retry_delay_seconds),
    "retry_exponential_backoff": True,
    "execution_timeout": dt.timedelta(hours=2),
}


def notify_failure(context) -> None:
    """Failure callback: the task log already holds the error; this line makes it greppable."""
    ti = context.get("ti")
    print(f"HUB-ALERT ingestion failed: dag={ti.dag_id if ti else '?'} task={ti.task_id if ti else '?'}")


def ingestion_dag(source_name: str, schedule: str | None):
    """The DAG that lands and stages ``source_name``."""

    @dag(
        dag_id=f"ingest_{source_name}",
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "on_failure_callback": notify_failure},
        tags=["hub", "ingestion", source_name],
    )
    def ingest():
        @task
        def land(run_id: str | None = None) -> dict:  # Airflow fills run_id from the task context
            manifest = jobs.ingest(source_name, run_id or "manual")
            return {"rows": manifest.rows, "watermark": manifest.watermark}

        @task(outlets=[staged(source_name)], pool=WAREHOUSE_POOL)
        def stage(_landed: dict) -> dict:
            result = jobs.stage(source_name)
            return {"staged": result.staged, "quarantined": result.quarantined}

        stage(land())

    return ingest()


for _name, _source in jobs.sources().items():
    globals()[f"ingest_{_name}"] = ingestion_dag(_name, _source.schedule)

"""Reconcile and publish: scheduled on the staged data of every source, not on the clock."""

from __future__ import annotations

import datetime as dt
import operator
from functools import reduce

import pendulum
from airflow.sdk import dag, task

from dags.assets import published, staged
from hub import jobs
from hub.airflow_env import WAREHOUSE_POOL


@dag(
    dag_id="reconcile_publish",
    # Any source's newly staged data triggers a publish (assets OR-ed, not AND-ed).
    schedule=reduce(operator.or_, [staged(name) for name in jobs.sources()]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=1), "execution_timeout": dt.timedelta(hours=2)},
    tags=["hub", "publish"],
)
def reconcile_publish():
    @task(outlets=[published()], pool=WAREHOUSE_POOL)
    def reconcile_and_publish(run_id: str | None = None) -> dict:  # run_id comes from the task context
        result = jobs.reconcile_and_publish(run_id or "manual")
        return {"version": result.version, "tables": result.tables}

    reconcile_and_publish()


reconcile_publish()

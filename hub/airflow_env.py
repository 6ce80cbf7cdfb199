"""Airflow on the embedded defaults: its home under the data directory, our DAGs, a one-writer pool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.errors import PipelineError
from hub.settings import PROJECT_ROOT, Settings, get_settings

DAGS_FOLDER = PROJECT_ROOT / "dags"
WAREHOUSE_POOL = "hub_warehouse"  # one slot: the working DuckDB file has one writer at a time


def airflow_environment(settings: Settings | None = None) -> dict[str, str]:
    """The environment variables that point Airflow at the hub (set only where not set already)."""
    settings = settings or get_settings()
    home = settings.airflow_home
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "HUB_DATA_DIR": str(settings.data_dir),
    }


def configure(settings: Settings | None = None) -> Path:
    """Export the Airflow environment into this process; call before importing airflow."""
    env = airflow_environment(settings)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return Path(os.environ["AIRFLOW_HOME"])


def _airflow(*args: str) -> None:
    cmd = [sys.executable, "-m", "airflow", *args]
    done = subprocess.run(cmd, env=os.environ.copy(), capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"airflow {' '.join(args)} failed: {done.stderr[-2000:]}")


def ensure_database(settings: Settings | None = None) -> None:
    """Create or migrate Airflow's metadata database and its pool, once per Airflow home."""
    home = configure(settings)
    marker = home / ".hub-initialised"
    if marker.exists():
        return
    _airflow("db", "migrate")
    _airflow("pools", "set", WAREHOUSE_POOL, "1", "Writers of the hub's working DuckDB file")
    marker.write_text("ok\n")


def run_dag(dag_id: str) -> str:
    """Run one DAG to the end with Airflow's own test runner; return its final state."""
    ensure_database()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        raise PipelineError(f"DAG import errors: {bag.import_errors}")
    if dag_id not in bag.dags:
        raise PipelineError(f"no DAG {dag_id!r}; known: {', '.join(sorted(bag.dags))}")
    run = bag.dags[dag_id].test()
    state = str(getattr(run.state, "value", run.state))
    if state != "success":
        raise PipelineError(f"DAG {dag_id} ended {state}")
    return state

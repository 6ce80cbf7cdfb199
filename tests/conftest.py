"""Test isolation: every test gets its own hub data directory; Airflow gets one home per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("HUB_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def pytest_configure(config):
    # Airflow reads its configuration once, at first import: point it at a throw-away home first.
    home = Path(tempfile.mkdtemp(prefix="hub-airflow-"))
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent.parent / "dags")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def _clear_caches() -> None:
    from connectors.config import configured_sources
    from hub.db import engine_for
    from hub.settings import get_settings

    get_settings.cache_clear()
    configured_sources.cache_clear()
    engine_for.cache_clear()


@pytest.fixture(autouse=True)
def hub_env(tmp_path, monkeypatch):
    """A fresh data directory per test, with every HUB_* variable from outside removed."""
    for key in list(os.environ):
        if key.startswith("HUB_") and not key.startswith("HUB_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    _clear_caches()
    yield tmp_path / "data"
    _clear_caches()


@pytest.fixture
def settings(hub_env):
    from hub.settings import get_settings

    return get_settings()

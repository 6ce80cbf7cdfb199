"""Credentials by name: Airflow Connections, or the environment with Airflow's own naming."""

from __future__ import annotations

import os

from hub.errors import ConfigError


def connection_uri(conn_id: str) -> str:
    """The URI of connection ``conn_id``: ``AIRFLOW_CONN_<ID>`` first, then Airflow's connection store."""
    env_name = "AIRFLOW_CONN_" + conn_id.upper()
    if os.environ.get(env_name):
        return os.environ[env_name]
    try:  # inside an Airflow task the SDK resolves Connections from its secrets backends
        from airflow.sdk import Connection

        return Connection.get(conn_id).get_uri()
    except Exception as exc:  # noqa: BLE001 - any failure means the name is not configured
        raise ConfigError(f"connection {conn_id!r} is not configured (set {env_name} or an Airflow Connection)") from exc

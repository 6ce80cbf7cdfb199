"""Build the connector a source configuration names."""

from __future__ import annotations

from pathlib import Path

from connectors.base import Connector
from connectors.config import SourceConfig
from connectors.credentials import connection_uri
from hub.errors import ConfigError


def source_url(source: SourceConfig, samples_dir: Path) -> str:
    """The source's location: its Connection's URI when configured, else the embedded default URL."""
    if source.connection:
        try:
            return connection_uri(source.connection)
        except ConfigError:
            if not source.url:
                raise
    return source.location(samples_dir) or ""


def _sqlalchemy_url(uri: str) -> str:
    # Airflow Connection URIs name the database kind, SQLAlchemy wants the driver too.
    for prefix, driver in (("postgres://", "postgresql+psycopg://"), ("postgresql://", "postgresql+psycopg://"),
                           ("mysql://", "mysql+pymysql://")):
        if uri.startswith(prefix):
            return driver + uri[len(prefix):]
    return uri


def build_connector(source: SourceConfig, samples_dir: Path) -> Connector:
    """The connector for ``source``."""
    if source.kind == "sql":
        from connectors.sql import SqlConnector

        return SqlConnector(_sqlalchemy_url(source_url(source, samples_dir)), source.table or "", source.key,
                            source.watermark, source.columns, source.batch_size)
    if source.kind == "rest":
        from connectors.rest_config import from_config as rest_from_config

        return rest_from_config(source, samples_dir)
    if source.kind == "file_drop":
        from connectors.file_drop import from_config as file_drop_from_config

        return file_drop_from_config(source, samples_dir)
    raise ConfigError(f"source {source.name!r}: no connector of kind {source.kind!r}")

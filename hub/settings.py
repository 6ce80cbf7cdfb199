"""One settings object for the whole hub, read from ``HUB_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The checkout's root: embedded defaults keep all state in ``<checkout>/data``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything an operator may configure, with embedded defaults that run on one machine."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="Root of all hub state.")
    metadata_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the operational metadata database (default: SQLite in data_dir)."
    )
    sources_file: Path | None = Field(default=None, description="Source configuration (default: the sample systems').")
    api_host: str = "127.0.0.1"
    api_port: int = 8750
    snapshots_keep: int = Field(default=5, ge=1, description="Published snapshots kept besides CURRENT.")
    signature_window_seconds: int = Field(default=300, ge=1, description="Allowed age of a request's `created`.")
    task_retries: int = Field(default=2, ge=0, description="Retries of each Airflow task.")
    task_retry_delay_seconds: float = Field(default=60, ge=0, description="First delay before a task retry.")
    warehouse_memory_limit: str = Field(
        default="6GB", description="DuckDB memory limit of the pipeline's working database; beyond it DuckDB spills to disk."
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def metadata_database_url(self) -> str:
        """The metadata URL, defaulting to an SQLite file in the data directory."""
        return self.metadata_url or f"sqlite:///{self.data_dir / 'metadata.db'}"

    @property
    def samples_dir(self) -> Path:
        return self.data_dir / "samples"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def warehouse_dir(self) -> Path:
        return self.data_dir / "warehouse"

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def airflow_home(self) -> Path:
        return self.data_dir / "airflow"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return Settings()

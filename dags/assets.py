"""The Airflow Assets that connect ingestion to reconcile-and-publish: data, not the clock."""

from __future__ import annotations

from airflow.sdk import Asset


def staged(source: str) -> Asset:
    """Emitted when a source's new landings are staged."""
    return Asset(name=f"staged_{source}", uri=f"hub://staging/{source}")


def published() -> Asset:
    """Emitted when a new snapshot is current."""
    return Asset(name="published_snapshot", uri="hub://snapshots/current")

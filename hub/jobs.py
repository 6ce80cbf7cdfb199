"""The pipeline's jobs: each a plain function composing connectors, quality and warehouse.

This module sits on top, beside the command line: the DAGs, the CLI and the tests call these same
functions, so a step behaves the same wherever it runs.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

from connectors.config import SourceConfig, configured_sources
from connectors.mapping import to_canonical
from connectors.registry import build_connector
from hub.db import metadata_engine
from hub.settings import get_settings
from quality.rows import check_rows
from schemas import library
from warehouse.landing import LandingManifest, land
from warehouse.publish import PublishResult, publish
from warehouse.reconcile import build_golden
from warehouse.runs import record_run
from warehouse.staging import StageResult, stage_pending
from warehouse.work import open_work


def source(name: str) -> SourceConfig:
    """The configured source called ``name``."""
    return configured_sources(str(get_settings().sources_file) if get_settings().sources_file else None)[name]


def sources() -> dict[str, SourceConfig]:
    """Every configured source."""
    settings = get_settings()
    return configured_sources(str(settings.sources_file) if settings.sources_file else None)


def ingest(source_name: str, run_id: str, *, full: bool = False, progress=None) -> LandingManifest:
    """Extract one source since its watermark and land it."""
    settings = get_settings()
    cfg = source(source_name)
    return land(cfg.name, build_connector(cfg, settings.samples_dir), run_id, settings.landing_dir,
                metadata_engine(), full=full, progress=progress)


def stage(source_name: str) -> StageResult:
    """Map, check and stage every landing of one source not staged yet; failures go to quarantine."""
    settings = get_settings()
    cfg = source(source_name)
    lib = library(cfg.library)
    mapper = lambda raw, run_id, at: to_canonical(raw, cfg, run_id, at)  # noqa: E731
    with open_work(settings.warehouse_dir) as conn:
        result = stage_pending(conn, cfg.name, lib.name, settings.landing_dir, mapper, partial(check_rows, lib))
    record_run(metadata_engine(), f"stage-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}", "stage", cfg.name, "success",
               result.staged, detail=f"quarantined={result.quarantined}")
    return result


def reconcile_and_publish(run_id: str) -> PublishResult:
    """Build golden records for every library with staged data and publish them as a new snapshot."""
    settings = get_settings()
    libraries = sorted({cfg.library for cfg in sources().values()})
    with open_work(settings.warehouse_dir) as conn:
        for name in libraries:
            build_golden(conn, name)
        runs = [r for (r,) in conn.execute("SELECT DISTINCT run_id FROM staged_landings").fetchall()]
        result = publish(conn, settings.snapshots_dir, runs, keep=settings.snapshots_keep)
    record_run(metadata_engine(), run_id, "publish", result.version, "success",
               sum(t["rows"] for t in result.tables.values()))
    return result

"""The pipeline's jobs: each a plain function composing connectors, quality and warehouse.

This module sits on top, beside the command line: the DAGs, the CLI and the tests call these same
functions, so a step behaves the same wherever it runs.
"""

from __future__ import annotations

import datetime as dt
import logging

from connectors.config import SourceConfig, configured_sources
from connectors.mapping import to_canonical
from connectors.registry import build_connector
from hub.db import metadata_engine
from hub.settings import get_settings
from hub.errors import QualityGateFailed
from quality.gate import SourceGate, assert_publishable
from quality.tables import check_tables
from warehouse.conflicts import apply_resolutions
from warehouse.history import record_history
from warehouse.identity import resolve_identities
from warehouse.landing import LandingManifest, land
from warehouse.life_events import apply_life_events
from warehouse.publish import PublishResult, publish
from warehouse.reconcile import build_golden
from warehouse.runs import record_run
from warehouse.staging import StageResult, stage_pending
from warehouse.work import open_work

log = logging.getLogger(__name__)


def source(name: str) -> SourceConfig:
    """The configured source called ``name``."""
    return sources()[name]


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
    """Map, check and stage every landing of one source not staged yet; failures go to quarantine.

    A landing that breaks a whole-batch rule is held back (with its reasons) instead of staged; the
    next publication is then refused until a steward releases or rejects it.
    """
    settings = get_settings()
    cfg = source(source_name)
    mapper = lambda raw, run_id, at: to_canonical(raw, cfg, run_id, at)  # noqa: E731
    with open_work(settings.warehouse_dir) as conn:
        result = stage_pending(conn, cfg.name, cfg.delivers, settings.landing_dir, mapper, SourceGate(cfg),
                               parts=len(cfg.record_fields()))
    detail = f"quarantined={result.quarantined}" + (f" released={result.released}" if result.released else "")
    if result.held:
        detail += "; held: " + "; ".join(f"{run}: {' / '.join(reasons)}" for run, reasons in result.held.items())
    record_run(metadata_engine(), f"stage-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}", "stage", cfg.name,
               "held" if result.held else "success", result.staged, detail=detail)
    return result


def reconcile_and_publish(run_id: str) -> PublishResult:
    """Resolve identities, build golden records, apply life events, run the shared-table suites, record history, publish.

    Refused (``QualityGateFailed``, the previous snapshot keeps serving) while a batch is held back
    or when a golden table breaks a blocking rule. The quality report is written either way.
    """
    settings = get_settings()
    libraries = sorted({cfg.library for cfg in sources().values()})
    try:
        with open_work(settings.warehouse_dir) as conn:
            assert_publishable(conn)
            for name in libraries:
                # Records without a usable key join their entity before the golden records are built.
                resolve_identities(conn, name, run_id=run_id)
            for name in libraries:
                masters = [n for n, cfg in sources().items() if cfg.library == name and cfg.role == "master"]
                build_golden(conn, name, masters)
                apply_resolutions(conn, name)  # stewards' decisions on conflicts outrank the precedence rule
            # Life events cross libraries (a deregistered holder ends its licences), so they come after all of them.
            apply_life_events(conn, dt.date.today())
            tables = check_tables(conn, run_id, libraries)
            if tables.blocking:
                raise QualityGateFailed(tables.blocking)
            # Only data that passed the gate becomes history; one reconcile time for every library.
            reconciled_at = dt.datetime.now(dt.UTC)
            for name in libraries:
                record_history(conn, name, reconciled_at)
            runs = [r for (r,) in conn.execute("SELECT DISTINCT run_id FROM staged_landings").fetchall()]
            result = publish(conn, settings.snapshots_dir, runs, keep=settings.snapshots_keep)
    except Exception as exc:
        refused = isinstance(exc, QualityGateFailed)
        record_run(metadata_engine(), run_id, "publish", "quality gate" if refused else "snapshot",
                   "refused" if refused else "failed", 0, detail=str(exc))
        quality_report(run_id)  # the stewards see why, whatever stopped the publication
        raise
    record_run(metadata_engine(), run_id, "publish", result.version, "success",
               sum(t["rows"] for t in result.tables.values()))
    quality_report(run_id)
    return result


def quality_report(run_id: str, *, data_docs: bool = True):  # type: ignore[no-untyped-def]
    """Write the stewards' quality page (HTML and JSON) and the Great Expectations Data Docs for this run."""
    from quality.report import write_report

    settings = get_settings()
    try:
        with open_work(settings.warehouse_dir) as conn:
            return write_report(conn, settings, run_id, sources(), data_docs=data_docs)
    except Exception:  # noqa: BLE001 - a report failure must not hide the step's own outcome
        log.exception("quality report for run %s could not be written", run_id)
        return None

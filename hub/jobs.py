"""The pipeline's jobs: each a plain function composing connectors, quality and warehouse.

This module sits on top, beside the command line: the DAGs, the CLI and the tests call these same
functions, so a step behaves the same wherever it runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from connectors.config import SourceConfig, configured_sources
from connectors.mapping import to_canonical
from connectors.registry import build_connector
from hub.db import metadata_engine
from hub.settings import get_settings
from hub.errors import HubError, PipelineBusy, QualityGateFailed
from hub.run_lock import WAREHOUSE, run_lock, source_scope
from quality.gate import SourceGate, assert_publishable
from quality.tables import check_tables
from warehouse.conflicts import apply_resolutions
from warehouse.history import record_history
from warehouse.identity import resolve_identities
from warehouse.faults import storage_fault
from warehouse.landing import LandingManifest, land, sweep_partials
from warehouse.life_events import apply_life_events
from warehouse.publish import PublishResult, publish
from warehouse.reconcile import build_golden
from warehouse.runs import record_run, utcnow
from warehouse.staging import StageResult, stage_pending
from warehouse.work import WORK_DB, open_work

log = logging.getLogger(__name__)


def source(name: str) -> SourceConfig:
    """The configured source called ``name``."""
    return sources()[name]


def sources() -> dict[str, SourceConfig]:
    """Every configured source."""
    settings = get_settings()
    return configured_sources(str(settings.sources_file) if settings.sources_file else None)


@contextmanager
def _step(run_id: str, step: str, subject: str, scope: str, target: str) -> Iterator[None]:
    """Run a step under the run lock of ``scope``; a failure is recorded in the run records, a storage fault as a hub error."""
    started = utcnow()
    try:
        with run_lock(get_settings().data_dir, [scope], run_id, f"{step} {subject}"):
            yield
    except Exception as exc:
        error = storage_fault(exc, target) or exc
        status = "refused" if isinstance(error, PipelineBusy) else "failed"
        record_run(metadata_engine(), run_id, step, subject, status, 0, detail=str(error), started_at=started)
        if error is exc or isinstance(exc, HubError):
            raise
        raise error from exc


def ingest(source_name: str, run_id: str, *, full: bool = False, progress=None) -> LandingManifest:
    """Extract one source since its watermark and land it; one extraction of a source at a time."""
    settings = get_settings()
    cfg = source(source_name)
    with _step(run_id, "land", cfg.name, source_scope(cfg.name), str(settings.landing_dir / cfg.name)):
        # Under the source's lock no other extraction of it runs: a ".partial" here was left by a killed one.
        swept = sweep_partials(settings.landing_dir, cfg.name)
        if swept:
            log.warning("removed unfinished landings of %s left by a killed run: %s", cfg.name, ", ".join(swept))
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
    run_id = f"stage-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    with _step(run_id, "stage", cfg.name, WAREHOUSE, str(settings.warehouse_dir / WORK_DB)):
        with open_work(settings.warehouse_dir) as conn:
            result = stage_pending(conn, cfg.name, cfg.delivers, settings.landing_dir, mapper, SourceGate(cfg),
                                   parts=len(cfg.record_fields()))
    detail = f"quarantined={result.quarantined}" + (f" released={result.released}" if result.released else "")
    if result.held:
        detail += "; held: " + "; ".join(f"{run}: {' / '.join(reasons)}" for run, reasons in result.held.items())
    record_run(metadata_engine(), run_id, "stage", cfg.name, "held" if result.held else "success", result.staged,
               detail=detail)
    return result


def reconcile_and_publish(run_id: str) -> PublishResult:
    """Resolve identities, build golden records, apply life events, run the shared-table suites, record history, publish.

    Refused (``QualityGateFailed``, the previous snapshot keeps serving) while a batch is held back
    or when a golden table breaks a blocking rule. The quality report is written either way.
    """
    settings = get_settings()
    libraries = sorted({cfg.library for cfg in sources().values()})
    try:
        with run_lock(settings.data_dir, [WAREHOUSE], run_id, "publish"), open_work(settings.warehouse_dir) as conn:
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
        refused = isinstance(exc, (QualityGateFailed, PipelineBusy))
        error = storage_fault(exc, str(settings.warehouse_dir / WORK_DB)) or exc
        record_run(metadata_engine(), run_id, "publish", "quality gate" if isinstance(exc, QualityGateFailed)
                   else "snapshot", "refused" if refused else "failed", 0, detail=str(error))
        if isinstance(exc, PipelineBusy):
            raise  # another run owns the working database: it writes the report
        quality_report(run_id)  # the stewards see why, whatever stopped the publication
        if error is exc or isinstance(exc, HubError):
            raise
        raise error from exc
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
    except HubError as exc:  # a busy or damaged working database: its clear error says it all
        log.error("quality report for run %s could not be written: %s", run_id, exc)
        return None
    except Exception:  # noqa: BLE001 - a report failure must not hide the step's own outcome
        log.exception("quality report for run %s could not be written", run_id)
        return None

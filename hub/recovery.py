"""Rebuilding the working database from what outlives it: the landings, the decision log and the published history.

The working DuckDB file is derived state. Its inputs are kept elsewhere: every landing as immutable
Parquet with its manifest, every steward's decision in the metadata database
(``warehouse.decisions``), and the history of the golden records in the current snapshot. A rebuild
moves the damaged file aside, seeds the history from the snapshot, re-stages every landing of every
configured source (the decisions are replayed as the records come back), and, if asked, reconciles
and publishes through the same job as ``hub run``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from hub import jobs
from hub.db import metadata_engine
from hub.errors import PipelineError, SnapshotError
from hub.run_lock import WAREHOUSE, run_lock
from hub.settings import get_settings
from schemas import LIBRARIES
from warehouse.publish import PublishResult
from warehouse.replay import ReplayResult, replay
from warehouse.runs import record_run
from warehouse.staging import StageResult
from warehouse.work import open_work
from warehouse.work_check import LOCKED, WorkCheck, check_work, move_aside

log = logging.getLogger(__name__)


class RebuildRefused(PipelineError):
    """A rebuild would do harm (the file is in use, or healthy without ``force``); nothing was changed."""


@dataclass(frozen=True)
class RebuildResult:
    check: WorkCheck  # what the check found before the rebuild
    moved_to: Path | None  # where the old file went
    history: dict[str, int]  # library -> versions seeded from the current snapshot
    staged: dict[str, StageResult] = field(default_factory=dict)
    replayed: ReplayResult | None = None
    published: PublishResult | None = None

    @property
    def held(self) -> dict[str, list[str]]:
        """Batches still held back, per ``source/run``: they wait for a steward, as before the rebuild."""
        return {f"{s}/{run}": reasons for s, r in self.staged.items() for run, reasons in r.held.items()}


def seed_history(conn: duckdb.DuckDBPyConnection, snapshots_dir: Path) -> dict[str, int]:
    """Copy each library's history from the current snapshot: a rebuild then adds only what really changed."""
    from warehouse.published import HISTORY_SUFFIX, current_name

    try:
        snapshot = snapshots_dir / current_name(snapshots_dir)
    except (SnapshotError, OSError):
        return {}  # nothing published yet: the history starts with the rebuild's reconcile
    seeded = {}
    for lib in LIBRARIES.values():
        parquet = snapshot / f"{lib.name}{HISTORY_SUFFIX}.parquet"
        if not parquet.exists():
            continue
        try:
            conn.execute(f'INSERT INTO "history_{lib.name}" BY NAME SELECT * FROM read_parquet(?)', [str(parquet)])
        except duckdb.Error as exc:
            raise PipelineError(f"the history of {lib.name} in snapshot {snapshot.name} cannot be read "
                                f"({str(exc).splitlines()[0]}); check it with `hub status`") from exc
        (seeded[lib.name],) = conn.execute(f'SELECT count(*) FROM "history_{lib.name}"').fetchone()
    return seeded


def rebuild(*, publish: bool = False, force: bool = False, run_id: str | None = None) -> RebuildResult:
    """Move the working database aside and rebuild it from the landings, the decision log and the published history."""
    settings = get_settings()
    run_id = run_id or f"rebuild__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    # The whole rebuild under the warehouse's run lock: no run may stage or publish between the check and the end.
    with run_lock(settings.data_dir, [WAREHOUSE], run_id, "rebuild"):
        check = check_work(settings.warehouse_dir)
        if check.state == LOCKED:
            raise RebuildRefused(f"{check.problems[0]}; stop it first, nothing was changed")
        if check.ok and not force:
            raise RebuildRefused(f"{check.path} is whole ({sum(check.tables.values()):,} rows in {len(check.tables)} tables); "
                                 "rebuild it anyway with --force")
        moved = move_aside(settings.warehouse_dir)
        with open_work(settings.warehouse_dir) as conn:
            history = seed_history(conn, settings.snapshots_dir)
        names = list(jobs.sources())
        staged = {name: jobs.stage(name) for name in names}
        # The quarantine comes back open: its decisions are replayed now, and the released records staged.
        with open_work(settings.warehouse_dir) as conn:
            replayed = replay(conn)
        for name in names:
            again = jobs.stage(name)
            first = staged[name]
            staged[name] = StageResult(name, first.landings + again.landings, first.staged + again.staged,
                                       first.quarantined + again.quarantined, again.held, first.released + again.released)
        published = jobs.reconcile_and_publish(run_id) if publish else None
        rows = sum(r.staged for r in staged.values())
        detail = f"moved aside: {moved}" if moved else "no working database to move aside"
        record_run(metadata_engine(), run_id, "rebuild", "warehouse", "success", rows,
                   detail=f"{detail}; {check.state}: {'; '.join(check.problems) or 'whole'}")
    return RebuildResult(check, moved, history, staged, replayed, published)

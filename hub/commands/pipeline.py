"""Commands that run the pipeline and show the state of the libraries."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.commands.common import fail, get_settings
from hub.errors import HubError, PipelineBusy, SnapshotError

if TYPE_CHECKING:
    from warehouse.published import PublishedSnapshot

console = Console()


def run(
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Only these sources (default: all).")] = None,
    direct: Annotated[bool, typer.Option(help="Call the steps directly instead of through Airflow's DAG runner.")] = False,
    full: Annotated[bool, typer.Option(help="Re-extract everything, ignoring watermarks (direct mode).")] = False,
) -> None:
    """Ingest every source, then reconcile and publish a new snapshot."""
    from hub import jobs
    from hub.run_lock import WAREHOUSE, run_lock, source_scope

    names = source or list(jobs.sources())
    run_id = f"{'cli' if direct else 'cli-airflow'}__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    try:
        # Every lock the run needs, taken before anything is extracted: a second run stops here, naming this one.
        with run_lock(get_settings().data_dir, [*map(source_scope, names), WAREHOUSE], run_id, "hub run"):
            result = _run(jobs, names, run_id, direct=direct, full=full)
    except HubError as exc:
        if isinstance(exc, PipelineBusy):
            _record_refusal(run_id, exc)
        raise fail(exc) from exc
    _print_status(result.version if result else None)


def _record_refusal(run_id: str, exc: PipelineBusy) -> None:
    from hub.db import metadata_engine
    from warehouse.runs import record_run

    record_run(metadata_engine(), run_id, "run", exc.scope, "refused", 0, detail=str(exc))


def _run(jobs, names: list[str], run_id: str, *, direct: bool, full: bool):  # type: ignore[no-untyped-def]
    """Every source landed and staged, then reconcile and publish: directly, or through Airflow's DAG runner."""
    if direct:
        for name in names:
            with console.status(f"landing {name}…"):
                manifest = jobs.ingest(name, run_id, full=full)
            console.print(f"landed [bold]{name}[/]: {manifest.rows:,} rows")
            staged = jobs.stage(name)
            console.print(f"staged {name}: {staged.staged:,} rows, {staged.quarantined:,} quarantined")
        result = jobs.reconcile_and_publish(run_id)
    else:
        from hub import airflow_env

        airflow_env.configure()
        for name in names:
            with console.status(f"Airflow: ingest_{name}…"):
                airflow_env.run_dag(f"ingest_{name}")
            console.print(f"DAG ingest_{name}: success")
        with console.status("Airflow: reconcile_publish…"):
            airflow_env.run_dag("reconcile_publish")
        console.print("DAG reconcile_publish: success")
        result = None
    return result


def _checked_current() -> tuple[str, PublishedSnapshot | None, list[str]]:
    """The current version's name, the snapshot that serves (it, or the last good one) and what is damaged in it."""
    from warehouse.published import current_name, last_good, open_snapshot

    snapshots = get_settings().snapshots_dir
    name = current_name(snapshots)
    try:
        return name, open_snapshot(snapshots / name), []
    except SnapshotError as exc:
        # The files are checked against the manifest; a damaged version is reported, with what serves instead.
        return name, last_good(snapshots, name), getattr(exc, "problems", None) or [str(exc)]


def _print_status(expected: str | None = None) -> bool:
    """Print the snapshot and the sources; False when the current version is damaged."""
    from hub.db import metadata_engine
    from warehouse.runs import Watermark
    from sqlalchemy.orm import Session

    try:
        name, snap, damaged = _checked_current()
    except SnapshotError:
        console.print("no snapshot published yet: run [bold]hub run[/]")
        return True
    if damaged:
        console.print(f"[red]snapshot {name} is damaged[/] and is not served: " + "; ".join(damaged))
        console.print(f"the API serves {snap.version}, the last good version" if snap is not None
                      else "[red]no intact version is on disk[/]: the API answers 503 until one is published")
    if snap is not None:
        _print_snapshot(snap)
    with Session(metadata_engine()) as session:
        marks = session.query(Watermark).all()
    wm = Table(title="Sources")
    for col in ("source", "watermark", "last run", "updated"):
        wm.add_column(col)
    for m in marks:
        wm.add_row(m.source, m.value or "-", m.run_id, m.updated_at.isoformat(timespec="seconds"))
    console.print(wm)
    return not damaged


def _print_snapshot(snap: PublishedSnapshot) -> None:
    table = Table(title=f"Published snapshot {snap.version} ({snap.manifest['created_at']})")
    for col in ("library", "rows", "sha256"):
        table.add_column(col)
    for name, info in snap.manifest["tables"].items():
        table.add_row(name, f"{info['rows']:,}", info["sha256"][:16] + "…")
    console.print(table)
    snap.close()


def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for monitoring.")] = False) -> None:
    """Show the published snapshot (its files checked against its manifest), its libraries, and each source's watermark.

    Exits 1 when the current version is damaged, naming the files and the last good version, which the API serves.
    """
    if not as_json:
        if not _print_status():
            raise typer.Exit(1)
        return
    try:
        name, snap, damaged = _checked_current()
    except SnapshotError as exc:
        print(json.dumps({"published": False, "error": str(exc)}))
        raise typer.Exit(1) from exc
    print(json.dumps({"published": True, "current": name, "serving": snap.version if snap else None,
                      "damaged": damaged, "manifest": snap.manifest if snap else None},
                     ensure_ascii=False, default=str))
    if snap is not None:
        snap.close()
    if damaged:
        raise typer.Exit(1)


def airflow_init() -> None:
    """Create Airflow's database and the hub's pool under the data directory."""
    from hub import airflow_env

    airflow_env.ensure_database()
    console.print(f"Airflow home: {airflow_env.configure()}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("status")(status)
    app.command("airflow-init")(airflow_init)

"""``hub warehouse``: check the pipeline's working database, and rebuild it when it is damaged.

::

    hub warehouse check [--json]                  # opens it read-only, reads every table, compares decisions with the log
    hub warehouse rebuild [--publish] [--force]   # moves it aside, re-stages every landing, replays decisions

A check that finds a problem exits with status 1 and says what to do. A rebuild refuses a file
another process has open, and a whole one unless ``--force``; ``--publish`` also reconciles and
publishes (the previous snapshot serves until then). See the README's "Recovery".
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from hub.errors import HubError
from hub.commands.common import console, err_console, error, fail

app = typer.Typer(name="warehouse", help="Check and rebuild the pipeline's working database (operators).",
                  no_args_is_help=True)


@app.command("check")
def check(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for monitoring.")] = False) -> None:
    """Open the working database read-only, read every table, and check its decisions against the metadata database."""
    from hub.settings import get_settings
    from warehouse.work_check import check_work

    try:
        found = check_work(get_settings().warehouse_dir)
    except HubError as exc:
        raise fail(exc) from exc
    if as_json:
        print(json.dumps({"path": str(found.path), "state": found.state, "ok": found.ok, "tables": found.tables,
                          "problems": found.problems,
                          "decisions": {"logged": found.decisions_logged, "applied": found.decisions_applied,
                                        "pending": found.decisions_pending, "unknown": found.decisions_unknown}},
                         ensure_ascii=False))
        raise typer.Exit(0 if found.ok else 1)
    if found.tables:
        table = Table("table", "rows", title=f"Working database {found.path}")
        for name, rows in found.tables.items():
            table.add_row(name, f"{rows:,}")
        console.print(table)
    console.print(f"stewards' decisions: {found.decisions_logged:,} in the metadata database, "
                  f"{found.decisions_applied:,} in the working database"
                  + (f", {len(found.decisions_pending):,} to apply when a step next opens it" if found.decisions_pending
                     else ""))
    if found.ok:
        console.print(f"[green]ok:[/] {found.path} is whole: every table read")
        return
    for problem in found.problems:
        error(problem)
    if found.state in ("damaged", "missing"):
        err_console.print("rebuild it from the landings and the decision log: [bold]hub warehouse rebuild --publish[/]")
    raise typer.Exit(1)


@app.command("rebuild")
def rebuild(
    publish: Annotated[bool, typer.Option(help="Also reconcile and publish a new snapshot (as `hub run` does).")] = False,
    force: Annotated[bool, typer.Option(help="Rebuild even a working database the check finds whole.")] = False,
) -> None:
    """Move the working database aside and rebuild it from every landing, replaying the stewards' decisions."""
    from hub.recovery import rebuild as do_rebuild

    try:
        result = do_rebuild(publish=publish, force=force)
    except HubError as exc:
        raise fail(exc) from exc
    if result.moved_to:
        console.print(f"moved the old working database to {result.moved_to}")
    for name, lib_versions in result.history.items():
        console.print(f"history of {name}: {lib_versions:,} versions from the current snapshot")
    table = Table("source", "landings", "staged", "quarantined", "released", title="Re-staged")
    for name, staged in result.staged.items():
        table.add_row(name, f"{staged.landings:,}", f"{staged.staged:,}", f"{staged.quarantined:,}", f"{staged.released:,}")
    console.print(table)
    if result.replayed:
        console.print(f"stewards' decisions replayed: {result.replayed.applied:,}"
                      + (f" ({result.replayed.pending:,} waiting for their record)" if result.replayed.pending else ""))
    for batch, reasons in result.held.items():
        console.print(f"[yellow]held:[/] batch {batch}: {'; '.join(reasons)} (decide with `hub quality batch`)")
    if result.published:
        console.print(f"published snapshot {result.published.version}")
    else:
        console.print("not published: the next `hub run` reconciles and publishes (or rebuild with --publish)")


def register(root: typer.Typer) -> None:
    """Add ``hub warehouse …`` to the ``hub`` command line."""
    root.add_typer(app, name="warehouse")

"""``hub quality``: what a data steward does with the quarantine, held batches and the quality reports.

::

    hub quality list [--source S] [--status open] [--reason TEXT] [--json]
    hub quality show ID [--unmask]
    hub quality release ID... --by NAME [--note TEXT] [--set field=value ...]
    hub quality reject ID... --by NAME [--note TEXT]
    hub quality batches
    hub quality batch release|reject SOURCE RUN_ID --by NAME [--note TEXT]
    hub quality report                 # rewrite the quality page, its JSON and the Data Docs
    hub quality serve [--port 8751]    # the quality page, quality.json and the Data Docs over HTTP

Every decision records who (``--by``) and when; released records re-enter staging on the next stage
of their source, a released batch on the next stage of its source.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hub.errors import HubError
from hub.commands.common import ByOption, NoteOption, error, fail as _fail, get_settings, work as _work
from hub.commands.work_db import read_work as _read_work

console = Console()
app = typer.Typer(name="quality", help="Quarantine, held batches and quality reports (data stewards).",
                  no_args_is_help=True)
batch_app = typer.Typer(name="batch", help="Release or reject a batch held back by a whole-batch rule.",
                        no_args_is_help=True)
app.add_typer(batch_app, name="batch")


class Status(str, Enum):
    """A quarantine entry's status, or all of them."""

    open = "open"
    released = "released"
    rejected = "rejected"
    superseded = "superseded"
    all = "all"


def _masked_record(entry: Any) -> dict[str, Any]:
    from quality.report import mask_value

    return {k: mask_value(entry.library, k, v) for k, v in entry.record.items()}


def _as_dict(entry: Any, unmask: bool = False) -> dict[str, Any]:
    return {"id": entry.id, "library": entry.library, "source": entry.source, "run_id": entry.run_id,
            "source_record_id": entry.source_record_id, "file": entry.file, "line": entry.line, "stage": entry.stage,
            "reasons": entry.reasons, "status": entry.status,
            "record": entry.record if unmask else _masked_record(entry),
            "quarantined_at": entry.quarantined_at.isoformat(), "decided_by": entry.decided_by,
            "decided_at": entry.decided_at.isoformat() if entry.decided_at else None, "note": entry.note,
            "corrections": entry.corrections if unmask or not entry.corrections else {k: "***" for k in entry.corrections}}


@app.command("list")
def list_entries(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    status: Annotated[Status, typer.Option(help="Only entries with this status.")] = Status.open,
    reason: Annotated[str | None, typer.Option(help="Only entries with a reason containing this text.")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (records masked).")] = False,
) -> None:
    """Quarantined records, newest first, with every reason, source, run, file and line."""
    from quality.quarantine import entries

    with _read_work() as conn:
        found = entries(conn, source=source, status=None if status is Status.all else status.value, reason=reason,
                        run_id=run_id, limit=limit)
    if as_json:
        for e in found:
            print(json.dumps(_as_dict(e), ensure_ascii=False, default=str))
        return
    table = Table(title=f"Quarantine ({status.value})")
    for col in ("id", "source", "run", "record", "file:line", "reasons", "status"):
        table.add_column(col)
    for e in found:
        table.add_row(str(e.id), e.source, e.run_id, e.source_record_id or "-",
                      f"{e.file}:{e.line}" if e.file else (str(e.line) if e.line else "-"), "; ".join(e.reasons),
                      e.status + (f" by {e.decided_by}" if e.decided_by else ""))
    console.print(table)


@app.command("show")
def show(entry_id: int, unmask: Annotated[bool, typer.Option(help="Show ID numbers and names in full.")] = False) -> None:
    """One quarantine entry with its record (masked unless --unmask)."""
    from quality.quarantine import entry

    try:
        with _read_work() as conn:
            e = entry(conn, entry_id)
    except HubError as exc:
        raise _fail(exc) from exc
    print(json.dumps(_as_dict(e, unmask), ensure_ascii=False, indent=2, default=str))


def _corrections(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--set expects field=value, got {pair!r}")
        out[name.strip()] = value if value != "" else None
    return out


@app.command("release")
def release(
    entry_ids: Annotated[list[int], typer.Argument(help="Quarantine entry ids.")],
    by: ByOption,
    note: NoteOption = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="A correction, field=value (repeatable).")] = None,
) -> None:
    """Release entries: they re-enter staging on their source's next stage (corrected ones are checked again)."""
    from hub import jobs
    from quality.gate import recheck_record
    from quality.quarantine import release as do_release

    corrections = _corrections(set_ or [])

    def recheck(entry: Any, record: dict[str, Any]) -> list[str]:
        try:
            source = jobs.source(entry.source)
        except KeyError:
            return []  # the source left the configuration: nothing to check against
        if entry.stage == "reference":
            return []
        return recheck_record(source, record)

    try:
        with _work() as conn:
            for entry_id in entry_ids:
                e = do_release(conn, entry_id, by, note=note, corrections=corrections or None, recheck=recheck)
                console.print(f"released {e.id} ({e.source} {e.source_record_id}) by {e.decided_by} at "
                              f"{e.decided_at:%Y-%m-%d %H:%M:%S %Z}")
    except HubError as exc:
        raise _fail(exc) from exc


@app.command("reject")
def reject(entry_ids: Annotated[list[int], typer.Argument(help="Quarantine entry ids.")], by: ByOption,
           note: NoteOption = None) -> None:
    """Reject entries: they never enter staging."""
    from quality.quarantine import reject as do_reject

    try:
        with _work() as conn:
            for entry_id in entry_ids:
                e = do_reject(conn, entry_id, by, note=note)
                console.print(f"rejected {e.id} ({e.source} {e.source_record_id}) by {e.decided_by} at "
                              f"{e.decided_at:%Y-%m-%d %H:%M:%S %Z}")
    except HubError as exc:
        raise _fail(exc) from exc


@app.command("batches")
def batches(show_all: Annotated[bool, typer.Option("--all", help="Decided batches too.")] = False) -> None:
    """Batches held back by a whole-batch rule (they stop publication until decided)."""
    with _read_work() as conn:
        rows = conn.execute("SELECT source, run_id, status, reasons, checked_at, decided_by, decided_at FROM batch_checks "
                            + ("" if show_all else "WHERE status = 'held' ") + "ORDER BY checked_at").fetchall()
    table = Table(title="Held batches" if not show_all else "Batch decisions")
    for col in ("source", "run", "status", "reasons", "checked", "decided"):
        table.add_column(col)
    for source, run, status, reasons, checked, by, at in rows:
        table.add_row(source, run, status, "; ".join(reasons or []), f"{checked:%Y-%m-%d %H:%M}",
                      f"{by} {at:%Y-%m-%d %H:%M}" if by else "-")
    console.print(table)


def _decide_batch(status: str, source: str, run_id: str, by: str, note: str | None) -> None:
    from quality.quarantine import decide_batch

    try:
        with _work() as conn:
            decide_batch(conn, source, run_id, status, by, note)
    except HubError as exc:
        raise _fail(exc) from exc
    console.print(f"batch {run_id} of {source} {status} by {by} at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S %Z}; "
                  f"it is {'staged' if status == 'released' else 'skipped'} on the next `hub run` (or stage) of {source}")


@batch_app.command("release")
def batch_release(source: str, run_id: str, by: ByOption, note: NoteOption = None) -> None:
    """Accept a held batch as it is: it is staged (row rules still apply) on the source's next stage."""
    _decide_batch("released", source, run_id, by, note)


@batch_app.command("reject")
def batch_reject(source: str, run_id: str, by: ByOption, note: NoteOption = None) -> None:
    """Reject a held batch: none of its rows is staged; later batches of the source go on."""
    _decide_batch("rejected", source, run_id, by, note)


@app.command("report")
def report(data_docs: Annotated[bool, typer.Option(help="Also rebuild the Great Expectations Data Docs.")] = True) -> None:
    """Write the quality page, quality.json and the Data Docs now."""
    from hub import jobs

    paths = jobs.quality_report(f"report__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}", data_docs=data_docs)
    if paths is None:
        error("the report could not be written (see the log)")
        raise typer.Exit(1)
    console.print(f"quality page: {paths.page}\nJSON: {paths.json}" + (f"\nData Docs: {paths.data_docs}" if paths.data_docs else ""))


@app.command("serve")
def serve(host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8751) -> None:
    """Serve /quality/ (the page), /quality.json and /data_docs/ over HTTP."""
    import uvicorn

    from quality.site import create_app

    uvicorn.run(create_app(get_settings()), host=host, port=port, access_log=False)


def register(root: typer.Typer) -> None:
    """Add ``hub quality …`` to the ``hub`` command line."""
    root.add_typer(app, name="quality")

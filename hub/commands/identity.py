"""``hub identity``: stewards review and override the links made for records without a usable ID number.

::

    hub identity list [--library population] [--limit 50]     # current links and near misses (masked)
    hub identity show SOURCE RECORD_ID                        # why: weight, probability, each comparison
    hub identity merge SOURCE RECORD_ID ENTITY_KEY --by NAME [--note TEXT]   # this record is that entity
    hub identity split SOURCE RECORD_ID [ENTITY_KEY] --by NAME [--note TEXT] # is not that entity (or none)
    hub identity resolve [--library population]               # run identity resolution now

Overrides take effect at the next resolution (``hub identity resolve`` or the next reconcile) and on
every one after it. ID numbers are always shown masked.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hub.errors import HubError
from hub.masking import mask_id
from hub.commands.common import ByOption, NoteOption, fail as _fail, work as _work

console = Console()
app = typer.Typer(name="identity", help="Identity resolution of records without a usable ID number (data stewards).",
                  no_args_is_help=True)

LibraryOption = Annotated[str | None, typer.Option("--library", help="Only this library.")]


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@app.command("list")
def list_(library: LibraryOption = None, limit: Annotated[int, typer.Option(help="Rows per table.")] = 50) -> None:
    """Current links and the records left in quarantine with their best candidate."""
    from warehouse.identity_review import links, near_misses

    with _work() as conn:
        current, misses = links(conn, library, limit), near_misses(conn, library, limit)
    table = Table("link", "source", "record", "entity", "weight", "probability", "decided by", "run", title="Links")
    for row in current:
        table.add_row(str(row["id"]), row["source"], row["source_record_id"], mask_id(row["entity_key"]),
                      _num(row["match_weight"]), _num(row["match_probability"], 6), row["decided_by"], row["run_id"])
    console.print(table)
    table = Table("source", "record", "best candidate", "weight", "probability", "second", "why not linked",
                  title="Near misses")
    for row in misses:
        table.add_row(row["source"], row["source_record_id"], mask_id(row["entity_key"]) if row["entity_key"] else "",
                      _num(row["match_weight"]), _num(row["match_probability"], 6), _num(row["second_weight"]),
                      row["reason"])
    console.print(table)


@app.command()
def show(source: str, record_id: str) -> None:
    """Why one record is linked (or not): weight, probability and each comparison's level and weight."""
    from warehouse.identity_review import explain

    try:
        with _work() as conn:
            why = explain(conn, source, record_id)
    except HubError as exc:
        raise _fail(exc) from exc
    console.print(f"[bold]{why.source} {why.source_record_id}[/] ({why.library}): {why.status}"
                  + (f" — {why.reason}" if why.reason else ""))
    if why.entity_key:
        label = "entity" if why.status == "linked" else "best candidate"
        console.print(f"{label} {mask_id(why.entity_key)}, match weight {_num(why.match_weight)}, "
                      f"probability {_num(why.match_probability, 6)}"
                      + (f", link {why.link_id} by {why.decided_by} at {why.decided_at:%Y-%m-%d %H:%M}" if why.link_id else ""))
    if why.comparisons:
        table = Table("comparison", "level", "weight", "Bayes factor", title="Comparisons")
        for name, c in why.comparisons.items():
            table.add_row(name, str(c.get("level")), _num(c.get("weight")), _num(c.get("bayes_factor"), 4))
        console.print(table)
    _rows("Steward overrides", why.overrides, ("action", "entity_key", "decided_by", "decided_at", "note"))
    _rows("Earlier links", why.history, ("id", "entity_key", "match_weight", "decided_by", "retired_at", "retired_reason"))


def _rows(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if not rows:
        return
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*[mask_id(row[c]) if c == "entity_key" and row[c] else "" if row[c] is None else str(row[c])
                        for c in columns])
    console.print(table)


def _decide(source: str, record_id: str, action: str, by: str, key: str | None, note: str | None) -> None:
    from warehouse.identity_review import override

    try:
        with _work() as conn:
            number = override(conn, source, record_id, action, by, key, note)
    except HubError as exc:
        raise _fail(exc) from exc
    what = {"merge": f"is entity {mask_id(key)}", "split": f"is not entity {mask_id(key)}",
            "none": "is no entity"}[action]
    console.print(f"override {number}: {source} {record_id} {what} (by {by}); applied at the next identity resolution")


@app.command()
def merge(source: str, record_id: str, entity_key: str, by: ByOption, note: NoteOption = None) -> None:
    """Record that this record is that entity (a standing decision)."""
    _decide(source, record_id, "merge", by, entity_key, note)


@app.command()
def split(source: str, record_id: str,
          entity_key: Annotated[str | None, typer.Argument(help="The entity it is not; omit: it is no entity.")] = None,
          by: ByOption = "", note: NoteOption = None) -> None:
    """Record that this record is not that entity (or, without ENTITY_KEY, not any entity)."""
    _decide(source, record_id, "split" if entity_key else "none", by, entity_key, note)


@app.command()
def resolve(library: LibraryOption = None) -> None:
    """Run identity resolution now for every library with a model (or one)."""
    from warehouse.identity import resolve_identities
    from warehouse.identity_config import load_config

    try:
        configured = load_config()
        names = [library] if library else sorted(configured)
        with _work() as conn:
            results = [resolve_identities(conn, name, configured.get(name)) for name in names]
    except HubError as exc:
        raise _fail(exc) from exc
    table = Table("library", "considered", "linked", "new", "kept", "by steward", "near misses", "unlinked", "seconds")
    for r in results:
        table.add_row(r.library, f"{r.candidates:,}", f"{r.linked:,}", f"{r.new_links:,}", f"{r.kept:,}",
                      f"{r.by_steward:,}", f"{r.near_misses:,}", f"{r.unlinked:,}", f"{r.seconds:.1f}")
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="identity")

"""``hub conflicts``: the stewards' conflict register, where departments disagree on a field.

::

    hub conflicts list [--library L] [--field F] [--open/--all] [--limit N] [--json]
    hub conflicts show LIBRARY KEY [--unmask]
    hub conflicts resolve LIBRARY KEY FIELD (--value V | --source DEPT) --by NAME [--note TEXT]

Keys are given in full (an ID number, a credit code, a licence number); output masks ID numbers and
names unless ``show --unmask``. A resolution records who, when and why, applies at once to the
working golden records and on every later run while the departments' values stay those the
steward saw; a new value reopens it (see ``warehouse.conflicts``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hub.errors import HubError
from hub.commands.common import ByOption, LibraryName, NoteOption, fail as _fail, work as _work
from hub.commands.work_db import read_work as _read_work

console = Console()
app = typer.Typer(name="conflicts", help="The conflict register: list, show and resolve disagreements (data stewards).",
                  no_args_is_help=True)


def _as_dict(c: Any, unmask: bool = False) -> dict[str, Any]:
    from warehouse.conflicts import shown
    from schemas import LIBRARIES

    show = (lambda _f, v: v) if unmask else (lambda f, v: shown(c.library, f, v))
    key_field = LIBRARIES[c.library].key
    resolution = None
    if c.resolution:
        r = c.resolution
        resolution = {"id": r["id"], "status": r["status"], "by": r["resolved_by"], "at": str(r["resolved_at"]),
                      "note": r["note"], "source": r["chosen_source"], "value": show(c.field, r["chosen_value"]),
                      "applied_at": str(r["applied_at"]) if r["applied_at"] else None}
    return {"library": c.library, "key": show(key_field, c.key), "field": c.field, "status": c.status,
            "golden_value": show(c.field, c.golden_value), "rule": c.rule,
            "values": [{**v, "value": show(c.field, v.get("value"))} for v in c.values], "resolution": resolution}


@app.command("list")
def list_conflicts(
    library: Annotated[LibraryName | None, typer.Option(help="Only this library.")] = None,
    field: Annotated[str | None, typer.Option(help="Only this field.")] = None,
    open_only: Annotated[bool, typer.Option("--open/--all", help="Only unresolved entries (default), or all.")] = True,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (masked).")] = False,
) -> None:
    """Fields on which departments disagree, with the golden value, the rule that chose it and each department's value."""
    from warehouse.conflicts import conflicts

    try:
        with _read_work() as conn:
            found = conflicts(conn, library.value if library else None, field, open_only=open_only, limit=limit)
    except HubError as exc:
        raise _fail(exc) from exc
    if as_json:
        for c in found:
            print(json.dumps(_as_dict(c), ensure_ascii=False, default=str))
        return
    table = Table(title=f"Conflict register ({'open' if open_only else 'all'})")
    for col in ("library", "key", "field", "golden value", "rule", "values (department)", "status"):
        table.add_column(col)
    for c in found:
        d = _as_dict(c)
        values = "; ".join(f"{v['value']} ({v['source_department']})" for v in d["values"])
        status = c.status + (f" by {c.resolution['resolved_by']}" if c.status == "resolved" and c.resolution else "")
        table.add_row(c.library, str(d["key"]), c.field, str(d["golden_value"]), c.rule, values, status)
    console.print(table)


@app.command("show")
def show(library_name: Annotated[LibraryName, typer.Argument(metavar="LIBRARY")],
         key: Annotated[str, typer.Argument(help="The record's full key.")],
         unmask: Annotated[bool, typer.Option(help="Show ID numbers and names in full.")] = False) -> None:
    """Every register entry of one record, resolved or not, with each department's value and the resolution."""
    library = library_name.value
    from warehouse.conflicts import ConflictError, conflicts, shown

    try:
        with _read_work() as conn:
            found = conflicts(conn, library, key=key.strip(), open_only=False)
        if not found:
            raise ConflictError(f"no conflict in the {library} register for {shown(library, _key_field(library), key)}")
    except HubError as exc:
        raise _fail(exc) from exc
    print(json.dumps([_as_dict(c, unmask) for c in found], ensure_ascii=False, indent=2, default=str))


def _key_field(library: str) -> str:
    from schemas import LIBRARIES

    return LIBRARIES[library].key if library in LIBRARIES else "key"


@app.command("resolve")
def resolve(
    library_name: Annotated[LibraryName, typer.Argument(metavar="LIBRARY")],
    key: Annotated[str, typer.Argument(help="The record's full key.")],
    field: str,
    by: ByOption,
    value: Annotated[str | None, typer.Option("--value", help="The value the golden record takes.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="The department whose value the golden record takes.")] = None,
    note: NoteOption = None,
) -> None:
    """Resolve one disagreement: the golden field takes the value (or the department's) until a new value appears."""
    library = library_name.value
    from warehouse.conflicts import apply_resolutions, resolve as do_resolve, shown

    try:
        with _work() as conn:
            rid = do_resolve(conn, library, key.strip(), field, by=by, value=value, source=source, note=note)
            apply_resolutions(conn, library)
    except HubError as exc:
        raise _fail(exc) from exc
    chosen = f"the value of {source}" if source else repr(shown(library, field, value))
    console.print(f"resolution {rid}: {library}.{field} of {shown(library, _key_field(library), key.strip())} takes "
                  f"{chosen}, by {by}; applied to the working golden records, published with the next snapshot")


def register(root: typer.Typer) -> None:
    """Add ``hub conflicts …`` to the ``hub`` command line."""
    root.add_typer(app, name="conflicts")

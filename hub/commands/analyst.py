"""``hub sql``: analysts' read-only SQL over the current snapshot, masked by default, every query logged."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.commands.common import error, fail, get_settings
from hub.errors import AccessRefused

console = Console()


class OutputFormat(str, Enum):
    """How a result is shown: a table on screen, CSV, or a Parquet file."""

    table = "table"
    csv = "csv"
    parquet = "parquet"


def _show(result, fmt: str, out: Path | None) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if result is None:
        return
    if fmt == "parquet":
        if out is None:
            raise typer.BadParameter("--format parquet needs --out FILE")
        pq.write_table(result, out)
        console.print(f"wrote {result.num_rows:,} rows to {out}")
    elif fmt == "csv":
        if out:
            pacsv.write_csv(result, out)
        else:
            result.to_pandas().to_csv(sys.stdout, index=False)
    else:
        table = Table(*result.column_names)
        for row in result.slice(0, 1000).to_pylist():
            table.add_row(*["" if v is None else str(v) for v in row.values()])
        console.print(table)
        if result.num_rows > 1000:
            console.print(f"(first 1,000 of {result.num_rows:,} rows; use --format csv or parquet for all)")


def sql(
    query: Annotated[str | None, typer.Argument(help="SQL to run; omit for an interactive session.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="How to show the result.")] = OutputFormat.table,
    out: Annotated[Path | None, typer.Option(help="Write the result to this file.")] = None,
    raw: Annotated[bool, typer.Option(help="The raw role: unmasked tables (needs --reason; audited).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why the raw role is needed (recorded).")] = None,
) -> None:
    """Query the current snapshot read-only: population, legal_person, licence."""
    import duckdb

    from hub.db import metadata_engine
    from warehouse.analyst import open_analyst

    settings = get_settings()
    try:
        session = open_analyst(settings.snapshots_dir, metadata_engine(), raw=raw, reason=reason)
    except AccessRefused as exc:
        raise fail(exc) from exc
    if query is not None:
        try:
            _show(session.query(query), fmt.value, out)
        except duckdb.Error as exc:
            error(str(exc).splitlines()[0])
            raise typer.Exit(1) from exc
        return
    console.print(f"snapshot {session.snapshot}, role {session.role}; end statements with ';', Ctrl-D to leave")
    buffer = ""
    for line in sys.stdin:
        buffer += line
        if buffer.rstrip().endswith(";"):
            try:
                _show(session.query(buffer), fmt.value, out)
            except duckdb.Error as exc:
                error(str(exc).splitlines()[0])
            buffer = ""


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)

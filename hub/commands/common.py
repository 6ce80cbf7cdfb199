"""What the stewards' and operators' commands share: the working database, refusals, decision options."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from hub.settings import get_settings

console = Console()

ByOption = Annotated[str, typer.Option("--by", help="Who decides (recorded with the time).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why (recorded).")]


def fail(exc: Exception) -> typer.Exit:
    """Print every problem of a refusal (``exc.problems``, or its message) and exit with status 1."""
    for problem in getattr(exc, "problems", None) or [str(exc)]:
        console.print(f"[red]error:[/] {problem}")
    return typer.Exit(1)


def work():  # type: ignore[no-untyped-def]
    """The pipeline's working database (imported late: DuckDB stays out of the CLI's start-up)."""
    from warehouse.work import open_work

    return open_work(get_settings().warehouse_dir)

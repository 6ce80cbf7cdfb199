"""The working database as the commands that only read it open it: read-only, and a storage fault is one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from hub.errors import StorageFault
from hub.commands.common import get_settings  # pydantic-settings imported on first use, not by `hub --help`

if TYPE_CHECKING:
    import duckdb


@contextmanager
def read_work() -> Iterator[duckdb.DuckDBPyConnection]:
    """The working database read-only: creates nothing; a busy or damaged file is one line on stderr and exit 1."""
    from warehouse.work import open_work  # imported late: DuckDB stays out of the CLI's start-up

    try:
        with open_work(get_settings().warehouse_dir, read_only=True) as conn:
            yield conn
    except StorageFault as exc:
        # Caught here, not only by the command's handler: a read must never end in a traceback, whatever the command.
        Console(stderr=True, soft_wrap=True, highlight=False).print(f"[red]error:[/] {' '.join(str(exc).split())}")
        raise typer.Exit(1) from exc

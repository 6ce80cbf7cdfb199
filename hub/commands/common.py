"""What the stewards' and operators' commands share: the working database, refusals, decision options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hub.errors import AccessRefused, HubError
from schemas import LIBRARIES

if TYPE_CHECKING:
    from hub.settings import Settings

console = Console()
# Errors go to stderr, so that `hub … --json | jq` never reads a refusal as data.
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

ByOption = Annotated[str, typer.Option("--by", help="Who decides (recorded with the time).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why (recorded).")]
# The libraries as a choice typer validates, named from the catalogue so that a new library needs no edit here.
LibraryName = Enum("LibraryName", {name: name for name in LIBRARIES}, type=str)  # type: ignore[misc]

# Exit status by kind: 2 as for typer's own usage errors when the caller asked for what they may not have,
# 1 for every other refusal or failure (a busy working database included: scripts already test for 1).
EXIT_CODES: dict[type[HubError], int] = {AccessRefused: 2}

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(exc: BaseException) -> int:
    """The exit status of a command stopped by ``exc``."""
    return next((code for kind, code in EXIT_CODES.items() if isinstance(exc, kind)), 1)


def error(message: str) -> None:
    """One line on stderr: ``error: message``."""
    err_console.print(f"[red]error:[/] {escape(message)}")


def fail(exc: BaseException) -> typer.Exit:
    """Print every problem of a refusal (``exc.problems``, or its message) on stderr; the Exit to raise."""
    for problem in getattr(exc, "problems", None) or [str(exc)]:
        error(" ".join(str(problem).split()))
    return typer.Exit(exit_code(exc))


def on_hub_errors(func: F) -> F:
    """``func`` with a HubError turned into its one-line message on stderr and its exit status, not a traceback."""
    if getattr(func, "_hub_errors_handled", False):
        return func

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubError as exc:
            raise fail(exc) from exc

    run._hub_errors_handled = True  # type: ignore[attr-defined]  # registering twice must not wrap twice
    return run  # type: ignore[return-value]


def handle_errors(app: typer.Typer) -> typer.Typer:
    """Every command of ``app`` and of its groups behind :func:`on_hub_errors`: the one place errors are shown."""
    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = on_hub_errors(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            handle_errors(group.typer_instance)
    return app


def get_settings() -> Settings:
    """The hub's settings (pydantic-settings imported on first use: it is a third of `hub --help`'s start-up)."""
    from hub.settings import get_settings as loaded

    return loaded()


def work():  # type: ignore[no-untyped-def]
    """The pipeline's working database (imported late: DuckDB stays out of the CLI's start-up)."""
    from warehouse.work import open_work

    return open_work(get_settings().warehouse_dir)

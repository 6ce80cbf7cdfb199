"""``hub quality …`` through typer's test runner (the command module registered on a bare app, as hub/cli.py does)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from hub.commands import quality as quality_commands

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    quality_commands.register(app)
    return app


def hub_quality(*args: str) -> str:
    """Run ``hub quality ARGS``; it must succeed. Returns its output."""
    result = runner.invoke(_app(), ["quality", *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def hub_quality_fails(*args: str) -> str:
    """Run ``hub quality ARGS``; it must exit with 1. Returns its output."""
    result = runner.invoke(_app(), ["quality", *args], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    return result.output

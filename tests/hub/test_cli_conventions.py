"""Conventions of the ``hub`` command line: errors on stderr, typer-checked choices, nouns grouped, a light --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hub.cli import app
from hub.commands.common import handle_errors
from hub.errors import AccessRefused, ConfigError

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("duckdb", "pandas", "pyarrow", "splink", "airflow", "great_expectations", "fastapi", "sqlalchemy")
OLD_FLAT = ("grant", "revoke-grant", "add-key", "retire-key", "add-purpose", "retire-purpose", "load-purposes",
            "register-department", "set-limits", "rotate-hub-key", "purposes")


def hub(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def root():  # type: ignore[no-untyped-def]
    return typer.main.get_command(app)


def is_group(command) -> bool:  # type: ignore[no-untyped-def]
    return hasattr(command, "commands")


# --- errors on stderr, one line, exit status by kind --------------------------------------------------------------

def test_a_refusal_is_one_line_on_stderr_and_nothing_on_stdout() -> None:
    result = hub("access-log", "12345")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: invalid resident ID number") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output and "12345" not in result.stderr  # never echoes the number


def test_every_command_turns_a_hub_error_into_its_message_and_exit_status() -> None:
    """The one place (``handle_errors``) catches what a command lets through: no traceback, status by kind."""
    demo = typer.Typer()

    @demo.command("config")
    def config() -> None:
        raise ConfigError(["first problem", "second\n  problem"])

    @demo.command("role")
    def role() -> None:
        raise AccessRefused("the raw role needs a stated reason")

    handle_errors(demo)
    handle_errors(demo)  # registering twice wraps once
    refused = CliRunner().invoke(demo, ["config"])
    assert (refused.exit_code, refused.stdout) == (1, "")
    assert refused.stderr.splitlines() == ["error: first problem", "error: second problem"]
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
    role_refused = CliRunner().invoke(demo, ["role"])
    assert role_refused.exit_code == 2 and role_refused.stderr.startswith("error: the raw role")


def test_the_hub_app_has_every_command_behind_the_handler() -> None:
    def commands(typer_app: typer.Typer):  # type: ignore[no-untyped-def]
        yield from typer_app.registered_commands
        for group in typer_app.registered_groups:
            yield from commands(group.typer_instance)

    unguarded = [c.name or c.callback.__name__ for c in commands(app)
                 if not getattr(c.callback, "_hub_errors_handled", False)]
    assert unguarded == []


def test_a_lookup_without_a_key_is_refused_on_stderr() -> None:
    result = hub("lookup", "1", "--department", "nobody")
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.startswith("error: no key for nobody")


def test_the_raw_role_without_a_reason_exits_2_on_stderr() -> None:
    result = hub("sql", "SELECT 1", "--raw", "--reason", " ")
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "reason" in result.stderr and result.stderr.count("\n") == 1


# --- choices typer checks ------------------------------------------------------------------------------------------

def test_a_bogus_quarantine_status_exits_2_with_typers_message() -> None:
    """Was: an empty table and exit 0 (issue 12)."""
    result = hub("quality", "list", "--status", "bogus")
    assert result.exit_code == 2
    said = " ".join(result.stderr.replace("│", " ").split())
    assert "Invalid value for '--status'" in said and "'bogus' is not one of" in said
    assert result.stdout == ""


LIBRARIES = ("population", "legal_person", "licence")


@pytest.mark.parametrize(("args", "choices"), [
    (["quality", "list", "--status", "bogus"], ("open", "released", "rejected", "superseded", "all")),
    (["sql", "SELECT 1", "--format", "xlsx"], ("table", "csv", "parquet")),
    (["conflicts", "list", "--library", "nowhere"], LIBRARIES),
    (["conflicts", "show", "nowhere", "K"], LIBRARIES),
    (["conflicts", "resolve", "nowhere", "K", "name", "--by", "x", "--value", "v"], LIBRARIES),
    (["grants", "add", "d", "nowhere", "name", "p", "2030-01-01", "--approved-by", "x"], LIBRARIES),
    (["check-id", "--kind", "passport", "1"], ("auto", "resident-id", "credit-code")),
    (["lookup", "1", "--library", "nowhere"], LIBRARIES),
])
def test_fixed_sets_of_values_are_checked_by_typer(args: list[str], choices: tuple[str, ...]) -> None:
    result = hub(*args)
    said = " ".join(result.stderr.replace("│", " ").split())
    assert result.exit_code == 2 and "Invalid value" in said and result.stdout == "", (args, result.output)
    assert all(f"'{choice}'" in said for choice in choices), (args, said)


# --- nouns grouped -------------------------------------------------------------------------------------------------

def test_registry_commands_are_grouped_by_noun() -> None:
    commands = root().commands
    groups = {name: set(c.commands) for name, c in commands.items() if is_group(c)}
    assert groups["departments"] == {"register", "set-limits"}
    assert groups["keys"] == {"add", "retire", "rotate-hub"}
    assert groups["grants"] == {"add", "revoke"}
    assert groups["purposes"] == {"list", "add", "retire", "load"}
    flat = {name for name, c in commands.items() if not is_group(c)}
    assert flat.isdisjoint(OLD_FLAT), flat & set(OLD_FLAT)


def test_the_old_flat_names_are_unknown() -> None:
    for name in ("grant", "add-key", "revoke-grant", "retire-key", "add-purpose"):
        result = hub(name, "--help")
        assert result.exit_code == 2 and "No such command" in result.stderr, name


# --- a light --help ------------------------------------------------------------------------------------------------

LOADED = """
import runpy, sys
sys.argv = ["hub", *sys.argv[1:]]
try:
    runpy.run_module("hub.cli", run_name="__main__")
except SystemExit:
    pass
print("LOADED", " ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize("args", [["--help"], ["quality", "--help"], ["keys", "add", "--help"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage" in done.stdout
    loaded = set(done.stdout.rsplit("LOADED ", 1)[1].split())
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

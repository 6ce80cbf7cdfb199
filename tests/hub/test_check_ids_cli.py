"""``hub check-id``: arguments, standard input, --json, --kind, exit status and masking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hub.commands.check_ids import check_one, register
from schemas.ids import ric_check_char, uscc_check_char

ROOT = Path(__file__).resolve().parents[2]
GOOD = "110105199003070017"
BAD_CHECK = "110105199003070018"
CODE = "91110000600037341L"
# A credit code of 18 digits: the shape of a resident ID number, but not a valid one.
DIGIT_CODE = next(
    body + uscc_check_char(body)
    for body in (f"91110000{n:09d}" for n in range(1000))
    if uscc_check_char(body).isdigit()
)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("other")
    def other() -> None:
        """A second command, so that "check-id" must be named as it will be in ``hub``."""

    return app


def run(app: typer.Typer, *args: str, stdin: str | None = None):
    return CliRunner().invoke(app, ["check-id", *args], input=stdin)


def test_valid_arguments(app: typer.Typer) -> None:
    result = run(app, GOOD, "110105900307001", "１１０１０５ １９９００３０７ ００１７", CODE.lower())
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [GOOD, GOOD, GOOD, CODE]


def test_invalid_argument_is_masked_and_exits_1(app: typer.Typer) -> None:
    result = run(app, GOOD, BAD_CHECK)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == GOOD
    assert lines[1].startswith("1101*************8\t")
    assert "check_digit" in lines[1] and "resident ID number" in lines[1]
    assert BAD_CHECK not in result.output and BAD_CHECK[4:12] not in lines[1]


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("11010519900307001", "length"),
        ("110105199013070011", "date"),
        ("999999199003070011", "region"),
        ("94110000600037341L", "authority"),
        ("91110000600037341M", "check_digit"),
        ("", "empty"),
    ],
)
def test_each_wrong_part_is_named(app: typer.Typer, value: str, part: str) -> None:
    result = run(app, "--json", value)
    assert result.exit_code == 1
    record = json.loads(result.output)
    assert record["error"] == part and record["valid"] is False and record["normalised"] is None
    assert value == "" or value not in result.output


def test_standard_input(app: typer.Typer) -> None:
    result = run(app, stdin=f"{GOOD}\n\n  {CODE}  \r\n")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [GOOD, CODE]  # blank lines are not inputs


def test_dash_reads_standard_input(app: typer.Typer) -> None:
    result = run(app, "-", stdin=f"{GOOD}\n{BAD_CHECK}\n")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == GOOD
    assert BAD_CHECK not in result.output


def test_json(app: typer.Typer) -> None:
    result = run(app, "--json", GOOD, BAD_CHECK, CODE)
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.output.splitlines()]
    assert records == [
        {"input": "1101*************7", "valid": True, "kind": "resident-id", "normalised": GOOD, "error": None, "detail": None},
        {
            "input": "1101*************8", "valid": False, "kind": "resident-id", "normalised": None,
            "error": "check_digit", "detail": "ISO 7064 MOD 11-2 check digit does not match",
        },
        {"input": "9111*************L", "valid": True, "kind": "credit-code", "normalised": CODE, "error": None, "detail": None},
    ]


def test_json_all_valid_exits_0(app: typer.Typer) -> None:
    result = run(app, "--json", stdin=f"{GOOD}\n")
    assert result.exit_code == 0
    assert json.loads(result.output)["normalised"] == GOOD


def test_auto_reports_an_all_digit_credit_code_as_a_credit_code(app: typer.Typer) -> None:
    assert DIGIT_CODE.isdigit()
    result = run(app, "--json", DIGIT_CODE)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["kind"] == "credit-code" and record["normalised"] == DIGIT_CODE


def test_auto_decides_by_shape() -> None:
    assert check_one(GOOD).kind == "resident-id"
    assert check_one(GOOD[:17] + "X").kind == "resident-id"  # digits and a trailing X
    assert check_one(BAD_CHECK).kind == "resident-id"  # neither: reported as what it looks like
    assert check_one("9111000060003734L").kind == "credit-code"  # letters: a credit code
    assert check_one("91110000600037341M").kind == "credit-code"


def test_kind_option(app: typer.Typer) -> None:
    forced = run(app, "--kind", "resident-id", "--json", CODE)
    assert forced.exit_code == 1
    assert json.loads(forced.output)["error"] == "format"
    as_code = run(app, "-k", "credit-code", "--json", GOOD)
    assert as_code.exit_code == 1
    assert json.loads(as_code.output)["kind"] == "credit-code"
    assert run(app, "--kind", "passport", GOOD).exit_code == 2


def test_module_runs_as_a_script() -> None:
    body = "11010319900101001"
    old_cancelled = body + ric_check_char(body)
    done = subprocess.run(
        [sys.executable, "-m", "hub.commands.check_ids", "--json"],
        input=f"{GOOD}\n{old_cancelled}\n{BAD_CHECK}\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["valid"] for r in records] == [True, True, False]
    assert BAD_CHECK not in done.stdout

"""``hub check-id``: check resident ID numbers and credit codes given as arguments or on standard input."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Annotated, Iterable

import typer

from hub.errors import InvalidIdentifier
from hub.masking import mask_id


class Kind(str, Enum):
    """Which identifier the inputs are; ``auto`` decides by shape, value by value."""

    auto = "auto"
    resident_id = "resident-id"
    credit_code = "credit-code"


_RESIDENT_ID_SHAPE = re.compile(r"[0-9]*[0-9X]")  # all digits, or digits and a trailing X


@dataclass(frozen=True)
class Result:
    """One checked input; ``input`` is masked, ``normalised`` is only set when valid."""

    input: str
    valid: bool
    kind: str
    normalised: str | None
    error: str | None
    detail: str | None


def _validate(text: str, kind: Kind) -> tuple[Kind, str]:
    """(kind, normalised) of a valid input, or InvalidIdentifier; ``kind`` auto resolved by shape."""
    # Imported on first use: the region tables and python-stdnum are a fifth of `hub --help`'s start-up.
    from schemas.ids import is_valid_credit_code, normalise, validate_credit_code, validate_resident_id

    if kind is Kind.credit_code:
        return kind, validate_credit_code(text)
    if kind is Kind.auto:
        shape = normalise(text)
        if shape and not _RESIDENT_ID_SHAPE.fullmatch(shape):
            return Kind.credit_code, validate_credit_code(text)
    try:
        return Kind.resident_id, validate_resident_id(text)
    except InvalidIdentifier:
        # 18 digits (or 17 and X) can also be a credit code: only say so if that is what it is.
        if kind is Kind.auto and is_valid_credit_code(text):
            return Kind.credit_code, validate_credit_code(text)
        raise


def check_one(text: str, kind: Kind = Kind.auto) -> Result:
    """Check one input; never raises for a wrong number and never keeps it unmasked unless valid."""
    masked = mask_id(text.strip())
    try:
        found, number = _validate(text, kind)
    except InvalidIdentifier as exc:
        from schemas.ids import USCC_KIND

        found = Kind.credit_code if exc.kind == USCC_KIND else Kind.resident_id
        return Result(masked, False, found.value, None, exc.part, exc.detail or None)
    return Result(masked, True, found.value, number, None, None)


def _inputs(numbers: list[str] | None) -> Iterable[str]:
    if numbers and numbers != ["-"]:
        return numbers
    # One per line; blank lines (such as a trailing newline) are not inputs.
    return (line.rstrip("\r\n") for line in sys.stdin if line.strip())


def _line(result: Result) -> str:
    if result.valid:
        return result.normalised or ""
    label = "resident ID number" if result.kind == Kind.resident_id.value else "unified social credit code"
    detail = f" ({result.detail})" if result.detail else ""
    return f"{result.input}\tinvalid {label}: {result.error}{detail}"


def check_ids(
    numbers: Annotated[
        list[str] | None,
        typer.Argument(help="Numbers to check; none or '-' reads standard input, one per line.", show_default=False),
    ] = None,
    kind: Annotated[Kind, typer.Option("--kind", "-k", help="Which identifier; auto decides by shape.")] = Kind.auto,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Check resident ID numbers and credit codes: prints the normalised number, or which part is wrong.

    Exits with status 1 when any input is invalid. Invalid inputs are only ever shown masked.
    """
    any_invalid = False
    for text in _inputs(numbers):
        result = check_one(text, kind)
        any_invalid |= not result.valid
        typer.echo(json.dumps(asdict(result), ensure_ascii=False) if json_output else _line(result))
    if any_invalid:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``check-id`` to the ``hub`` command line."""
    app.command("check-id")(check_ids)


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False)
    register(_app)
    _app()

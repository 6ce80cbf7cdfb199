"""Masking of personal identifiers and personal text: one named policy per audience, in Python and in DuckDB SQL.

``LOG`` is for logs, reports and error messages (stewards see enough to find a record again); ``ANALYST``
is for the analysts' masked views (region and birth year of an ID number, a name's first character).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")


def mask_id(value: str | None) -> str:
    """Keep the region prefix and the last character: ``110105********123X`` -> ``1101************X``."""
    if not value:
        return "<empty>"
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 5) + text[-1]


def mask_name(value: str | None) -> str:
    """Keep the surname only: ``张三丰`` -> ``张**``."""
    if not value:
        return "<empty>"
    return value[0] + "*" * (len(value) - 1)


def hash_id(value: str, salt: str = "hub") -> str:
    """A stable one-way hash of an identifier, for logs that must find a person again."""
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()


def _mask_id_sql(expr: str) -> str:
    return (f"CASE WHEN {expr} IS NULL OR {expr} = '' THEN '<empty>' WHEN length({expr}) <= 4 "
            f"THEN repeat('*', length({expr})) "
            f"ELSE substr({expr}, 1, 4) || repeat('*', length({expr}) - 5) || substr({expr}, length({expr}), 1) END")


def _mask_name_sql(expr: str) -> str:
    return (f"CASE WHEN {expr} IS NULL OR {expr} = '' THEN '<empty>' "
            f"ELSE left({expr}, 1) || repeat('*', length({expr}) - 1) END")


def _region_and_birth_year(value: str | None) -> str | None:
    """Region (6) and birth year (4) of an 18-character resident ID; other identifiers kept whole."""
    return value[:10] if value is not None and _RESIDENT_ID.fullmatch(value) else value


def _region_and_birth_year_sql(expr: str) -> str:
    return (f"CASE WHEN length({expr}) = 18 AND regexp_full_match({expr}, '[0-9]{{17}}[0-9X]') "
            f"THEN substr({expr}, 1, 10) ELSE {expr} END")


def _initial(value: str | None) -> str | None:
    """The first character and two stars, whatever the length (the length itself tells something)."""
    return None if value is None else value[:1] + "**"


def _initial_sql(expr: str) -> str:
    return f"CASE WHEN {expr} IS NULL THEN NULL ELSE left({expr}, 1) || '**' END"


@dataclass(frozen=True)
class Policy:
    """How one audience sees identifiers and personal text: as Python values and as SQL over an expression."""

    name: str
    identifier: Callable[[str | None], str | None]
    text: Callable[[str | None], str | None]
    identifier_sql: Callable[[str], str]
    text_sql: Callable[[str], str]


LOG = Policy("log", mask_id, mask_name, _mask_id_sql, _mask_name_sql)
ANALYST = Policy("analyst", _region_and_birth_year, _initial, _region_and_birth_year_sql, _initial_sql)
POLICIES = {p.name: p for p in (LOG, ANALYST)}

"""JSON pages as the hub lands them: numbers exactly as the source wrote them, every field as text, and each field's type held to what was declared or first seen."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pyarrow as pa

from hub.errors import SchemaDrift


class ExactFloat(str):
    """A JSON number with a fraction or exponent, as the source wrote it (no binary rounding)."""


class Absent:
    """Marks a field missing from a record."""


ABSENT = Absent()
TYPE_NAMES = {type(None): "null", bool: "boolean", int: "integer", ExactFloat: "number", str: "string",
               dict: "object", list: "array", Absent: "absent"}
_AS_IS = {str, ExactFloat, type(None)}  # values that land without conversion
_SCALARS = {str, int, bool, type(None)}  # JSON the standard encoder writes exactly as received
_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def loads_exact(content: bytes | str) -> Any:
    # Integers parse exactly anyway; fractions are kept as text, so 0.1 or a 20-digit amount lands as written.
    return json.loads(content, parse_float=ExactFloat)


def compact_json(value: Any) -> str:
    """Compact JSON text of a parsed value, numbers exactly as received."""
    kind = type(value)
    if kind is dict:
        if set(map(type, value.values())) <= _SCALARS:
            return _DUMPS(value)
        return "{" + ",".join([_DUMPS(k) + ":" + compact_json(v) for k, v in value.items()]) + "}"
    if kind is list:
        if set(map(type, value)) <= _SCALARS:
            return _DUMPS(value)
        return "[" + ",".join([compact_json(v) for v in value]) + "]"
    return str.__str__(value) if kind is ExactFloat else _DUMPS(value)


def text_column(items: list[dict], name: str) -> pa.Array:
    """One field of a page as text: numbers and booleans as their JSON text, nested values as compact JSON."""
    values = [item.get(name) for item in items]
    if not set(map(type, values)) <= _AS_IS:
        values = [v if type(v) in _AS_IS else compact_json(v) for v in values]
    return pa.array(values, pa.string())


def sort_key(value: Any) -> tuple[int, Any]:
    # Numbers compare as numbers, text as text: key 10 follows 9 only when the source sent numbers.
    if type(value) is ExactFloat:
        return (0, Decimal(value))
    if type(value) is int:
        return (0, value)
    return (1, value) if isinstance(value, str) else (2, compact_json(value))


def dig(body: Any, path: str) -> Any:
    """``body["a"]["b"]`` for the dotted path ``a.b``; ``ABSENT`` when any step is missing."""
    for part in path.split("."):
        if not isinstance(body, dict) or part not in body:
            return ABSENT
        body = body[part]
    return body


def allowed_types(spec: str) -> set[str]:
    # "null-or-string" allows either; a number may be written as an integer.
    types = set(spec.split("-or-"))
    return types | {"integer"} if "number" in types else types


class Shape:
    """The JSON type of each checked field, declared (``options.schema``) or learned from the first page."""

    def __init__(self, declared: Mapping[str, str] | None, columns: list[str] | None):
        self.learning = not declared
        self.allowed: dict[str, set[str] | None] = {f: allowed_types(s) for f, s in (declared or {}).items()}
        self.required = {f for f, types in self.allowed.items() if types and "null" not in types}
        self.columns = columns

    def check(self, items: list[Any], where: str) -> None:
        """SchemaDrift naming every field whose type changed or that went missing on this page."""
        if not all(type(item) is dict for item in items):
            raise SchemaDrift(f"{where}: the items are no longer all JSON objects")
        if self.learning and not self.allowed:
            # What the first page shows is what later pages are held to; a field always present is required.
            names = self.columns or list(dict.fromkeys(name for item in items for name in item))
            self.allowed = dict.fromkeys(names)
            self.required = {n for n in names if all(n in item for item in items)}
        problems = []
        for name, allowed in self.allowed.items():
            seen = {TYPE_NAMES[kind] for kind in {type(item.get(name, ABSENT)) for item in items}}
            if "absent" in seen and name in self.required:
                problems.append(f"required field {name!r} is missing")
            seen.discard("absent")
            if self.learning:
                # Nulls carry no type and integers are numbers; a field seen only as null so far learns later.
                seen = {"number" if t == "integer" else t for t in seen} - {"null"}
                if allowed is None:
                    self.allowed[name] = seen or None
                    continue
            if wrong := seen - allowed:
                expected = allowed - {"integer"} if "number" in allowed else allowed  # integers are numbers
                problems.append(f"field {name!r} is {'/'.join(sorted(wrong))}, expected {'/'.join(sorted(expected))}")
        if problems:
            raise SchemaDrift(f"{where}: schema drift: " + "; ".join(problems))

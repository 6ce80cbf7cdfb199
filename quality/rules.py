"""Suites of rules: base expectations derived from ``schemas/``, department rules from configuration.

A rule is one Great Expectations expectation (its type and keyword arguments, exactly as a GX suite
stores it) plus what a failure means for the gate:

- ``error``: the row goes to quarantine with the rule's reason;
- ``note``: the row passes, and the finding is recorded (an old 15-digit number upgraded, a
  full-width number normalised, a record entered twice): nothing is repaired silently;
- ``batch``: the whole batch is held back from publication (see ``quality.batch``).

Base rules are derived from the library declarations, so a field added to a schema is checked
without writing a rule twice. Building a suite needs no Great Expectations import: ``quality.gx``
turns it into a GX ``ExpectationSuite`` when results and Data Docs are written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.config import SEPARATORS, FieldMap, SourceConfig
from schemas import Library
from schemas.catalogue import Field
from schemas.codes import TABLES
from schemas.events import identity, record_type
from schemas.ids import EARLIEST_BIRTH_YEAR
from schemas.licences import IN_FORCE_STATUSES

ERROR, NOTE, BATCH = "error", "note", "batch"
LEVELS = (ERROR, NOTE, BATCH)

EARLIEST_DATE = dt.date(EARLIEST_BIRTH_YEAR, 1, 1)
# Date fields that may lie in the future (a validity end); every other date must be on or before today.
FUTURE_DATES = frozenset({"valid_to"})
# Code tables that are not lists in schemas.codes but checked by their own expectation.
REGION_TABLE = "region"
VALIDATOR_EXPECTATIONS = {
    "resident_id": ("expect_column_values_to_be_valid_resident_id", "expect_column_values_to_be_canonical_resident_id"),
    "credit_code": ("expect_column_values_to_be_valid_credit_code", "expect_column_values_to_be_canonical_credit_code"),
}
NOT_NULL = "expect_column_values_to_not_be_null"
TYPED = ("date", "timestamp")  # logical types a department writes as text with a format
# Numbers as departments write them (JSON numbers from REST sources land as their text).
NUMBERS = {"int": r"^\s*[-+]?[0-9]+\s*$", "decimal": r"^\s*[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?\s*$"}


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite and what its failure means."""

    expectation: str  # Great Expectations expectation type, e.g. "expect_column_values_to_not_be_null"
    kwargs: Mapping[str, Any]  # its arguments, as a GX suite stores them
    level: str = ERROR
    field: str | None = None  # the canonical field a failure is reported on
    name: str = ""  # short rule name: "<field>.<check>"
    origin: str = "schema"  # schema | hub | department | history
    description: str = ""
    raw: bool = False  # evaluated on the landed (raw) column named by kwargs["column"]
    parts: tuple[int, ...] = ()  # raw rules: the record parts of a row that read this column
    reason: str = ""  # what a failure says after "<field>: ", when the expectation's own words don't fit
    unless: str = ""  # rows failing the rule of this name are not this rule's failures (partial, not malformed)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"rule {self.name}: unknown level {self.level!r}")

    @property
    def meta(self) -> dict[str, Any]:
        """What GX keeps beside the expectation: the hub's rule name, level and origin."""
        return {"rule": self.name, "level": self.level, "origin": self.origin, "field": self.field,
                "description": self.description, **({"raw_column": True} if self.raw else {})}


@dataclass(frozen=True)
class Suite:
    """The rules of one source (before reconciliation) or one shared table (after it)."""

    name: str  # "source.<source>" or "table.<library>"
    kind: str  # "source" | "table"
    subject: str  # source name or library name
    library: str
    rules: tuple[Rule, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def by_level(self, level: str) -> list[Rule]:
        return [r for r in self.rules if r.level == level]


def _required_rule(f: Field) -> Rule:
    # ID validators name an absent value "empty", the first part they check.
    word = "empty" if f.validator else "required"
    return Rule("expect_column_values_to_not_be_null", {"column": f.name}, ERROR, f.name, f"{f.name}.{word}",
                description=f"{f.label}（{f.name}）必填 / required")


def not_carried_rule(f: Field) -> Rule:
    """The one rule on the library key of a source that has none: identity resolution takes the row from there."""
    return Rule("expect_column_values_to_not_be_null", {"column": f.name}, ERROR, f.name, f"{f.name}.not_carried",
                description=f"the source carries no {f.label}（{f.name}）: identity resolution finds it",
                reason="not carried by this source")


def field_rules(lib: Library, f: Field, *, required: bool, today: dt.date) -> list[Rule]:
    """The base rules of one declared field."""
    rules = [_required_rule(f)] if required else []
    col = {"column": f.name}
    if f.validator:
        valid, canonical = VALIDATOR_EXPECTATIONS[f.validator]
        standard = "GB 11643" if f.validator == "resident_id" else "GB 32100"
        rules.append(Rule(valid, col, ERROR, f.name, f"{f.name}.{f.validator}",
                          description=f"{f.label} is a valid {standard} number"))
        rules.append(Rule(canonical, col, NOTE, f.name, f"{f.name}.canonical",
                          description=f"{f.label} is typed in its canonical 18-character form"))
    if f.code_table == REGION_TABLE:
        rules.append(Rule("expect_column_values_to_be_valid_region_code", col, ERROR, f.name, f"{f.name}.region",
                          description=f"{f.label} is a GB/T 2260 region code"))
    elif f.code_table:
        rules.append(Rule("expect_column_values_to_be_in_set", {**col, "value_set": sorted(TABLES[f.code_table])},
                          ERROR, f.name, f"{f.name}.code", description=f"{f.label} is a code of table {f.code_table}"))
    if f.type == "date":
        bounds = {**col, "min_value": EARLIEST_DATE.isoformat()}
        if f.name not in FUTURE_DATES:
            bounds["max_value"] = today.isoformat()
        rules.append(Rule("expect_column_values_to_be_between", bounds, ERROR, f.name, f"{f.name}.range",
                          description=f"{f.label} lies between {bounds['min_value']} and {bounds.get('max_value', '…')}"))
    if f.type == "string" and not (f.code_table or f.validator):  # codes and numbers have their own rules
        rules.append(control_character_rule(f))
    return rules


# C0 controls bar tab and line breaks (a quoted value may hold those), DEL and the C1 controls: invisible in
# every report and answer, a NUL ends the string in C consumers. Escapes, not the characters, so a suite reads.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"


def control_character_rule(f: Field) -> Rule:
    """Free text holding a control character: quarantined, never published (a NUL reached conflicts.parquet)."""
    return Rule("expect_column_values_to_not_match_regex_list",
                {"column": f.name, "regex_list": [CONTROL_CHARACTERS]}, ERROR, f.name, f"{f.name}.control_characters",
                description=f"{f.label} holds no control characters",
                reason="holds a control character (U+0000-U+001F bar tab and line breaks, U+007F-U+009F)")


def _pair(expectation: str, a: str, b: str, field_name: str, name: str, description: str, **kwargs: Any) -> Rule:
    return Rule(expectation, {"column_A": a, "column_B": b, **kwargs}, ERROR, field_name, name, "hub", description)


def library_rules(lib: Library, present: set[str], *, as_of: dt.date) -> list[Rule]:
    """Rules across fields of one record that the declarations cannot state (applied when the fields are present)."""
    out: list[Rule] = []
    if lib.name == "population":
        if {"id_number", "birth_date"} <= present:
            out.append(_pair("expect_column_pair_values_to_match_id_birth_date", "id_number", "birth_date",
                             "birth_date", "birth_date.id_number", "the birth date encoded in the ID number agrees"))
        if {"id_number", "gender"} <= present:
            out.append(_pair("expect_column_pair_values_to_match_id_gender", "id_number", "gender",
                             "gender", "gender.id_number", "the sex encoded in the ID number agrees"))
        if {"life_status_date", "birth_date"} <= present:
            out.append(_pair("expect_column_pair_values_a_to_be_greater_than_b", "life_status_date", "birth_date",
                             "life_status_date", "life_status_date.after_birth", "a life event follows the birth",
                             or_equal=True, ignore_row_if="either_value_is_missing"))
    elif lib.name == "legal_person":
        if {"status_date", "established_on"} <= present:
            out.append(_pair("expect_column_pair_values_a_to_be_greater_than_b", "status_date", "established_on",
                             "status_date", "status_date.after_establishment", "a status change follows the establishment",
                             or_equal=True, ignore_row_if="either_value_is_missing"))
    elif lib.name == "licence":
        if {"holder_type", "holder_id"} <= present:
            out.append(_pair("expect_column_pair_values_to_be_valid_holder_id", "holder_type", "holder_id", "holder_id",
                             "holder_id.valid", "the holder's ID number (person) or credit code (legal person) is valid"))
        if {"valid_to", "valid_from"} <= present:
            out.append(_pair("expect_column_pair_values_a_to_be_greater_than_b", "valid_to", "valid_from", "valid_to",
                             "valid_to.after_valid_from", "the validity ends after it starts",
                             or_equal=True, ignore_row_if="either_value_is_missing"))
        if {"valid_from", "issued_on"} <= present:
            out.append(_pair("expect_column_pair_values_a_to_be_greater_than_b", "valid_from", "issued_on", "valid_from",
                             "valid_from.after_issue", "the validity starts on or after the issue date",
                             or_equal=True, ignore_row_if="either_value_is_missing"))
        if {"status", "valid_to"} <= present:
            out.append(Rule("expect_multicolumn_licence_status_to_agree_with_validity",
                            {"column_list": ["status", "valid_to"], "as_of": as_of.isoformat()}, ERROR, "status",
                            "status.validity", "hub",
                            f"a licence whose validity ended before {as_of.isoformat()} is not marked {' or '.join(IN_FORCE_STATUSES)}"))
    return out


def raw_rules(source: SourceConfig, lib: Library) -> list[Rule]:
    """Format rules on the landed text: a date the department wrote must parse with the configured format.

    The mapping turns an unparsable date into null; this rule is what keeps that from being a silent loss.
    A field combined from several columns is checked on its combined text (named by its template).
    A year and month (or a year) written in the format's style is a partial date, reported as such.
    """
    out: dict[tuple[str, str, str], Rule] = {}

    def add(key: tuple[str, str, str], rule: Rule, part: int) -> None:
        previous = out.get(key)
        out[key] = dataclasses.replace(rule, parts=(previous.parts if previous else ()) + (part,))

    for i, fields in enumerate(source.record_fields()):
        for name, spec in fields.items():
            text = spec.text_name
            if text is None or name not in lib.field_names:
                continue
            kind = lib.field(name).type
            if kind in NUMBERS:
                add((text, name, "number"), Rule("expect_column_values_to_match_regex",
                                                 {"column": text, "regex": NUMBERS[kind]}, ERROR, name,
                                                 f"{name}.number", "department", f"{text} holds numbers", raw=True), i)
                continue
            if kind not in TYPED:
                continue
            fmt = spec.date_format or "%Y-%m-%d"
            if kind == "date":  # before the format rule, which leaves the partial dates to it
                add((text, name, "partial"), partial_rule(name, text, fmt), i)
            add((text, name, "format"), Rule("expect_column_values_to_match_strftime_format",
                                             {"column": text, "strftime_format": fmt}, ERROR, name, f"{name}.format",
                                             "department", f"{text} holds dates written as {fmt}", raw=True,
                                             unless=f"{name}.partial" if kind == "date" else ""), i)
    return list(out.values())


def partial_rule(name: str, column: str, date_format: str) -> Rule:
    """Year-month and year-only values of a date column: quarantined as partial dates, their value kept."""
    return Rule("expect_column_values_to_not_match_regex_list",
                {"column": column, "regex_list": partial_date_patterns(date_format)}, ERROR, name,
                f"{name}.partial", "department",
                f"{column} holds whole dates: a year and month, or a year, written as {date_format} is partial",
                raw=True)


_DIRECTIVE = re.compile(r"%.|[^%]+")
_YEAR, _MONTH = r"(?P<year>[12][0-9]{3})", r"(?P<month>0[1-9]|1[0-2])"
_SHORT_MONTH = r"(?P<month>0?[1-9]|1[0-2])"  # where a separator follows, a month may be written with one digit
# Written this way whatever the configured format: 1985年3月, 1985年, 1985.
COMMON_PARTIALS = (rf"^\s*{_YEAR}年{_SHORT_MONTH}月\s*$", rf"^\s*{_YEAR}年\s*$", rf"^\s*{_YEAR}\s*$")


def _literal(text: str) -> str:
    """Literal text of a format as regex (escaped where RE2 and Python's re would read it otherwise)."""
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)


def _partial_pattern(tokens: list[str], keep: set[str]) -> str | None:
    """The regex of ``tokens`` (a strftime format split into directives and literals) reduced to ``keep``."""
    at = [i for i, t in enumerate(tokens) if t in keep]
    if len(at) != len(keep):
        return None
    first, last = at[0], at[-1]
    span = tokens[first:last + 1]
    if any(t.startswith("%") and t not in keep and t != "%%" for t in span):
        return None  # another directive between year and month: no partial form of this style
    after = tokens[last + 1] if last + 1 < len(tokens) else ""
    if after and not after.startswith("%") and not set(after) & set(SEPARATORS):
        span.append(after)  # a unit that belongs to the last kept part: 月 in "%Y年%m月%d日"
    out = []
    for i, t in enumerate(span):
        following = tokens[first + i + 1] if first + i + 1 < len(tokens) else ""
        if t == "%Y":
            out.append(_YEAR)
        elif t == "%m":
            out.append(_MONTH if following.startswith("%") and following != "%%" else _SHORT_MONTH)
        else:
            out.append(_literal("%" if t == "%%" else t))
    return r"^\s*" + "".join(out) + r"\s*$"


def partial_date_patterns(date_format: str) -> list[str]:
    """Regexes of a year and month (group ``month`` present) or a year alone, in the style of ``date_format``."""
    tokens = _DIRECTIVE.findall(date_format)
    derived = [_partial_pattern(tokens, {"%Y", "%m"}), COMMON_PARTIALS[0], _partial_pattern(tokens, {"%Y"}),
               *COMMON_PARTIALS[1:]]
    return list(dict.fromkeys(p for p in derived if p))


def _required(source: SourceConfig, lib: Library, f: Field) -> bool:
    """Whether a row of ``source`` must carry ``f``: the key, and required fields unless a contributor has no say."""
    if f.name == lib.key:
        return True
    # A contributor is checked on what it carries: reconciliation fills the rest from the authoritative department.
    return f.required and (source.role != "contributor" or f.name in source.authoritative)


def mapped_fields(source: SourceConfig) -> set[str]:
    """Canonical fields the source fills (in any record part)."""
    return {name for fields in source.record_fields() for name in fields}


def source_suite(source: SourceConfig, rules_config: Mapping[str, Any] | None = None, *,
                 today: dt.date | None = None) -> Suite:
    """The suite of one source: schema rules for what it maps, hub rules, format rules, department rules."""
    from quality.config import SourceRules  # the configuration model; kept out of this module's import cost

    today = today or dt.date.today()
    lib = record_type(source.delivers)
    cfg = SourceRules.model_validate(rules_config or {})
    present = mapped_fields(source) | {lib.key}
    # The department's own record key: what a later version of the record replaces, and what stewards quote.
    rules: list[Rule] = [
        Rule("expect_column_values_to_not_be_null", {"column": "source_record_id"}, ERROR, "source_record_id",
             "source_record_id.required", "hub", f"every record carries the source's key ({source.key})"),
        Rule("expect_column_value_lengths_to_be_between", {"column": "source_record_id", "min_value": 1}, ERROR,
             "source_record_id", "source_record_id.not_empty", "hub", f"the source's key ({source.key}) is not blank"),
    ]
    raw = raw_rules(source, lib)
    partial = {r.field for r in raw if r.name.endswith(".partial")}
    for f in lib.fields:
        if f.metadata or f.name not in present:
            continue
        if f.name == lib.key and not source.carries_key:
            rules.append(not_carried_rule(f))
            continue
        field = field_rules(lib, f, required=_required(source, lib, f), today=today)
        # A partial date is there, only incomplete: its own reason says so, not "required".
        rules += [dataclasses.replace(r, unless=f"{f.name}.partial") if r.expectation == NOT_NULL and f.name in partial
                  else r for r in field]
    rules += library_rules(lib, present, as_of=cfg.as_of or today)
    rules += raw
    for columns in (cfg.unique if cfg.unique is not None else [list(identity(lib))]):
        missing = [c for c in columns if c not in present]
        if missing:
            continue
        if len(columns) == 1:
            rules.append(Rule("expect_column_values_to_be_unique", {"column": columns[0]}, NOTE, columns[0],
                              f"{columns[0]}.unique", "department", f"one record per {columns[0]} in this source"))
        else:
            rules.append(Rule("expect_compound_columns_to_be_unique", {"column_list": list(columns)}, NOTE, columns[0],
                              f"{'+'.join(columns)}.unique", "department",
                              f"one record per ({', '.join(columns)}) in this source"))
    for extra in cfg.expect:
        rules.append(Rule(extra.type, dict(extra.kwargs), extra.level, extra.field or extra.kwargs.get("column"),
                          extra.name or f"{extra.field or extra.kwargs.get('column', 'row')}.{extra.type.removeprefix('expect_')}",
                          "department", extra.description))
    return Suite(f"source.{source.name}", "source", source.name, lib.name, tuple(rules),
                 {"department": source.department, "library": lib.name})


def source_rules(source: SourceConfig) -> dict[str, Any]:
    """The department rules of ``source``: its ``quality`` section if the configuration has one, else quality/config."""
    own = getattr(source, "quality", None)
    if own:
        return dict(own)
    from quality.config import department_rules

    return department_rules().sources.get(source.name, {})


def field_map(source: SourceConfig, name: str) -> FieldMap | None:
    """How ``source`` fills canonical field ``name`` (its first record part that does)."""
    for fields in source.record_fields():
        if name in fields:
            return fields[name]
    return None

"""Source configuration: which department, which kind, which library, and the column mapping.

Adding a department of a known kind is a new entry in the YAML file, never code. A bad file is
refused at load time with every problem listed.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.errors import ConfigError
from schemas import LIBRARIES
from schemas.codes import DEPARTMENTS, TABLES
from schemas.events import EVENTS, record_type

SAMPLE_SOURCES = Path(__file__).parent / "config" / "sample_sources.yaml"


# Characters that only separate the parts of a template ("{STREET_NO} {ADDRESS_1}, {SUBURB}"): the ones an
# empty part must not leave doubled or dangling. Any other literal text belongs to the part beside it.
SEPARATORS = " \t,，;；、/|:：-–—·"


@dataclass(frozen=True)
class TemplatePart:
    """One placeholder of a template, with the literal text attached to it (kept only when it is not empty)."""

    column: str
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class Template:
    """A parsed template: its placeholders, and the separator between each one and the next."""

    parts: tuple[TemplatePart, ...]
    joints: tuple[str, ...]  # joints[i] separates parts[i] from parts[i + 1]


def _split_literal(text: str) -> tuple[str, str, str]:
    """Literal text between two placeholders as (suffix of the one before, separator, prefix of the one after)."""
    at = [i for i, c in enumerate(text) if c in SEPARATORS]
    if not at:  # no separator: all of it goes with the part before ("{YEAR}年{MONTH}月")
        return text, "", ""
    return text[:at[0]], text[at[0]:at[-1] + 1], text[at[-1] + 1:]


def parse_template(template: str) -> Template:
    """The placeholders and literal text of a str.format-style template; ValueError names what is wrong."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    literals, columns = [""], []
    for literal, name, spec, conversion in parsed:
        literals[-1] += literal
        if name is None:
            continue
        if not name:
            raise ValueError(f"bad template {template!r}: placeholder {{}} does not name a column")
        if spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"bad template {template!r}: {shown} has a conversion or format; placeholders only name columns")
        columns.append(name)
        literals.append("")
    if not columns:
        raise ValueError(f"bad template {template!r}: it names no column")
    prefixes, suffixes, joints = [literals[0]] + [""] * (len(columns) - 1), [""] * len(columns), []
    for i, literal in enumerate(literals[1:-1]):
        suffixes[i], joint, prefixes[i + 1] = _split_literal(literal)
        joints.append(joint)
    suffixes[-1] += literals[-1]
    return Template(tuple(TemplatePart(c, p, s) for c, p, s in zip(columns, prefixes, suffixes)), tuple(joints))


class FieldMap(BaseModel):
    """How one canonical field is read from a department column, or from several combined."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    columns: list[str] | None = None  # concatenated, empty parts skipped
    separator: str | None = None  # between the parts of ``columns`` (default: none)
    template: str | None = None  # str.format-style, e.g. "{STREET_NO} {ADDRESS_1}, {SUBURB}"
    value: str | None = None  # a constant, e.g. life_status "deceased" for a deaths register
    codes: dict[str, str] | None = None  # department code -> national code
    by_label: str | None = None  # the department writes the Chinese label of this code table
    label_suffix: str = ""  # appended before the label lookup, e.g. "族" for "汉" -> "汉族"
    date_format: str | None = None  # strptime format of a date/timestamp column

    @model_validator(mode="after")
    def _one_source(self) -> "FieldMap":
        problems = []
        given = [x is not None for x in (self.column, self.columns, self.template, self.value)]
        if sum(given) != 1:
            problems.append("give exactly one of column, columns, template or value")
        if self.columns is not None and len(self.columns) < 2:
            problems.append(f"columns needs at least two columns (got {self.columns}); one is 'column'")
        if self.separator is not None and self.columns is None:
            problems.append("separator goes with columns (a template writes its own separators)")
        if self.template is not None:
            try:
                parse_template(self.template)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def reads(self) -> list[str]:
        """The department columns this field is read from."""
        if self.column is not None:
            return [self.column]
        if self.columns is not None:
            return list(self.columns)
        if self.template is not None:
            return [p.column for p in parse_template(self.template).parts]
        return []

    @property
    def text_name(self) -> str | None:
        """What the field's raw text is called in rules and reports: the column, or the combination as a template."""
        if self.column is not None or self.template is not None:
            return self.column if self.column is not None else self.template
        if self.columns is not None:
            sep = (self.separator or "").replace("{", "{{").replace("}", "}}")
            return sep.join("{" + c + "}" for c in self.columns)
        return None


class SourceLimits(BaseModel):
    """What a REST source may cost one extraction before it fails with a clear error and nothing landed."""

    model_config = ConfigDict(extra="forbid")

    # The whole extraction, retries and waits included: a source that loops or trickles fails here.
    deadline_seconds: float = Field(default=3600.0, gt=0)
    # Items in one page; unset, what was asked for (the page size): more is an API ignoring its size parameter.
    max_page_items: int | None = Field(default=None, ge=1)
    # Bytes of one answer's body, as read: an endless or oversized body is cut off here, not held in memory.
    max_page_bytes: int = Field(default=64 << 20, ge=1024)


def _shorthand_fields(value: Any) -> Any:
    # "name: XM" is shorthand for "name: {column: XM}".
    if isinstance(value, dict):
        return {k: {"column": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


class SourceConfig(BaseModel):
    """One department source system."""

    model_config = ConfigDict(extra="forbid")

    name: str
    department: str
    kind: Literal["sql", "file_drop", "rest"]
    library: str
    # A master source must map every required field; an events source delivers its library's status
    # events (schemas.events), staged apart and applied after reconciliation, and maps every event field.
    role: Literal["master", "contributor", "events"] = "contributor"
    schedule: str | None = "@daily"
    connection: str | None = None  # Airflow Connection id holding the credentials
    url: str | None = None  # non-secret default location ({samples_dir} is expanded)
    table: str | None = None
    key: str  # the department's record identifier column
    watermark: str | None = None  # update-time or sequence column for incremental extraction
    batch_size: int = Field(default=100_000, ge=1)
    authoritative: list[str] = []
    # False: the department has no ID number (or credit code) for its records; they enter with the key
    # null and the gate sends them to identity resolution with one reason, "<key>: not carried by this source".
    carries_key: bool = True
    fields: dict[str, FieldMap]
    # A row that describes several records (a marriage: husband and wife) lists each record's own
    # fields here; every record also gets the shared ``fields``.
    records: list[dict[str, FieldMap]] = []
    options: dict[str, Any] = {}
    limits: SourceLimits = SourceLimits()  # what one extraction may cost (rest sources)
    quality: dict[str, Any] = {}  # department quality rules, in the shape of quality.config.SourceRules

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _shorthand_fields(value)

    @field_validator("records", mode="before")
    @classmethod
    def _shorthand_records(cls, value: Any) -> Any:
        return [_shorthand_fields(v) for v in value] if isinstance(value, list) else value

    def record_fields(self) -> list[dict[str, FieldMap]]:
        """The field maps of each record a row holds (one, unless ``records`` is given)."""
        return [{**self.fields, **extra} for extra in self.records] if self.records else [self.fields]

    @property
    def columns(self) -> list[str]:
        """Every department column the mapping reads."""
        return list(dict.fromkeys(c for fields in self.record_fields() for m in fields.values() for c in m.reads))

    @property
    def delivers(self) -> str:
        """The record type this source delivers, and so its staging table: the library's, or its events'."""
        return EVENTS[self.library].name if self.role == "events" and self.library in EVENTS else self.library

    def location(self, samples_dir: Path) -> str | None:
        """The configured URL with ``{samples_dir}`` expanded."""
        return self.url.format(samples_dir=samples_dir) if self.url else None


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[SourceConfig]


def problems_of(source: SourceConfig) -> list[str]:
    """Every semantic problem of one source: unknown names, unmapped required fields, unknown code tables."""
    where = f"source {source.name!r}"
    problems = []
    if source.department not in DEPARTMENTS:
        problems.append(f"{where}: unknown department {source.department!r}")
    if source.library not in LIBRARIES:
        return problems + [f"{where}: unknown library {source.library!r}; known: {', '.join(LIBRARIES)}"]
    if source.role == "events" and source.library not in EVENTS:
        return problems + [f"{where}: library {source.library} has no events; events exist for: {', '.join(EVENTS)}"]
    lib = record_type(source.delivers)
    declared = {f.name: f for f in lib.fields if not f.metadata}
    mapped = {name: spec for fields in source.record_fields() for name, spec in fields.items()}
    for name, spec in mapped.items():
        if name not in declared:
            problems.append(f"{where}: unknown field {name!r} for library {lib.name}")
        if spec.by_label and spec.by_label not in TABLES:
            problems.append(f"{where}: field {name!r} uses unknown code table {spec.by_label!r}")
        if spec.codes and name in declared and declared[name].code_table in TABLES:
            unknown = sorted(set(spec.codes.values()) - set(TABLES[declared[name].code_table]))
            if unknown:
                problems.append(f"{where}: field {name!r} maps to codes not in {declared[name].code_table}: {unknown}")
    problems += _key_problems(source, lib.key, where)
    # A master (or an events source) carries whole records; a contributor maps what it has, beside the key.
    complete = source.role in ("master", "events")
    required = ({lib.key} if source.carries_key else set()) | (
        {f.name for f in declared.values() if f.required} if complete else set())
    for fields in source.record_fields():
        problems += [f"{where}: required field {n!r} of {lib.name} is not mapped" for n in sorted(required - set(fields))]
    for name in source.authoritative:
        if name not in mapped:
            problems.append(f"{where}: authoritative field {name!r} is not mapped")
        elif name in declared and declared[name].authorities and source.department not in declared[name].authorities:
            problems.append(f"{where}: {source.department} is not declared authoritative for {lib.name}.{name}")
    if source.kind != "rest" and source.limits.model_fields_set:
        problems.append(f"{where}: limits apply to rest sources only")
    if source.kind == "sql" and not source.table:
        problems.append(f"{where}: an sql source needs a table")
    if not (source.connection or source.url):
        problems.append(f"{where}: needs a connection id or a url")
    return problems


def _key_problems(source: SourceConfig, key: str, where: str) -> list[str]:
    """What is wrong with a source's declaration that it carries no key of its library."""
    if source.carries_key:
        return []
    problems = []
    if source.role != "contributor":
        problems.append(f"{where}: a {source.role} source carries the library key ({key}); "
                        "carries_key: false is for contributors")
    if any(key in fields for fields in source.record_fields()):
        problems.append(f"{where}: carries_key is false but the library key {key!r} is mapped")
    return problems


def load_sources(path: Path | None = None) -> dict[str, SourceConfig]:
    """Load and check a sources file; ConfigError lists every problem found."""
    path = path or SAMPLE_SOURCES
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read source configuration {path}: {exc}") from exc
    try:
        parsed = SourcesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from exc
    problems = [p for s in parsed.sources for p in problems_of(s)]
    names = [s.name for s in parsed.sources]
    problems += [f"source name {n!r} is used twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ConfigError(problems)
    return {s.name: s for s in parsed.sources}


@lru_cache(maxsize=4)
def configured_sources(path: str | None = None) -> dict[str, SourceConfig]:
    """The sources of the configured file (settings.sources_file, else the sample systems'), cached."""
    from hub.settings import get_settings

    chosen = Path(path) if path else get_settings().sources_file
    return load_sources(chosen)

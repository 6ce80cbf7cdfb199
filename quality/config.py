"""Department-specific quality rules: configuration, not code.

Rules are read from every ``quality/config/*.yaml`` file (or the folder named by ``HUB_QUALITY_RULES``),
keyed by source name and by library; a source configuration may instead carry its own ``quality:``
section with the same shape as one ``sources`` entry. A bad file is refused with every problem listed.

::

    sources:
      household:
        unique: [[id_number], [name, birth_date, gender, household_region]]   # noted, not quarantined
        as_of: 2026-01-01              # reference date of "expired" checks (default: today)
        expect:                        # any GX expectation, evaluated vectorised when the gate knows it
          - type: expect_column_values_to_match_regex
            kwargs: {column: phone, regex: "^1[3-9][0-9]{9}$"}
            level: note
        batch: {row_count: {ratio: 10, min_history: 3}, empty_column: {share: 0.95}, new_code: {share: 0.01}}
    libraries:
      population:
        consistency:
          - {field: life_status, reference: health}
          - {field: marital_status, reference: civil_affairs, compatible: {"20": ["20", "30", "40"]}}
      legal_person:
        consistency:
          - {field: legal_rep_name, against: {library: population, key: legal_rep_id_number, field: name}}
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.errors import ConfigError
from schemas import LIBRARIES

CONFIG_DIR = Path(__file__).parent / "config"


class Expect(BaseModel):
    """One department expectation: a GX expectation type and its arguments."""

    model_config = ConfigDict(extra="forbid")

    type: str
    kwargs: dict[str, Any] = {}
    level: Literal["error", "note"] = "error"
    field: str | None = None  # canonical field a failure is reported on (default: kwargs.column)
    name: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _expectation(self) -> "Expect":
        if not self.type.startswith("expect_"):
            raise ValueError(f"{self.type!r} is not an expectation type (expect_...)")
        return self


class RowCount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    ratio: float = Field(default=10.0, gt=1.0)  # refused below median/ratio or above median*ratio
    min_history: int = Field(default=3, ge=1)  # earlier non-empty batches needed before judging
    history: int = Field(default=10, ge=1)  # how many earlier batches make "the usual"


class EmptyColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    share: float = Field(default=0.95, gt=0.0, le=1.0)  # refused when at least this share is empty ...
    usual_max: float = Field(default=0.5, ge=0.0, lt=1.0)  # ... and usually at most this share was
    min_rows: int = Field(default=100, ge=1)  # batches (and history) smaller than this are not judged
    history: int = Field(default=10, ge=1)


class NewCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    share: float = Field(default=0.01, gt=0.0, le=1.0)  # refused when never-seen codes reach this share of rows
    min_rows: int = Field(default=100, ge=1)


class BatchRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row_count: RowCount = RowCount()
    empty_column: EmptyColumn = EmptyColumn()
    new_code: NewCode = NewCode()


class SourceRules(BaseModel):
    """The department rules of one source."""

    model_config = ConfigDict(extra="forbid")

    unique: list[list[str]] | None = None  # default: [[library key]]
    as_of: dt.date | None = None
    expect: list[Expect] = []
    batch: BatchRules = BatchRules()


class Against(BaseModel):
    model_config = ConfigDict(extra="forbid")
    library: str
    key: str  # field of this library holding the other library's key
    field: str


class Consistency(BaseModel):
    """Values two departments give for the same record must agree (or be compatible)."""

    model_config = ConfigDict(extra="forbid")

    field: str
    reference: str | None = None  # the department others are compared with
    compatible: dict[str, list[str]] = {}  # reference value -> other values that agree with it (default: equal)
    against: Against | None = None  # compare with a field of another library instead

    @model_validator(mode="after")
    def _one_kind(self) -> "Consistency":
        if (self.reference is None) == (self.against is None):
            raise ValueError("give exactly one of reference (a department) or against (another library)")
        return self


class LibraryRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consistency: list[Consistency] = []


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: dict[str, dict[str, Any]] = {}
    libraries: dict[str, LibraryRules] = {}


def _problems(parsed: RulesFile, where: str) -> list[str]:
    problems = []
    for name, rules in parsed.sources.items():
        try:
            SourceRules.model_validate(rules)
        except ValidationError as exc:
            problems += [f"{where}: sources.{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    for lib, rules in parsed.libraries.items():
        if lib not in LIBRARIES:
            problems.append(f"{where}: unknown library {lib!r}")
            continue
        for c in rules.consistency:
            if c.field not in LIBRARIES[lib].field_names:
                problems.append(f"{where}: {lib} has no field {c.field!r}")
            if c.against and (c.against.library not in LIBRARIES or c.against.field not in LIBRARIES[c.against.library].field_names):
                problems.append(f"{where}: {lib}.{c.field}: unknown library field {c.against.library}.{c.against.field}")
    return problems


def load_rules(folder: Path) -> RulesFile:
    """Every ``*.yaml`` of ``folder`` merged; ConfigError lists every problem."""
    merged = RulesFile()
    problems: list[str] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            parsed = RulesFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"cannot read quality rules {path}: {exc}")
            continue
        except ValidationError as exc:
            problems += [f"{path.name}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            continue
        problems += _problems(parsed, path.name)
        twice = sorted(set(parsed.sources) & set(merged.sources))
        problems += [f"{path.name}: rules for source {n!r} are given in two files" for n in twice]
        merged.sources.update(parsed.sources)
        for lib, rules in parsed.libraries.items():
            merged.libraries.setdefault(lib, LibraryRules()).consistency.extend(rules.consistency)
    if problems:
        raise ConfigError(problems)
    return merged


@lru_cache(maxsize=2)
def _cached(folder: str) -> RulesFile:
    return load_rules(Path(folder))


def department_rules() -> RulesFile:
    """The department rules in force (``HUB_QUALITY_RULES`` folder, else quality/config), cached."""
    return _cached(os.environ.get("HUB_QUALITY_RULES") or str(CONFIG_DIR))


def clear_cache() -> None:
    _cached.cache_clear()

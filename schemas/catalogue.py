"""The vocabulary of the resource catalogue (资源目录): fields, sharing classes, personal-data levels."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Sharing(str, enum.Enum):
    """Sharing class of a catalogued field."""

    UNCONDITIONAL = "unconditional"  # 无条件共享: any registered department
    CONDITIONAL = "conditional"  # 有条件共享: only under an approved grant
    NOT_SHAREABLE = "not_shareable"  # 不予共享: never leaves the hub


class PersonalData(str, enum.Enum):
    """How sensitive a field is under PIPL; drives masking in views, logs and reports."""

    NONE = "none"
    IDENTIFIER = "identifier"  # ID numbers: masked to region + birth year for analysts
    PERSONAL = "personal"  # names, addresses: masked for analysts
    SENSITIVE = "sensitive"  # PIPL art. 28 sensitive personal information


# Logical types, each mapped once to Arrow and DuckDB in schemas.derive.
TYPES = ("string", "date", "timestamp", "int", "decimal", "bool", "json")


@dataclass(frozen=True)
class Field:
    """One catalogued field of a library."""

    name: str
    type: str
    label: str  # Chinese label shown to departments and stewards
    sharing: Sharing = Sharing.CONDITIONAL
    personal: PersonalData = PersonalData.NONE
    authorities: tuple[str, ...] = ()  # department codes authoritative for this field
    required: bool = False
    code_table: str | None = None  # name of a table in schemas.codes
    validator: str | None = None  # "resident_id" or "credit_code"
    metadata: bool = False  # record metadata, filled by the hub, not by departments
    # Values that, once an authority records them, win over newer ones: life events are irreversible.
    terminal: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")


@dataclass(frozen=True)
class Library:
    """One shared base library: its key and its declared fields."""

    name: str
    label: str
    key: str
    fields: tuple[Field, ...]
    table: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)

    def field(self, name: str) -> Field:
        """The field called ``name``; KeyError if the library has none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def by_sharing(self, sharing: Sharing) -> list[Field]:
        """Fields of one sharing class."""
        return [f for f in self.fields if f.sharing is sharing]

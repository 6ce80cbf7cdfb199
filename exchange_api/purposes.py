"""The purpose catalogue: the registered reasons a department may give for a request, each with its legal basis.

A request names a purpose by code; the code must be registered and allowed for the library asked about,
otherwise the request is refused with 422 (``unknown_purpose``, ``purpose_not_for_library``). Grants name
purposes from the same catalogue, so a grant and the requests it covers speak of the same thing.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Engine, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from exchange_api.errors import InvalidRequest
from exchange_api.models import UtcDateTime, utcnow
from hub.db import Base

SAMPLE_PURPOSES = Path(__file__).parent / "config" / "sample_purposes.yaml"
CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class Purpose(Base):
    """A registered purpose: code, name, legal basis and the libraries it may be used for."""

    __tablename__ = "exchange_purposes"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text)
    libraries: Mapped[str] = mapped_column(Text)  # comma-separated library names
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


@dataclass(frozen=True)
class PurposeInfo:
    """A purpose as requests and answers need it, detached from the session."""

    code: str
    name: str
    legal_basis: str
    libraries: tuple[str, ...]
    active: bool = True

    @classmethod
    def of(cls, row: Purpose) -> PurposeInfo:
        return cls(row.code, row.name, row.legal_basis, tuple(n for n in row.libraries.split(",") if n), row.active)

    def public(self) -> dict[str, Any]:
        """The catalogue entry departments read."""
        return {"code": self.code, "name": self.name, "legal_basis": self.legal_basis, "libraries": list(self.libraries)}


class UnknownPurpose(InvalidRequest):
    """422: the purpose is not in the catalogue (or retired)."""

    code = "unknown_purpose"


class PurposeNotForLibrary(InvalidRequest):
    """422: the purpose is registered, but not for this library."""

    code = "purpose_not_for_library"


def check_purpose(catalogue: Mapping[str, PurposeInfo], code: str, library_name: str) -> PurposeInfo:
    """The catalogue entry of ``code`` if it may be used for ``library_name``; 422 otherwise."""
    purpose = catalogue.get(code)
    if purpose is None or not purpose.active:
        # Not echoed: 18 digits pass the code pattern, so the "purpose" could be someone's ID number.
        raise UnknownPurpose("purpose is not in the hub's purpose catalogue (GET /v1/catalogue lists them)")
    if library_name not in purpose.libraries:
        raise PurposeNotForLibrary(f"purpose {purpose.code!r} is not registered for the {library_name} library")
    return purpose


_tables_ready: set[str] = set()
_tables_lock = threading.Lock()


def ensure_table(bind: Engine | Any) -> None:
    """Create the catalogue table if this database has none (the exchange tables may predate it)."""
    url = str(bind.engine.url)
    if url in _tables_ready:
        return
    with _tables_lock:
        Purpose.__table__.create(bind.engine, checkfirst=True)  # type: ignore[attr-defined]
        _tables_ready.add(url)


def read_catalogue_file(path: Path) -> list[dict[str, Any]]:
    """The purposes listed in a YAML file (``purposes: [{code, name, legal_basis, libraries}]``)."""
    import yaml

    from exchange_api.registry import RegistryError

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"cannot read the purpose catalogue {path}: {exc}") from None
    entries = raw.get("purposes") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RegistryError(f"{path}: expected a list under 'purposes'")
    return entries


def libraries_of(value: str | Iterable[str]) -> list[str]:
    """Library names from a comma-separated string or a list, stripped, without blanks."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(name).strip() for name in items if str(name).strip()]

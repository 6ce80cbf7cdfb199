"""Which fields a department may receive: sharing class first, then live grants; deny by default, always with a reason."""

from __future__ import annotations

import functools
from functools import cached_property
from collections.abc import Sequence
from typing import Any
from dataclasses import dataclass

from exchange_api.models import Grant
from schemas import LIBRARIES, Field, Library, Sharing


@dataclass(frozen=True)
class FieldDecision:
    """Whether one field may be released, and why."""

    field: str
    allowed: bool
    reason: str


@dataclass(frozen=True)
class AccessDecision:
    """The decisions for one lookup: every field considered, each with its reason (derived views computed once)."""

    department: str
    library: str
    purpose: str
    requested: tuple[str, ...] | None  # None: "every field I may receive"
    fields: tuple[FieldDecision, ...]

    @cached_property
    def released(self) -> tuple[str, ...]:
        return tuple(d.field for d in self.fields if d.allowed)

    @cached_property
    def refused(self) -> tuple[FieldDecision, ...]:
        return tuple(d for d in self.fields if not d.allowed)

    @property
    def refuses_requested(self) -> bool:
        """True when the department explicitly asked for a field it may not have."""
        return self.requested is not None and bool(self.refused)

    @cached_property
    def reason(self) -> str:
        """One line for the audit log."""
        if not self.fields:
            return "no field asked for"
        summary = f"{len(self.released)} field(s) released, {len(self.refused)} withheld"
        by_reason: dict[str, list[str]] = {}
        for d in self.refused:
            by_reason.setdefault(d.reason, []).append(d.field)
        if by_reason:
            summary += ": " + "; ".join(f"{reason} ({', '.join(names)})" for reason, names in by_reason.items())
        return summary


def data_fields(lib: Library) -> tuple[Field, ...]:
    """The fields a lookup can ask for; record metadata travels with each value instead."""
    return tuple(f for f in lib.fields if not f.metadata)


def unknown_fields(lib: Library, requested: Sequence[str]) -> list[str]:
    """Requested names that are not lookup fields of ``lib``."""
    known = {f.name for f in data_fields(lib)}
    return [name for name in requested if name not in known]


def decide_field(field: Field, grants: Sequence[Grant]) -> FieldDecision:
    """The decision for one field given the department's live grants for this library and purpose."""
    if field.sharing is Sharing.UNCONDITIONAL:
        return FieldDecision(field.name, True, "unconditional: shared with every registered department")
    if field.sharing is Sharing.NOT_SHAREABLE:
        return FieldDecision(field.name, False, "not shareable: never leaves the hub")
    if field.sharing is Sharing.CONDITIONAL:
        for grant in grants:
            if field.name in grant.field_names:
                return FieldDecision(field.name, True, f"conditional: granted by grant {grant.id} until {grant.expires_at:%Y-%m-%d}")
        return FieldDecision(field.name, False, "conditional: no live grant for this department, library and purpose")
    return FieldDecision(field.name, False, "unknown sharing class: denied by default")


@functools.lru_cache(maxsize=4096)
def _decide_cached(library_name: str, department: str, purpose: str, grants: tuple[Any, ...],
                   requested: tuple[str, ...] | None) -> AccessDecision:
    return _decide(LIBRARIES[library_name], department, purpose, grants, requested)


def decide(
    lib: Library,
    department: str,
    purpose: str,
    grants: Sequence[Grant],
    requested: Sequence[str] | None = None,
) -> AccessDecision:
    """Decide every requested field (or every lookup field when none are named).

    ``grants`` must already be the live grants of (department, library, purpose); any other grant
    passed in is ignored, so a caller's mistake can only deny, never widen. Decisions are pure, so
    the same question with the same (frozen) grants is answered from a small cache.
    """
    key_requested = tuple(requested) if requested is not None else None
    if LIBRARIES.get(lib.name) is lib and all(type(g).__name__ == "GrantInfo" for g in grants):
        # GrantInfo is frozen: equal grants mean an equal decision (ORM rows could change under us: not cached).
        return _decide_cached(lib.name, department, purpose, tuple(grants), key_requested)
    return _decide(lib, department, purpose, grants, key_requested)


def _decide(
    lib: Library,
    department: str,
    purpose: str,
    grants: Sequence[Grant],
    requested: Sequence[str] | None = None,
) -> AccessDecision:
    relevant = [g for g in grants if g.department == department and g.library == lib.name and g.purpose == purpose]
    by_name = {f.name: f for f in data_fields(lib)}
    names = list(dict.fromkeys(requested)) if requested is not None else list(by_name)
    decisions = tuple(
        decide_field(by_name[name], relevant) if name in by_name else FieldDecision(name, False, "not a lookup field")
        for name in names
    )
    return AccessDecision(department, lib.name, purpose, tuple(names) if requested is not None else None, decisions)

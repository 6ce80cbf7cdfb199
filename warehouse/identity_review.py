"""What stewards do with identity resolution: list links and near misses, explain one, merge or split a record.

An override is a standing decision: it is applied before automatic matching on every later run
(``warehouse.identity``), so it survives whatever Splink would decide. ID numbers are masked in
every message.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from hub.errors import HubError
from hub.masking import mask_id
from schemas import LIBRARIES
from schemas.ids import is_valid_credit_code, is_valid_resident_id
from warehouse.identity import MERGE, NONE, SPLIT

ACTIONS = (MERGE, SPLIT, NONE)
_VALID = {"resident_id": is_valid_resident_id, "credit_code": is_valid_credit_code}


class IdentityError(HubError):
    """A steward's identity decision cannot be recorded (unknown record or entity, missing name)."""


@dataclass(frozen=True)
class Explanation:
    """Why a record is (or is not) linked: the current link or best candidate, its evidence, the overrides."""

    library: str
    source: str
    source_record_id: str
    status: str  # linked | near miss | not resolved
    entity_key: str | None
    match_weight: float | None
    match_probability: float | None
    decided_by: str | None
    decided_at: dt.datetime | None
    link_id: int | None
    reason: str | None  # near misses: below threshold, ambiguous, no candidate
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # retired links


def links(conn: duckdb.DuckDBPyConnection, library: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Current links, newest first."""
    where, params = ("AND library = ?", [library]) if library else ("", [])
    rows = conn.execute(
        "SELECT id, library, source, source_record_id, entity_key, match_weight, match_probability, decided_by, "
        f"decided_at, run_id FROM identity_links WHERE retired_at IS NULL {where} ORDER BY decided_at DESC, id DESC LIMIT ?",
        [*params, limit]).fetchall()
    names = ("id", "library", "source", "source_record_id", "entity_key", "match_weight", "match_probability",
             "decided_by", "decided_at", "run_id")
    return [dict(zip(names, r, strict=True)) for r in rows]


def near_misses(conn: duckdb.DuckDBPyConnection, library: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Records left in quarantine by the last run, strongest candidate first."""
    where, params = ("WHERE library = ?", [library]) if library else ("", [])
    rows = conn.execute(
        "SELECT library, source, source_record_id, entity_key, match_weight, match_probability, second_weight, reason "
        f"FROM identity_near_misses {where} ORDER BY match_weight DESC NULLS LAST, source, source_record_id LIMIT ?",
        [*params, limit]).fetchall()
    names = ("library", "source", "source_record_id", "entity_key", "match_weight", "match_probability",
             "second_weight", "reason")
    return [dict(zip(names, r, strict=True)) for r in rows]


def explain(conn: duckdb.DuckDBPyConnection, source: str, record_id: str) -> Explanation:
    """The link of one record (or its best candidate), with each comparison's level and weight."""
    overrides = [dict(zip(("action", "entity_key", "decided_by", "decided_at", "note"), r, strict=True))
                 for r in conn.execute("SELECT action, entity_key, decided_by, decided_at, note FROM identity_overrides "
                                       "WHERE source = ? AND source_record_id = ? ORDER BY decided_at, id",
                                       [source, record_id]).fetchall()]
    history = [dict(zip(("id", "entity_key", "match_weight", "decided_by", "decided_at", "retired_at", "retired_reason"),
                        r, strict=True))
               for r in conn.execute("SELECT id, entity_key, match_weight, decided_by, decided_at, retired_at, retired_reason "
                                     "FROM identity_links WHERE source = ? AND source_record_id = ? AND retired_at IS NOT NULL "
                                     "ORDER BY id", [source, record_id]).fetchall()]
    link = conn.execute(
        "SELECT library, entity_key, match_weight, match_probability, decided_by, decided_at, id, comparisons "
        "FROM identity_links WHERE source = ? AND source_record_id = ? AND retired_at IS NULL", [source, record_id]).fetchall()
    if link:
        lib, key, weight, prob, by, at, link_id, comparisons = link[0]
        return Explanation(lib, source, record_id, "linked", key, weight, prob, by, at, link_id, None,
                           json.loads(comparisons) if comparisons else {}, overrides, history)
    miss = conn.execute(
        "SELECT library, entity_key, match_weight, match_probability, reason, comparisons, scored_at "
        "FROM identity_near_misses WHERE source = ? AND source_record_id = ?", [source, record_id]).fetchall()
    if miss:
        lib, key, weight, prob, reason, comparisons, at = miss[0]
        return Explanation(lib, source, record_id, "near miss", key, weight, prob, None, at, None, reason,
                           json.loads(comparisons) if comparisons else {}, overrides, history)
    lib = _record_library(conn, source, record_id)
    return Explanation(lib, source, record_id, "not resolved", None, None, None, None, None, None, None, {}, overrides,
                       history)


def _record_library(conn: duckdb.DuckDBPyConnection, source: str, record_id: str) -> str:
    rows = conn.execute("SELECT library FROM quarantine WHERE source = ? AND source_record_id = ? "
                        "ORDER BY quarantined_at DESC, id DESC LIMIT 1", [source, record_id]).fetchall()
    if not rows:
        raise IdentityError(f"no quarantined record {record_id!r} of source {source!r}")
    return rows[0][0]


def override(conn: duckdb.DuckDBPyConnection, source: str, record_id: str, action: str, by: str,
             entity_key: str | None = None, note: str | None = None) -> int:
    """Record a steward's decision on one record (merge: it is ``entity_key``; split: it is not; none: no entity).

    Takes effect at the next identity run (before automatic matching, and on every run after).
    Returns the override's id.
    """
    problems = []
    if action not in ACTIONS:
        problems.append(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if not by or not by.strip():
        problems.append("a decision needs the steward's name (--by)")
    library = _record_library(conn, source, record_id)
    lib = LIBRARIES[library]
    if action in (MERGE, SPLIT):
        check = _VALID.get(next(f.validator for f in lib.fields if f.name == lib.key) or "", lambda _v: True)
        if not entity_key:
            problems.append(f"{action} needs the entity's {lib.key}")
        elif not check(entity_key):
            problems.append(f"{mask_id(entity_key)} is not a valid {lib.key}")
        elif action == MERGE and not conn.execute(f'SELECT 1 FROM "staging_{library}" WHERE "{lib.key}" = ? LIMIT 1',
                                                  [entity_key]).fetchall():
            problems.append(f"no entity {mask_id(entity_key)} in the {library} library")
    elif entity_key:
        problems.append("'none' takes no entity")
    if problems:
        raise IdentityError("; ".join(problems))
    rows = conn.execute("INSERT INTO identity_overrides (library, source, source_record_id, action, entity_key, "
                        "decided_by, decided_at, note) VALUES (?, ?, ?, ?, ?, ?, now(), ?) RETURNING id",
                        [library, source, record_id, action, entity_key, by.strip(), note]).fetchall()
    return rows[0][0]

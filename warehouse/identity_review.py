"""What stewards do with identity resolution: list links and near misses, explain one, merge or split a record,
export the links, read the model a run trained.

An override is a standing decision: it is applied before automatic matching on every later run
(``warehouse.identity``), so it survives whatever Splink would decide; it is logged in the metadata
database first (``warehouse.decisions``), so it survives a rebuild of the working database too. ID numbers are masked in
every message. An export is masked like analysts' views (``warehouse.analyst``) unless it is taken
under the raw role with a stated reason, and every export is logged in ``analyst_queries`` as an
analyst's query is.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy.engine import Engine

from hub.errors import HubError
from hub.masking import mask_id
from schemas import LIBRARIES
from schemas.ids import is_valid_credit_code, is_valid_resident_id
from warehouse import db
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
    run_id: str | None = None  # the run that made the link or left the near miss


def links(conn: duckdb.DuckDBPyConnection, library: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Current links, newest first."""
    where, params = ("AND library = ?", [library]) if library else ("", [])
    rows = db.run(
        conn, "identity_review.links",
        "SELECT id, library, source, source_record_id, entity_key, match_weight, match_probability, decided_by, "
        f"decided_at, run_id FROM identity_links WHERE retired_at IS NULL {where} ORDER BY decided_at DESC, id DESC LIMIT ?",
        [*params, limit]).fetchall()
    names = ("id", "library", "source", "source_record_id", "entity_key", "match_weight", "match_probability",
             "decided_by", "decided_at", "run_id")
    return [dict(zip(names, r, strict=True)) for r in rows]


def near_misses(conn: duckdb.DuckDBPyConnection, library: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Records left in quarantine by the last run, strongest candidate first."""
    where, params = ("WHERE library = ?", [library]) if library else ("", [])
    rows = db.run(
        conn, "identity_review.near_misses",
        "SELECT library, source, source_record_id, entity_key, match_weight, match_probability, second_weight, reason "
        f"FROM identity_near_misses {where} ORDER BY match_weight DESC NULLS LAST, source, source_record_id LIMIT ?",
        [*params, limit]).fetchall()
    names = ("library", "source", "source_record_id", "entity_key", "match_weight", "match_probability",
             "second_weight", "reason")
    return [dict(zip(names, r, strict=True)) for r in rows]


def clusters(conn: duckdb.DuckDBPyConnection, library: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Steward cases: records matched to no entity but to each other, one row per cluster, largest first."""
    where, params = ("WHERE library = ?", [library]) if library else ("", [])
    rows = db.run(
        conn, "identity_review.clusters",
        "SELECT library, cluster_id, any_value(size), list(source || ' ' || source_record_id ORDER BY source, "
        f"source_record_id), any_value(run_id) FROM identity_clusters {where} GROUP BY library, cluster_id "
        "ORDER BY any_value(size) DESC, cluster_id LIMIT ?", [*params, limit]).fetchall()
    names = ("library", "cluster_id", "size", "records", "run_id")
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
    link = db.run(
        conn, "identity_review.explain",
        "SELECT library, entity_key, match_weight, match_probability, decided_by, decided_at, id, comparisons, run_id "
        "FROM identity_links WHERE source = ? AND source_record_id = ? AND retired_at IS NULL", [source, record_id]).fetchall()
    if link:
        lib, key, weight, prob, by, at, link_id, comparisons, run = link[0]
        return Explanation(lib, source, record_id, "linked", key, weight, prob, by, at, link_id, None,
                           json.loads(comparisons) if comparisons else {}, overrides, history, run)
    miss = db.run(
        conn, "identity_review.explain",
        "SELECT library, entity_key, match_weight, match_probability, reason, comparisons, scored_at, run_id "
        "FROM identity_near_misses WHERE source = ? AND source_record_id = ?", [source, record_id]).fetchall()
    if miss:
        lib, key, weight, prob, reason, comparisons, at, run = miss[0]
        return Explanation(lib, source, record_id, "near miss", key, weight, prob, None, at, None, reason,
                           json.loads(comparisons) if comparisons else {}, overrides, history, run)
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
    from warehouse import decisions
    from warehouse.replay import apply

    # The metadata database's log first (it survives a rebuild), then the working copy derived from it.
    decision = decisions.record(decisions.IDENTITY, action, by=by, library=library, source=source,
                                subject={"source_record_id": record_id, "entity_key": entity_key}, note=note)
    apply(conn, decision)
    return conn.execute("SELECT id FROM identity_overrides WHERE decision_id = ?", [decision.id]).fetchone()[0]


def check_library(library: str) -> str:
    """``library`` if it is one of the hub's libraries, else an ``IdentityError`` naming them."""
    if library not in LIBRARIES:
        raise IdentityError(f"unknown library {library!r}: one of {', '.join(sorted(LIBRARIES))}")
    return library


# --- Export -------------------------------------------------------------------------------------------------------

EXPORT_LABEL = "identity_links"  # what an export's log entry names as the data it read (the working database)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_name(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def comparison_names(conn: duckdb.DuckDBPyConnection, library: str) -> list[str]:
    """The comparisons the current links of ``library`` carry, in the order the model lists them (from the data)."""
    names: list[str] = []
    for (keys,) in db.run(
        conn, "identity_review.comparison_names",
            "SELECT DISTINCT json_keys(comparisons) FROM identity_links WHERE retired_at IS NULL AND library = ? "
            "AND comparisons IS NOT NULL", [library]).fetchall():
        names += [k for k in keys if k not in names]
    return names


def export_sql(conn: duckdb.DuckDBPyConnection, library: str, *, raw: bool = False) -> str:
    """The ``SELECT`` of every current link of ``library``: who, what, weights and each comparison's level and weight.

    The entity key is masked as analysts' views mask the library's key field, unless ``raw``.
    """
    from warehouse.analyst import masked_expression

    lib = LIBRARIES[check_library(library)]
    key = next(f for f in lib.fields if f.name == lib.key)
    entity = "entity_key" if raw else (masked_expression(key, "entity_key") or "NULL")
    columns = ["id AS link_id", "library", "source", "source_record_id", f"{entity} AS entity_key",
               "match_probability", "match_weight", "decided_by", "decided_at", "run_id"]
    for name in comparison_names(conn, library):
        path = _sql_text("$." + '"' + name.replace('"', '\\"') + '"')
        columns.append(f"json_extract_string(comparisons, {path} || '.level') AS {_sql_name(name + '_level')}")
        columns.append(f"TRY_CAST(json_extract(comparisons, {path} || '.weight') AS DOUBLE) "
                       f"AS {_sql_name(name + '_weight')}")
    return (f"SELECT {', '.join(columns)} FROM identity_links WHERE retired_at IS NULL AND library = "
            f"{_sql_text(library)} ORDER BY source, source_record_id")


def export_links(conn: duckdb.DuckDBPyConnection, engine: Engine, library: str, *, raw: bool = False,
                 reason: str | None = None, analyst: str | None = None) -> pa.Table:
    """Every current link of ``library`` (see ``export_sql``), logged as an analyst's query (who, when, role, reason, rows).

    The raw role needs a stated reason (``PermissionError``), as for ``hub sql --raw``.
    """
    import getpass

    from warehouse.analyst import AnalystSession, analyst_role

    role = analyst_role(raw, reason)
    check_library(library)
    session = AnalystSession(conn, engine, EXPORT_LABEL, role, reason, analyst or getpass.getuser())
    result = session.query(export_sql(conn, library, raw=raw))
    assert result is not None
    return result


# --- The trained model --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedModel:
    """One row of ``identity_models``: the model a run trained (Splink's settings JSON) and what training did."""

    library: str
    run_id: str
    trained_at: dt.datetime | None
    settings: dict[str, Any]
    training: dict[str, Any]


def saved_model(conn: duckdb.DuckDBPyConnection, library: str, run_id: str | None = None) -> SavedModel | None:
    """The model of run ``run_id`` if given and saved, else the last one trained for ``library``; None if none."""
    check_library(library)
    try:
        rows = db.run(
            conn, "identity_review.saved_model",
            "SELECT library, run_id, trained_at, settings, training FROM identity_models WHERE library = ? "
            "ORDER BY run_id IS NOT DISTINCT FROM ? DESC, trained_at DESC NULLS LAST LIMIT 1", [library, run_id]).fetchall()
    except duckdb.CatalogException:  # a working database from before models were saved
        return None
    if not rows:
        return None
    lib, run, at, settings, training = rows[0]
    return SavedModel(lib, run, at, json.loads(settings) if settings else {}, json.loads(training) if training else {})


def _log2(value: float | None) -> float | None:
    return None if not value else math.log2(value)


def model_summary(model: SavedModel) -> dict[str, Any]:
    """What a steward reads of a model: the prior, each comparison's levels with m, u and match weight, blocking."""
    from warehouse.identity_charts import level_weight

    s = model.settings
    prior = s.get("probability_two_random_records_match")
    comparisons = []
    for comparison in s.get("comparisons", []):
        levels = [{"level": lvl.get("label_for_charts"), "null_level": bool(lvl.get("is_null_level")),
                   "m_probability": lvl.get("m_probability"), "u_probability": lvl.get("u_probability"),
                   "match_weight": None if lvl.get("is_null_level") else level_weight(lvl),
                   "tf_adjustment_column": lvl.get("tf_adjustment_column")}
                  for lvl in comparison.get("comparison_levels", [])]
        comparisons.append({"comparison": comparison.get("output_column_name"),
                            "description": comparison.get("comparison_description"), "levels": levels})
    blocking = [r.get("blocking_rule") if isinstance(r, dict) else r
                for r in s.get("blocking_rules_to_generate_predictions", [])]
    return {
        "library": model.library, "run_id": model.run_id,
        "trained_at": model.trained_at.isoformat() if model.trained_at else None,
        "prior": {"probability_two_random_records_match": prior,
                  "match_weight": _log2(prior / (1 - prior)) if prior and prior < 1 else None},
        "comparisons": comparisons, "blocking_rules": blocking, "training": model.training,
    }

"""The conflict register for stewards: list and show disagreements, record resolutions, apply them after reconcile.

``golden_<library>_conflicts`` (written by ``warehouse.reconcile``) holds, per key and field, every
department's newest value when they disagree. A steward resolves one by choosing a value or a
department; the resolution is logged in the metadata database (``warehouse.decisions``: it survives a rebuild of
the working database) and copied into ``conflict_resolutions`` with who, when, why and the set of
values the steward saw. ``apply_resolutions`` (after ``build_golden``) then, on every run:

- **applies** it while every value in the register is one the steward saw: the golden field gets the
  chosen value (or the chosen department's current value), its provenance the rule ``steward:<name>``,
  and the register entry is marked resolved;
- **reopens** it when a value the steward did not see appears (or the chosen department no longer
  gives one): the precedence rule's value stands and the entry is open again for a new decision;
- lets it **lapse** when the departments no longer disagree on that field.

A newer resolution of the same field supersedes the older one.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from hub.errors import HubError
from hub.masking import mask_id, mask_name
from warehouse import db, decisions
from warehouse.replay import apply
from schemas import LIBRARIES
from schemas.catalogue import PersonalData
from schemas.codes import TABLES
from schemas.derive import duckdb_type

ACTIVE, REOPENED, LAPSED, SUPERSEDED = "active", "reopened", "lapsed", "superseded"
# Tables of the working database kept beside the code that uses them, declared to ``warehouse.db``.
SCHEMA = [
    "CREATE SEQUENCE IF NOT EXISTS conflict_resolution_id START 1",
    """CREATE TABLE IF NOT EXISTS conflict_resolutions (
        id BIGINT DEFAULT nextval('conflict_resolution_id') PRIMARY KEY, library VARCHAR NOT NULL,
        key VARCHAR NOT NULL, field VARCHAR NOT NULL, chosen_value VARCHAR, chosen_source VARCHAR,
        seen_values VARCHAR[] NOT NULL, resolved_by VARCHAR NOT NULL, note VARCHAR,
        resolved_at TIMESTAMPTZ NOT NULL DEFAULT now(), status VARCHAR NOT NULL DEFAULT 'active',
        applied_at TIMESTAMPTZ, closed_at TIMESTAMPTZ)""",
]
db.declare("conflicts", SCHEMA)
_VALUES_TYPE = '[{"value": "VARCHAR", "source_department": "VARCHAR", "source_record_id": "VARCHAR"}]'


class ConflictError(HubError):
    """A resolution cannot be recorded (unknown library, field or conflict, a value the field cannot hold)."""


@dataclass(frozen=True)
class Conflict:
    """One register entry: a field of one record on which departments disagree, and its resolution if any."""

    library: str
    key: str
    field: str
    golden_value: str | None
    rule: str
    values: list[dict[str, Any]]
    status: str  # open | resolved | reopened
    resolution: dict[str, Any] | None  # the latest resolution of this field, whatever its status


@dataclass(frozen=True)
class ResolutionResult:
    library: str
    applied: int
    reopened: int
    lapsed: int


def _register(library: str) -> str:
    return f'"golden_{library}_conflicts"'


def _present(conn: duckdb.DuckDBPyConnection, library: str) -> bool:
    return f"golden_{library}_conflicts" in db.tables(conn)


def _library(name: str):  # type: ignore[no-untyped-def]
    if name not in LIBRARIES:
        raise ConflictError(f"unknown library {name!r}; known: {', '.join(LIBRARIES)}")
    return LIBRARIES[name]


def apply_resolutions(conn: duckdb.DuckDBPyConnection, library: str) -> ResolutionResult:
    """Apply the stewards' active resolutions of ``library`` to its golden table, provenance and register."""
    lib = _library(library)
    if not _present(conn, library):
        return ResolutionResult(library, 0, 0, 0)
    register = _register(library)
    db.run(conn, "conflicts.apply_resolutions", f"ALTER TABLE {register} ADD COLUMN IF NOT EXISTS resolution_id BIGINT")
    # Each active resolution against the register as it is now: the values there, and which ones are new.
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE cr_now AS
        SELECT r.id, r.key, r.field, r.chosen_source, r.resolved_by, r.resolved_at, c.key IS NULL AS agreed,
               coalesce(len(list_filter(c.vals, lambda x: NOT list_contains(r.seen_values, x.value))), 0) > 0 AS new_value,
               CASE WHEN r.chosen_source IS NULL THEN r.chosen_value
                    ELSE list_filter(c.vals, lambda x: x.source_department = r.chosen_source)[1].value END AS chosen,
               list_filter(c.vals, lambda x: x.source_department = r.chosen_source)[1].source_record_id AS chosen_record
        FROM conflict_resolutions r
        LEFT JOIN (SELECT key, field, from_json("values", '{_VALUES_TYPE}') AS vals FROM {register}) c
             ON c.key = r.key AND c.field = r.field
        WHERE r.library = ? AND r.status = '{ACTIVE}'""", [library])
    reopened, lapsed = conn.execute("SELECT count(*) FILTER (WHERE NOT agreed AND (new_value OR chosen IS NULL)), "
                                    "count(*) FILTER (WHERE agreed) FROM cr_now").fetchone()
    # What the data made of a decision is logged too: a rebuild sees only the final data, not the value that came and went.
    closed = dict(conn.execute(f"""SELECT r.decision_id, CASE WHEN n.agreed THEN '{LAPSED}' ELSE '{REOPENED}' END
        FROM conflict_resolutions r JOIN cr_now n ON r.id = n.id
        WHERE r.decision_id IS NOT NULL AND (n.agreed OR n.new_value OR n.chosen IS NULL)""").fetchall())
    decisions.close(closed, dt.datetime.now(dt.UTC))
    conn.execute(f"""UPDATE conflict_resolutions r SET status = CASE WHEN n.agreed THEN '{LAPSED}' ELSE '{REOPENED}' END,
                     closed_at = now() FROM cr_now n
                     WHERE r.id = n.id AND (n.agreed OR n.new_value OR n.chosen IS NULL)""")
    db.run(conn, "conflicts.apply_resolutions", "DELETE FROM cr_now WHERE agreed OR new_value OR chosen IS NULL")
    fields = [f for (f,) in conn.execute("SELECT DISTINCT field FROM cr_now ORDER BY 1").fetchall()]
    for name in fields:
        f = lib.field(name)
        conn.execute(f'UPDATE "golden_{library}" g SET "{name}" = CAST(n.chosen AS {duckdb_type(f.type)}) FROM cr_now n '
                     f'WHERE n.field = ? AND g."{lib.key}" = n.key', [name])
    # Verified when the chosen department is an authority for the field (a value typed by the steward is not).
    verified = " ".join(f"WHEN '{n}' THEN chosen_source IN ({', '.join(repr(a) for a in lib.field(n).authorities) or 'NULL'})"
                        for n in fields) or "WHEN NULL THEN false"
    conn.execute(f'DELETE FROM "golden_{library}_provenance" p USING cr_now n WHERE p.key = n.key AND p.field = n.field')
    conn.execute(f"""INSERT INTO "golden_{library}_provenance" BY NAME
        SELECT key, field, chosen AS value, coalesce(chosen_source, 'steward') AS source_department,
               chosen_record AS source_record_id, resolved_at AS updated_at,
               coalesce(CASE field {verified} END, false) AS verified, 'steward:' || resolved_by AS rule
        FROM cr_now""")
    conn.execute(f"UPDATE {register} c SET golden_value = n.chosen, rule = 'steward:' || n.resolved_by, resolution_id = n.id "
                 "FROM cr_now n WHERE c.key = n.key AND c.field = n.field")
    conn.execute("UPDATE conflict_resolutions r SET applied_at = now() FROM cr_now n WHERE r.id = n.id")
    (applied,) = db.run(conn, "conflicts.apply_resolutions", "SELECT count(*) FROM cr_now").fetchone()
    db.run(conn, "conflicts.apply_resolutions", "DROP TABLE cr_now")
    return ResolutionResult(library, applied, reopened, lapsed)


def _latest(conn: duckdb.DuckDBPyConnection, library: str, key: str | None = None) -> dict[tuple[str, str], dict]:
    where, params = "library = ?", [library]
    if key is not None:
        where, params = where + " AND key = ?", params + [key]
    cur = conn.execute(f"SELECT * FROM conflict_resolutions WHERE {where} "
                       "QUALIFY row_number() OVER (PARTITION BY key, field ORDER BY id DESC) = 1", params)
    names = [d[0] for d in cur.description]
    return {(r["key"], r["field"]): r for r in (dict(zip(names, row)) for row in cur.fetchall())}


def _status(resolution: dict | None, resolution_id: int | None) -> str:
    if resolution_id is not None:
        return "resolved"
    return "reopened" if resolution and resolution["status"] == REOPENED else "open"


def conflicts(conn: duckdb.DuckDBPyConnection, library: str | None = None, field: str | None = None,
              key: str | None = None, *, open_only: bool = True, limit: int | None = None) -> list[Conflict]:
    """Register entries, by library, key and field; ``open_only`` leaves out the resolved ones."""
    names = [_library(library).name] if library else list(LIBRARIES)
    if field and library and field not in LIBRARIES[library].field_names:
        raise ConflictError(f"{library} has no field {field!r}")
    out: list[Conflict] = []
    for name in names:
        if not _present(conn, name):
            continue
        register = _register(name)
        # A register written before resolutions were kept has no resolution_id: read as none (a read alters nothing).
        (has_id,) = db.run(conn, "conflicts.conflicts", "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? "
                           "AND column_name = 'resolution_id'", [f"golden_{name}_conflicts"]).fetchone()
        resolution_col = "resolution_id" if has_id else "NULL::BIGINT AS resolution_id"
        where, params = ["true"], []
        if field:
            where.append("field = ?"), params.append(field)
        if key is not None:
            where.append("key = ?"), params.append(key)
        if open_only:
            where.append("resolution_id IS NULL")
        rows = conn.execute(f'SELECT * FROM (SELECT key, field, golden_value, rule, "values", {resolution_col} '
                            f"FROM {register}) WHERE {' AND '.join(where)} ORDER BY key, field"
                            + (f" LIMIT {int(limit) - len(out)}" if limit else ""), params).fetchall()
        latest = _latest(conn, name, key)
        for k, f, golden, rule, values, resolution_id in rows:
            resolution = latest.get((k, f))
            out.append(Conflict(name, k, f, golden, rule, json.loads(values), _status(resolution, resolution_id),
                                resolution))
        if limit and len(out) >= limit:
            break
    return out


def resolve(conn: duckdb.DuckDBPyConnection, library: str, key: str, field: str, *, by: str,
            value: str | None = None, source: str | None = None, note: str | None = None,
            at: dt.datetime | None = None) -> int:
    """Record a steward's resolution of one register entry (a value, or a department's value); returns its id."""
    lib = _library(library)
    if (value is None) == (source is None):
        raise ConflictError("give exactly one of a value or a source department")
    if not by or not by.strip():
        raise ConflictError("a resolution records who decided (--by)")
    if field not in lib.field_names or field == lib.key or lib.field(field).metadata:
        raise ConflictError(f"{library} has no data field {field!r}")
    found = conflicts(conn, library, field, key, open_only=False)
    if not found:
        raise ConflictError(f"no conflict on {library}.{field} for this key in the register")
    entry = found[0]
    seen = sorted({v["value"] for v in entry.values})
    if source is not None and source not in {v["source_department"] for v in entry.values}:
        departments = ", ".join(sorted({v["source_department"] for v in entry.values}))
        raise ConflictError(f"{source!r} gives no value in this conflict; the departments are: {departments}")
    if value is not None:
        _check_value(library, field, value, conn)
    # The metadata database's log first (it survives a rebuild), then the working copy derived from it.
    decision = decisions.record(decisions.CONFLICT, "resolve", by=by, library=library, subject={"key": key, "field": field},
                                detail={"chosen_value": value, "chosen_source": source, "seen_values": seen},
                                note=note, at=at)
    apply(conn, decision)
    (rid,) = conn.execute("SELECT id FROM conflict_resolutions WHERE decision_id = ?", [decision.id]).fetchone()
    return int(rid)


def shown(library: str, field: str, value: Any) -> Any:
    """A value as output may show it: ID numbers masked to their region prefix, names to the surname."""
    lib = LIBRARIES[library]
    level = lib.field(field).personal if field in lib.field_names else PersonalData.PERSONAL
    if value is None or level is PersonalData.NONE:
        return value
    return mask_id(str(value)) if level is PersonalData.IDENTIFIER else mask_name(str(value))


def _check_value(library: str, field: str, value: str, conn: duckdb.DuckDBPyConnection) -> None:
    f = LIBRARIES[library].field(field)
    if f.code_table and f.code_table in TABLES and value not in TABLES[f.code_table]:
        raise ConflictError(f"{shown(library, field, value)!r} is not a code of table {f.code_table} ({library}.{field})")
    try:
        db.run(conn, "conflicts.check_value", f"SELECT CAST(? AS {duckdb_type(f.type)})", [value]).fetchone()
    except duckdb.Error as exc:
        raise ConflictError(f"{library}.{field} cannot hold {shown(library, field, value)!r}: "
                            f"it is of type {f.type}") from exc

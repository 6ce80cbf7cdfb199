"""Reconcile: golden records from the staged records of every source, field by field.

Each golden field comes from the department authoritative for it (declared in ``schemas/``); when
the authorities are silent, from the most recent non-empty value of any source; a life event an
authority recorded (a death) is final. Golden records exist for the keys the library's master
sources know; other sources enrich them. Tables written to the working database:

- ``golden_<library>``: one row per key; its ``source_department`` / ``source_record_id`` /
  ``source_updated_at`` name the record's own (newest master) source record.
- ``golden_<library>_provenance``: one row per field whose value came from another record than the
  record's own (department, record, last update, verified by an authority, the rule that chose it).
  Every other field came from the record's own source record, so the register stays the size of
  the exceptions (millions of rows at 10 M people instead of a hundred million).
- ``golden_<library>_conflicts``: every field on which departments disagree, each department with
  its newest value (a department's own older records are history, not a disagreement).

Everything is set-based: one aggregation over the staged records picks, as row ids, each key's own
record and every field's winner at once; only the exceptions are fetched apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from schemas import LIBRARIES
from schemas.catalogue import Field, Library



@dataclass(frozen=True)
class ReconcileResult:
    library: str
    golden: int
    conflicts: int


def _data_fields(lib: Library) -> list[Field]:
    return [f for f in lib.fields if not f.metadata and f.name != lib.key]


def _in(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "NULL"


def _verified(f: Field, alias: str = "s") -> str:
    """SQL: the record's department is an authority for ``f``."""
    return f"coalesce({alias}.source_department IN ({_in(f.authorities)}), false)"


def _terminal(f: Field, alias: str = "s") -> str:
    """SQL: the record's value of ``f`` is a final life event (e.g. deceased)."""
    return f'coalesce(CAST({alias}."{f.name}" AS VARCHAR) IN ({_in(f.terminal)}), false)'


# A record's precedence as one HUGEINT, greater wins: 2 bits (authority, its life event) above the
# update time (µs, offset to be positive, 62 bits) above a hash of the record's identity (62 bits).
# A fixed-size number keeps the aggregation on DuckDB's fast path (a struct takes ~20x longer), and
# the hash makes ties between equally dated records deterministic.
_OFFSET = 2**61
_RECENCY = (f"((coalesce(epoch_us(s.source_updated_at), -{_OFFSET}) + {_OFFSET})::HUGEINT << 62 "
            "| (hash(s.source_record_id, s._source) >> 2)::HUGEINT)")


def _rank(f: Field) -> str:
    """SQL: the precedence of a record's value of ``f``: authority, the authority's life event, recency, identity."""
    top = f"(CASE WHEN {_verified(f)} THEN 2 ELSE 0 END"
    if f.terminal:
        top += f" + CASE WHEN {_verified(f)} AND {_terminal(f)} THEN 1 ELSE 0 END"
    return f"({top})::HUGEINT << 124) + {_RECENCY}"


def _rule(f: Field, alias: str = "s") -> str:
    """SQL: why the record's value of ``f`` was chosen."""
    verified, terminal = _verified(f, alias), _terminal(f, alias)
    return (f"CASE WHEN {verified} AND {terminal} THEN 'life_event:' || {alias}.source_department "
            f"WHEN {verified} THEN 'authority:' || {alias}.source_department ELSE 'most_recent' END")


def _multi_department(conn: duckdb.DuckDBPyConnection, lib: Library, fields: list[Field]) -> list[Field]:
    """The fields more than one department gives values for: only these can be in conflict."""
    counts = ", ".join(f'count(DISTINCT source_department) FILTER (WHERE "{f.name}" IS NOT NULL)' for f in fields)
    row = conn.execute(f'SELECT {counts} FROM "staging_{lib.name}" WHERE "{lib.key}" IS NOT NULL').fetchone()
    return [f for f, n in zip(fields, row) if n > 1]


def build_golden(conn: duckdb.DuckDBPyConnection, library: str, masters: Sequence[str] | None = None) -> ReconcileResult:
    """Replace ``golden_<library>`` and its provenance and conflict tables from the staged records."""
    lib = LIBRARIES[library]
    staging, key = f'"staging_{lib.name}"', lib.key
    fields = _data_fields(lib)
    disputable = _multi_department(conn, lib, fields)
    master = f"_source IN ({_in(masters)})" if masters else "true"
    # One pass: each key's own source record (its newest master record) and every field's winning
    # record, as row ids; hashes' min <> max flag the fields whose values differ at all.
    picks = [f"arg_max(s.rowid, {_RECENCY}) FILTER (WHERE {master}) AS own"]
    picks += [f'arg_max(s.rowid, {_rank(f)}) FILTER (WHERE s."{f.name}" IS NOT NULL) AS "{f.name}"' for f in fields]
    picks += [f'min(hash(s."{f.name}")) FILTER (WHERE s."{f.name}" IS NOT NULL) <> '
              f'max(hash(s."{f.name}")) FILTER (WHERE s."{f.name}" IS NOT NULL) AS "{f.name}__differs"' for f in disputable]
    conn.execute(
        f'CREATE OR REPLACE TEMP TABLE winners AS SELECT s."{key}" AS key, {", ".join(picks)} '
        f'FROM {staging} s WHERE s."{key}" IS NOT NULL GROUP BY s."{key}" HAVING own IS NOT NULL'
    )
    # Fields won by another record than the record's own: few, so they are fetched apart.
    names = ", ".join(f'"{f.name}"' for f in fields)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE won_elsewhere AS SELECT key, field, row FROM "
        f"(UNPIVOT (SELECT key, own, {names} FROM winners) ON {names} INTO NAME field VALUE row) WHERE row <> own"
    )
    _provenance(conn, lib, fields)
    patched = ", ".join(f"any_value(s.\"{f.name}\") FILTER (WHERE x.field = '{f.name}') AS \"{f.name}\", "
                        f"bool_or(x.field = '{f.name}') AS \"{f.name}__won\"" for f in fields)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE patches AS SELECT x.key, {patched} FROM won_elsewhere x "
                 f"JOIN {staging} s ON s.rowid = x.row GROUP BY x.key")
    columns = []
    for f in lib.fields:
        if f.name == key:
            columns.append(f'g.key AS "{key}"')
        elif f.metadata:
            columns.append(f'o."{f.name}"')
        else:
            columns.append(f'CASE WHEN p."{f.name}__won" THEN p."{f.name}" ELSE o."{f.name}" END AS "{f.name}"')
    conn.execute(f'CREATE OR REPLACE TABLE "golden_{lib.name}" AS SELECT {", ".join(columns)} FROM winners g '
                 f"JOIN {staging} o ON o.rowid = g.own LEFT JOIN patches p ON p.key = g.key")
    _conflicts(conn, lib, disputable)
    for temp in ("won_elsewhere", "patches"):
        conn.execute(f"DROP TABLE {temp}")
    (count,) = conn.execute(f'SELECT count(*) FROM "golden_{lib.name}"').fetchone()
    (conflicts,) = conn.execute(f'SELECT count(*) FROM "golden_{lib.name}_conflicts"').fetchone()
    return ReconcileResult(lib.name, count, conflicts)


def _provenance(conn: duckdb.DuckDBPyConnection, lib: Library, fields: list[Field]) -> None:
    """The fields whose winner is not the record's own source record, with where their value came from."""
    verified = " ".join(f"WHEN '{f.name}' THEN {_verified(f)}" for f in fields)
    value = " ".join(f"WHEN '{f.name}' THEN CAST(s.\"{f.name}\" AS VARCHAR)" for f in fields)
    rule = " ".join(f"WHEN '{f.name}' THEN {_rule(f)}" for f in fields)
    conn.execute(
        f'CREATE OR REPLACE TABLE "golden_{lib.name}_provenance" AS SELECT x.key, x.field, '
        f"CASE x.field {value} END AS value, s.source_department, s.source_record_id, "
        f"s.source_updated_at AS updated_at, CASE x.field {verified} END AS verified, CASE x.field {rule} END AS rule "
        f'FROM won_elsewhere x JOIN "staging_{lib.name}" s ON s.rowid = x.row'
    )


def _conflicts(conn: duckdb.DuckDBPyConnection, lib: Library, fields: list[Field]) -> None:
    """The register: fields where the departments' newest values differ, with every department's value."""
    staging, key, table = f'"staging_{lib.name}"', lib.key, f'"golden_{lib.name}_conflicts"'
    conn.execute(f"CREATE OR REPLACE TABLE {table} (key VARCHAR, field VARCHAR, golden_value VARCHAR, rule VARCHAR, "
                 '"values" JSON)')
    if not fields:
        return
    # Each department's newest value of every field whose records differ at all.
    claims = " UNION ALL ".join(
        f"SELECT w.key, '{f.name}' AS field, CAST(s.\"{f.name}\" AS VARCHAR) AS value, s.source_department, "
        f"s.source_record_id, s.source_updated_at, {_RECENCY} AS recency, {_rank(f)} AS rank, "
        f"s.rowid = w.\"{f.name}\" AS chosen, {_rule(f)} AS rule "
        f'FROM winners w JOIN {staging} s ON s."{key}" = w.key WHERE w."{f.name}__differs" AND s."{f.name}" IS NOT NULL'
        for f in fields
    )
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE department_claims AS SELECT * FROM ({claims}) "
        "QUALIFY row_number() OVER (PARTITION BY key, field, source_department ORDER BY chosen DESC, recency DESC) = 1"
    )
    conn.execute(
        f"INSERT INTO {table} SELECT key, field, any_value(value) FILTER (WHERE chosen), "
        "any_value(rule) FILTER (WHERE chosen), "
        "to_json(list({'value': value, 'source_department': source_department, "
        "'source_record_id': source_record_id, 'updated_at': source_updated_at} ORDER BY rank DESC)) "
        "FROM department_claims GROUP BY key, field HAVING count(DISTINCT value) > 1"
    )
    conn.execute("DROP TABLE department_claims")

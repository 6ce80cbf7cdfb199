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

Everything is set-based: one aggregation over the staged records picks every field's winner at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from schemas import LIBRARIES
from schemas.catalogue import Field, Library

METADATA = ("source_department", "source_record_id", "source_updated_at", "ingested_at", "run_id")
NEVER = "'-infinity'::TIMESTAMPTZ"  # a record without an update time loses to every dated one


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


def _rank(f: Field, alias: str = "s") -> str:
    """SQL: the precedence of a record's value of ``f`` (greater wins): authority, its life event, recency, id."""
    return (f"struct_pack(a := {_verified(f, alias)}, t := {_verified(f, alias)} AND {_terminal(f, alias)}, "
            f"u := coalesce({alias}.source_updated_at, {NEVER}), r := {alias}.source_record_id, s := {alias}._source)")


def _winner(f: Field) -> str:
    return f'w."{f.name}"'


def _rule(prefix: str) -> str:
    return (f"CASE WHEN {prefix}.a AND {prefix}.t THEN 'life_event:' || {prefix}.d "
            f"WHEN {prefix}.a THEN 'authority:' || {prefix}.d ELSE 'most_recent' END")


def build_golden(conn: duckdb.DuckDBPyConnection, library: str, masters: Sequence[str] | None = None) -> ReconcileResult:
    """Replace ``golden_<library>`` and its provenance and conflict tables from the staged records."""
    lib = LIBRARIES[library]
    staging, key = f'"staging_{lib.name}"', lib.key
    fields = _data_fields(lib)
    only = f"_source IN ({_in(masters)}) AND " if masters else ""
    meta = ", ".join(f"{m} := {m}" for m in METADATA)
    # The library's keys, each with its newest master record (the record's own source record).
    conn.execute(
        f'CREATE OR REPLACE TEMP TABLE golden_keys AS SELECT "{key}" AS key, '
        f"arg_max(struct_pack({meta}), struct_pack(u := coalesce(source_updated_at, {NEVER}), "
        f"r := source_record_id, s := _source)) AS m "
        f'FROM {staging} WHERE {only}"{key}" IS NOT NULL GROUP BY "{key}"'
    )
    # Every field's winner in one pass; min <> max flags the fields whose records differ at all.
    picks = []
    for f in fields:
        col = f's."{f.name}"'
        picks.append(
            f"arg_max(struct_pack(v := {col}, d := s.source_department, r := s.source_record_id, "
            f"u := s.source_updated_at, a := {_verified(f)}, t := {_terminal(f)}), {_rank(f)}) "
            f'FILTER (WHERE {col} IS NOT NULL) AS "{f.name}", '
            f'min({col}) IS DISTINCT FROM max({col}) AS "{f.name}__differs"'
        )
    conn.execute(
        f'CREATE OR REPLACE TEMP TABLE winners AS SELECT s."{key}" AS key, {", ".join(picks)} '
        f'FROM {staging} s SEMI JOIN golden_keys g ON s."{key}" = g.key GROUP BY s."{key}"'
    )
    columns = []
    for f in lib.fields:
        if f.name == key:
            columns.append(f'g.key AS "{key}"')
        elif f.metadata:
            columns.append(f'g.m.{f.name} AS "{f.name}"')
        else:
            columns.append(f'w."{f.name}".v AS "{f.name}"')
    conn.execute(f'CREATE OR REPLACE TABLE "golden_{lib.name}" AS SELECT {", ".join(columns)} '
                 "FROM golden_keys g LEFT JOIN winners w USING (key)")
    _provenance(conn, lib, fields)
    _conflicts(conn, lib, fields)
    (count,) = conn.execute(f'SELECT count(*) FROM "golden_{lib.name}"').fetchone()
    (conflicts,) = conn.execute(f'SELECT count(*) FROM "golden_{lib.name}_conflicts"').fetchone()
    return ReconcileResult(lib.name, count, conflicts)


def _provenance(conn: duckdb.DuckDBPyConnection, lib: Library, fields: list[Field]) -> None:
    """The fields whose winner is not the record's own source record."""
    parts = [
        f"SELECT key, '{f.name}' AS field, CAST(w.\"{f.name}\".v AS VARCHAR) AS value, w.\"{f.name}\".d AS source_department, "
        f'w."{f.name}".r AS source_record_id, w."{f.name}".u AS updated_at, w."{f.name}".a AS verified, '
        f"{_rule(_winner(f))} AS rule FROM winners w JOIN golden_keys g USING (key) "
        f'WHERE w."{f.name}" IS NOT NULL AND (w."{f.name}".r IS DISTINCT FROM g.m.source_record_id '
        f'OR w."{f.name}".d IS DISTINCT FROM g.m.source_department)'
        for f in fields
    ]
    conn.execute(f'CREATE OR REPLACE TABLE "golden_{lib.name}_provenance" AS {" UNION ALL ".join(parts)}')


def _conflicts(conn: duckdb.DuckDBPyConnection, lib: Library, fields: list[Field]) -> None:
    """The register: fields where the departments' newest values differ, with every department's value."""
    staging, key = f'"staging_{lib.name}"', lib.key
    disputed = [
        f"SELECT key, '{f.name}' AS field, CAST(w.\"{f.name}\".v AS VARCHAR) AS golden_value, "
        f'{_rule(_winner(f))} AS rule FROM winners w WHERE "{f.name}__differs"'
        for f in fields
    ]
    conn.execute(f"CREATE OR REPLACE TEMP TABLE disputed AS {' UNION ALL '.join(disputed)}")
    claims = [
        f"SELECT d.key, d.field, CAST(s.\"{f.name}\" AS VARCHAR) AS value, s.source_department, s.source_record_id, "
        f"s.source_updated_at, {_rank(f)} AS rank FROM {staging} s JOIN disputed d "
        f"ON d.key = s.\"{key}\" AND d.field = '{f.name}' WHERE s.\"{f.name}\" IS NOT NULL"
        for f in fields
    ]
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE department_claims AS SELECT * FROM ({' UNION ALL '.join(claims)}) "
        "QUALIFY row_number() OVER (PARTITION BY key, field, source_department ORDER BY rank.u DESC, rank.r DESC, "
        "rank.s DESC) = 1"
    )
    conn.execute(
        f'CREATE OR REPLACE TABLE "golden_{lib.name}_conflicts" AS '
        "SELECT c.key, c.field, d.golden_value, d.rule, "
        "to_json(list({'value': c.value, 'source_department': c.source_department, "
        "'source_record_id': c.source_record_id, 'updated_at': c.source_updated_at} ORDER BY c.rank DESC)) AS \"values\" "
        "FROM department_claims c JOIN disputed d USING (key, field) "
        "GROUP BY c.key, c.field, d.golden_value, d.rule HAVING count(DISTINCT c.value) > 1"
    )
    conn.execute("DROP TABLE disputed")
    conn.execute("DROP TABLE department_claims")

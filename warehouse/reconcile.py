"""Reconcile: golden records from the staged records of every source, field by field.

Each golden field comes from the department authoritative for it (declared in ``schemas/``); when
the authorities are silent, from the most recent non-empty value of any source. Every field keeps
its provenance (department, source record, last update, verified by its authority), and every
field on which departments disagree is entered in the conflict register with all the values.
Golden records exist for the keys the library's master sources know; other sources enrich them.
Entity resolution of records without a usable key and history come with the reconciliation issue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from schemas import LIBRARIES
from schemas.catalogue import Library
from schemas.derive import duckdb_type

METADATA = ("source_department", "source_record_id", "source_updated_at", "ingested_at", "run_id")


@dataclass(frozen=True)
class ReconcileResult:
    library: str
    golden: int
    conflicts: int


def _data_fields(lib: Library) -> list:
    return [f for f in lib.fields if not f.metadata and f.name != lib.key]


def _claims_sql(lib: Library, masters: Sequence[str] | None) -> str:
    """Every non-empty staged value as one row: key, field, value (text), who said it, when, authority."""
    parts = []
    for f in _data_fields(lib):
        authorities = ", ".join(f"'{a}'" for a in f.authorities) or "NULL"
        terminal = ", ".join(f"'{v}'" for v in f.terminal) or "NULL"
        parts.append(
            f"SELECT \"{lib.key}\" AS key, '{f.name}' AS field, CAST(\"{f.name}\" AS VARCHAR) AS value, "
            f"source_department, source_record_id, source_updated_at, _source, "
            f"coalesce(source_department IN ({authorities}), false) AS verified, "
            f"coalesce(CAST(\"{f.name}\" AS VARCHAR) IN ({terminal}), false) AS terminal "
            f'FROM "staging_{lib.name}" WHERE "{lib.key}" IS NOT NULL AND "{f.name}" IS NOT NULL'
        )
    return " UNION ALL ".join(parts)


def build_golden(conn: duckdb.DuckDBPyConnection, library: str, masters: Sequence[str] | None = None) -> ReconcileResult:
    """Replace ``golden_<library>`` and its provenance and conflict tables from the staged records."""
    lib = LIBRARIES[library]
    staging = f'"staging_{lib.name}"'
    only = f"WHERE _source IN ({', '.join('?' for _ in masters)})" if masters else ""
    params = list(masters or [])
    # The keys of the library, and the newest master record of each for the record metadata.
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE golden_keys AS SELECT \"{lib.key}\" AS key, "
        + ", ".join(f'"{m}"' for m in METADATA)
        + f' FROM {staging} {only} {"AND" if only else "WHERE"} "{lib.key}" IS NOT NULL '
        f'QUALIFY row_number() OVER (PARTITION BY "{lib.key}" ORDER BY source_updated_at DESC NULLS LAST, '
        "source_record_id DESC) = 1",
        params,
    )
    # Precedence: an authority's value first (a life event it recorded before any other), then the
    # most recent; ties broken by record id, so the same inputs always give the same golden record.
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE claims AS SELECT c.*, row_number() OVER (PARTITION BY c.key, c.field "
        "ORDER BY c.verified DESC, c.verified AND c.terminal DESC, c.source_updated_at DESC NULLS LAST, "
        "c.source_record_id DESC) AS rank "
        f"FROM ({_claims_sql(lib, masters)}) c SEMI JOIN golden_keys g ON c.key = g.key"
    )
    conn.execute(
        f'CREATE OR REPLACE TABLE "golden_{lib.name}_provenance" AS SELECT key, field, value, source_department, '
        "source_record_id, source_updated_at AS updated_at, verified, "
        "CASE WHEN verified AND terminal THEN 'life_event:' || source_department "
        "WHEN verified THEN 'authority:' || source_department ELSE 'most_recent' END AS rule "
        "FROM claims WHERE rank = 1"
    )
    conn.execute(
        f'CREATE OR REPLACE TABLE "golden_{lib.name}_conflicts" AS '
        "SELECT c.key, c.field, w.value AS golden_value, w.rule, "
        "to_json(list({'value': c.value, 'source_department': c.source_department, "
        "'source_record_id': c.source_record_id, 'updated_at': c.source_updated_at} "
        "ORDER BY c.rank)) AS \"values\" "
        f'FROM claims c JOIN "golden_{lib.name}_provenance" w USING (key, field) '
        "GROUP BY c.key, c.field, w.value, w.rule HAVING count(DISTINCT c.value) > 1"
    )
    columns = [f'g.key AS "{lib.key}"']
    for f in lib.fields:
        if f.name == lib.key:
            continue
        if f.metadata:
            columns.append(f'g."{f.name}"')
        else:
            columns.append(f"CAST(max(p.value) FILTER (WHERE p.field = '{f.name}') AS {duckdb_type(f.type)}) "
                           f'AS "{f.name}"')
    meta = ", ".join(f'g."{m}"' for m in METADATA)
    conn.execute(
        f'CREATE OR REPLACE TABLE "golden_{lib.name}" AS SELECT {", ".join(columns)} FROM golden_keys g '
        f'LEFT JOIN "golden_{lib.name}_provenance" p ON p.key = g.key GROUP BY g.key, {meta}'
    )
    order = ", ".join(f'"{f.name}"' for f in lib.fields)
    conn.execute(f'CREATE OR REPLACE TABLE "golden_{lib.name}" AS SELECT {order} FROM "golden_{lib.name}"')
    (count,) = conn.execute(f'SELECT count(*) FROM "golden_{lib.name}"').fetchone()
    (conflicts,) = conn.execute(f'SELECT count(*) FROM "golden_{lib.name}_conflicts"').fetchone()
    return ReconcileResult(lib.name, count, conflicts)

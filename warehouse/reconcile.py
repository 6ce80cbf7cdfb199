"""Reconcile: golden records from the staged records of every source.

This first version picks, per key, the newest record of the library's master sources; the
reconciliation issue adds field precedence, provenance, conflicts, entity resolution and history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from schemas import LIBRARIES


@dataclass(frozen=True)
class ReconcileResult:
    library: str
    golden: int


def build_golden(conn: duckdb.DuckDBPyConnection, library: str, masters: Sequence[str] | None = None) -> ReconcileResult:
    """Replace ``golden_<library>`` with one record per key: the most recently updated staged one.

    Only ``masters`` (sources that carry whole records) make golden records here; partial records of
    contributing sources wait for field-level precedence.
    """
    lib = LIBRARIES[library]
    cols = ", ".join(f'"{f.name}"' for f in lib.fields)
    only = f"AND _source IN ({', '.join('?' for _ in masters)})" if masters else ""
    conn.execute(
        f'CREATE OR REPLACE TABLE "golden_{lib.name}" AS SELECT {cols} FROM "staging_{lib.name}" '
        f'WHERE "{lib.key}" IS NOT NULL {only} '
        f'QUALIFY row_number() OVER (PARTITION BY "{lib.key}" ORDER BY source_updated_at DESC NULLS LAST, '
        "source_record_id DESC) = 1",
        list(masters or []),
    )
    (count,) = conn.execute(f'SELECT count(*) FROM "golden_{lib.name}"').fetchone()
    return ReconcileResult(lib.name, count)

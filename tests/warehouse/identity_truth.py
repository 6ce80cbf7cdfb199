"""Identity resolution measured against the sample generator's ground truth (shared by the tests and bench/bench_identity.py).

Pairwise precision and recall, over the population records that identity resolution considered
(``U``: quarantined records whose only fault is their ID number) and the staged records that carry a
valid ID number of their own (``K``):

- the predicted entity of a ``K`` record is its own ID number; of a ``U`` record, the entity it is
  linked to (none while it is not linked);
- a pair is any two distinct records of which at least one is in ``U`` (``U``-``K`` pairs: a link
  to an entity; ``U``-``U`` pairs: two records without ID resolved to the same entity);
- true pairs share their true person (``entities.parquet``), predicted pairs share their predicted
  entity; precision = |predicted ∩ true| / |predicted|, recall = |predicted ∩ true| / |true|.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

# (generator dataset) -> population source of connectors/config/sample_sources.yaml
SOURCES = {"HJ_RKXX": "household", "deaths": "deaths", "marriage_registrations": "marriages"}


@dataclass(frozen=True)
class Scores:
    considered: int  # records without a usable ID considered (U)
    linked: int  # of which linked
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load_truth(conn: duckdb.DuckDBPyConnection, entities: Path) -> None:
    """Temp table ``truth``: (source, source_record_id) -> the true person's ID number, for the population sources."""
    cases = " ".join(f"WHEN '{d}' THEN '{s}'" for d, s in SOURCES.items())
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE truth AS
        SELECT CASE dataset {cases} END AS source,
            record_id || CASE role WHEN 'husband' THEN '#1' WHEN 'wife' THEN '#2' ELSE '' END AS source_record_id,
            entity_key AS person
        FROM read_parquet('{entities}') WHERE dataset IN ({", ".join(f"'{d}'" for d in SOURCES)})""")


# The generator's record id: the source record id without any "/field" a mapping may have appended.
GENERATED_ID = "regexp_replace({0}.source_record_id, '/[^#]*', '')"


def _fields() -> str:
    """The fields whose faults still let a record be matched: the key and the model's optional fields."""
    from warehouse.identity_config import load_config

    return "[" + ", ".join(f"'{f}'" for f in ("id_number", *load_config()["population"].optional_fields)) + "]"


def records(conn: duckdb.DuckDBPyConnection, links: str = "identity_links") -> None:
    """Temp table ``scored_records``: every U and K record with its predicted and true entity (links from ``links``)."""
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE scored_records AS
        WITH u AS (
            SELECT q.source, q.source_record_id FROM quarantine q WHERE q.library = 'population' AND q.stage = 'row'
                AND q.status IN ('open', 'linked') AND q.source_record_id IS NOT NULL AND len(q.reasons) > 0
                AND len(list_filter(q.reasons, lambda r: starts_with(r, 'id_number: '))) > 0
                AND len(list_filter(q.reasons, lambda r: NOT list_contains({_fields()}, split_part(r, ': ', 1)))) = 0
            QUALIFY row_number() OVER (PARTITION BY q.source, q.source_record_id ORDER BY q.quarantined_at DESC, q.id DESC) = 1)
        SELECT true AS unkeyed, u.source, u.source_record_id, l.entity_key AS predicted, t.person AS actual
        FROM u LEFT JOIN {links} l ON l.retired_at IS NULL AND l.source = u.source
            AND l.source_record_id = u.source_record_id
        JOIN truth t ON t.source = u.source AND t.source_record_id = {GENERATED_ID.format('u')}
        UNION ALL
        SELECT false, s._source, s.source_record_id, s.id_number, t.person FROM staging_population s
        JOIN truth t ON t.source = s._source AND t.source_record_id = {GENERATED_ID.format('s')}
        WHERE s.id_number IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {links} l WHERE l.retired_at IS NULL
            AND l.source = s._source AND l.source_record_id = s.source_record_id)""")


def pairwise(conn: duckdb.DuckDBPyConnection, entities: Path, links: str = "identity_links") -> Scores:
    """Pairwise precision and recall of identity resolution (see the module docstring), of the links in ``links``."""
    load_truth(conn, entities)
    records(conn, links)

    def pairs(group: str, where: str = "") -> int:
        # Pairs with at least one U record inside each group: u*k + u*(u-1)/2.
        (n,) = conn.execute(
            f"SELECT coalesce(sum(u * k + u * (u - 1) // 2), 0) FROM (SELECT count(*) FILTER (WHERE unkeyed) AS u, "
            f"count(*) FILTER (WHERE NOT unkeyed) AS k FROM scored_records {where} GROUP BY {group})").fetchall()[0]
        return int(n)

    (considered, linked) = conn.execute(
        "SELECT count(*), count(predicted) FROM scored_records WHERE unkeyed").fetchall()[0]
    return Scores(considered, linked, pairs("actual"), pairs("predicted", "WHERE predicted IS NOT NULL"),
                  pairs("predicted, actual", "WHERE predicted IS NOT NULL"))


def recall_by_errors(conn: duckdb.DuckDBPyConnection, defects: Path) -> dict[int, tuple[int, int]]:
    """Per number of fields with a typing error in the U record: (true pairs, of which predicted); after ``pairwise``.

    A field's errors are the generator's typing-error rows of ``defects.parquet`` (``samples.defects``);
    a marriage registration's name errors belong to the partner whose column they hit.
    """
    from samples.defects import TYPING_ERRORS

    cases = " ".join(f"WHEN '{d}' THEN '{s}'" for d, s in SOURCES.items())
    kinds = ", ".join(f"'{k}'" for k in TYPING_ERRORS)
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE record_errors AS
        SELECT CASE dataset {cases} END AS source,
            record_id || CASE WHEN field IN ('男方姓名') THEN '#1' WHEN field IN ('女方姓名') THEN '#2' ELSE '' END AS record,
            count(DISTINCT split_part(CAST(defect AS VARCHAR), '_', 1)) AS errors
        FROM read_parquet('{defects}') WHERE CAST(defect AS VARCHAR) IN ({kinds})
            AND dataset IN ({", ".join(f"'{d}'" for d in SOURCES)})
        GROUP BY ALL""")
    rows = conn.execute(f"""
        WITH u AS (SELECT r.*, coalesce(e.errors, 0) AS errors FROM scored_records r
                   LEFT JOIN record_errors e ON e.source = r.source AND e.record = {GENERATED_ID.format('r')}
                   WHERE r.unkeyed),
             k AS (SELECT * FROM scored_records WHERE NOT unkeyed)
        SELECT u.errors, count(*), count(*) FILTER (WHERE u.predicted = k.actual)
        FROM u JOIN k ON k.actual = u.actual GROUP BY 1 ORDER BY 1""").fetchall()
    return {int(e): (int(t), int(c)) for e, t, c in rows}

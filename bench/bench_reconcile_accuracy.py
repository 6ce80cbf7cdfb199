"""Accuracy of a reconciled sample against the generator's ground truth: ``python bench/bench_reconcile_accuracy.py DATA_DIR``.

Run it on the data directory of ``bench/bench_reconcile.py`` (``/tmp/hub-bench-reconcile/<people>/data``,
after its reconcile step) or of any ``hub run`` over generated samples. It reads the working
database and ``samples/ground_truth`` and prints:

- **different people merged**: staged population records carrying a valid ID number that belong to
  another person than that number's (a 15-digit upgrade or a normalisation gone wrong would show
  here); and links of records without a usable ID to a person other than their own;
- **identity resolution** of records without a usable ID: pairwise precision, recall and F1 (defined
  in ``tests/warehouse/identity_truth.py``);
- **conflict register recall**: every conflicting value the generator injected into the household
  registration (marital status against civil affairs, life status against health) must be in
  ``golden_population_conflicts``. An injection is *detectable* when the household record carrying
  it is the household registration's newest staged word on that person and another department has
  a staged (or linked) value for the field; the rest are counted apart, with the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

from tests.warehouse.identity_truth import GENERATED_ID, pairwise  # noqa: E402

FIELDS = {"HYZK": "marital_status", "SWBZ": "life_status"}


def _conflict_recall(conn: duckdb.DuckDBPyConnection, defects: Path) -> tuple[int, int, dict[str, int]]:
    """(detectable injections, of which in the register, undetectable by reason)."""
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in FIELDS.items())
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE injected AS
        SELECT d.record_id, CASE d.field {cases} END AS field, t.person
        FROM read_parquet('{defects}') d JOIN truth t ON t.source = 'household' AND t.source_record_id = d.record_id
        WHERE d.defect = 'conflicting_value' AND d.dataset = 'HJ_RKXX'""")
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE judged AS
        SELECT i.*, s.source_record_id IS NOT NULL AS staged,
            coalesce(s.source_record_id = (SELECT arg_max(n.source_record_id, n.source_updated_at)
                FROM staging_population n WHERE n._source = 'household' AND n.id_number = i.person), false) AS newest,
            EXISTS (SELECT 1 FROM staging_population o WHERE o.id_number = i.person AND o.source_department <> 'public_security'
                AND CASE i.field WHEN 'marital_status' THEN o.marital_status IS NOT NULL ELSE o.life_status IS NOT NULL END) AS evidence,
            EXISTS (SELECT 1 FROM golden_population_conflicts c WHERE c.key = i.person AND c.field = i.field) AS registered
        FROM injected i LEFT JOIN staging_population s
            ON s._source = 'household' AND {GENERATED_ID.format('s')} = i.record_id AND s.id_number = i.person""")
    detectable, found = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE registered) FROM judged WHERE staged AND newest AND evidence").fetchone()
    reasons = dict(conn.execute("""SELECT CASE WHEN NOT staged THEN 'household record not staged (its ID unusable, not linked)'
            WHEN NOT newest THEN 'a newer household record of the person supersedes it'
            ELSE 'no other department has a usable record of the person' END, count(*)
        FROM judged WHERE NOT (staged AND newest AND evidence) GROUP BY 1""").fetchall())
    return detectable, found, reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args()
    truth_dir = args.data_dir / "samples" / "ground_truth"
    conn = duckdb.connect(str(args.data_dir / "warehouse" / "work.duckdb"), read_only=True)
    scores = pairwise(conn, truth_dir / "entities.parquet")
    (merged_keyed,) = conn.execute(
        "SELECT count(*) FROM scored_records WHERE NOT unkeyed AND predicted <> actual").fetchone()
    (wrong_links,) = conn.execute(
        "SELECT count(*) FROM scored_records WHERE unkeyed AND predicted IS NOT NULL AND predicted <> actual").fetchone()
    (keyed,) = conn.execute("SELECT count(*) FROM scored_records WHERE NOT unkeyed").fetchone()
    print(f"different people merged: {merged_keyed:,} of {keyed:,} records with a valid ID number; "
          f"{wrong_links:,} wrong links of records without one")
    print(f"identity resolution: {scores.considered:,} records without a usable ID, {scores.linked:,} linked; "
          f"pairwise precision {scores.precision:.4f}, recall {scores.recall:.4f}, F1 {scores.f1:.4f} "
          f"({scores.correct_pairs:,} correct of {scores.predicted_pairs:,} predicted pairs, {scores.true_pairs:,} true)")
    detectable, found, reasons = _conflict_recall(conn, truth_dir / "defects.parquet")
    print(f"conflict register: {found:,} of {detectable:,} detectable injected conflicts registered "
          f"({found / detectable if detectable else 1:.4f})")
    for reason, n in sorted(reasons.items()):
        print(f"  not detectable, {reason}: {n:,}")


if __name__ == "__main__":
    main()

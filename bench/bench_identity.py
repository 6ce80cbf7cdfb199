"""Benchmark of identity resolution: ``python bench/bench_identity.py [--people 1000000] [--rate 0.01] [--typing-errors 0.021]``.

Generates the sample world with every defect switched on (each at ``--rate``) and, with
``--typing-errors``, realistic typing errors in names, birth dates, sex, addresses and regions;
lands and stages the three population sources (household registration, marriages, deaths) through
the jobs the DAGs call, then runs ``warehouse.identity.resolve_identities`` in a fresh process and
prints its wall time and peak memory (RSS), the records considered, and the accuracy measured
against the generator's ground truth, overall and by the number of fields in error. Then, unless
``--no-anchor``, the anchor: Splink used directly on a fresh copy of the same staged database
(``bench/identity_anchor.py``), scored the same way. ``--keep`` reuses a staged ``--work`` folder
(the resolution runs on a copy).

Pairwise precision and recall (``tests/warehouse/identity_truth.py``): ``U`` are the records
identity resolution considered (quarantined, the ID number their only fault: empty or invalid),
``K`` the staged records carrying a valid ID number of their own. A record's predicted entity is its
own ID number (``K``) or the entity it was linked to (``U``; none while unlinked); its true entity
is the person the generator made it from. Over all pairs of distinct records with at least one in
``U`` (links from ``U`` to keyed entities, and ``U`` records resolved to the same entity):
precision = pairs predicted to share an entity that truly do / pairs predicted to share one;
recall = pairs truly sharing an entity that are predicted to / pairs truly sharing one; F1 their
harmonic mean.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

SOURCES = ("household", "marriages", "deaths")


def _environment(data: Path) -> None:
    os.environ["HUB_DATA_DIR"] = str(data)
    os.environ["HUB_SOURCES_FILE"] = str(Path(__file__).resolve().parent.parent / "connectors/config/sample_sources.yaml")


def _stage(data: Path, people: int, rate: float, seed: int, typing: float) -> None:
    """Child process: generate, land and stage the population sources."""
    _environment(data)
    from samples import DefectRates, generate_samples
    from hub import jobs
    from hub.settings import get_settings

    started = time.perf_counter()
    rates = DefectRates.uniform(rate).with_typing_errors(typing) if typing else DefectRates.uniform(rate)
    generate_samples(get_settings().samples_dir, people, seed=seed, rates=rates)
    print(f"generated {people:,} people in {time.perf_counter() - started:.1f} s", flush=True)
    for name in SOURCES:
        started = time.perf_counter()
        jobs.ingest(name, "bench-1")
        result = jobs.stage(name)
        print(f"staged {name}: {result.staged:,} staged, {result.quarantined:,} quarantined "
              f"in {time.perf_counter() - started:.1f} s", flush=True)


def _resolve(work: Path, out: multiprocessing.Queue) -> None:
    """Child process: one identity resolution on the working database; reports its result and peak RSS."""
    from warehouse.identity import resolve_identities
    from warehouse.work import open_work

    with open_work(work) as conn:
        started = time.perf_counter()
        result = resolve_identities(conn, "population", run_id="bench")
        seconds = time.perf_counter() - started
    out.put((result, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=0.01, help="rate of every defect (default 1%%)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--typing-errors", type=float, default=0.0,
                        help="rate of typing errors per person field (0.021: about 10%% of records have one)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hub-bench-identity"))
    parser.add_argument("--keep", action="store_true", help="reuse an already staged --work folder")
    parser.add_argument("--no-anchor", action="store_true", help="skip Splink used directly (the anchor)")
    args = parser.parse_args()
    staged = args.work / "staged"
    spawn = multiprocessing.get_context("spawn")
    if not (args.keep and (staged / "warehouse" / "work.duckdb").exists()):
        shutil.rmtree(args.work, ignore_errors=True)
        child = spawn.Process(target=_stage, args=(staged, args.people, args.rate, args.seed, args.typing_errors))
        child.start()
        child.join()
        if child.exitcode:
            sys.exit(f"staging failed ({child.exitcode})")
    run = args.work / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(staged / "warehouse", run)
    queue = spawn.Queue()
    child = spawn.Process(target=_resolve, args=(run, queue))
    child.start()
    try:
        result, seconds, rss = queue.get(timeout=3600)
    except Exception:  # noqa: BLE001 -- the child died (its traceback is above): say so instead of waiting forever
        child.join()
        sys.exit(f"identity resolution failed ({child.exitcode})")
    child.join()

    import duckdb

    from tests.warehouse.identity_truth import pairwise, recall_by_errors

    from bench.identity_anchor import link

    entities = staged / "samples" / "ground_truth" / "entities.parquet"
    defects = staged / "samples" / "ground_truth" / "defects.parquet"
    conn = duckdb.connect(str(run / "work.duckdb"))
    scores = pairwise(conn, entities)
    by_errors = recall_by_errors(conn, defects)
    conn.close()
    print(f"people {args.people:,}, every defect at {args.rate:.0%}, typing errors at {args.typing_errors:.1%} per field")
    print(f"records considered (no usable ID)  {result.candidates:,}  against {result.entities:,} keyed entities")
    print(f"linked {result.linked:,}, near misses {result.near_misses:,}")
    _print_scores("hub", scores, by_errors)
    print(f"resolution wall time {seconds:.1f} s, peak RSS {rss:,.0f} MiB", flush=True)
    if not args.no_anchor:
        # The anchor links a fresh copy of the staged database: the same inputs the hub had, nothing it linked.
        shutil.copy(staged / "warehouse" / "work.duckdb", args.work / "anchor.duckdb")
        conn = duckdb.connect(str(args.work / "anchor.duckdb"))
        pairwise(conn, entities)  # the same U set, before anything is linked
        anchor_links, anchor_seconds = link(conn, args.seed)
        anchor = pairwise(conn, entities, "anchor_links")
        anchor_by_errors = recall_by_errors(conn, defects)
        conn.close()
        print(f"anchor, Splink used directly (bench/identity_anchor.py): {anchor_links:,} linked in {anchor_seconds:.1f} s")
        _print_scores("anchor", anchor, anchor_by_errors)
        print(f"hub F1 - anchor F1 = {scores.f1 - anchor.f1:+.4f}")
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _print_scores(who: str, scores, by_errors: dict[int, tuple[int, int]]) -> None:
    print(f"{who}: pairwise precision {scores.precision:.4f}  recall {scores.recall:.4f}  F1 {scores.f1:.4f} "
          f"(true pairs {scores.true_pairs:,}, predicted {scores.predicted_pairs:,}, correct {scores.correct_pairs:,})")
    for errors, (true, found) in by_errors.items():
        print(f"  records with {errors} field(s) in error: recall {found / true:.4f} ({found:,} of {true:,} true pairs)")


if __name__ == "__main__":
    main()

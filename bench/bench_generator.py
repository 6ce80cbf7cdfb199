"""Benchmark of the sample generator: ``python bench/bench_generator.py --people 10000000 --out /tmp/samples``."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

from samples import DefectRates, generate_samples  # noqa: E402
from samples.generate import STAGES  # noqa: E402


def _children_peak(stop: threading.Event, peak: dict[int, int]) -> None:
    """Poll the peak RSS (VmHWM, kB) of this process's children until ``stop`` is set."""
    while not stop.wait(0.2):
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peak[int(pid)] = max(peak.get(int(pid), 0), int(line.split()[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--household-url", default=None, help="SQLAlchemy URL (default: SQLite file in --out)")
    parser.add_argument("--defect-rate", type=float, default=None, help="one rate for every defect (default: 1%% each)")
    args = parser.parse_args()

    started: dict[str, float] = {}
    finished: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        started.setdefault(stage, now)
        if done >= total:
            finished.setdefault(stage, now)

    rates = DefectRates.uniform(args.defect_rate) if args.defect_rate is not None else None
    stop, peaks = threading.Event(), {}
    threading.Thread(target=_children_peak, args=(stop, peaks), daemon=True).start()
    t0 = time.perf_counter()
    manifest = generate_samples(args.out, args.people, args.seed, rates, args.household_url, progress)
    total = time.perf_counter() - t0
    stop.set()

    rows = sum(v for k, v in manifest.counts.items() if not k.startswith("ground_truth"))
    print(f"people {args.people:,}  seed {args.seed}  out {args.out}")
    print(f"{'stage':<20}{'start s':>9}{'wall s':>9}  (household loads in a background process)")
    for stage in STAGES:
        if stage in started:
            print(f"{stage:<20}{started[stage] - t0:>9.1f}{finished.get(stage, started[stage]) - started[stage]:>9.1f}")
    print(f"{'total':<20}{'':>9}{total:>9.1f}")
    for name, count in manifest.counts.items():
        print(f"  {name:<36}{count:>14,}")
    print(f"records (all systems) {rows:,}  ->  {rows / total:,.0f} rows/s; {args.people / total:,.0f} people/s")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    children = max(peaks.values(), default=0) / 2**20
    print(f"peak RSS: generator {own:.2f} GiB, household writer process {children:.2f} GiB")


if __name__ == "__main__":
    main()

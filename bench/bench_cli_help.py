"""Time ``hub --help`` (a fresh interpreter each run): ``python bench/bench_cli_help.py [--runs 10]``; target < 0.5 s."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.5


def time_help(runs: int) -> list[float]:
    """Wall time of ``python -m hub.cli --help`` per run, the first (cold file cache) included."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hub.cli", "--help"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times = time_help(args.runs)
    median = statistics.median(times)
    print(f"hub --help over {args.runs} runs: median {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}); "
          f"target < {TARGET_SECONDS} s: {'met' if median < TARGET_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()

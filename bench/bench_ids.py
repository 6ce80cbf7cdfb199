"""Benchmark of the batch ID validators: ``python bench/bench_ids.py [--n 10000000] [--threads 2] [--repeat 3]``."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

from schemas import ids_batch  # noqa: E402
from schemas.codes import CREDIT_CODE_AUTHORITIES  # noqa: E402
from schemas.ids import USCC_ALPHABET  # noqa: E402
from schemas.regions import OPEN_END, regions  # noqa: E402

# Share of each kind of input; the rest are valid 18-character values as typed.
CORRUPTED, OLD_15, FULL_WIDTH, SEPARATED = 0.04, 0.03, 0.02, 0.01


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(N,) non-negative integers -> (N, width) ASCII digit matrix."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers % 10 + 48).astype(np.uint8)


def _strings(matrix: np.ndarray) -> pa.Array:
    """(N, W) byte matrix -> Arrow string array of N values of W bytes."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(matrix)))


def _full_width(matrix: np.ndarray) -> np.ndarray:
    """ASCII digits/letters -> their UTF-8 full-width forms (3 bytes each, U+FF10.. / U+FF21..)."""
    code = matrix.astype(np.int32) + (0xFF10 - 0x30)
    out = np.empty((len(matrix), matrix.shape[1] * 3), dtype=np.uint8)
    out[:, 0::3] = 0xE0 | (code >> 12)
    out[:, 1::3] = 0x80 | ((code >> 6) & 0x3F)
    out[:, 2::3] = 0x80 | (code & 0x3F)
    return out


def _separated(matrix: np.ndarray) -> np.ndarray:
    """Insert a space after the region code and a hyphen after the next 8 characters."""
    sep = np.empty((len(matrix), matrix.shape[1] + 2), dtype=np.uint8)
    sep[:, :6], sep[:, 6], sep[:, 7:15], sep[:, 15], sep[:, 16:] = matrix[:, :6], 32, matrix[:, 6:14], 45, matrix[:, 14:]
    return sep


def _corrupt(matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Change one character of each row to another digit (most become check-digit errors)."""
    matrix = matrix.copy()
    cols = rng.integers(0, matrix.shape[1], len(matrix))
    rows = np.arange(len(matrix))
    matrix[rows, cols] = 48 + (matrix[rows, cols] - 48 + rng.integers(1, 10, len(matrix))) % 10
    return matrix


def _mix(parts: list[pa.Array], rng: np.random.Generator) -> pa.Array:
    """Concatenate the kinds of input and shuffle them together."""
    values = pa.concat_arrays(parts)
    return values.take(pa.array(rng.permutation(len(values))))


def _chunked(make, n: int, seed: int, chunk: int = 1_000_000) -> pa.ChunkedArray:
    """``n`` inputs made chunk by chunk, so that generating them needs little more than their size."""
    rng = np.random.default_rng(seed)
    return pa.chunked_array([make(min(chunk, n - start), rng) for start in range(0, n, chunk)], type=pa.string())


def resident_ids(n: int, seed: int = 1) -> pa.ChunkedArray:
    """``n`` resident ID inputs: mostly valid, some corrupted, 15-digit, full-width or separated."""
    return _chunked(_resident_ids, n, seed)


def credit_codes(n: int, seed: int = 2) -> pa.ChunkedArray:
    """``n`` credit-code inputs: mostly valid, some corrupted, full-width or separated."""
    return _chunked(_credit_codes, n, seed)


def _resident_ids(n: int, rng: np.random.Generator) -> pa.Array:
    codes = np.array([int(c) for c, rs in regions().items() if any(r.start == 0 and r.end == OPEN_END for r in rs)])
    k = [int(n * share) for share in (CORRUPTED, OLD_15, FULL_WIDTH, SEPARATED)]
    cut = np.cumsum(k)
    days = rng.integers(0, 90 * 365, n)
    days[cut[0] : cut[1]] = rng.integers(0, 69 * 365, k[1])  # 15-digit numbers are 19xx births
    born = np.datetime64("1930-01-01") + days.astype("timedelta64[D]")
    years = born.astype("datetime64[Y]").astype(np.int64) + 1970
    months = born.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (born - born.astype("datetime64[M]")).astype(np.int64) + 1
    body = np.hstack(
        [
            _digits(rng.choice(codes, n), 6),
            _digits(years * 10000 + months * 100 + days, 8),
            _digits(rng.integers(0, 1000, n), 3),
        ]
    )
    full = np.hstack([body, ids_batch.ric_check_chars(body)[:, None]])
    old = full[cut[0] : cut[1]]
    parts = [
        _strings(full[cut[3] :]),
        _strings(_corrupt(full[: cut[0]], rng)),
        _strings(np.hstack([old[:, :6], old[:, 8:17]])),
        _strings(_full_width(full[cut[1] : cut[2]])),
        _strings(_separated(full[cut[2] : cut[3]])),
    ]
    return _mix(parts, rng)


def _credit_codes(n: int, rng: np.random.Generator) -> pa.Array:
    pairs = np.array([[ord(a), ord(t)] for a, (_, kinds) in CREDIT_CODE_AUTHORITIES.items() for t in kinds], dtype=np.uint8)
    codes = np.array([int(c) for c in regions()])
    alphabet = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
    body = np.hstack([pairs[rng.integers(0, len(pairs), n)], _digits(rng.choice(codes, n), 6), alphabet[rng.integers(0, 31, (n, 9))]])
    full = np.hstack([body, ids_batch.uscc_check_chars(body)[:, None]])
    k = [int(n * share) for share in (CORRUPTED, FULL_WIDTH, SEPARATED)]
    cut = np.cumsum(k)
    parts = [
        _strings(full[cut[2] :]),
        _strings(_corrupt(full[: cut[0]], rng)),
        _strings(_full_width(full[cut[0] : cut[1]])),
        _strings(_separated(full[cut[1] : cut[2]])),
    ]
    return _mix(parts, rng)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _time(label: str, validate, values: pa.ChunkedArray, repeat: int) -> None:
    """Best of ``repeat`` runs: the machine is shared, so the best run is the least disturbed one."""
    validate(values.slice(0, 1000))  # builds the lookup tables outside the measurement
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        table = validate(values)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
        valid = table["error"].null_count
        del table
    seconds, cpu_seconds = min(runs)
    print(
        f"{label:<13} {len(values):>11,} in {seconds:5.2f} s = {len(values) / seconds / 1e6:5.2f} M/s"
        f"  (CPU {cpu_seconds:5.2f} s; runs {', '.join(f'{w:.2f}' for w, _ in runs)} s)"
        f"  {valid / len(values):.1%} valid; peak RSS so far {_peak_rss_mb():,.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000_000, help="inputs per kind")
    parser.add_argument("--threads", type=int, default=ids_batch.THREADS)
    parser.add_argument("--repeat", type=int, default=3, help="runs per kind; the best is reported")
    args = parser.parse_args()
    ids_batch.THREADS = args.threads
    start = time.perf_counter()
    ric, uscc = resident_ids(args.n), credit_codes(args.n)
    size = (ric.nbytes + uscc.nbytes) / 2**20
    print(f"generated 2 x {args.n:,} inputs ({size:,.0f} MB) in {time.perf_counter() - start:.1f} s; peak RSS {_peak_rss_mb():,.0f} MB")
    print(f"threads: {ids_batch.THREADS}, chunk: {ids_batch.CHUNK_ROWS:,} rows")
    _time("resident IDs", ids_batch.validate_resident_ids, ric, args.repeat)
    _time("credit codes", ids_batch.validate_credit_codes, uscc, args.repeat)


if __name__ == "__main__":
    main()

"""Signed, audited lookups per second against a 10-million-person snapshot, from a separate process on 127.0.0.1.

    python bench/bench_api.py [--dir /tmp/hub-bench] [--people 10000000] [--concurrency 8] [--workers 1] [--write]

1. Builds (or reuses under ``--dir``) a snapshot in the published layout: ``population.parquet`` sorted by
   ID number (valid GB 11643 numbers, generated with numpy), manifest, CURRENT; then its serving files.
2. Registers a department, its key and a grant in the metadata database (SQLite under ``--dir``).
3. Starts the exchange API in its own process: uvicorn, ``--workers`` worker(s), 127.0.0.1, audit on.
4. From this process, a bounded closed-loop load (``--concurrency`` keep-alive connections, a fixed
   number of requests per phase): ``/ping`` (the ceiling), single lookups, batches of ``--batch``.
   Requests are signed before each phase starts (each with its own nonce and ``created`` within the
   window), so that on 2 cores the load generator's Ed25519 signing does not compete with the server.
5. Checks every answer's status, verifies a sample of answers against the JWKS, checks the audit has
   one row per looked-up key and that the chain verifies; prints requests/s and p50/p99 per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEPARTMENT, PURPOSE = "bench_civil_affairs", "social_assistance"
ROW_GROUP = 122_880


# ----- 1. the snapshot --------------------------------------------------------------------------------------

def _region_codes() -> np.ndarray:
    from schemas.regions import current_counties

    codes = sorted({r.code for r in current_counties() if r.start <= 1980})
    return np.frombuffer("".join(codes).encode(), dtype=np.uint8).reshape(-1, 6)


def generate_people(n: int, seed: int = 7) -> pa.Table:
    """``n`` distinct valid resident ID numbers with plausible records, sorted by ID number."""
    from schemas import POPULATION
    from schemas.derive import arrow_schema
    from schemas.ids_batch import ric_check_chars

    rng = np.random.default_rng(seed)
    regions = _region_codes()
    epoch = np.datetime64("1980-01-01")
    days = (np.datetime64("2005-12-31") - epoch).astype(int)
    want = int(n * 1.02) + 1000
    region_idx = rng.integers(0, len(regions), want)
    births = epoch + rng.integers(0, days, want).astype("timedelta64[D]")
    seqs = rng.integers(0, 1000, want)
    body = np.empty((want, 17), dtype=np.uint8)
    body[:, :6] = regions[region_idx]
    ymd = np.char.replace(np.datetime_as_string(births, unit="D").astype("U10"), "-", "")
    body[:, 6:14] = np.frombuffer("".join(ymd.tolist()).encode(), dtype=np.uint8).reshape(-1, 8)
    body[:, 14:17] = np.frombuffer("".join(f"{s:03d}" for s in seqs.tolist()).encode(), dtype=np.uint8).reshape(-1, 3)
    ids = np.empty((want, 18), dtype=np.uint8)
    ids[:, :17], ids[:, 17] = body, ric_check_chars(body)
    keys, first = np.unique(ids.view("S18").ravel(), return_index=True)  # sorted, distinct
    if len(keys) > n:
        keep = np.sort(rng.choice(len(keys), n, replace=False))
        keys, first = keys[keep], first[keep]
    m = len(keys)
    id_col = pa.array(keys.astype("U18").tolist() if m < 100_000 else np.char.decode(keys, "ascii"), pa.string())
    seq_digit = (body[first, 16] - 48).astype(np.int64)
    surnames = np.array(list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"))
    given = np.array(["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英"])
    names = np.char.add(surnames[rng.integers(0, len(surnames), m)], given[rng.integers(0, len(given), m)])
    addresses = np.array([f"示例市示例区幸福路{i}号" for i in range(1, 2001)])
    updated = np.datetime64("2026-01-01T00:00:00") + rng.integers(0, 86400 * 300, m).astype("timedelta64[s]")
    region_of = np.char.decode(regions[region_idx[first]].view("S6").ravel(), "ascii")
    columns = {
        "id_number": id_col,
        "name": pa.array(names.tolist()),
        "gender": pa.array(np.where(seq_digit % 2 == 1, "1", "2")),
        "birth_date": pa.array(births[first].astype("datetime64[D]"), pa.date32()),
        "ethnicity": pa.array(np.where(rng.random(m) < 0.92, "01", "02")),
        "household_address": pa.array(addresses[rng.integers(0, len(addresses), m)]),
        "household_region": pa.array(region_of),
        "residence_address": pa.array(addresses[rng.integers(0, len(addresses), m)]),
        "marital_status": pa.array(np.where(rng.random(m) < 0.6, "20", "10")),
        "life_status": pa.array(np.where(rng.random(m) < 0.99, "living", "deceased")),
        "life_status_date": pa.nulls(m, pa.date32()),
        "phone": pa.array(np.char.add("138", np.char.zfill(rng.integers(0, 10**8, m).astype("U8"), 8))),
        "source_department": pa.array(np.full(m, "public_security")),
        "source_record_id": pa.array(np.char.add("HJ-", np.arange(m).astype("U10"))),
        "source_updated_at": pa.array(updated.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "ingested_at": pa.array(np.full(m, np.datetime64("2026-11-01T00:00:00", "us")), pa.timestamp("us", tz="UTC")),
        "run_id": pa.array(np.full(m, "bench-run")),
    }
    schema = arrow_schema(POPULATION)
    return pa.table([columns[f.name].cast(f.type) for f in schema], schema=schema)


def ensure_snapshot(data_dir: Path, people: int) -> tuple[Path, list[str]]:
    """The snapshot folder (built if absent) and a random sample of its ID numbers."""
    snapshots = data_dir / "snapshots"
    path = snapshots / "v000001"
    parquet = path / "population.parquet"
    if not (path / "manifest.json").exists():
        started = time.perf_counter()
        print(f"generating {people:,} people ...", flush=True)
        table = generate_people(people)
        path.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, parquet, row_group_size=ROW_GROUP, compression="zstd")
        manifest = {"version": "v000001", "created_at": dt.datetime.now(dt.UTC).isoformat(),
                    "tables": {"population": {"rows": table.num_rows, "parquet": parquet.name}}, "runs": ["bench"]}
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
        (snapshots / "CURRENT").write_text("v000001\n")
        print(f"  written in {time.perf_counter() - started:.1f} s: {parquet.stat().st_size / 1e6:.0f} MB", flush=True)
    from warehouse.published import is_prepared, prepare

    if not is_prepared(path):
        started = time.perf_counter()
        print("preparing the serving files (Arrow IPC + key index) ...", flush=True)
        prepare(path)
        print(f"  prepared in {time.perf_counter() - started:.1f} s", flush=True)
    rows = pq.ParquetFile(parquet).metadata.num_rows
    rng = random.Random(11)
    groups = pq.ParquetFile(parquet).num_row_groups
    sample_groups = sorted(rng.sample(range(groups), min(8, groups)))
    sample = pq.ParquetFile(parquet).read_row_groups(sample_groups, columns=["id_number"]).column(0).to_pylist()
    print(f"snapshot: {rows:,} people; {len(sample):,} sample keys", flush=True)
    return path, sample


# ----- 2. the department ----------------------------------------------------------------------------------

def ensure_department(data_dir: Path) -> tuple[str, bytes]:
    from cryptography.hazmat.primitives import serialization

    from exchange_api.client import generate_department_key
    from exchange_api.models import DepartmentKey, exchange_sessions
    from exchange_api.registry import add_grant, add_key, register_department, set_limits
    from hub.settings import Settings

    key_file, kid_file = data_dir / "bench-department.pem", data_dir / "bench-department.kid"
    sessions = exchange_sessions(Settings(data_dir=data_dir))
    if key_file.exists():
        with sessions() as session:
            if session.get(DepartmentKey, kid_file.read_text().strip()) is not None:
                return kid_file.read_text().strip(), key_file.read_bytes()
    kid, private_key, public_pem = generate_department_key()
    with sessions.begin() as session:
        register_department(session, DEPARTMENT, "基准测试民政局")
        add_key(session, DEPARTMENT, public_pem, kid=kid)
        add_grant(session, DEPARTMENT, "population", ["name", "birth_date", "household_address"], PURPOSE,
                  dt.datetime.now(dt.UTC) + dt.timedelta(days=365), "public_security")
        set_limits(session, DEPARTMENT, rate_per_second=1e6, burst=1_000_000, daily_quota=2_000_000_000)
    key_file.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    kid_file.write_text(kid)
    return kid, key_file.read_bytes()


# ----- 3. the server --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "HUB_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "uvicorn", "exchange_api.app:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
           "--loop", "uvloop", "--http", "httptools"]
    if workers > 1 and os.environ.get("BENCH_UVICORN_WORKERS") != "1":
        # One socket per worker with SO_REUSEPORT (see exchange_api/serve.py for why not uvicorn's --workers).
        cmd = [sys.executable, "-m", "exchange_api.serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 300
    import httpx

    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the API server exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit("the API server did not become ready")


# ----- 4. the load ----------------------------------------------------------------------------------------

def signed_requests(port: int, kid: str, key_pem: bytes, bodies: list[bytes], path: str) -> list[tuple[bytes, str]]:
    """Raw HTTP/1.1 requests, each signed (RFC 9421) with its own nonce; with the nonce, to check its answer."""
    import httpx

    from exchange_api.client import load_private_key, sign_request

    private_key = load_private_key(key_pem)
    out = []
    for body in bodies:
        request = httpx.Request("POST", f"http://127.0.0.1:{port}{path}", content=body,
                                headers={"Content-Type": "application/json"})
        nonce = secrets.token_urlsafe(24)
        sign_request(request, kid, private_key, nonce=nonce)
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
        out.append((("\r\n".join(head) + "\r\n\r\n").encode() + body, nonce))
    return out


def ping_requests(port: int, n: int) -> list[tuple[bytes, str]]:
    raw = f"GET /ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    return [(raw, "")] * n


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def drive(port: int, requests: list[tuple[bytes, str]], concurrency: int) -> dict:
    """Send every request once over ``concurrency`` keep-alive connections; latency of each, from send to last byte."""
    latencies = np.zeros(len(requests))
    statuses = np.zeros(len(requests), dtype=np.int32)
    bodies: dict[int, bytes] = {}
    next_index = 0

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while next_index < len(requests):
                i = next_index
                next_index += 1
                started = time.perf_counter()
                writer.write(requests[i][0])
                status, body = await _read_response(reader)
                latencies[i] = time.perf_counter() - started
                statuses[i] = status
                if i % 97 == 0:
                    bodies[i] = body
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"n": len(requests), "elapsed": elapsed, "rps": len(requests) / elapsed,
            "p50_ms": float(np.percentile(latencies, 50) * 1e3), "p99_ms": float(np.percentile(latencies, 99) * 1e3),
            "max_ms": float(latencies.max() * 1e3), "non_200": int((statuses != 200).sum()),
            "statuses": sorted(set(statuses.tolist())), "sample": bodies}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (and their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds of each server process's main thread and of its other threads together."""
    out: dict[str, float] = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = f"{pid}:main" if task.name == str(pid) else f"{pid}:other"
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def server_pids(server: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    extra = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [server.pid, *extra]  # (multiprocessing's resource tracker shows up too, idle)


def run_phase(name: str, port: int, requests: list[tuple[bytes, str]], concurrency: int, warmup: int,
              pids: list[int]) -> dict:
    if warmup:
        asyncio.run(drive(port, requests[:warmup], concurrency))
    cpu, threads = cpu_seconds(pids), thread_cpu(pids)
    client_cpu = time.process_time()
    result = asyncio.run(drive(port, requests[warmup:], concurrency))
    result["server_cpu_us"] = (cpu_seconds(pids) - cpu) / result["n"] * 1e6
    after = thread_cpu(pids)
    result["threads_us"] = {k: round((after[k] - threads.get(k, 0.0)) / result["n"] * 1e6) for k in after}
    result["client_cpu_us"] = (time.process_time() - client_cpu) / result["n"] * 1e6
    result["name"] = name
    result["nonces"] = {i: requests[warmup + i][1] for i in result["sample"]}
    print(f"{name:>16}: {result['n']:>6} requests in {result['elapsed']:5.1f} s = {result['rps']:7.0f}/s, "
          f"p50 {result['p50_ms']:5.2f} ms, p99 {result['p99_ms']:6.2f} ms, max {result['max_ms']:6.1f} ms, "
          f"non-200: {result['non_200']} {result['statuses']}; server CPU {result['server_cpu_us']:.0f} us/request, "
          f"load generator {result['client_cpu_us']:.0f} us/request; server threads {result['threads_us']}", flush=True)
    return result


def check_answers(port: int, result: dict, kid: str, batch: bool) -> int:
    """Verify the sampled answers against the hub's JWKS with the client library; returns how many."""
    import httpx

    from exchange_api.client import verify_answer

    jwks = httpx.get(f"http://127.0.0.1:{port}/.well-known/jwks.json").json()
    for i, token in result["sample"].items():
        answer = verify_answer(token.decode(), jwks, expected_nonce=result["nonces"][i], expected_department=DEPARTMENT)
        assert (len(answer.results) if batch else answer.found), "an answer did not carry the record"
    return len(result["sample"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/hub-bench"), help="snapshot + metadata, reused")
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--single", type=int, default=30_000, help="single lookups measured")
    parser.add_argument("--batches", type=int, default=1_500, help="batch lookups measured")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--ping", type=int, default=30_000)
    parser.add_argument("--write", action="store_true", help="append the figures to bench/results_api.md")
    args = parser.parse_args()

    data_dir = args.dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    args.load_before = Path("/proc/loadavg").read_text().split()[0]
    _, sample = ensure_snapshot(data_dir, args.people)
    kid, key_pem = ensure_department(data_dir)
    port = free_port()
    server = start_server(data_dir, port, args.workers)
    try:
        from exchange_api.models import AuditEntry, exchange_sessions
        from hub.settings import Settings
        from sqlalchemy import func, select

        sessions = exchange_sessions(Settings(data_dir=data_dir))
        with sessions() as session:
            rows_before = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        rng = random.Random(5)
        warm = 2_000
        pids = server_pids(server)
        results = [run_phase("ping", port, ping_requests(port, args.ping + warm), args.concurrency, warm, pids)]
        started = time.perf_counter()
        bodies = [json.dumps({"library": "population", "key": rng.choice(sample), "purpose": PURPOSE,
                              "case_number": f"BENCH-{i}"}).encode() for i in range(args.single + warm)]
        singles = signed_requests(port, kid, key_pem, bodies, "/v1/lookup")
        print(f"  ({len(singles):,} single lookups signed in {time.perf_counter() - started:.1f} s)", flush=True)
        single = run_phase("lookup", port, singles, args.concurrency, warm, pids)
        bodies = [json.dumps({"library": "population", "keys": rng.sample(sample, args.batch), "purpose": PURPOSE,
                              "case_number": f"BENCH-B{i}"}).encode() for i in range(args.batches + 100)]
        batches = signed_requests(port, kid, key_pem, bodies, "/v1/lookup/batch")
        batch = run_phase(f"batch of {args.batch}", port, batches, args.concurrency, 100, pids)
        verified = check_answers(port, single, kid, False) + check_answers(port, batch, kid, True)
        import httpx

        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        audit_lines = [line for line in metrics.splitlines() if line.startswith("hub_api_audit_")]
        print("  " + "; ".join(audit_lines), flush=True)
        with sessions() as session:
            rows_after = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        expected = len(singles) + len(batches) * args.batch
        from exchange_api.audit import AuditLog, audit_salt

        report = AuditLog(sessions, audit_salt(data_dir / "keys")).verify()
        print(f"audit: {rows_after - rows_before:,} new rows (expected {expected:,}); chain "
              f"{'intact' if report.ok else 'BROKEN'} over {report.rows:,} rows; {verified} answers verified", flush=True)
        results.append(single)
        results.append(batch)
    finally:
        server.terminate()
        server.wait(30)
    ceiling = results[0]["rps"]
    print(f"single lookups: {results[1]['rps']:.0f}/s = {results[1]['rps'] / ceiling:.0%} of /ping; "
          f"batch: {results[2]['rps'] * args.batch:.0f} records/s", flush=True)
    if args.write:
        write_results(args, results, ceiling, rows_after - rows_before, expected, report.ok)


def write_results(args: argparse.Namespace, results: list[dict], ceiling: float, rows: int, expected: int, ok: bool) -> None:
    path = ROOT / "bench" / "results_api.md"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = [f"\n## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {args.people:,} people, {args.workers} worker(s), "
             f"concurrency {args.concurrency}", "",
             f"`python bench/bench_api.py --people {args.people} --workers {args.workers} --concurrency "
             f"{args.concurrency}` on {os.cpu_count()} × {cpu}, Python {platform.python_version()}", "",
             "| phase | requests | req/s | records/s | p50 ms | p99 ms | max ms | non-200 | server CPU µs/req |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per = args.batch if r["name"].startswith("batch") else (1 if r["name"] == "lookup" else 0)
        lines.append(f"| {r['name']} | {r['n']:,} | {r['rps']:,.0f} | {r['rps'] * per:,.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['non_200']} | {r['server_cpu_us']:.0f} |")
    load_after = Path("/proc/loadavg").read_text().split()[0]
    lines += ["", f"Single lookups reach {results[1]['rps'] / ceiling:.0%} of the `/ping` ceiling. Audit rows written: "
                  f"{rows:,} (expected {expected:,}), chain {'intact' if ok else 'BROKEN'}. Machine load average "
                  f"(1 min) before / after: {args.load_before} / {load_after}. Server threads, CPU µs per lookup: "
                  f"{results[1]['threads_us']}.", ""]
    with path.open("a") as fh:
        fh.write("\n".join(lines))
    print(f"appended to {path}")


if __name__ == "__main__":
    main()

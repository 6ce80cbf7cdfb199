"""The sample department systems (as connectors/config/sample_sources.yaml declares them) through the gate, and the
gate's findings measured against the generator's ground truth."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import uvicorn

from connectors.config import SourceConfig

SOURCES_FILE = Path(__file__).resolve().parents[2] / "connectors" / "config" / "sample_sources.yaml"  # the sample systems
REGISTRY_TOKEN = "quality-test-token"
# (generator system, dataset) -> source name in sample_sources.yaml; licences are "licences_<department>".
DATASETS = {("public_security", "HJ_RKXX"): "household", ("civil_affairs", "marriage_registrations"): "marriages",
            ("civil_affairs", "social_orgs"): "social_organisations", ("health", "deaths"): "deaths",
            ("market_regulation", "enterprises"): "business_registry"}


def source_of(system: str, dataset: str) -> str:
    return DATASETS.get((system, dataset)) or f"licences_{system}"


@contextmanager
def registry(samples_dir: Path) -> Iterator[str]:
    """The sample business registry's REST API under a real uvicorn server; its Connection in the environment."""
    from samples import create_registry_app
    from samples.business_registry import FOLDER

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_registry_app(samples_dir / FOLDER, REGISTRY_TOKEN),
                                           log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "registry did not start"
        time.sleep(0.02)
    os.environ["AIRFLOW_CONN_HUB_BUSINESS_REGISTRY"] = f"http://:{REGISTRY_TOKEN}@127.0.0.1:{port}"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.environ.pop("AIRFLOW_CONN_HUB_BUSINESS_REGISTRY", None)
        server.should_exit = True
        thread.join(10)
        sock.close()


def stage_all(names: list[str], run_id: str) -> dict[str, object]:
    """Land and stage each source (the jobs the DAGs call)."""
    from hub import jobs

    out = {}
    for name in names:
        jobs.ingest(name, run_id)
        out[name] = jobs.stage(name)
    return out


def reconcile_and_check(libraries: list[str], run_id: str):  # type: ignore[no-untyped-def]
    """Golden tables and the shared-table suites, without publishing (reconciliation of several
    population sources is the reconciliation issue's: the first version leaves required fields empty)."""
    from hub.settings import get_settings
    from quality.tables import check_tables
    from warehouse.reconcile import build_golden
    from warehouse.work import open_work

    with open_work(get_settings().warehouse_dir) as conn:
        for lib in libraries:
            build_golden(conn, lib)
        return check_tables(conn, run_id, libraries)


@dataclass
class Recall:
    injected: dict[str, int]
    caught: dict[str, int]
    missed: dict[str, list[tuple]]

    def rate(self, defect: str) -> float:
        return self.caught[defect] / self.injected[defect] if self.injected[defect] else 1.0


def _candidates(cfg: SourceConfig, record_id: str, column: str | None) -> list[tuple[str, str | None]]:
    """(source record id, canonical field) pairs a defect on raw ``column`` of ``record_id`` lands on."""
    parts = cfg.record_fields()
    out = []
    for i, fields in enumerate(parts):
        rid = record_id + (f"#{i + 1}" if len(parts) > 1 else "")
        if column is None:
            out.append((rid, None))
            continue
        out += [(rid, name) for name, spec in fields.items() if spec.column == column]
    return out


def measure(work_db: Path, samples_dir: Path, sources: dict[str, SourceConfig]) -> Recall:
    """For every injected defect: did some rule of the gate catch it (quarantine, note or finding on that field)?"""
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        flagged: dict[tuple[str, str], set[str | None]] = defaultdict(set)  # (source, record id) -> fields
        lines: set[tuple[str, str, int]] = set()  # (source, file name, line) of unreadable rows
        for source, rid, file, line, stage, reasons in con.execute(
                "SELECT source, source_record_id, file, line, stage, reasons FROM quarantine").fetchall():
            if stage == "connector":
                lines.add((source, Path(file).name, int(line)))
            for reason in reasons:
                flagged[(source, rid)].add(reason.split(":", 1)[0])
        for source, rid, field in con.execute(
                "SELECT source, source_record_id, field FROM quality_notes UNION ALL "
                "SELECT source, source_record_id, field FROM quality_findings").fetchall():
            flagged[(source, rid)].add(field)
    finally:
        con.close()
    truth = pq.read_table(samples_dir / "ground_truth" / "defects.parquet").to_pylist()
    injected: dict[str, int] = defaultdict(int)
    caught: dict[str, int] = defaultdict(int)
    missed: dict[str, list[tuple]] = defaultdict(list)
    for d in truth:
        name = source_of(d["system"], d["dataset"])
        if name not in sources:
            continue
        injected[d["defect"]] += 1
        hit = d["line"] is not None and (name, Path(d["source"]).name, d["line"]) in lines
        if not hit:
            column = None if d["defect"] == "duplicate" else d["field"]
            for rid, field in _candidates(sources[name], d["record_id"], column):
                got = flagged.get((name, rid), set())
                if (field is None and got) or field in got:
                    hit = True
                    break
        if hit:
            caught[d["defect"]] += 1
        else:
            missed[d["defect"]].append((name, d["record_id"], d["field"]))
    return Recall(dict(injected), dict(caught), dict(missed))

"""Two real API processes sharing one PostgreSQL metadata database: replays, quotas and the audit chain hold across them."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from exchange_api.audit import AuditLog, audit_salt
from exchange_api.client import HubClient, generate_department_key, sign_request
from exchange_api.models import exchange_sessions
from exchange_api.registry import add_key, register_department, set_limits
from hub.settings import Settings
from tests.conftest import POSTGRES_URL
from tests.exchange_api.conftest import PERSON_ID, json_request, lookup_body, seed_purposes, write_snapshot

ROOT = Path(__file__).resolve().parents[2]
PURPOSE = "social_assistance"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir: Path, url: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")}, "HUB_DATA_DIR": str(data_dir),
           "HUB_METADATA_URL": url, "HUB_API_REGISTRY_CACHE_SECONDS": "0.2", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "exchange_api.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, f"http://127.0.0.1:{port}"


def _wait(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"API process exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("API process did not become ready")


@pytest.fixture(scope="module")
def two_hubs(tmp_path_factory):
    """Two uvicorn processes, one snapshot folder, one PostgreSQL schema of our own (dropped afterwards)."""
    schema = f"hub_api_test_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    data_dir = tmp_path_factory.mktemp("two") / "data"
    settings = Settings(data_dir=data_dir, metadata_url=url)
    write_snapshot(settings.snapshots_dir, "v000001")
    exchange_sessions(settings)  # creates the tables in our schema
    seed_purposes(settings)  # the purpose catalogue, in PostgreSQL too
    audit_salt(settings.keys_dir)  # one salt file for both, as a shared keys volume gives them
    processes = [_start(data_dir, url) for _ in range(2)]
    try:
        for process, base in processes:
            _wait(process, base)
        yield settings, [base for _, base in processes]
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            process.wait(20)
            process.stderr.close()
        from hub.db import engine_for

        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _department(settings: Settings, **limits):
    kid, private_key, public_pem = generate_department_key()
    code = f"dept_{secrets.token_hex(3)}"
    with exchange_sessions(settings).begin() as session:
        register_department(session, code, "跨进程测试")
        add_key(session, code, public_pem, kid=kid)
        if limits:
            set_limits(session, code, **limits)
    return code, kid, private_key


def _signed(base: str, kid: str, key) -> httpx.Request:
    request = json_request(base, lookup_body())
    sign_request(request, kid, key)
    return request


def test_a_nonce_used_on_one_process_is_refused_by_the_other(two_hubs):
    settings, (a, b) = two_hubs
    _, kid, key = _department(settings)
    with httpx.Client() as client:
        first = _signed(a, kid, key)
        assert client.send(first).status_code == 200
        replay = httpx.Request("POST", b + "/v1/lookup", headers=first.headers, content=first.content)
        replay.headers["Host"] = first.headers["Host"]  # the same bytes, sent to the other process
        refused = client.send(replay)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "replayed_nonce"
        assert client.send(first).json()["error"]["code"] == "replayed_nonce"  # and again on the first one


def test_the_same_request_raced_to_both_processes_is_answered_once(two_hubs):
    settings, (a, b) = two_hubs
    _, kid, key = _department(settings)
    for _ in range(5):
        request = _signed(a, kid, key)
        copies = [request, httpx.Request("POST", b + "/v1/lookup", headers=request.headers, content=request.content)]
        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(lambda r: httpx.Client().send(r).status_code, copies))
        assert statuses == [200, 401]


def test_the_daily_quota_holds_across_processes(two_hubs):
    settings, (a, b) = two_hubs
    code, kid, key = _department(settings, daily_quota=5)
    clients = [HubClient(base, kid, key) for base in (a, b)]
    try:
        def attempt(i: int) -> str:
            try:
                clients[i % 2].lookup("population", PERSON_ID, PURPOSE, f"CASE-{i}")
                return "ok"
            except Exception as exc:  # noqa: BLE001
                return getattr(exc, "code", repr(exc))

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(attempt, range(12)))
    finally:
        for client in clients:
            client.close()
    assert outcomes.count("ok") == 5
    assert set(outcomes) == {"ok", "quota_exceeded"}


def test_the_audit_chain_stays_whole_when_both_processes_append(two_hubs):
    settings, (a, b) = two_hubs
    departments = [_department(settings) for _ in range(2)]
    clients = [HubClient(base, kid, key) for base in (a, b) for _, kid, key in departments]
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: clients[i % 4].lookup("population", PERSON_ID, PURPOSE, f"CASE-C{i}"),
                                    range(80)))
    finally:
        for client in clients:
            client.close()
    assert all(answer.found for answer in answers)
    report = AuditLog(exchange_sessions(settings), audit_salt(settings.keys_dir)).verify()
    assert report.ok, report
    assert report.rows >= 80


def test_an_answer_from_either_process_verifies_against_either_jwks(two_hubs):
    settings, (a, b) = two_hubs
    _, kid, key = _department(settings)
    with HubClient(a, kid, key) as on_a:
        answer = on_a.lookup("population", PERSON_ID, PURPOSE, "CASE-J1")
    from exchange_api.client import verify_answer

    assert verify_answer(answer.token, httpx.get(b + "/.well-known/jwks.json").json()).request_id == answer.request_id
    assert dt.datetime.fromisoformat(answer.issued_at) <= dt.datetime.now(dt.UTC)

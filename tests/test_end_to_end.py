"""The main job end to end, as the README runs it: samples → Airflow DAGs → snapshot → a signed lookup."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import duckdb
import httpx
import pytest

from warehouse.published import current_name

pytestmark = pytest.mark.slow


def _hub(*args: str, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_then_a_signed_lookup_from_the_command_line(settings):
    env = {**os.environ, "COLUMNS": "200"}
    demo = _hub("demo", "--people", "300", env=env)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "DAG ingest_household: success" in demo.stdout
    assert "DAG reconcile_publish: success" in demo.stdout
    assert "signature was verified" in demo.stdout

    snapshot = settings.snapshots_dir / current_name(settings.snapshots_dir)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["tables"]["population"]["rows"] > 250
    # Only valid, normalised, unique ID numbers reach the published library.
    ids = [r[0] for r in duckdb.connect().execute(f"SELECT id_number FROM '{snapshot}/population.parquet'").fetchall()]
    from schemas.ids import is_valid_resident_id

    assert len(ids) == len(set(ids)) and all(is_valid_resident_id(i) and len(i) == 18 for i in ids)
    # What the household source had that could not be published waits in quarantine, with its reasons.
    work = duckdb.connect(str(settings.warehouse_dir / "work.duckdb"), read_only=True)
    (quarantined,) = work.execute("SELECT count(*) FROM quarantine WHERE source = 'household'").fetchone()
    assert quarantined > 0
    work.close()

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "hub serve did not come up"
            time.sleep(0.2)
        answer = _hub("lookup", ids[0], "--url", f"http://127.0.0.1:{port}", "--json", env=env, timeout=60)
        assert answer.returncode == 0, answer.stdout + answer.stderr
        payload = json.loads(answer.stdout)
        assert payload["found"] is True and payload["snapshot_version"] == manifest["version"]
        assert payload["record"]["id_number"]["value"] == ids[0]
        assert payload["record"]["name"]["source_department"] == "public_security"
        assert "phone" not in payload["record"]  # not shareable: never leaves the hub

        ungranted = _hub("lookup", ids[0], "--url", f"http://127.0.0.1:{port}", "--purpose", "tax_audit", "--json",
                         env=env, timeout=60)
        assert ungranted.returncode == 0, ungranted.stdout + ungranted.stderr
        unconditional_only = json.loads(ungranted.stdout)["record"]  # a catalogue purpose the grant does not name
        assert "name" not in unconditional_only and "gender" in unconditional_only

        refused = _hub("lookup", ids[0], "--url", f"http://127.0.0.1:{port}", "--purpose", "curiosity", "--json",
                       env=env, timeout=60)
        assert refused.returncode == 1 and "422 unknown_purpose" in refused.stderr  # not in the catalogue
    finally:
        server.terminate()
        server.wait(timeout=30)

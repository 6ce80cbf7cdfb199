"""A served process killed by a fatal signal leaves its traceback in the log, not silence.

A serving file truncated under a process that has it memory-mapped ends that process with SIGBUS,
which Python can't catch; ``faulthandler`` at least writes where it was to stderr (the restart then
serves the last intact version: tests/warehouse/test_snapshot_integrity.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.settings import Settings
from tests.exchange_api.conftest import seed_purposes, write_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_bus_error_in_a_served_process_leaves_a_traceback_on_stderr(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    write_snapshot(settings.snapshots_dir, "v000001")
    seed_purposes(settings)
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
           "HUB_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "exchange_api.serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        os.kill(process.pid, signal.SIGBUS)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGBUS
    text = stderr.decode()
    assert "Fatal Python error: Bus error" in text and "Current thread" in text

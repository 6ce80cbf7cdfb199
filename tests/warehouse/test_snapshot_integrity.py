"""Published files checked against their manifest: a damaged version is refused, the last good one serves, it is reported."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import duckdb
import httpx

from tests.exchange_api.conftest import hub_at
from tests.warehouse.test_publish_crash import KEY, published  # noqa: F401 - the fixture, reused
from warehouse.publish import publish
from warehouse.published import SERVING, open_snapshot
from warehouse.work import WORK_DB

PURPOSE = "social_assistance"


def _two_versions(settings) -> None:
    """v000001 and v000002 published from the same work database; v000002 current and its serving files built."""
    with duckdb.connect(str(settings.warehouse_dir / WORK_DB), read_only=True) as conn:
        publish(conn, settings.snapshots_dir, ["run-2"])
    open_snapshot(settings.snapshots_dir / "v000002").close()


def _garble(path) -> None:
    """Overwrite bytes in the middle of ``path``: same size, other content."""
    with path.open("r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(os.urandom(64))


def _status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", "status", *args], capture_output=True, text=True,
                          timeout=300)


def test_hub_status_reports_a_garbled_current_library_and_the_last_good_version(published):  # noqa: F811
    _two_versions(published)
    _garble(published.snapshots_dir / "v000002" / "population.parquet")
    shown = _status()
    said = " ".join((shown.stdout + shown.stderr).split())
    assert shown.returncode == 1 and "Traceback" not in said, said[-3000:]
    assert "v000002 is damaged" in said and "population.parquet" in said and "v000001" in said

    as_json = _status("--json")
    assert as_json.returncode == 1, as_json.stderr[-3000:]
    report = json.loads(as_json.stdout)
    assert report["published"] is True and report["current"] == "v000002" and report["serving"] == "v000001"
    assert [p for p in report["damaged"] if p.startswith("population.parquet")]
    assert report["manifest"]["version"] == "v000001"


def test_a_fresh_api_rebuilds_a_truncated_serving_file_of_the_current_version(published, caplog):  # noqa: F811
    _two_versions(published)
    arrow = published.snapshots_dir / "v000002" / SERVING / "population.arrow"
    os.truncate(arrow, arrow.stat().st_size // 2)
    with caplog.at_level(logging.WARNING), hub_at(published.data_dir, snapshot=False) as hub:
        answer = hub.department().client.lookup("population", KEY, PURPOSE, "CASE-D1")
    assert answer.found and answer.snapshot_version == "v000002"  # the Parquet is intact: served again from it
    assert any("v000002" in r.getMessage() and "population.arrow" in r.getMessage() for r in caplog.records)


def test_a_fresh_api_falls_back_to_the_last_good_version_when_the_current_is_garbled(published, caplog):  # noqa: F811
    _two_versions(published)
    _garble(published.snapshots_dir / "v000002" / "population.parquet")
    with caplog.at_level(logging.WARNING), hub_at(published.data_dir, snapshot=False) as hub:
        answer = hub.department().client.lookup("population", KEY, PURPOSE, "CASE-D2")
        health = httpx.get(hub.url + "/healthz")
    assert answer.found and answer.snapshot_version == "v000001"  # not a 503: the intact previous version answers
    assert health.status_code == 200 and health.json()["snapshot_version"] == "v000001"
    refusals = [r for r in caplog.records if r.levelno >= logging.ERROR and "v000002" in r.getMessage()]
    assert refusals and "population.parquet" in refusals[0].getMessage() and not refusals[0].exc_info


def test_a_running_api_keeps_serving_when_the_new_version_is_garbled(published, caplog):  # noqa: F811
    with caplog.at_level(logging.WARNING), hub_at(published.data_dir, snapshot=False) as hub:
        client = hub.department().client
        assert client.lookup("population", KEY, PURPOSE, "CASE-D3").snapshot_version == "v000001"
        with duckdb.connect(str(published.warehouse_dir / WORK_DB), read_only=True) as conn:
            # Garbled between the write and the switch: the manifest's checksum no longer matches.
            import warehouse.publish as publishing

            publishing._reached = lambda step: (step == "prepared" and _garble(
                published.snapshots_dir / "v000002" / "population.parquet"))
            try:
                publish(conn, published.snapshots_dir, ["run-2"])
            finally:
                publishing._reached = lambda step: None
        answer = client.lookup("population", KEY, PURPOSE, "CASE-D4")
    assert answer.found and answer.snapshot_version == "v000001"
    assert any(r.levelno >= logging.ERROR and "v000002 is damaged" in r.getMessage() for r in caplog.records)

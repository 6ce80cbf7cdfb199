"""Sweep detection: one department enumerating ID numbers is throttled, alerted on and audited; normal traffic is not."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from exchange_api.client import HubRequestError, sign_request
from exchange_api.config import ApiSettings
from exchange_api.models import AuditEntry
from exchange_api.sweeps import DISTINCT_KEYS, NOT_FOUND_RUN, SweepDetector
from hub.commands import api as api_commands
from tests.exchange_api.conftest import OTHER_PERSON_ID, PERSON_ID, hub_at, json_request, lookup_body, person, resident_id
from tests.exchange_api.conftest import write_snapshot

PURPOSE = "social_assistance"
SEQUENTIAL = [resident_id(i % 1000, birth=f"1980010{1 + i // 1000}") for i in range(2000)]  # 2,000 valid numbers


def sweep(hub, dept, keys) -> tuple[int, list[httpx.Response]]:  # type: ignore[no-untyped-def]
    """Look the keys up one after another until the hub refuses; how many were answered, and the refusals."""
    with httpx.Client() as http:
        def signed_lookup(key: str) -> httpx.Response:
            request = json_request(hub.url, lookup_body(key, purpose=PURPOSE))
            sign_request(request, dept.kid, dept.private_key)
            return http.send(request)

        for answered, key in enumerate(keys):
            response = signed_lookup(key)
            if response.status_code != 200:
                return answered, [response] + [signed_lookup(k) for k in keys[answered + 1: answered + 4]]
    return len(keys), []


def metric(hub, name: str) -> float:  # type: ignore[no-untyped-def]
    text = httpx.get(hub.url + "/metrics").text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def api_status(hub) -> list[dict]:  # type: ignore[no-untyped-def]
    app = typer.Typer()
    api_commands.register(app)
    result = CliRunner().invoke(app, ["api-status", "--json"], env={"HUB_DATA_DIR": str(hub.settings.data_dir)})
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_sweep_of_sequential_id_numbers_is_throttled_alerted_and_audited(tmp_path):
    with hub_at(tmp_path / "data") as hub:  # the default thresholds
        sweeper = hub.department([("population", ["name"], PURPOSE)])
        bystander = hub.department([("population", ["name"], PURPOSE)])
        answered, refusals = sweep(hub, sweeper, SEQUENTIAL)

        assert answered < len(SEQUENTIAL) // 10  # stopped long before the 2,000th number
        assert [r.status_code for r in refusals] == [429] * 4
        assert {r.json()["error"]["code"] for r in refusals} == {"sweep_suspected"}
        assert all(int(r.headers["Retry-After"]) > 0 for r in refusals)
        assert all(key not in r.text for r in refusals for key in SEQUENTIAL)
        # The department is throttled, not the hub: another one is still answered.
        assert bystander.client.lookup("population", PERSON_ID, PURPOSE, "CASE-S1").found

        with hub.sessions() as session:
            detections = list(session.scalars(select(AuditEntry).where(AuditEntry.operation == "sweep_detected")))
            throttled = list(session.scalars(select(AuditEntry).where(
                AuditEntry.code == "sweep_suspected", AuditEntry.status == 429).order_by(AuditEntry.seq)))
        (detection,) = detections
        assert detection.department == sweeper.code and "not-found answers in a row" in detection.reason
        assert detection.key_hash is None
        assert [row.request_id for row in throttled] == [r.json()["error"]["request_id"] for r in refusals]
        assert all(row.department == sweeper.code and row.key_masked for row in throttled)

        assert metric(hub, 'hub_api_sweep_detections_total{signal="not_found_run"}') == 1
        assert metric(hub, "hub_api_sweep_departments_throttled") == 1
        assert metric(hub, "hub_api_sweep_throttled_requests_total") == 4
        (status,) = api_status(hub)
        assert status["department"] == sweeper.code and status["detections"] == 1
        assert status["throttled_requests"] == 4 and status["throttled_until"]
        assert "not-found answers in a row" in status["last_reason"]


def test_a_sweep_of_records_that_exist_is_caught_by_its_distinct_keys(tmp_path):
    data = tmp_path / "data"
    people = [person(resident_id(i)) for i in range(700)]
    write_snapshot(data / "snapshots", "v000001", people)
    with hub_at(data, snapshot=False) as hub:
        dept = hub.department([("population", ["name"], PURPOSE)])
        answered = 0
        with pytest.raises(HubRequestError) as refused:
            for start in range(0, len(people), 100):  # batches: the keys count one by one all the same
                keys = [p["id_number"] for p in people[start: start + 100]]
                assert all(r["found"] for r in dept.client.lookup_batch("population", keys, PURPOSE, "CASE-S2").results)
                answered += len(keys)
        assert (refused.value.status, refused.value.code) == (429, "sweep_suspected")
        assert answered == 600  # the batch that passed 500 distinct keys was the last one answered
        assert metric(hub, f'hub_api_sweep_detections_total{{signal="{DISTINCT_KEYS}"}}') == 1
        assert "distinct keys" in api_status(hub)[0]["last_reason"]


def test_normal_traffic_of_repeated_lookups_of_known_people_is_not_throttled(tmp_path):
    with hub_at(tmp_path / "data") as hub:
        dept = hub.department([("population", ["name"], PURPOSE)])
        known = [PERSON_ID, OTHER_PERSON_ID] * 100  # one by one, well past where the sweep was stopped
        answered, refusals = sweep(hub, dept, known)
        assert (answered, refusals) == (200, [])
        for _ in range(18):  # and as many lookups as the sweep had numbers, in batches
            assert all(r["found"] for r in dept.client.lookup_batch("population", known[:100], PURPOSE, "CASE-S3").results)
        assert metric(hub, 'hub_api_sweep_detections_total{signal="not_found_run"}') == 0
        assert metric(hub, "hub_api_sweep_departments_throttled") == 0
        assert api_status(hub) == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_follows_the_department_s_own_baseline():
    clock = Clock()
    detector = SweepDetector(ApiSettings(), clock)  # windows of 60 s, at least 500 keys, 10 × the baseline
    keys = iter(range(10**7))

    def window(count: int) -> list:
        found = [detector.observe("busy", "lookup", [str(next(keys))], [False])
                 for _ in range(count)]
        clock.now += 60
        return [d for d in found if d]

    # A department that always sees 400 new people a minute has a baseline near 400: 1,500 is no sweep for it.
    for _ in range(12):
        assert window(400) == []
    assert window(1500) == []
    # Fifty times its usual number is.
    (detection,) = window(20_000)
    assert detection.signal == DISTINCT_KEYS and "baseline" in detection.reason
    with pytest.raises(Exception) as throttled:
        detector.check("busy", "lookup")
    assert throttled.value.code == "sweep_suspected"
    detector.check("busy", "catalogue")  # metadata calls are not throttled
    clock.now += 900
    detector.check("busy", "lookup")  # the throttle ends


def test_not_found_answers_count_only_in_a_row():
    detector = SweepDetector(ApiSettings(), Clock())
    for i in range(1000):  # one found answer in every 50 resets the run
        assert detector.observe("d", "lookup", [f"k{i % 40}"], [i % 50 != 0]) is None
    found = [detector.observe("d", "batch", [f"x{j}" for j in range(100)], [True] * 100)]
    assert found[0] is not None and found[0].signal == NOT_FOUND_RUN

"""A newly published snapshot is served without a restart; a rotated hub key keeps old answers verifiable."""

from __future__ import annotations

import datetime as dt
import threading
import time

import httpx
import pytest

from exchange_api.client import HubClient, HubRequestError, generate_department_key, verify_answer
from exchange_api.registry import add_key, retire_key
from tests.exchange_api.conftest import PERSON_ID, person, switch_current, verify_with_cryptography, write_snapshot

PURPOSE = "social_assistance"


def test_next_answer_comes_from_the_newly_published_snapshot(fresh_hub):
    dept = fresh_hub.department()
    before = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-S1")
    assert (before.snapshot_version, before.value("life_status")) == ("v000001", "living")

    snapshots = fresh_hub.settings.snapshots_dir
    write_snapshot(snapshots, "v000002", [person(PERSON_ID, life_status="deceased")], make_current=False)
    unswitched = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-S2")
    assert unswitched.snapshot_version == "v000001"  # written is not published until CURRENT moves

    switch_current(snapshots, "v000002")
    after = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-S3")
    assert (after.snapshot_version, after.value("life_status")) == ("v000002", "deceased")
    assert httpx.get(fresh_hub.url + "/healthz").json()["snapshot_version"] == "v000002"
    assert fresh_hub.audit_row(after.request_id).snapshot_version == "v000002"


def test_rotation_publishes_the_new_key_and_keeps_the_old(fresh_hub):
    dept = fresh_hub.department()
    old = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K1")
    new_key = fresh_hub.app.state.services.keyring.rotate()
    assert new_key.kid != old.kid

    # The client has the old JWKS cached; it must notice the new kid and refetch.
    new = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K2")
    assert new.kid == new_key.kid

    jwks = httpx.get(fresh_hub.url + "/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]][0] == new_key.kid
    assert {old.kid, new_key.kid} <= {k["kid"] for k in jwks["keys"]}
    for answer in (old, new):
        verify_with_cryptography(answer.token, jwks)
        assert verify_answer(answer.token, jwks).request_id == answer.request_id


def test_snapshot_swaps_under_load_drop_no_request(fresh_hub):
    """Publish three snapshots while eight threads keep looking up: every request answered, versions never go back."""
    departments = [fresh_hub.department() for _ in range(4)]
    snapshots = fresh_hub.settings.snapshots_dir
    stop = threading.Event()
    seen: list[list[str]] = [[] for _ in range(8)]
    failures: list[str] = []

    def hammer(i: int) -> None:
        client = departments[i % 4].client
        while not stop.is_set():
            try:
                answer = client.lookup("population", PERSON_ID, PURPOSE, f"CASE-L{i}")
                assert answer.found and answer.value("life_status") == {
                    "v000001": "living", "v000002": "deceased", "v000003": "living", "v000004": "emigrated"}[
                    answer.snapshot_version]
                seen[i].append(answer.snapshot_version)
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for version, status in (("v000002", "deceased"), ("v000003", "living"), ("v000004", "emigrated")):
            time.sleep(0.4)
            write_snapshot(snapshots, version, [person(PERSON_ID, life_status=status)])
        time.sleep(0.4)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:3]
    assert sum(len(s) for s in seen) > 40
    for versions in seen:
        assert versions == sorted(versions)  # a thread never sees an older snapshot after a newer one
    assert {v for s in seen for v in s} >= {"v000001", "v000004"}
    assert fresh_hub.app.state.services.audit.verify().ok


def test_department_key_rollover_without_downtime(fresh_hub):
    """Add a new key, move traffic to it, retire the old one: no request fails; the old key is then refused."""
    dept = fresh_hub.department()
    kid, private_key, public_pem = generate_department_key()
    with fresh_hub.sessions.begin() as session:
        add_key(session, dept.code, public_pem, kid=kid)
    new_client = HubClient(fresh_hub.url, kid, private_key)
    try:
        assert new_client.lookup("population", PERSON_ID, PURPOSE, "CASE-K3").department == dept.code  # at once
        assert dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K4").found  # the old one still works
        with fresh_hub.sessions.begin() as session:
            retire_key(session, dept.kid)
        for i in range(5):
            assert new_client.lookup("population", PERSON_ID, PURPOSE, f"CASE-K5{i}").found
        time.sleep(fresh_hub.app.state.exchange.api.registry_cache_seconds + 0.1)  # every process has re-read it
        with pytest.raises(HubRequestError) as refused:
            dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K6")
        assert (refused.value.status, refused.value.code) == (401, "unknown_key")
    finally:
        new_client.close()


def test_a_retirement_dated_ahead_applies_exactly_then(fresh_hub):
    dept = fresh_hub.department()
    dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K7")  # cached now
    with fresh_hub.sessions.begin() as session:
        retire_key(session, dept.kid, at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    time.sleep(fresh_hub.app.state.exchange.api.registry_cache_seconds + 0.1)
    assert dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K8").found  # still before its retirement
    time.sleep(1.0)
    with pytest.raises(HubRequestError):
        dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K9")


def test_answers_signed_before_several_rotations_still_verify(fresh_hub):
    dept = fresh_hub.department()
    keyring = fresh_hub.app.state.services.keyring
    answers = []
    for _ in range(3):
        answers.append(dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-K10"))
        keyring.rotate()
    jwks = httpx.get(fresh_hub.url + "/.well-known/jwks.json").json()
    assert len({a.kid for a in answers}) == 3
    for answer in answers:
        assert verify_with_cryptography(answer.token, jwks)["request_id"] == answer.request_id

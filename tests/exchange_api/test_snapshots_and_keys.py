"""A newly published snapshot is served without a restart; a rotated hub key keeps old answers verifiable."""

from __future__ import annotations

import httpx

from exchange_api.client import verify_answer
from tests.exchange_api.conftest import PERSON_ID, person, switch_current, verify_with_cryptography, write_snapshot

PURPOSE = "social_assistance"


def test_next_answer_comes_from_the_newly_published_snapshot(fresh_hub):
    dept = fresh_hub.department()
    before = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-S1")
    assert (before.snapshot_version, before.value("life_status")) == ("v000001", "alive")

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

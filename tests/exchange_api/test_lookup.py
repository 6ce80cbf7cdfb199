"""Signed lookups against a real server: answers, verification, field scoping by sharing class and grant."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from exchange_api.client import HubRequestError, sign_request
from schemas import POPULATION, Sharing
from tests.exchange_api.conftest import (
    ABSENT_ID,
    PERSON_ID,
    json_request,
    lookup_body,
    verify_with_cryptography,
)

UNCONDITIONAL = {f.name for f in POPULATION.by_sharing(Sharing.UNCONDITIONAL) if not f.metadata}
NOT_SHAREABLE = {f.name for f in POPULATION.by_sharing(Sharing.NOT_SHAREABLE) if not f.metadata}
PURPOSE = "social_assistance"


def test_signed_lookup_is_answered_and_verified_by_the_client(hub):
    dept = hub.department([("population", ["name", "birth_date"], PURPOSE)])
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-1")
    assert answer.found is True
    assert answer.library == "population"
    assert answer.snapshot_version == "v000001"
    assert answer.department == dept.code
    assert answer.value("name") == "张三"
    assert answer.value("birth_date") == "1980-01-01"
    assert answer.record["name"]["source_department"] == "public_security"
    assert answer.record["name"]["updated_at"] == "2026-01-02T03:04:05+00:00"
    assert answer.kid == hub.app.state.services.keyring.active().kid


def test_answer_verifies_with_cryptography_alone(hub):
    dept = hub.department()
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-2")
    jwks = httpx.get(hub.url + "/.well-known/jwks.json").json()
    payload = verify_with_cryptography(answer.token, jwks)
    assert set(payload) >= {"request_id", "snapshot_version", "issued_at", "library", "found", "record"}
    assert payload["request_id"] == answer.request_id
    assert payload["record"]["gender"] == {"value": "1", "source_department": "public_security",
                                           "updated_at": "2026-01-02T03:04:05+00:00"}
    # A changed payload must not verify.
    header, body, signature = answer.token.split(".")
    forged = f"{header}.{body[:-2]}AA.{signature}"
    with pytest.raises(Exception):
        verify_with_cryptography(forged, jwks)


def test_without_a_grant_only_unconditional_fields_are_released(hub):
    dept = hub.department()
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-3")
    assert answer.found
    assert set(answer.record) == UNCONDITIONAL


def test_conditional_fields_need_a_live_grant_for_the_same_purpose(hub):
    dept = hub.department([("population", ["name", "household_address"], PURPOSE)])
    granted = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-4")
    assert set(granted.record) == UNCONDITIONAL | {"name", "household_address"}

    other_purpose = dept.client.lookup("population", PERSON_ID, "tax_audit", "CASE-4")
    assert set(other_purpose.record) == UNCONDITIONAL

    expired = hub.department([("population", ["name"], PURPOSE)],
                             expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    with hub.sessions.begin() as session:  # let the grant lapse without sleeping
        from exchange_api.models import Grant

        for grant in session.query(Grant).filter_by(department=expired.code):
            grant.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert set(expired.client.lookup("population", PERSON_ID, PURPOSE, "CASE-4").record) == UNCONDITIONAL


def test_not_shareable_fields_are_never_released(hub):
    dept = hub.department([("population", ["name"], PURPOSE)])
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-5")
    assert not NOT_SHAREABLE & set(answer.record)
    with pytest.raises(HubRequestError) as refused:
        dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-5", fields=["phone"])
    assert (refused.value.status, refused.value.code) == (403, "fields_not_granted")


def test_named_fields_within_the_grant_are_exactly_what_is_released(hub):
    dept = hub.department([("population", ["name", "birth_date"], PURPOSE)])
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-6", fields=["name", "gender"])
    assert set(answer.record) == {"name", "gender"}


def test_fields_beyond_the_grant_are_forbidden(hub):
    dept = hub.department([("population", ["name"], PURPOSE)])
    with pytest.raises(HubRequestError) as refused:
        dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-7", fields=["name", "birth_date"])
    error = refused.value
    assert (error.status, error.code) == (403, "fields_not_granted")
    assert "birth_date" in error.message
    assert PERSON_ID not in error.message and PERSON_ID[:-1] not in error.message


def _raw_lookup(hub, dept, body):
    request = json_request(hub.url, body)
    sign_request(request, dept.kid, dept.private_key)
    return httpx.Client().send(request)


def test_not_allowed_and_not_found_are_indistinguishable(hub):
    dept = hub.department()
    # Refused fields: the same 403, whether or not the record exists.
    present = _raw_lookup(hub, dept, lookup_body(PERSON_ID, fields=["name"]))
    absent = _raw_lookup(hub, dept, lookup_body(ABSENT_ID, fields=["name"]))
    assert present.status_code == absent.status_code == 403
    strip = lambda r: {**r.json()["error"], "request_id": None}  # noqa: E731
    assert strip(present) == strip(absent)

    # Nothing releasable vs no such record: the same answer, field for field.
    nothing_allowed = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-8", fields=[])
    not_found = dept.client.lookup("population", ABSENT_ID, PURPOSE, "CASE-8", fields=[])
    no_record = dept.client.lookup("population", ABSENT_ID, PURPOSE, "CASE-8")
    for answer in (nothing_allowed, not_found, no_record):
        assert (answer.found, answer.record, answer.library, answer.snapshot_version) == (
            False, {}, "population", "v000001")
    payloads = [verify_with_cryptography(a.token, dept.client.jwks()) for a in (nothing_allowed, no_record)]
    volatile = {"request_id", "issued_at", "nonce", "key", "audit"}  # the key is echoed; each answer has its own chain head
    assert [{k: v for k, v in p.items() if k not in volatile} for p in payloads][0] == \
        [{k: v for k, v in p.items() if k not in volatile} for p in payloads][1]
    # The hub itself knows the difference, and says so in its audit log.
    assert hub.audit_row(nothing_allowed.request_id).outcome == "not_allowed"
    assert hub.audit_row(no_record.request_id).outcome == "not_found"


def test_keys_are_normalised_before_lookup(hub):
    dept = hub.department()
    spaced = f" {PERSON_ID[:6]} {PERSON_ID[6:14]} {PERSON_ID[14:].lower()} "
    assert dept.client.lookup("population", spaced, PURPOSE, "CASE-9").found


def test_healthz_and_jwks(hub):
    health = httpx.get(hub.url + "/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "snapshot_version": "v000001"}
    jwks = httpx.get(hub.url + "/.well-known/jwks.json")
    assert jwks.status_code == 200
    (key, *_) = jwks.json()["keys"]
    assert {"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA"}.items() <= key.items()
    assert "d" not in key  # never the private half

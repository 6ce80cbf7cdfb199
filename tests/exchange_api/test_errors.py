"""One JSON error shape for every failure, never echoing an ID number."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from exchange_api.app import create_app
from exchange_api.client import sign_request
from exchange_api.errors import describe_validation_errors
from hub.settings import Settings
from tests.exchange_api.conftest import PERSON_ID, json_request, lookup_body, running

BAD_CHECK_DIGIT = PERSON_ID[:-1] + ("0" if PERSON_ID[-1] != "0" else "1")


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    for secret in (PERSON_ID, BAD_CHECK_DIGIT, PERSON_ID[:17]):
        assert secret not in response.text
    return body["error"]


def signed_send(hub, dept, body: dict | bytes) -> httpx.Response:
    request = json_request(hub.url, body)
    sign_request(request, dept.kid, dept.private_key)
    with httpx.Client() as client:
        return client.send(request)


def test_every_error_has_the_one_shape(hub):
    dept = hub.department()
    assert_error_shape(httpx.post(hub.url + "/v1/lookup", json=lookup_body()), 401, "signature_missing")
    assert_error_shape(signed_send(hub, dept, lookup_body(fields=["name"])), 403, "fields_not_granted")
    assert_error_shape(httpx.get(hub.url + "/nowhere"), 404, "not_found")
    assert_error_shape(httpx.get(hub.url + "/v1/lookup"), 405, "method_not_allowed")
    big = json.dumps(lookup_body(case_number="x" * 70_000)).encode()
    assert_error_shape(signed_send(hub, dept, big), 413, "payload_too_large")
    assert_error_shape(signed_send(hub, dept, b"{not json"), 422, "invalid_request")
    assert_error_shape(signed_send(hub, dept, lookup_body(library="cadastre")), 422, "invalid_request")
    assert_error_shape(signed_send(hub, dept, lookup_body(fields=["no_such_field"])), 422, "invalid_request")


def test_invalid_ids_are_described_not_echoed(hub):
    dept = hub.department()
    error = assert_error_shape(signed_send(hub, dept, lookup_body(BAD_CHECK_DIGIT)), 422, "invalid_request")
    assert "check" in error["message"]
    # A made-up key holding an ID number is not repeated in the message either.
    error = assert_error_shape(signed_send(hub, dept, {**lookup_body(), PERSON_ID: PERSON_ID}), 422, "invalid_request")
    assert "<field>" in error["message"]


def test_validation_messages_drop_inputs():
    errors = [{"loc": ("body", PERSON_ID), "msg": "Extra inputs are not permitted", "input": PERSON_ID},
              {"loc": ("key",), "msg": "String should have at most 64 characters", "input": PERSON_ID * 4}]
    message = describe_validation_errors(errors, known_names={"key"})
    assert PERSON_ID not in message
    assert message == "body.<field>: Extra inputs are not permitted; key: String should have at most 64 characters"


def test_audit_failure_fails_the_lookup_with_503(hub):
    """A real write failure of the metadata database (a trigger refusing inserts): no answer leaves."""
    dept = hub.department()
    db = hub.settings.data_dir / "metadata.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TRIGGER audit_down BEFORE INSERT ON exchange_audit_log "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    request = json_request(hub.url, lookup_body())
    sign_request(request, dept.kid, dept.private_key)
    try:
        with httpx.Client() as client:
            response = client.send(request)
    finally:
        with sqlite3.connect(db) as con:
            con.execute("DROP TRIGGER audit_down")
    error = assert_error_shape(response, 503, "audit_unavailable")
    assert "disk" not in error["message"] and int(response.headers["Retry-After"]) > 0
    assert "eyJ" not in response.text  # no JWS answer leaked out
    assert hub.audit_row(error["request_id"]) is None
    # The nonce was rolled back with the audit rows: the very same request is not a replay, and now succeeds.
    with httpx.Client() as client:
        assert client.send(request).status_code == 200


def test_no_snapshot_is_503(tmp_path):
    with running(create_app(Settings(data_dir=tmp_path / "empty"))) as url:
        assert_error_shape(httpx.get(url + "/healthz"), 503, "snapshot_unavailable")


@pytest.mark.parametrize("path", ["/healthz", "/.well-known/jwks.json"])
def test_successes_carry_a_request_id(hub, path):
    assert len(httpx.get(hub.url + path).headers["X-Request-ID"]) == 32

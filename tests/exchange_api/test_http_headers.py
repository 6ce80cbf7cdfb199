"""HTTP around the answers: 503 when the audit can't be written, no caching of personal data, Allow on 405, check order."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from exchange_api.client import COVERED_WITHOUT_BODY, sign_request
from tests.exchange_api.conftest import PERSON_ID, hub_at, lookup_body
from tests.exchange_api.test_errors import assert_error_shape

PURPOSE = "social_assistance"


def signed(hub, dept, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    content = json.dumps(body).encode() if body is not None else b""
    request = httpx.Request(method, hub.url + path, content=content,
                            headers={"Content-Type": "application/json"} if body is not None else {})
    sign_request(request, dept.kid, dept.private_key, **({} if body is not None else {"covered": COVERED_WITHOUT_BODY}))
    with httpx.Client() as client:
        return client.send(request)


# ----- the audit can't be written: 503 audit_unavailable, with Retry-After ------------------------------------

def fill_the_audit_database(hub) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL): the file may not grow by a single page any more.

    Set on the audit writer's live connection, so that it is the writer's next append that meets the full
    disk, exactly as it would on a full filesystem; a connection opened after a failure has room again.
    """
    raw = hub.app.state.exchange.audit._connection()  # noqa: SLF001 - the connection the writer appends with
    cursor = raw.cursor()
    try:
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
    finally:
        cursor.close()


def test_a_full_disk_withholds_the_answer_with_503_and_retry_after(tmp_path):
    with hub_at(tmp_path / "full") as hub:
        dept = hub.department()
        assert signed(hub, dept, "POST", "/v1/lookup", lookup_body()).status_code == 200  # the writer is connected
        before = len(hub.audit_rows())
        fill_the_audit_database(hub)
        # The pages still have room for a few rows; the first append that needs a new page fails.
        for attempt in range(500):
            response = signed(hub, dept, "POST", "/v1/lookup", lookup_body(case_number=f"FULL-{attempt}"))
            if response.status_code != 200:
                break
        error = assert_error_shape(response, 503, "audit_unavailable")
        assert "full" not in error["message"]  # the cause goes to the server log, not to the caller
        assert int(response.headers["Retry-After"]) > 0
        assert response.headers["Cache-Control"] == "no-store"
        assert "eyJ" not in response.text  # no JWS answer leaked out
        assert hub.audit_row(error["request_id"]) is None
        assert len(hub.audit_rows()) == before + attempt  # every answer that left has its row, the withheld none
        # Room again (a new connection of the writer): the hub answers again, and the chain is whole.
        assert signed(hub, dept, "POST", "/v1/lookup", lookup_body(case_number="AFTER")).status_code == 200
        assert hub.app.state.exchange.audit.verify().ok


# ----- no caching of answers -----------------------------------------------------------------------------

def test_answers_with_personal_data_are_not_stored_by_caches(hub):
    dept = hub.department()
    batch = {"library": "population", "keys": [PERSON_ID], "purpose": PURPOSE, "case_number": "H-2"}
    existence = {"library": "population", "key": PERSON_ID, "purpose": PURPOSE, "case_number": "H-3"}
    for response in (signed(hub, dept, "POST", "/v1/lookup", lookup_body()),
                     signed(hub, dept, "POST", "/v1/lookup/batch", batch),
                     signed(hub, dept, "POST", "/v1/verify/existence", existence),
                     signed(hub, dept, "GET", "/v1/usage"),
                     signed(hub, dept, "GET", "/v1/catalogue")):
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store", response.url


def test_refusals_are_not_stored_by_caches_either(hub):
    dept = hub.department()
    response = signed(hub, dept, "POST", "/v1/lookup", lookup_body(fields=["birth_date"]))
    assert_error_shape(response, 403, "fields_not_granted")
    assert response.headers["Cache-Control"] == "no-store"


def test_the_public_key_set_stays_cacheable(hub):
    assert httpx.get(hub.url + "/.well-known/jwks.json").headers["Cache-Control"].startswith("public")


# ----- 405 says what is allowed ------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/v1/lookup", {"POST"}),
    ("PUT", "/v1/lookup/batch", {"POST"}),
    ("DELETE", "/v1/citizen/access-log", {"POST"}),
    ("POST", "/v1/catalogue", {"GET", "HEAD"}),
    ("POST", "/v1/usage", {"GET", "HEAD"}),
    ("POST", "/healthz", {"GET"}),
    ("POST", "/.well-known/jwks.json", {"GET"}),
])
def test_405_carries_allow(hub, method, path, allowed):
    response = httpx.request(method, hub.url + path)
    assert_error_shape(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


# ----- the access log: the body is checked before the permission (PROTOCOL.md §5) ------------------------------

@pytest.mark.parametrize("body", [
    {"purpose": "citizen_request", "case_number": "P-1"},  # no id_number
    {"id_number": PERSON_ID[:-1] + "0" if PERSON_ID[-1] != "0" else PERSON_ID[:-1] + "1",
     "purpose": "citizen_request", "case_number": "P-2"},  # a failing check digit
    {"id_number": PERSON_ID, "purpose": "citizen_request", "case_number": "P-3", "since": "not a date"},
])
def test_the_access_log_refuses_a_bad_body_before_the_caller(hub, body):
    dept = hub.department()  # not the citizen portal
    assert_error_shape(signed(hub, dept, "POST", "/v1/citizen/access-log", body), 422, "invalid_request")


def test_the_access_log_refuses_a_good_body_from_another_department(hub):
    dept = hub.department()
    body = {"id_number": PERSON_ID, "purpose": "citizen_request", "case_number": "P-4"}
    assert_error_shape(signed(hub, dept, "POST", "/v1/citizen/access-log", body), 403, "not_citizen_portal")

"""Dates and times at the edge of what the hub can represent: a 422 naming the field, never a 500."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from exchange_api.client import COVERED_WITHOUT_BODY, generate_department_key, sign_request
from exchange_api.registry import add_key, register_department
from tests.exchange_api.conftest import PERSON_ID, hub_at, lookup_body
from tests.exchange_api.test_as_of import history_hub  # noqa: F401 - a fixture: a hub serving real history
from tests.exchange_api.test_errors import assert_error_shape

EDGE_DATES = ("9999-12-31", "0001-01-01")
EDGE_TIMES = ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00",
              "9999-12-31T23:59:59.999999")
CITIZEN_PORTAL = "citizen_portal"


def signed_post(hub, dept, path: str, body: dict[str, Any]) -> httpx.Response:
    request = httpx.Request("POST", hub.url + path, content=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json"})
    sign_request(request, dept.kid, dept.private_key)
    with httpx.Client() as client:
        return client.send(request)


def signed_get(hub, dept, path: str) -> httpx.Response:
    request = httpx.Request("GET", hub.url + path)
    sign_request(request, dept.kid, dept.private_key, covered=COVERED_WITHOUT_BODY)
    with httpx.Client() as client:
        return client.send(request)


def assert_out_of_range(response: httpx.Response, field: str) -> None:
    error = assert_error_shape(response, 422, "invalid_request")
    assert error["message"].startswith(f"{field}: "), error["message"]
    assert "range" in error["message"]


@pytest.fixture(params=["hub", "history_hub"])
def any_hub(request):
    """The shared hub (no history kept) and one serving real history: the date is checked before either matters."""
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("as_of", EDGE_DATES + EDGE_TIMES)
def test_lookup_as_of_at_the_edge_is_422(any_hub, as_of):
    dept = any_hub.department()
    assert_out_of_range(signed_post(any_hub, dept, "/v1/lookup", lookup_body(as_of=as_of)), "as_of")


@pytest.mark.parametrize("as_of", EDGE_DATES + EDGE_TIMES)
def test_batch_as_of_at_the_edge_is_422(any_hub, as_of):
    dept = any_hub.department()
    body = {"library": "population", "keys": [PERSON_ID], "purpose": "social_assistance", "case_number": "C-1",
            "as_of": as_of}
    assert_out_of_range(signed_post(any_hub, dept, "/v1/lookup/batch", body), "as_of")


@pytest.mark.parametrize("as_of, found", [("9999-12-30", True), ("9999-12-30T23:59:59+00:00", True),
                                          ("0001-01-02", False), ("0001-01-02T00:00:00Z", False)])
def test_the_first_and_last_days_of_the_range_are_answered(history_hub, as_of, found):
    dept = history_hub.department()
    assert dept.client.lookup("population", PERSON_ID, "social_assistance", "C-2", as_of=as_of).found is found


@pytest.mark.parametrize("since", EDGE_DATES)
def test_usage_since_at_the_edge_is_422(hub, since):
    dept = hub.department()
    assert_out_of_range(signed_get(hub, dept, f"/v1/usage?since={since}"), "since")


@pytest.mark.parametrize("since", ["0001-01-02", "9999-12-30"])
def test_usage_since_inside_the_range_is_answered(hub, since):
    dept = hub.department()
    assert signed_get(hub, dept, f"/v1/usage?since={since}").status_code == 200


@pytest.fixture(scope="module")
def portal_hub(tmp_path_factory):
    """A hub of this module's own, with the citizen portal registered (its code is what grants access logs)."""
    with hub_at(tmp_path_factory.mktemp("edge-dates") / "data") as own:
        kid, private_key, public_pem = generate_department_key()
        with own.sessions.begin() as session:
            register_department(session, CITIZEN_PORTAL, "政务服务门户")
            add_key(session, CITIZEN_PORTAL, public_pem, kid=kid)
        yield own, SimpleNamespace(code=CITIZEN_PORTAL, kid=kid, private_key=private_key)


@pytest.mark.parametrize("since", EDGE_DATES)
def test_access_log_since_at_the_edge_is_422(portal_hub, since):
    own, portal = portal_hub
    body = {"id_number": PERSON_ID, "purpose": "citizen_request", "case_number": "P-1", "since": since}
    assert_out_of_range(signed_post(own, portal, "/v1/citizen/access-log", body), "since")


def test_access_log_since_inside_the_range_is_answered(portal_hub):
    own, portal = portal_hub
    body = {"id_number": PERSON_ID, "purpose": "citizen_request", "case_number": "P-2", "since": "1900-01-01"}
    assert signed_post(own, portal, "/v1/citizen/access-log", body).status_code == 200


@pytest.mark.parametrize("on", ["0001-01-01"])
@pytest.mark.parametrize("path, body", [
    ("/v1/verify/existence", {"library": "population", "key": PERSON_ID}),
    ("/v1/verify/licence", {"licence_number": "SP1101050001", "holder_id": PERSON_ID}),
])
def test_verification_on_at_the_edge_is_422(hub, path, body, on):
    dept = hub.department()
    response = signed_post(hub, dept, path, {**body, "purpose": "social_assistance", "case_number": "C-1", "on": on})
    assert_out_of_range(response, "on")


def test_an_ordinary_as_of_is_still_answered_or_refused_for_want_of_history(hub):
    dept = hub.department()
    response = signed_post(hub, dept, "/v1/lookup", lookup_body(as_of="2020-06-30T12:00:00+08:00"))
    # The shared hub's snapshot keeps no history: the as_of is understood, then refused for that reason.
    assert_error_shape(response, 422, "as_of_unavailable")

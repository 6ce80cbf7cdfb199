"""A signed fuzzer: validly signed requests with fuzzed bodies and queries to every signed endpoint.

Unsigned fuzzing stops at the signature check; these requests pass it, so the bodies reach validation,
the permission checks, the snapshot and the audit. Whatever they hold, the hub answers 200 or refuses
with the one error body: never a 5xx. Bounded: a fixed number of examples per endpoint, derandomized,
so a run takes the same (short) time and finds the same things.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_api.client import COVERED_WITHOUT_BODY, generate_department_key, sign_request
from exchange_api.registry import add_key, register_department
from tests.exchange_api.conftest import ABSENT_ID, OTHER_PERSON_ID, PERSON_ID, hub_at

PORTAL = "citizen_portal"
EXAMPLES = 100  # per endpoint: 800 signed requests in all, under a minute on two cores
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ----- what the bodies are made of ------------------------------------------------------------------------

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
dates = st.dates().map(dt.date.isoformat)
times = st.one_of(st.datetimes(timezones=offsets), st.datetimes()).map(dt.datetime.isoformat)
edge_dates = st.sampled_from(["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
                              "0000-00-00", "2024-02-30", "1970-01-01T00:00:00Z", "", "today"])
numbers = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=-(10 ** 30), max_value=10 ** 30))
text = st.text(max_size=80)
ids = st.one_of(st.sampled_from([PERSON_ID, OTHER_PERSON_ID, ABSENT_ID, PERSON_ID.lower(), f" {PERSON_ID} ",
                                 PERSON_ID[:17], PERSON_ID[:15], "91110000600037341L", "SP1101050001"]),
                st.from_regex(r"\A[0-9]{17}[0-9Xx]\Z"), st.from_regex(r"\A[0-9A-Z]{18}\Z"), text)
purposes = st.one_of(st.sampled_from(["social_assistance", "citizen_request", "licensing", "tax_audit", "no_such"]),
                     text)
scalars = st.one_of(st.none(), st.booleans(), numbers, text, dates, times, edge_dates, ids)
anything = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(text, inner, max_size=4)), max_leaves=12)


def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value of the field, sometimes anything at all."""
    return st.one_of(good, good, good, anything)


COMMON = {"purpose": field(purposes), "case_number": field(text)}
# Edges of the calendar are where conversions overflow: asked for as often as any other date.
DAY = field(st.one_of(edge_dates, dates))
INSTANT = field(st.one_of(edge_dates, dates, times))
FIELD_NAMES = field(st.lists(st.sampled_from(["name", "gender", "birth_date", "phone", "holder_id", "status",
                                              "nonsense"]), max_size=5))
LIBRARY = field(st.sampled_from(["population", "legal_person", "licence", "cadastre"]))

# Each endpoint's fields, and a valid body to start from: most examples change only one or two fields of it,
# so that they get past validation to the code behind it.
VALID: dict[str, dict[str, Any]] = {
    "/v1/lookup": {"library": "population", "key": PERSON_ID, "purpose": "social_assistance", "case_number": "F-1"},
    "/v1/lookup/batch": {"library": "population", "keys": [PERSON_ID, ABSENT_ID], "purpose": "social_assistance",
                         "case_number": "F-2"},
    "/v1/verify/licence": {"licence_number": "SP1101050001", "holder_id": PERSON_ID, "purpose": "licensing",
                           "case_number": "F-3"},
    "/v1/verify/existence": {"library": "population", "key": PERSON_ID, "purpose": "social_assistance",
                             "case_number": "F-4"},
    "/v1/licences/by-holder": {"holder_id": PERSON_ID, "purpose": "licensing", "case_number": "F-5"},
    "/v1/citizen/access-log": {"id_number": PERSON_ID, "purpose": "citizen_request", "case_number": "F-6"},
}
ENDPOINTS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "/v1/lookup": {"library": LIBRARY, "key": field(ids), "fields": FIELD_NAMES, "as_of": INSTANT, **COMMON},
    "/v1/lookup/batch": {"library": LIBRARY, "keys": field(st.lists(ids, max_size=120)), "fields": FIELD_NAMES,
                         "as_of": INSTANT, **COMMON},
    "/v1/verify/licence": {"licence_number": field(ids), "holder_id": field(ids), "on": DAY, **COMMON},
    "/v1/verify/existence": {"library": LIBRARY, "key": field(ids), "on": DAY, **COMMON},
    "/v1/licences/by-holder": {"holder_id": field(ids), "on": DAY, "licence_types": field(
        st.lists(st.sampled_from(["food_business", "driving", "no_such_type"]), max_size=3)), **COMMON},
    "/v1/citizen/access-log": {"id_number": field(ids), "since": DAY, **COMMON},
}


@st.composite
def bodies(draw: st.DrawFn, path: str) -> bytes:
    """The valid body with a field or two changed, or one made of the fields anew, or now and then not JSON at all."""
    fields = ENDPOINTS[path]
    kind = draw(st.sampled_from(["changed"] * 6 + ["fields"] * 2 + ["json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(anything)).encode()
    if kind == "changed":
        body = dict(VALID[path])
        for name in draw(st.sets(st.sampled_from(sorted(fields)), min_size=1, max_size=2)):
            body[name] = draw(fields[name])
    else:
        names = draw(st.sets(st.sampled_from(sorted(fields)), min_size=max(0, len(fields) - 2)))
        body = {name: draw(fields[name]) for name in names}
    if draw(st.integers(0, 9)) == 0:
        body[draw(text)] = draw(anything)
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


# ----- the hub being fuzzed ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """A hub of its own (the fuzzer writes a thousand audit rows) with the citizen portal and a department with grants."""
    api = {"rate_per_second": 100_000.0, "burst": 100_000, "audit_synchronous": "OFF"}
    with hub_at(tmp_path_factory.mktemp("fuzz") / "data", api=api) as hub:
        kid, private_key, public_pem = generate_department_key()
        with hub.sessions.begin() as session:
            register_department(session, PORTAL, "政务服务门户")
            add_key(session, PORTAL, public_pem, kid=kid)
        dept = hub.department([("population", ["name", "birth_date"], "social_assistance"),
                               ("licence", ["holder_id"], "licensing")])
        with httpx.Client(base_url=hub.url, timeout=30) as client:  # one connection for all the examples
            yield client, {PORTAL: (kid, private_key), "dept": (dept.kid, dept.private_key)}


def send(client: httpx.Client, signer: tuple[str, Any], method: str, path: str, content: bytes = b"",
         params: list[tuple[str, str]] | None = None) -> httpx.Response:
    request = client.build_request(method, path, content=content, params=params,
                                   headers={"Content-Type": "application/json"} if method == "POST" else {})
    sign_request(request, *signer, **({} if method == "POST" else {"covered": COVERED_WITHOUT_BODY}))
    return client.send(request)


def assert_answered_or_refused(response: httpx.Response) -> None:
    """200 with an answer, or an error in the one shape; never a 5xx."""
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.headers["content-type"].split(";")[0] in ("application/jose", "application/json")
        return
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"code", "message", "request_id"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_fuzzed_signed_bodies_are_answered_or_refused_never_a_5xx(fuzzed, path):
    client, signers = fuzzed
    signer = signers[PORTAL if path == "/v1/citizen/access-log" else "dept"]

    @FUZZ
    @given(body=bodies(path))
    def check(body: bytes) -> None:
        assert_answered_or_refused(send(client, signer, "POST", path, body))

    check()


@pytest.mark.parametrize("path", ["/v1/usage", "/v1/catalogue"])
def test_fuzzed_signed_queries_are_answered_or_refused_never_a_5xx(fuzzed, path):
    client, signers = fuzzed
    query = st.lists(st.tuples(st.one_of(st.just("since"), text), st.one_of(dates, edge_dates, text)), max_size=3)

    @FUZZ
    @given(params=query)
    def check(params: list[tuple[str, str]]) -> None:
        assert_answered_or_refused(send(client, signers["dept"], "GET", path, params=params))

    check()

"""Batches, lookups "as of" a date, verification without disclosure, and conflicts marked per field."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import httpx
import pytest

from exchange_api.client import HubRequestError, sign_request
from schemas.ids import uscc_check_char
from tests.exchange_api.conftest import (
    ABSENT_ID, OTHER_PERSON_ID, PERSON_ID, hub_at, person, resident_id, verify_with_cryptography,
)
from tests.exchange_api.snapshots import conflict, version, write_snapshot

UTC = dt.UTC
PURPOSE = "social_assistance"
COMPANY = (lambda b: b + uscc_check_char(b))("91110105MA01AB2C3")
CLOSED_COMPANY = (lambda b: b + uscc_check_char(b))("91110105MA01AB2C4")
DECEASED_ID = resident_id(21, birth="19400404")
TODAY = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()


def company(code: str, **overrides):
    row = {"credit_code": code, "name": "示例科技有限公司", "entity_type": "91", "legal_rep_name": "王五",
           "legal_rep_id_number": PERSON_ID, "registered_capital": decimal.Decimal("100.0000"),
           "established_on": dt.date(2015, 3, 3), "registering_authority": "market_regulation", "region": "110105",
           "address": "北京市朝阳区示例路1号", "business_scope": "软件开发", "tax_status": "normal", "status": "active",
           "status_date": dt.date(2015, 3, 3), "source_department": "market_regulation", "source_record_id": "E-1",
           "source_updated_at": dt.datetime(2026, 2, 1, tzinfo=UTC), "ingested_at": dt.datetime(2026, 2, 2, tzinfo=UTC),
           "run_id": "r"}
    row.update(overrides)
    return row


def licence(number: str, holder: str, **overrides):
    row = {"licence_number": number, "licence_type": "food_business", "holder_type": "legal_person",
           "holder_id": holder, "holder_name": "示例科技有限公司", "issuer": "market_regulation",
           "issued_on": dt.date(2020, 1, 1), "valid_from": dt.date(2020, 1, 1), "valid_to": dt.date(2099, 1, 1),
           "status": "issued", "status_date": dt.date(2020, 1, 1), "status_history": None, "file_digest": None,
           "source_department": "market_regulation", "source_record_id": "L-1",
           "source_updated_at": dt.datetime(2026, 3, 1, tzinfo=UTC), "ingested_at": dt.datetime(2026, 3, 2, tzinfo=UTC),
           "run_id": "r"}
    row.update(overrides)
    return row


HISTORY = [version(person(PERSON_ID, marital_status="10"), dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2020, 5, 1, tzinfo=UTC)),
           version(person(PERSON_ID, marital_status="20"), dt.datetime(2020, 5, 1, tzinfo=UTC), None)]
SUSPENDED_HISTORY = json.dumps([{"status": "issued", "date": "2020-01-01"}, {"status": "suspended", "date": "2025-06-01"}])


@pytest.fixture(scope="module")
def rich_hub(tmp_path_factory):
    """A hub whose snapshot holds every library, a population history and a conflict register."""
    data = tmp_path_factory.mktemp("rich") / "data"
    snapshots = data / "snapshots"
    write_snapshot(
        snapshots, "v000001",
        {"population": [person(PERSON_ID, marital_status="20"), person(OTHER_PERSON_ID, name="李四"),
                        person(DECEASED_ID, life_status="deceased")],
         "legal_person": [company(COMPANY), company(CLOSED_COMPANY, status="deregistered")],
         "licence": [licence("SP1101050001", COMPANY),
                     licence("SP1101050002", COMPANY, status="suspended", status_date=dt.date(2025, 6, 1),
                             status_history=SUSPENDED_HISTORY),
                     licence("SP1101050003", COMPANY, valid_to=dt.date(2021, 1, 1), status="expired",
                             status_date=dt.date(2021, 1, 1)),
                     licence("YS1101050004", PERSON_ID, holder_type="person", licence_type="medical_practitioner")]},
        history={"population": HISTORY},
        conflicts=[conflict("population", PERSON_ID, "marital_status", "20", "authority: civil_affairs",
                            [("20", "civil_affairs", "2026-01-01T00:00:00Z"), ("10", "public_security", "2019-01-01T00:00:00Z")])],
        provenance=[{"library": "population", "key": PERSON_ID, "field": "marital_status",
                     "source_department": "civil_affairs", "updated_at": dt.datetime(2026, 1, 1, tzinfo=UTC)}],
    )
    with hub_at(data, snapshot=False) as hub:
        yield hub


def test_a_batch_answers_every_key_in_order_under_one_signature(rich_hub):
    dept = rich_hub.department([("population", ["name"], PURPOSE)])
    keys = [OTHER_PERSON_ID, ABSENT_ID, PERSON_ID, PERSON_ID]
    answer = dept.client.lookup_batch("population", keys, PURPOSE, "CASE-B1", fields=["name", "gender"])
    assert [r["key"] for r in answer.results] == keys
    assert [r["found"] for r in answer.results] == [True, False, True, True]
    assert answer.results[0]["record"]["name"]["value"] == "李四"
    assert answer.results[1]["record"] == {}
    payload = verify_with_cryptography(answer.token, dept.client.jwks())
    assert payload["results"] == answer.results and payload["library"] == "population"
    rows = [r for r in rich_hub.audit_rows() if r.request_id == answer.request_id]
    assert [r.outcome for r in rows] == ["answered", "not_found", "answered"]  # PERSON_ID, asked twice, counts once
    assert {r.operation for r in rows} == {"batch"} and rows[1].fields_released == ""


def test_batch_bounds_and_invalid_keys(rich_hub):
    dept = rich_hub.department()
    too_many = [PERSON_ID] * (rich_hub.app.state.exchange.api.max_batch + 1)
    with pytest.raises(HubRequestError) as refused:
        dept.client.lookup_batch("population", too_many, PURPOSE, "CASE-B2")
    assert (refused.value.status, refused.value.code) == (413, "batch_too_large")
    bad = PERSON_ID[:-1] + ("0" if PERSON_ID[-1] != "0" else "1")
    with pytest.raises(HubRequestError) as invalid:
        dept.client.lookup_batch("population", [PERSON_ID, bad], PURPOSE, "CASE-B3")
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_request")
    assert "keys[1]" in invalid.value.message and bad not in invalid.value.message
    with pytest.raises(HubRequestError) as forbidden:
        dept.client.lookup_batch("population", [PERSON_ID], PURPOSE, "CASE-B4", fields=["name"])
    assert forbidden.value.status == 403


def test_lookups_by_credit_code_and_licence_number(rich_hub):
    dept = rich_hub.department()
    firm = dept.client.lookup("legal_person", COMPANY.lower(), PURPOSE, "CASE-L1")
    assert firm.found and firm.value("name") == "示例科技有限公司" and firm.value("registered_capital") == "100.0000"
    assert "legal_rep_id_number" not in firm.record and "tax_status" not in firm.record  # conditional, not granted
    lic = dept.client.lookup("licence", "SP1101050001", PURPOSE, "CASE-L2")
    assert lic.found and lic.value("status") == "issued" and "holder_id" not in lic.record


def test_as_of_a_date_reads_the_history(rich_hub):
    dept = rich_hub.department([("population", ["marital_status"], PURPOSE)])
    then = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-H1", fields=["marital_status"], as_of="2010-06-01")
    now = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-H2", fields=["marital_status"])
    assert (then.value("marital_status"), now.value("marital_status")) == ("10", "20")
    assert then.payload["as_of"].startswith("2010-06-01")
    before = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-H3", as_of="1990-01-01")
    assert not before.found
    batch = dept.client.lookup_batch("population", [PERSON_ID], PURPOSE, "CASE-H4", as_of="2010-06-01T00:00:00+00:00")
    assert batch.results[0]["record"]["marital_status"]["value"] == "10"


def test_as_of_without_history_is_refused_alike_whatever_may_be_released(rich_hub):
    dept = rich_hub.department()
    for fields in (None, []):
        with pytest.raises(HubRequestError) as refused:
            dept.client.lookup("legal_person", COMPANY, PURPOSE, "CASE-H5", fields=fields, as_of="2020-01-01")
        assert (refused.value.status, refused.value.code) == (422, "as_of_unavailable")


def test_conflicts_are_marked_on_the_field_with_the_rule_and_per_field_provenance(rich_hub):
    dept = rich_hub.department([("population", ["marital_status", "name"], PURPOSE)])
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-C1")
    marital = answer.record["marital_status"]
    assert marital["value"] == "20"
    assert marital["source_department"] == "civil_affairs" and marital["updated_at"] == "2026-01-01T00:00:00+00:00"
    assert marital["conflict"]["rule"] == "authority: civil_affairs"
    assert marital["conflict"]["golden_value"] == "20"
    assert {v["source_department"] for v in marital["conflict"]["values"]} == {"civil_affairs", "public_security"}
    assert "conflict" not in answer.record["name"] and answer.record["name"]["source_department"] == "public_security"
    other = dept.client.lookup("population", OTHER_PERSON_ID, PURPOSE, "CASE-C2")
    assert all("conflict" not in f for f in other.record.values())


@pytest.mark.parametrize("number, holder, on, expected", [
    ("SP1101050001", COMPANY, None, True),
    ("SP1101050001", COMPANY.lower(), None, True),  # the holder is normalised like any credit code
    ("SP1101050001", CLOSED_COMPANY, None, False),  # someone else's licence
    ("SP1101050002", COMPANY, None, False),  # suspended today
    ("SP1101050002", COMPANY, "2024-01-01", True),  # ... but it was in force then (status history)
    ("SP1101050003", COMPANY, None, False),  # expired
    ("SP1101050003", COMPANY, "2020-06-01", True),  # within its validity, status known from its own date
    ("SP1101050001", COMPANY, "2019-06-01", False),  # before it was valid
    ("NO-SUCH-LICENCE", COMPANY, None, False),
    ("YS1101050004", PERSON_ID, None, True),
])
def test_licence_verification_answers_yes_or_no(rich_hub, number, holder, on, expected):
    dept = rich_hub.department()
    answer = dept.client.verify_licence(number, holder, PURPOSE, "CASE-V1", on=on)
    assert answer.answer is expected
    assert answer.payload["question"] == "licence_valid"
    assert answer.payload["on"] == (on or TODAY.isoformat())
    assert "record" not in answer.payload  # nothing but the answer is disclosed
    rows = [r for r in rich_hub.audit_rows() if r.request_id == answer.request_id]
    assert {r.outcome for r in rows} == {"verified"} and len(rows) == 2  # the licence and its holder


@pytest.mark.parametrize("library, key, expected", [
    ("population", PERSON_ID, True), ("population", DECEASED_ID, False), ("population", ABSENT_ID, False),
    ("legal_person", COMPANY, True), ("legal_person", CLOSED_COMPANY, False),
])
def test_existence_verification_answers_yes_or_no(rich_hub, library, key, expected):
    dept = rich_hub.department()
    answer = dept.client.verify_existence(library, key, PURPOSE, "CASE-V2")
    assert answer.answer is expected and answer.payload["question"] == "exists_and_active"
    assert verify_with_cryptography(answer.token, dept.client.jwks())["answer"] is expected


def test_existence_on_a_past_day_uses_history_and_refuses_without_it(rich_hub):
    dept = rich_hub.department()
    assert dept.client.verify_existence("population", PERSON_ID, PURPOSE, "CASE-V3", on="2010-01-01").answer is True
    with pytest.raises(HubRequestError) as refused:
        dept.client.verify_existence("legal_person", COMPANY, PURPOSE, "CASE-V4", on="2010-01-01")
    assert refused.value.code == "as_of_unavailable"
    with pytest.raises(HubRequestError) as future:
        dept.client.verify_existence("population", PERSON_ID, PURPOSE, "CASE-V5", on="2999-01-01")
    assert future.value.code == "invalid_request"


def test_verification_needs_a_purpose_and_a_case_number(rich_hub):
    dept = rich_hub.department()
    request = httpx.Request("POST", rich_hub.url + "/v1/verify/existence",
                            content=json.dumps({"library": "population", "key": PERSON_ID}).encode(),
                            headers={"Content-Type": "application/json"})
    sign_request(request, dept.kid, dept.private_key)
    response = httpx.Client().send(request)
    assert response.status_code == 422 and "purpose" in response.json()["error"]["message"]
    assert PERSON_ID not in response.text

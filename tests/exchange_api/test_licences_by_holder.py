"""POST /v1/licences/by-holder: one ID number (or credit code) in, the holder's licences with their status that day out."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from exchange_api.client import HubRequestError
from schemas.ids import uscc_check_char
from tests.exchange_api.conftest import ABSENT_ID, PERSON_ID, hub_at, person
from tests.exchange_api.snapshots import version, write_snapshot
from tests.exchange_api.test_as_of import COMPANY as AS_OF_COMPANY, LICENCE as AS_OF_LICENCE
from tests.exchange_api.test_as_of import history_hub  # noqa: F401 - the fixture: two real publishes
from warehouse.published import open_current

UTC = dt.UTC
PURPOSE = "licensing"
COMPANY = (lambda b: b + uscc_check_char(b))("91110105MA01AB2C3")
OTHER_COMPANY = (lambda b: b + uscc_check_char(b))("91110105MA01AB2C4")
TODAY = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
PATH = "/v1/licences/by-holder"


def licence(number: str, holder: str, **overrides):
    row = {"licence_number": number, "licence_type": "food_business", "holder_type": "legal_person",
           "holder_id": holder, "holder_name": "示例科技有限公司", "issuer": "market_regulation",
           "issued_on": dt.date(2020, 1, 1), "valid_from": dt.date(2020, 1, 1), "valid_to": dt.date(2099, 1, 1),
           "status": "issued", "status_date": dt.date(2020, 1, 1), "status_history": None, "file_digest": None,
           "source_department": "market_regulation", "source_record_id": "L-" + number,
           "source_updated_at": dt.datetime(2026, 3, 1, tzinfo=UTC), "ingested_at": dt.datetime(2026, 3, 2, tzinfo=UTC),
           "run_id": "r"}
    row.update(overrides)
    return row


SUSPENDED = json.dumps([{"status": "issued", "date": "2020-01-01"}, {"status": "suspended", "date": "2025-06-01"}])
LICENCES = [
    licence("SP0001", COMPANY),
    licence("SP0002", COMPANY, status="suspended", status_date=dt.date(2025, 6, 1), status_history=SUSPENDED),
    licence("SP0003", COMPANY, valid_to=dt.date(2021, 1, 1), status="expired", status_date=dt.date(2021, 1, 1)),
    licence("DY0004", COMPANY, licence_type="road_transport", issuer="transport"),
    licence("SP0005", OTHER_COMPANY),  # another holder: never in COMPANY's answer
    licence("YS0006", PERSON_ID, holder_type="person", licence_type="medical_practitioner", holder_name="张三"),
]
# The licence history: SP0002 suspended in June 2025; DY0004 another company's until 2024 (COMPANY's only since).
START, SUSPENDED_AT = dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2025, 6, 1, tzinfo=UTC)
HISTORY = [version(row, START, None) for row in LICENCES if row["licence_number"] not in ("SP0002", "DY0004")]
HISTORY += [version(licence("SP0002", COMPANY), START, SUSPENDED_AT), version(LICENCES[1], SUSPENDED_AT, None),
            version(licence("DY0004", OTHER_COMPANY, licence_type="road_transport"), START, dt.datetime(2024, 1, 1, tzinfo=UTC)),
            version(LICENCES[3], dt.datetime(2024, 1, 1, tzinfo=UTC), None)]


@pytest.fixture(scope="module")
def licence_hub(tmp_path_factory):
    data = tmp_path_factory.mktemp("by-holder") / "data"
    write_snapshot(data / "snapshots", "v000001", {"population": [person(PERSON_ID)], "licence": LICENCES},
                   history={"licence": HISTORY})
    with hub_at(data, snapshot=False) as hub:
        yield hub


def ask(dept, holder, **body):  # type: ignore[no-untyped-def]
    return dept.client.post(PATH, {"holder_id": holder, "purpose": PURPOSE, "case_number": "CASE-H", **body})


def by_number(answer) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {item["key"]: item for item in answer.payload["licences"]}


def test_a_holder_s_licences_with_status_and_validity_today(licence_hub):
    dept = licence_hub.department([("licence", ["holder_id"], PURPOSE)])
    answer = ask(dept, COMPANY.lower())  # normalised like every key
    assert answer.payload["holder_id"] == COMPANY and answer.payload["on"] == TODAY.isoformat()
    found = by_number(answer)
    assert set(found) == {"SP0001", "SP0002", "SP0003", "DY0004"}
    assert (found["SP0001"]["status"], found["SP0001"]["valid"]) == ("issued", True)
    assert (found["SP0002"]["status"], found["SP0002"]["valid"]) == ("suspended", False)
    assert (found["SP0003"]["status"], found["SP0003"]["valid"]) == ("expired", False)
    record = found["SP0001"]["record"]
    assert record["licence_type"]["value"] == "food_business" and record["valid_to"]["value"] == "2099-01-01"
    assert "holder_name" not in record and "status_history" not in record  # conditional, not granted


def test_licence_types_filter_and_a_past_day_from_the_history(licence_hub):
    dept = licence_hub.department([("licence", ["holder_id", "holder_name"], PURPOSE)])
    food = by_number(ask(dept, COMPANY, licence_types=["food_business"]))
    assert set(food) == {"SP0001", "SP0002", "SP0003"}
    assert food["SP0001"]["record"]["holder_name"]["value"] == "示例科技有限公司"  # granted
    then = by_number(ask(dept, COMPANY, on="2022-06-01"))
    assert set(then) == {"SP0001", "SP0002", "SP0003"}  # DY0004 was another company's then
    assert (then["SP0002"]["status"], then["SP0002"]["valid"]) == ("issued", True)  # suspended only in 2025
    assert then["SP0003"]["valid"] is False  # its validity had ended
    person_licences = by_number(ask(dept, PERSON_ID))
    assert set(person_licences) == {"YS0006"} and person_licences["YS0006"]["valid"] is True


def test_a_holder_without_licences_and_one_not_granted(licence_hub):
    dept = licence_hub.department([("licence", ["holder_id"], PURPOSE)])
    assert ask(dept, ABSENT_ID).payload["licences"] == []
    ungranted = licence_hub.department()
    with pytest.raises(HubRequestError) as refused:
        ask(ungranted, COMPANY)
    assert (refused.value.status, refused.value.code) == (403, "fields_not_granted")
    assert "holder_id" in refused.value.message


@pytest.mark.parametrize(("body", "part"), [
    ({"holder_id": PERSON_ID[:17] + ("1" if PERSON_ID[17] == "0" else "0")}, "check"),  # wrong check digit
    ({"holder_id": COMPANY, "licence_types": ["no_such_type"]}, "licence_types"),
    ({"holder_id": COMPANY, "on": "2999-01-01"}, "future"),
    ({"holder_id": COMPANY, "licence_types": "food_business"}, "licence_types"),
])
def test_bad_bodies_are_422_and_never_echo_the_holder(licence_hub, body, part):
    dept = licence_hub.department([("licence", ["holder_id"], PURPOSE)])
    with pytest.raises(HubRequestError) as refused:
        dept.client.post(PATH, {"purpose": PURPOSE, "case_number": "CASE-X", **body})
    assert (refused.value.status, refused.value.code) == (422, "invalid_request")
    assert part in refused.value.message.lower().replace(" ", "_") or part in refused.value.message
    assert body["holder_id"] not in refused.value.message


def test_one_audit_row_per_answer_holder_masked(licence_hub, caplog):
    dept = licence_hub.department([("licence", ["holder_id"], PURPOSE)])
    with caplog.at_level(logging.DEBUG):
        answer = ask(dept, COMPANY)
        empty = ask(dept, ABSENT_ID)
    row = licence_hub.audit_row(answer.request_id)  # exactly one row, or this raises
    assert (row.operation, row.library, row.status, row.outcome) == ("licences_by_holder", "licence", 200, "answered")
    assert row.key_masked != COMPANY and COMPANY not in (row.reason or "")
    assert "licence_type" in row.fields_released.split(",")
    assert licence_hub.audit_row(empty.request_id).outcome == "not_found"
    assert COMPANY not in caplog.text and ABSENT_ID not in caplog.text
    # The citizen sees who looked at their licences.
    assert row.key_hash


def test_the_holder_index_is_built_with_the_serving_files(licence_hub):
    snapshot = open_current(licence_hub.settings.snapshots_dir)
    assert [r["licence_number"] for r in snapshot.lookup_by("licence", "holder_id", COMPANY, ["licence_number"])] == [
        "DY0004", "SP0001", "SP0002", "SP0003"]
    then = snapshot.lookup_by_as_of("licence", "holder_id", OTHER_COMPANY, dt.datetime(2022, 1, 1, tzinfo=UTC),
                                    ["licence_number"])
    assert [r["licence_number"] for r in then] == ["DY0004", "SP0005"]
    assert snapshot.lookup_by("licence", "holder_id", "nobody") == []


def test_the_endpoint_is_in_the_catalogue_and_openapi(licence_hub):
    import httpx

    dept = licence_hub.department()
    assert "/v1/licences/by-holder" in dept.client.catalogue()["verification"] or any(
        "/v1/licences/by-holder" in str(v) for v in dept.client.catalogue().values())
    spec = httpx.get(licence_hub.url + "/openapi.json").json()
    assert "fields_not_granted" in spec["paths"][PATH]["post"]["responses"]["403"]["description"]


def test_it_answers_from_a_real_publish_as_of_a_past_day(history_hub):
    """The snapshot warehouse.publish writes: the licence was revoked on 5 March 2025, between two publishes."""
    dept = history_hub.department([("licence", ["holder_id"], PURPOSE)])
    before = by_number(ask(dept, AS_OF_COMPANY, on="2025-03-01"))[AS_OF_LICENCE]
    now = by_number(ask(dept, AS_OF_COMPANY))[AS_OF_LICENCE]
    assert (before["status"], before["valid"]) == ("issued", True)
    assert (now["status"], now["valid"]) == ("revoked", False)

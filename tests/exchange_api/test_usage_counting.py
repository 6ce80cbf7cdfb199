"""Usage figures and quotas count records released: not metadata calls, and a key asked twice in a batch once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from exchange_api.client import HubRequestError
from exchange_api.models import QuotaUsage
from exchange_api.registry import set_limits
from tests.exchange_api.conftest import OTHER_PERSON_ID, PERSON_ID

PURPOSE = "social_assistance"


def proofs_replaced(figures: list[dict]) -> int:
    """What `hub usage` reports as paper proofs replaced: records released plus verifications answered."""
    return sum(row["records_released"] + row["verifications"] for row in figures)


def quota_used(hub, department: str) -> int:
    with hub.sessions() as session:
        return sum(session.scalars(select(QuotaUsage.used).where(QuotaUsage.department == department)))


def test_catalogue_and_usage_calls_release_no_record(hub):
    dept = hub.department()
    for _ in range(3):
        dept.client.catalogue()
        dept.client.usage()
    figures = dept.client.usage()["figures"]
    assert sum(row["requests"] for row in figures) == 6  # the calls themselves are counted, as requests
    assert proofs_replaced(figures) == 0
    assert quota_used(hub, dept.code) == 0


def test_catalogue_and_usage_calls_leave_real_lookups_counted(hub):
    dept = hub.department()
    dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-UC1")
    dept.client.catalogue()
    figures = dept.client.usage()["figures"]
    assert proofs_replaced(figures) == 1
    assert {row["purpose"]: row["records_released"] for row in figures}[PURPOSE] == 1


def test_a_batch_of_one_key_a_hundred_times_is_answered_in_order_and_counted_once(hub):
    dept = hub.department()
    answer = dept.client.lookup_batch("population", [PERSON_ID] * 100, PURPOSE, "CASE-UC2")
    assert len(answer.results) == 100
    assert all(result["key"] == PERSON_ID and result["found"] for result in answer.results)
    assert len({str(result) for result in answer.results}) == 1  # the same answer each time
    assert quota_used(hub, dept.code) == 1
    assert proofs_replaced(dept.client.usage()["figures"]) == 1
    rows = [row for row in hub.audit_rows() if row.request_id == answer.request_id]
    assert len(rows) == 1 and rows[0].outcome == "answered"


def test_repeated_keys_keep_their_places_among_others(hub):
    dept = hub.department()
    keys = [PERSON_ID, OTHER_PERSON_ID, f" {PERSON_ID} ", OTHER_PERSON_ID, PERSON_ID]  # normalised alike
    answer = dept.client.lookup_batch("population", keys, PURPOSE, "CASE-UC3")
    assert [result["key"] for result in answer.results] == [PERSON_ID, OTHER_PERSON_ID] * 2 + [PERSON_ID]
    assert quota_used(hub, dept.code) == 2
    assert proofs_replaced(dept.client.usage()["figures"]) == 2


def test_the_quota_counts_distinct_keys(hub):
    dept = hub.department()
    with hub.sessions.begin() as session:
        set_limits(session, dept.code, daily_quota=2)
    assert len(dept.client.lookup_batch("population", [PERSON_ID] * 50, PURPOSE, "CASE-UC4").results) == 50
    assert len(dept.client.lookup_batch("population", [OTHER_PERSON_ID] * 50, PURPOSE, "CASE-UC5").results) == 50
    with pytest.raises(HubRequestError) as over:
        dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-UC6")
    assert (over.value.status, over.value.code) == (429, "quota_exceeded")

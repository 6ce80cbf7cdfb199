"""Field decisions: sharing class first, then live grants for the same department, library and purpose."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from exchange_api.models import Grant
from exchange_api.permissions import decide, unknown_fields
from schemas import LEGAL_PERSON, POPULATION

LATER = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def grant(fields: str, *, department: str = "civil_affairs", library: str = "population",
          purpose: str = "marriage_registration") -> Grant:
    return Grant(id=7, department=department, library=library, fields=fields, purpose=purpose, expires_at=LATER,
                 approved_by="public_security")


def test_without_grants_only_unconditional_fields_are_allowed():
    decision = decide(POPULATION, "civil_affairs", "marriage_registration", [])
    assert set(decision.released) == {"gender", "household_region", "life_status"}
    assert all(d.reason for d in decision.fields)
    assert decision.requested is None and not decision.refuses_requested


def test_a_grant_adds_its_conditional_fields_only():
    decision = decide(POPULATION, "civil_affairs", "marriage_registration", [grant("name,marital_status")])
    assert {"name", "marital_status"} <= set(decision.released)
    assert "birth_date" not in decision.released
    (name,) = [d for d in decision.fields if d.field == "name"]
    assert name.allowed and "grant 7" in name.reason


def test_not_shareable_is_denied_even_if_a_grant_names_it():
    decision = decide(POPULATION, "civil_affairs", "marriage_registration", [grant("phone")], ["phone"])
    assert decision.released == ()
    assert decision.refuses_requested
    assert "not shareable" in decision.refused[0].reason


@pytest.mark.parametrize("other", [{"department": "tax"}, {"library": "legal_person"}, {"purpose": "something_else"}])
def test_grants_for_another_department_library_or_purpose_do_not_count(other):
    decision = decide(POPULATION, "civil_affairs", "marriage_registration", [grant("name", **other)], ["name"])
    assert decision.released == () and decision.refuses_requested


def test_named_fields_are_decided_one_by_one():
    decision = decide(POPULATION, "civil_affairs", "marriage_registration", [grant("name")], ["name", "gender", "birth_date"])
    assert decision.released == ("name", "gender")
    assert [d.field for d in decision.refused] == ["birth_date"]
    assert "birth_date" in decision.reason


def test_decisions_are_frozen():
    decision = decide(LEGAL_PERSON, "tax", "audit", [])
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.fields[0].allowed = False  # type: ignore[misc]


def test_metadata_and_unknown_names_are_not_lookup_fields():
    assert unknown_fields(POPULATION, ["name", "run_id", "source_record_id", "nonsense"]) == [
        "run_id", "source_record_id", "nonsense"]

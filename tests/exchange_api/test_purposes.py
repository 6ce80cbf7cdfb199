"""The purpose catalogue: requests and grants name registered purposes; anything else is refused with 422."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import typer
from typer.testing import CliRunner

from exchange_api.client import HubRequestError
from exchange_api.models import exchange_sessions
from exchange_api.registry import RegistryError, add_grant, add_purpose, list_purposes, register_department
from hub.commands import api as api_commands
from tests.exchange_api.conftest import PERSON_ID, hub_at

LICENCE = "SP1101050001"


def cli(data_dir, *args: str) -> tuple[int, str]:
    app = typer.Typer()
    api_commands.register(app)
    result = CliRunner().invoke(app, list(args), env={"HUB_DATA_DIR": str(data_dir)})
    return result.exit_code, result.output


def refusal(call) -> HubRequestError:  # type: ignore[no-untyped-def]
    with pytest.raises(HubRequestError) as caught:
        call()
    return caught.value


def test_an_unknown_purpose_is_refused_with_422_and_audited(hub):
    dept = hub.department([("population", ["name"], "social_assistance")])
    error = refusal(lambda: dept.client.lookup("population", PERSON_ID, "curiosity", "CASE-P1"))
    assert (error.status, error.code) == (422, "unknown_purpose")
    assert "curiosity" not in str(error)  # a made-up purpose could be anything, an ID number included
    row = hub.audit_row(error.request_id)
    assert (row.status, row.code, row.purpose, row.fields_released) == (422, "unknown_purpose", "curiosity", "")
    assert row.key_masked and PERSON_ID not in row.key_masked  # the attempt on the record is kept, masked


def test_a_purpose_not_registered_for_the_library_is_refused(hub):
    dept = hub.department()
    # pension_check is registered for the population library only.
    error = refusal(lambda: dept.client.lookup("licence", LICENCE, "pension_check", "CASE-P2"))
    assert (error.status, error.code) == (422, "purpose_not_for_library")
    assert dept.client.verify_existence("population", PERSON_ID, "pension_check", "CASE-P3").answer is True


@pytest.mark.parametrize("call", [
    lambda c: c.lookup_batch("population", [PERSON_ID], "curiosity", "CASE-P4"),
    lambda c: c.verify_licence(LICENCE, "91110105MA01AB2C3F", "curiosity", "CASE-P5"),
    lambda c: c.verify_existence("population", PERSON_ID, "curiosity", "CASE-P6"),
    lambda c: c.post("/v1/licences/by-holder", {"holder_id": PERSON_ID, "purpose": "curiosity", "case_number": "P7"}),
])
def test_every_data_endpoint_refuses_an_unknown_purpose(hub, call):
    dept = hub.department()
    error = refusal(lambda: call(dept.client))
    assert (error.status, error.code) == (422, "unknown_purpose")


def test_grants_name_catalogue_purposes_allowed_for_their_library(hub):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    with hub.sessions.begin() as session:
        register_department(session, "grant_checks", "Grant checks")
    with hub.sessions.begin() as session, pytest.raises(RegistryError, match="not in the purpose catalogue"):
        add_grant(session, "grant_checks", "population", ["name"], "curiosity", later, "owner")
    with hub.sessions.begin() as session, pytest.raises(RegistryError, match="not registered for the licence"):
        add_grant(session, "grant_checks", "licence", ["holder_id"], "pension_check", later, "owner")


def test_the_catalogue_lists_every_registered_purpose_with_its_legal_basis(hub):
    catalogue = hub.department().client.catalogue()
    purposes = {p["code"]: p for p in catalogue["purposes"]}
    assert purposes["social_assistance"]["name"] == "社会救助审核确认"
    assert "社会救助暂行办法" in purposes["social_assistance"]["legal_basis"]
    assert purposes["pension_check"]["libraries"] == ["population"]


def test_operators_add_list_and_retire_purposes(tmp_path):
    with hub_at(tmp_path / "data") as own:
        data = own.settings.data_dir
        code, output = cli(data, "purposes", "add", "housing_subsidy", "住房保障资格审核", "--legal-basis",
                           "《公共租赁住房管理办法》第七条", "--libraries", "population,legal_person")
        assert code == 0, output
        code, output = cli(data, "purposes", "list", "--json")
        listed = {p["code"]: p for p in json.loads(output)}
        assert listed["housing_subsidy"]["libraries"] == ["population", "legal_person"]
        assert listed["housing_subsidy"]["active"] is True

        dept = own.department([("population", ["name"], "housing_subsidy")])
        own.app.state.exchange.registry.invalidate()  # what the registry cache's expiry does within a second
        assert "name" in dept.client.lookup("population", PERSON_ID, "housing_subsidy", "CASE-P8").record

        assert cli(data, "purposes", "retire", "housing_subsidy")[0] == 0
        own.app.state.exchange.registry.invalidate()
        error = refusal(lambda: dept.client.lookup("population", PERSON_ID, "housing_subsidy", "CASE-P9"))
        assert error.code == "unknown_purpose"

        code, output = cli(data, "purposes", "add", "12345", "", "--legal-basis", "", "--libraries", "people")
        assert code == 1
        for problem in ("all digits", "needs a name", "legal basis", "no library 'people'"):
            assert problem in output


def test_the_sample_catalogue_is_what_the_demo_registers(tmp_path, monkeypatch):
    from hub.commands.demo import DEMO_PURPOSE, ensure_demo_department
    from hub.settings import Settings

    settings = Settings(data_dir=tmp_path / "demo")
    ensure_demo_department(settings)
    with exchange_sessions(settings)() as session:
        codes = {p.code for p in list_purposes(session)}
    assert DEMO_PURPOSE in codes and {"social_assistance", "citizen_request", "licensing"} <= codes


def test_a_retired_purpose_is_registered_again_by_add_purpose(hub):
    with hub.sessions.begin() as session:
        row = add_purpose(session, "reused_code", "Name", "Basis", ["population"])
        row.active = False
    with hub.sessions.begin() as session:
        assert add_purpose(session, "reused_code", "Name 2", "Basis", "population").active


def test_the_purpose_codes_are_in_the_openapi_error_list(hub):
    spec = httpx.get(hub.url + "/openapi.json").json()
    assert {"unknown_purpose", "purpose_not_for_library"} <= set(spec["components"]["x-error-codes"]["422"])

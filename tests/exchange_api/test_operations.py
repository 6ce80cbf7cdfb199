"""What a department and an operator see besides answers: catalogue, usage, citizen access log, limits, metrics, OpenAPI."""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest
import typer
from typer.testing import CliRunner

from exchange_api.app import ERROR_CODES
from exchange_api.client import HubRequestError
from exchange_api.registry import register_department, add_key, set_limits
from exchange_api.client import HubClient, generate_department_key
from hub.commands import api as api_commands
from schemas import LIBRARIES
from tests.exchange_api.conftest import OTHER_PERSON_ID, PERSON_ID, hub_at, verify_with_cryptography

PURPOSE = "social_assistance"


def cli(hub, *args: str) -> tuple[int, str]:
    app = typer.Typer()
    api_commands.register(app)
    result = CliRunner().invoke(app, list(args), env={"HUB_DATA_DIR": str(hub.settings.data_dir)})
    return result.exit_code, result.output


@pytest.fixture
def cli_env(hub, monkeypatch):
    """Point the commands at the shared hub's data directory."""
    from hub.settings import get_settings

    monkeypatch.setenv("HUB_DATA_DIR", str(hub.settings.data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def portal(hub):
    """The citizen portal department (its code is what grants it access logs)."""
    kid, private_key, public_pem = generate_department_key()
    with hub.sessions.begin() as session:
        register_department(session, "citizen_portal", "政务服务门户")
        add_key(session, "citizen_portal", public_pem, kid=kid)
    client = HubClient(hub.url, kid, private_key)
    hub._clients.append(client)
    return client


def test_the_catalogue_lists_libraries_fields_grants_and_how_to_apply(hub):
    dept = hub.department([("population", ["name", "birth_date"], PURPOSE), ("licence", ["holder_id"], "licensing")])
    catalogue = dept.client.catalogue()
    assert [lib["name"] for lib in catalogue["libraries"]] == list(LIBRARIES)
    fields = {f["name"]: f for f in catalogue["libraries"][0]["fields"]}
    assert fields["name"] == {"name": "name", "label": "姓名", "type": "string", "sharing": "conditional",
                              "personal_data": "personal"}
    assert fields["phone"]["sharing"] == "not_shareable" and fields["gender"]["sharing"] == "unconditional"
    assert "run_id" not in fields  # record metadata is not a field one asks for
    purposes = {p["code"]: p for p in catalogue["purposes"]}  # the registered catalogue, with legal bases
    assert {g["purpose"] for g in catalogue["grants"]} == {"licensing", PURPOSE} <= set(purposes)
    assert purposes["licensing"]["libraries"] == ["legal_person", "licence"] and purposes[PURPOSE]["legal_basis"]
    assert {(g["library"], tuple(g["fields"])) for g in catalogue["grants"]} == {
        ("population", ("birth_date", "name")), ("licence", ("holder_id",))}
    assert "grant" in catalogue["how_to_apply"]
    assert catalogue["limits"]["daily_quota"] > 0
    assert hub.audit_rows()[-1].operation == "catalogue"


def test_the_catalogue_needs_a_signature(hub):
    response = httpx.get(hub.url + "/v1/catalogue")
    assert response.status_code == 401 and response.json()["error"]["code"] == "signature_missing"


def test_the_citizen_portal_reads_who_looked_at_a_person(hub, cli_env):
    looker = hub.department([("population", ["name"], PURPOSE)])
    looker.client.lookup("population", PERSON_ID, PURPOSE, "CASE-AL1", fields=["name", "gender"])
    looker.client.verify_existence("population", PERSON_ID, "pension_check", "CASE-AL2")
    looker.client.lookup("population", OTHER_PERSON_ID, PURPOSE, "CASE-AL3")  # someone else
    with pytest.raises(HubRequestError):
        looker.client.lookup("population", PERSON_ID, PURPOSE, "CASE-AL4", fields=["birth_date"])  # refused

    log = portal(hub).access_log(PERSON_ID, "citizen_request", "PORTAL-1")
    mine = [e for e in log.payload["entries"] if e["department"] == looker.code]
    assert [(e["operation"], e["purpose"], e["fields"]) for e in mine] == [
        ("verify_existence", "pension_check", ["verification:exists_active"]),
        ("lookup", PURPOSE, ["name", "gender"])]  # newest first; the refusal released nothing
    assert mine[0]["department_name"].startswith("Department")
    verify_with_cryptography(log.token, looker.client.jwks())

    code, output = cli(hub, "access-log", PERSON_ID, "--json")
    assert code == 0, output
    entries = json.loads(output)["entries"]
    assert [e["purpose"] for e in entries if e["department"] == looker.code] == ["pension_check", PURPOSE]
    assert PERSON_ID not in output  # the command shows the person masked


def test_only_the_citizen_portal_reads_access_logs(hub):
    dept = hub.department()
    with pytest.raises(HubRequestError) as refused:
        dept.client.access_log(PERSON_ID, PURPOSE, "CASE-AL5")
    assert (refused.value.status, refused.value.code) == (403, "not_citizen_portal")
    assert PERSON_ID not in refused.value.message


def test_usage_figures_per_department_and_purpose(hub, cli_env):
    dept = hub.department()
    for i in range(3):
        dept.client.lookup("population", PERSON_ID, PURPOSE, f"CASE-U{i}")
    dept.client.lookup_batch("population", [PERSON_ID, OTHER_PERSON_ID], "school_enrolment", "CASE-U9")
    figures = {row["purpose"]: row for row in dept.client.usage()["figures"]}
    assert figures[PURPOSE]["records_released"] == 3 and figures[PURPOSE]["requests"] == 3
    assert figures["school_enrolment"]["records_released"] == 2 and figures["school_enrolment"]["requests"] == 1
    code, output = cli(hub, "usage", "--department", dept.code, "--json")
    assert code == 0, output
    assert {r["purpose"]: r["records_released"] for r in json.loads(output)}[PURPOSE] == 3


def test_rate_limit_gives_429_with_retry_after(tmp_path):
    with hub_at(tmp_path / "limited", api={"rate_per_second": 0.01, "burst": 2}) as hub:
        dept = hub.department()
        for i in range(2):
            dept.client.lookup("population", PERSON_ID, PURPOSE, f"CASE-R{i}")
        with pytest.raises(HubRequestError) as limited:
            dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-R3")
        assert (limited.value.status, limited.value.code) == (429, "rate_limited")
        assert hub.audit_row(limited.value.request_id).code == "rate_limited"
        other = hub.department()  # buckets are per department
        assert other.client.lookup("population", PERSON_ID, PURPOSE, "CASE-R4").found


def test_daily_quota_counts_records_and_gives_429(hub):
    dept = hub.department()
    with hub.sessions.begin() as session:
        set_limits(session, dept.code, daily_quota=3)
    dept.client.lookup_batch("population", [PERSON_ID, OTHER_PERSON_ID], PURPOSE, "CASE-Q1")
    dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-Q2")
    for attempt in (dept.client.lookup, lambda *a: dept.client.lookup_batch("population", [a[1]], *a[2:])):
        with pytest.raises(HubRequestError) as over:
            attempt("population", PERSON_ID, PURPOSE, "CASE-Q3")
        assert (over.value.status, over.value.code) == (429, "quota_exceeded")
    assert hub.audit_row(over.value.request_id).outcome == "refused"


def test_metrics_count_requests_refusals_and_latency(hub):
    dept = hub.department()
    dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-M1")
    httpx.post(hub.url + "/v1/lookup", json={})  # a refusal: no signature
    text = httpx.get(hub.url + "/metrics").text
    assert httpx.get(hub.url + "/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
    assert re.search(r'^hub_api_requests_total\{endpoint="/v1/lookup",status="200"\} [1-9]', text, re.M)
    assert re.search(r'^hub_api_refusals_total\{endpoint="/v1/lookup",code="signature_missing"\} [1-9]', text, re.M)
    assert re.search(r'^hub_api_request_duration_seconds_bucket\{endpoint="/v1/lookup",le="\+Inf"\} [1-9]', text, re.M)
    assert "hub_api_request_duration_seconds_sum" in text and "# TYPE hub_api_request_duration_seconds histogram" in text
    assert re.search(r"^hub_api_audit_commits_total [1-9]", text, re.M)
    assert PERSON_ID not in text and dept.code not in text  # no identifiers, no departments in labels
    for line in text.splitlines():  # every sample line parses as Prometheus text
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [0-9.e+-]+", line), line


def test_openapi_describes_every_endpoint_with_its_error_codes(hub):
    spec = httpx.get(hub.url + "/openapi.json").json()
    for path in ("/v1/lookup", "/v1/lookup/batch", "/v1/verify/licence", "/v1/verify/existence",
                 "/v1/citizen/access-log", "/v1/catalogue", "/v1/usage", "/.well-known/jwks.json", "/metrics"):
        assert path in spec["paths"], path
    lookup = spec["paths"]["/v1/lookup"]["post"]
    assert "application/jose" in lookup["responses"]["200"]["content"]
    assert "fields_not_granted" in lookup["responses"]["403"]["description"]
    assert "replayed_nonce" in lookup["responses"]["401"]["description"]
    assert "quota_exceeded" in lookup["responses"]["429"]["description"]
    assert lookup["requestBody"]["content"]["application/json"]["schema"]["properties"]["key"]
    assert spec["components"]["x-error-codes"]["413"].keys() == {"payload_too_large", "batch_too_large"}


def test_protocol_document_lists_every_error_code():
    from pathlib import Path

    import exchange_api

    protocol = (Path(exchange_api.__file__).parent / "PROTOCOL.md").read_text()
    for status, codes in ERROR_CODES.items():
        for code in codes:
            assert f"`{code}`" in protocol, code


def test_ping_and_healthz(hub):
    assert httpx.get(hub.url + "/ping").text == "pong"
    assert httpx.get(hub.url + "/healthz").json()["snapshot_version"] == "v000001"


def test_set_limits_and_revoke_grant_commands(hub, cli_env):
    dept = hub.department([("population", ["name"], PURPOSE)])
    code, output = cli(hub, "departments", "set-limits", dept.code, "--rate", "5", "--daily-quota", "100")
    assert code == 0, output
    assert dept.client.catalogue()["limits"]["daily_quota"] in (100, hub.app.state.exchange.api.daily_quota)
    from exchange_api.models import Grant

    with hub.sessions() as session:
        (grant,) = session.query(Grant).filter_by(department=dept.code)
    code, output = cli(hub, "grants", "revoke", str(grant.id))
    assert code == 0, output
    hub.app.state.exchange.registry.invalidate()  # what the registry cache's expiry does within a second
    assert "name" not in dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-G1").record
    assert cli(hub, "departments", "set-limits", "nobody", "--rate", "1")[0] == 1


def test_dates_in_grants_are_timezone_aware(hub):
    dept = hub.department([("population", ["name"], PURPOSE)], expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    grant = dept.client.catalogue()["grants"][0]
    assert grant["expires_at"].endswith("+00:00")

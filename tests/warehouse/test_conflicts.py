"""The conflict register for stewards: resolutions stored, applied after reconcile, reopened by a new value."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import typer
from typer.testing import CliRunner

from hub.commands import conflicts as conflicts_commands
from hub.masking import mask_id
from tests.household import valid_id
from tests.warehouse.test_life_events import stage
from warehouse.conflicts import ConflictError, apply_resolutions, conflicts, resolve
from warehouse.reconcile import build_golden
from warehouse.work import open_work

PERSON = valid_id(7, birth="19800101")
OTHER = valid_id(9, birth="19800101")
EARLY, LATE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
runner = CliRunner()


def person(id_number: str, dept: str, at: dt.datetime, **values) -> dict:
    return {"id_number": id_number, "source_department": dept, "source_updated_at": at, **values}


def rebuild(conn) -> None:
    build_golden(conn, "population", ["household"])
    apply_resolutions(conn, "population")


def golden(conn, field: str, key: str = PERSON):
    return conn.execute(f'SELECT "{field}" FROM golden_population WHERE id_number = ?', [key]).fetchone()[0]


def rule(conn, field: str, key: str = PERSON):
    row = conn.execute("SELECT rule, source_department FROM golden_population_provenance WHERE key = ? AND field = ?",
                       [key, field]).fetchone()
    return row


@pytest.fixture
def work(settings):
    with open_work(settings.warehouse_dir) as conn:
        stage(conn, "population", "household", [
            person(PERSON, "public_security", LATE, name="王五", gender="1", marital_status="10"),
            person(OTHER, "public_security", LATE, name="李四", gender="2", marital_status="20")])
        stage(conn, "population", "marriages", [
            person(PERSON, "civil_affairs", EARLY, name="王伍", marital_status="20"),
            person(OTHER, "civil_affairs", EARLY, name="李四", marital_status="20")])
        rebuild(conn)
        yield conn


def test_the_register_lists_disagreements_with_every_department_value(work):
    found = {(c.key, c.field): c for c in conflicts(work, "population")}
    assert set(found) == {(PERSON, "name"), (PERSON, "marital_status")}
    name = found[(PERSON, "name")]
    assert (name.golden_value, name.rule, name.status) == ("王五", "authority:public_security", "open")
    assert {(v["value"], v["source_department"]) for v in name.values} == {("王五", "public_security"), ("王伍", "civil_affairs")}
    assert [c.field for c in conflicts(work, field="marital_status")] == ["marital_status"]


def test_a_resolution_sets_the_golden_value_and_provenance_and_keeps_applying(work):
    rid = resolve(work, "population", PERSON, "name", by="张三", source="civil_affairs", note="婚姻登记核实")
    result = apply_resolutions(work, "population")
    assert result.applied == 1 and golden(work, "name") == "王伍"
    assert rule(work, "name") == ("steward:张三", "civil_affairs")
    assert conflicts(work, "population", "name") == []  # resolved: no longer open
    (entry,) = conflicts(work, "population", "name", open_only=False)
    assert (entry.status, entry.golden_value, entry.rule, entry.resolution["id"]) == ("resolved", "王伍", "steward:张三", rid)
    # The next run rebuilds the golden records from the sources: the same disagreement, the same decision.
    rebuild(work)
    assert golden(work, "name") == "王伍" and rule(work, "name")[0] == "steward:张三"
    # A value typed by the steward works the same way, and supersedes the earlier decision.
    resolve(work, "population", PERSON, "name", by="李四", value="王五")
    rebuild(work)
    assert golden(work, "name") == "王五" and rule(work, "name") == ("steward:李四", "steward")
    statuses = work.execute("SELECT status FROM conflict_resolutions ORDER BY id").fetchall()
    assert statuses == [("superseded",), ("active",)]


def test_a_new_value_reopens_the_resolution_and_agreement_lets_it_lapse(work):
    resolve(work, "population", PERSON, "name", by="张三", source="civil_affairs")
    resolve(work, "population", PERSON, "marital_status", by="张三", value="20")
    rebuild(work)
    # Health reports a third spelling of the name: the steward has not seen it, so the decision is open again.
    stage(work, "population", "deaths", [person(PERSON, "health", EARLY, name="王武")])
    # And civil affairs now agrees with the household register on the marital status: nothing to resolve.
    work.execute("UPDATE staging_population SET marital_status = '10' WHERE _source = 'marriages' AND id_number = ?", [PERSON])
    build_golden(work, "population", ["household"])
    result = apply_resolutions(work, "population")
    assert (result.applied, result.reopened, result.lapsed) == (0, 1, 1)
    assert golden(work, "name") == "王五"  # the precedence rule's value stands
    (entry,) = conflicts(work, "population", "name")
    assert entry.status == "reopened" and {v["value"] for v in entry.values} == {"王五", "王伍", "王武"}
    assert dict(work.execute("SELECT field, status FROM conflict_resolutions").fetchall()) == {
        "name": "reopened", "marital_status": "lapsed"}


def test_bad_resolutions_are_refused_with_a_clear_reason(work):
    with pytest.raises(ConflictError, match="gives no value"):
        resolve(work, "population", PERSON, "name", by="张三", source="health")
    with pytest.raises(ConflictError, match="not a code of table marital_status"):
        resolve(work, "population", PERSON, "marital_status", by="张三", value="99")
    with pytest.raises(ConflictError, match="no conflict"):
        resolve(work, "population", OTHER, "name", by="张三", value="李四")
    with pytest.raises(ConflictError, match="exactly one"):
        resolve(work, "population", PERSON, "name", by="张三")
    with pytest.raises(ConflictError, match="unknown library"):
        resolve(work, "people", PERSON, "name", by="张三", value="x")
    assert work.execute("SELECT count(*) FROM conflict_resolutions").fetchone() == (0,)


# --- the command line ----------------------------------------------------------------------------


def hub_conflicts(*args: str, code: int = 0) -> str:
    app = typer.Typer()
    conflicts_commands.register(app)
    result = runner.invoke(app, ["conflicts", *args], env={"COLUMNS": "250"})
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


@pytest.fixture
def registered(settings):
    with open_work(settings.warehouse_dir) as conn:
        stage(conn, "population", "household", [person(PERSON, "public_security", LATE, name="王五", gender="1")])
        stage(conn, "population", "marriages", [person(PERSON, "civil_affairs", EARLY, name="王伍")])
        build_golden(conn, "population", ["household"])


def test_the_cli_lists_shows_and_resolves_by_full_key_with_masked_output(registered, settings):
    listed = hub_conflicts("list", "--library", "population", "--json")
    (entry,) = [json.loads(line) for line in listed.splitlines()]
    assert entry["key"] == mask_id(PERSON) and entry["field"] == "name" and entry["status"] == "open"
    assert {v["value"] for v in entry["values"]} == {"王*", "王*"} and PERSON not in listed
    assert "王五" not in hub_conflicts("list") and PERSON not in hub_conflicts("list")
    shown = json.loads(hub_conflicts("show", "population", PERSON))
    assert shown[0]["key"] == mask_id(PERSON)
    assert {v["value"] for v in json.loads(hub_conflicts("show", "population", PERSON, "--unmask"))[0]["values"]} == {
        "王五", "王伍"}
    out = hub_conflicts("resolve", "population", PERSON, "name", "--source", "civil_affairs", "--by", "张三",
                        "--note", "核实")
    assert "resolution 1" in out and PERSON not in out
    assert hub_conflicts("list", "--json") == ""
    (resolved,) = [json.loads(line) for line in hub_conflicts("list", "--all", "--json").splitlines()]
    assert resolved["status"] == "resolved" and resolved["resolution"]["by"] == "张三"
    assert resolved["rule"] == "steward:张三"
    with open_work(settings.warehouse_dir) as conn:
        assert golden(conn, "name") == "王伍"


def test_the_cli_refuses_bad_input_without_leaking_the_key(registered):
    out = hub_conflicts("resolve", "population", PERSON, "name", "--value", "x", "--source", "health", "--by", "张三", code=1)
    assert "exactly one" in out
    out = hub_conflicts("show", "population", OTHER, code=1)
    assert "no conflict" in out and OTHER not in out and mask_id(OTHER) in out

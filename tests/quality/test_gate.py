"""The gate in the pipeline: quarantine with every reason and its place, whole-batch rules that stop publication
while the exchange API keeps serving the previous snapshot, and stewards' decisions from the command line."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import httpx
import pytest

from hub import jobs
from quality.batch import Profile, judge
from quality.config import BatchRules
from quality.gate import QualityGateFailed
from tests.household import create_table, insert, person_row, valid_id
from tests.quality.cli import hub_quality as hub_cli
from tests.quality.cli import hub_quality_fails as hub_cli_fails
from warehouse.published import current_name, open_current
from warehouse.work import open_work


def work(settings):  # type: ignore[no-untyped-def]
    return open_work(settings.warehouse_dir)


@pytest.fixture
def household(settings):
    settings.samples_dir.mkdir(parents=True)
    return create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}")


# --- whole-batch rules ---------------------------------------------------------------------------


def test_whole_batch_rules_judge_a_batch_against_its_history():
    usual = [Profile(1000 + i, {"phone": 10, "name": 0}, {"gender": {"1": 500, "2": 500}}) for i in range(4)]
    rules = BatchRules()
    assert judge(Profile(1100, {"phone": 12, "name": 0}, {"gender": {"1": 540, "2": 560}}), usual, "population", rules).passed
    assert judge(Profile(40, {"phone": 0}, {}), usual, "population", rules).failures == [
        "row count 40 is far from the usual 1,002 (median of the last 4 batches; accepted 100..10,016)"]
    empty = judge(Profile(900, {"phone": 900, "name": 0}, {}), usual, "population", rules)
    assert empty.failures == ["column phone is suddenly empty: 100.0% missing (usually 1.0%)"]
    new = judge(Profile(1000, {"phone": 10}, {"gender": {"1": 480, "2": 470, "M": 50}}), usual, "population", rules)
    assert new.failures == ["column gender: codes never seen before in 5.0% of the rows: 'M' (50)"]
    # A code seen in an earlier (accepted) batch is no longer new; a handful of bad codes is the row rules' business.
    assert judge(Profile(1000, {}, {"gender": {"1": 480, "2": 470, "M": 50}}),
                 usual + [Profile(1000, {}, {"gender": {"M": 3}})], "population", rules).passed
    assert judge(Profile(1000, {}, {"gender": {"1": 495, "2": 500, "M": 5}}), usual, "population", rules).passed
    # Too little history: nothing to compare with.
    assert judge(Profile(5, {"phone": 5}, {}), usual[:1], "population", rules).passed
    # Every rule's outcome is a GX expectation with its bounds, for the results and Data Docs.
    kinds = {rule.expectation for rule, _res, _ok in empty.results}
    assert {"expect_table_row_count_to_be_between", "expect_column_proportion_of_non_null_values_to_be_between"} <= kinds


def _signed_client(settings, url: str):  # type: ignore[no-untyped-def]
    from exchange_api.client import HubClient, generate_department_key
    from exchange_api.models import exchange_sessions
    from exchange_api.purposes import SAMPLE_PURPOSES
    from exchange_api.registry import add_grant, add_key, load_purposes, register_department

    kid, private_key, public_pem = generate_department_key()
    with exchange_sessions(settings).begin() as session:
        load_purposes(session, SAMPLE_PURPOSES)  # the grant names a catalogue purpose
        register_department(session, "civil_affairs_test", "Civil affairs (test)")
        add_key(session, "civil_affairs_test", public_pem, kid=kid)
        add_grant(session, "civil_affairs_test", "population", ["name"], "social_assistance",
                  dt.datetime.now(dt.UTC) + dt.timedelta(days=1), "public security")
    return HubClient(url, kid, private_key)


def test_a_held_batch_stops_publication_and_the_api_keeps_serving_the_previous_snapshot(household, settings):
    from exchange_api.app import create_app
    from tests.exchange_api.conftest import running

    insert(household, [person_row(i) for i in range(1, 151)])
    jobs.ingest("household", "run-1")
    assert jobs.stage("household").staged == 150
    first = jobs.reconcile_and_publish("run-1")
    assert first.version == "v000001"

    # The department's export loses its phone column: every new row arrives without one.
    later = [person_row(i) | {"LXDH": None} for i in range(151, 301)]
    insert(household, later)
    jobs.ingest("household", "run-2")
    held = jobs.stage("household")
    assert held.staged == 0 and list(held.held) == ["run-2"]
    assert held.held["run-2"] == ["column phone is suddenly empty: 100.0% missing (usually 0.0%)"]
    with pytest.raises(QualityGateFailed) as refused:
        jobs.reconcile_and_publish("run-2")
    assert "household batch run-2 held: column phone is suddenly empty" in str(refused.value)
    assert "previous snapshot keeps serving" in str(refused.value)
    assert current_name(settings.snapshots_dir) == "v000001"
    assert sorted(p.name for p in settings.snapshots_dir.glob("v*")) == ["v000001"]
    report = json.loads((settings.data_dir / "reports" / "quality" / "quality.json").read_text())
    assert report["held_batches"][0]["source"] == "household" and "phone" in report["held_batches"][0]["reasons"][0]

    app = create_app(settings)
    with running(app) as url:
        assert httpx.get(f"{url}/healthz").json()["snapshot_version"] == "v000001"
        client = _signed_client(settings, url)
        try:
            old = client.lookup("population", valid_id(5, birth=person_row(5)["CSRQ"]), "social_assistance", "CASE-1")
            assert old.snapshot_version == "v000001" and old.found and old.record["name"]["value"] == "王5"
            new = client.lookup("population", valid_id(160, birth=person_row(160)["CSRQ"]), "social_assistance", "CASE-2")
            assert new.snapshot_version == "v000001" and not new.found  # the held batch was never published
        finally:
            client.close()

    # The steward checks with the department (a new export without phones is expected) and releases the batch.
    out = hub_cli("batches")
    assert "run-2" in out and "suddenly empty" in out
    out = hub_cli("batch", "release", "household", "run-2", "--by", "张三", "--note", "phones moved to another system")
    assert "released by 张三" in out
    assert jobs.stage("household").staged == 150
    second = jobs.reconcile_and_publish("run-3")
    assert second.version == "v000002" and second.tables["population"]["rows"] == 300
    with work(settings) as conn:
        decided = conn.execute("SELECT status, decided_by, decided_at, note FROM batch_checks WHERE run_id = 'run-2'").fetchone()
    assert decided[0] == "released" and decided[1] == "张三" and decided[2] is not None and decided[3].startswith("phones")


def test_row_count_far_from_the_usual_holds_the_batch(household, settings):
    for run in range(1, 5):  # four ordinary daily batches of 100 changes
        insert(household, [person_row(i) for i in range(run * 100 - 99, run * 100 + 1)])
        jobs.ingest("household", f"run-{run}")
        assert jobs.stage("household").held == {}
    insert(household, [person_row(i) for i in range(401, 421)])  # a quiet day: within a factor 10 of the usual
    jobs.ingest("household", "run-5")
    assert jobs.stage("household").held == {}
    insert(household, [person_row(i) for i in range(421, 1619)])  # then twelve times the usual
    jobs.ingest("household", "run-6")
    held = jobs.stage("household").held
    assert list(held) == ["run-6"] and held["run-6"][0].startswith("row count 1,198 is far from the usual 100")
    # A rejected batch is skipped: none of its rows is staged, later batches go on.
    hub_cli("batch", "reject", "household", "run-6", "--by", "李四")
    result = jobs.stage("household")
    assert result.held == {} and result.staged == 0
    with work(settings) as conn:
        assert conn.execute("SELECT count(*) FROM staging_population").fetchone()[0] == 420
        assert conn.execute("SELECT rows FROM staged_landings WHERE run_id = 'run-6'").fetchone()[0] == 0


# --- the quarantine ------------------------------------------------------------------------------


def _drop(folder: Path, name: str, lines: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"\n".join(lines) + b"\n")
    (folder / (name + ".done")).write_bytes(b"")


def _deaths_source(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"""
sources:
  - name: deaths
    department: health
    kind: file_drop
    library: population
    url: "file://{tmp_path / 'drop'}"
    key: 报告卡编号
    options: {{pattern: "deaths_*.csv", encoding: utf-8}}
    fields:
      id_number: 身份证号
      name: 姓名
      gender: {{column: 性别, codes: {{"男": "1", "女": "2"}}}}
      birth_date: 出生日期
      life_status: {{value: deceased}}
      life_status_date: 死亡日期
""", encoding="utf-8")
    monkeypatch.setenv("HUB_SOURCES_FILE", str(sources))
    from hub.settings import get_settings
    from connectors.config import configured_sources

    get_settings.cache_clear()
    configured_sources.cache_clear()


def test_quarantine_keeps_every_failed_rule_with_source_run_file_and_line(tmp_path, settings, monkeypatch):
    _deaths_source(tmp_path, monkeypatch)
    good = valid_id(1, birth="19500101")
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    _drop(tmp_path / "drop", "deaths_001.csv", [
        "报告卡编号,身份证号,姓名,性别,出生日期,死亡日期".encode(),
        f"SW1,{good},赵一,男,1950-01-01,2020-01-01".encode(),
        f"SW2,{wrong},钱二,女,1950-13-01,2020-01-01".encode(),  # bad check digit and a date that is no date
        f"SW3,{valid_id(3, birth='19500101')},孙三,女,1950-01-02,1949-01-01".encode(),  # sex, birth date, death before birth
        f"SW4,{valid_id(4, birth='19500101')},李".encode() + b"\xff\xfe" + ",男,1950-01-01,2020-01-01".encode(),  # not UTF-8
        ",,,,,".encode(),  # no key, no ID number
    ])
    landed = jobs.ingest("deaths", "run-1")
    staged = jobs.stage("deaths")
    with work(settings) as conn:
        rows = conn.execute("SELECT source, run_id, source_record_id, file, line, stage, reasons FROM quarantine "
                            "ORDER BY line").fetchall()
    # Health contributes deaths: it is not authoritative for name, sex or birth date, so their absence is no
    # fault of the row (public security's record fills them); what it does write is checked.
    assert rows == [
        ("deaths", "run-1", "SW2", "deaths_001.csv", 3, "row", ["id_number: check_digit",
                                                                 "birth_date: not a date written as %Y-%m-%d"]),
        ("deaths", "run-1", "SW3", "deaths_001.csv", 4, "row", ["birth_date: disagrees with the birth date in id_number",
                                                                 "gender: disagrees with the sex in id_number",
                                                                 "life_status_date: before birth_date"]),
        ("deaths", "run-1", None, "deaths_001.csv", 5, "connector", ["row: undecodable bytes for utf-8"]),
        ("deaths", "run-1", "", "deaths_001.csv", 6, "row", ["source_record_id: empty", "id_number: empty"]),
    ]
    # Nothing silently dropped: every line of the file is staged or quarantined.
    assert landed.rows + landed.quarantined == 5 and staged.staged + staged.quarantined == 5


def test_stewards_release_and_reject_from_the_command_line(household, settings):
    rows = [person_row(i) for i in range(1, 11)]
    rows[2]["SFZH"] = rows[2]["SFZH"][:-1] + ("0" if rows[2]["SFZH"][-1] != "0" else "1")  # RKBH 3: bad check digit
    rows[3]["SFZH"] = None  # RKBH 4: no ID number
    rows[4]["XB"] = "未知"  # RKBH 5: a sex code the department never mapped
    insert(household, rows)
    jobs.ingest("household", "run-1")
    assert jobs.stage("household").quarantined == 3
    jobs.reconcile_and_publish("run-1")
    listing = [json.loads(line) for line in hub_cli("list", "--json").splitlines()]
    by_record = {e["source_record_id"]: e for e in listing}
    assert set(by_record) == {"3", "4", "5"}
    by_reason = [json.loads(line) for line in hub_cli("list", "--json", "--reason", "id_number").splitlines()]
    assert {e["source_record_id"] for e in by_reason} == {"3", "4"}
    assert by_record["3"]["record"]["id_number"].startswith(rows[2]["SFZH"][:4]) and "*" in by_record["3"]["record"]["id_number"]
    assert by_record["3"]["record"]["name"] == "王*"  # masked unless --unmask
    assert json.loads(hub_cli("show", str(by_record["3"]["id"]), "--unmask"))["record"]["name"] == "王3"

    # A correction that still fails is refused, with the reason; a good one is accepted.
    out = hub_cli_fails("release", str(by_record["4"]["id"]), "--by", "王科长", "--set", "id_number=12345")
    assert "still fails after correction: id_number: length" in out
    corrected = valid_id(4, birth=rows[3]["CSRQ"])
    hub_cli("release", str(by_record["4"]["id"]), "--by", "王科长", "--set", f"id_number={corrected}", "--note", "per 户籍 file")
    hub_cli("release", str(by_record["5"]["id"]), "--by", "王科长", "--set", "gender=9")
    hub_cli("reject", str(by_record["3"]["id"]), "--by", "王科长", "--note", "duplicate entry, deleted at source")
    assert "already rejected" in hub_cli_fails("release", str(by_record["3"]["id"]), "--by", "someone")

    result = jobs.stage("household")  # nothing new landed: the released records re-enter staging
    assert result.released == 2
    published = jobs.reconcile_and_publish("run-2")
    assert published.tables["population"]["rows"] == 9
    snap = open_current(settings.snapshots_dir)
    assert snap.lookup("population", corrected)["name"] == "王4"
    with work(settings) as conn:
        decided = {r[0]: r[1:] for r in conn.execute(
            "SELECT source_record_id, status, decided_by, decided_at IS NOT NULL, restaged_at IS NOT NULL, corrections "
            "FROM quarantine").fetchall()}
    assert decided["3"][:4] == ("rejected", "王科长", True, False)
    assert decided["4"][:4] == ("released", "王科长", True, True)
    assert json.loads(decided["4"][4]) == {"id_number": corrected}
    assert jobs.stage("household").released == 0  # released once, staged once


def test_a_later_landing_that_passes_supersedes_the_open_entry(household, settings):
    rows = [person_row(i) for i in range(1, 4)]
    good = rows[1]["SFZH"]
    rows[1]["SFZH"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    insert(household, rows)
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    with household.begin() as conn:  # the department corrects the number at the source
        conn.exec_driver_sql("UPDATE HJ_RKXX SET SFZH = ?, GXSJ = ? WHERE RKBH = 2", (good, dt.datetime(2026, 6, 1)))
    jobs.ingest("household", "run-2")
    jobs.stage("household")
    with work(settings) as conn:
        status, by, note = conn.execute("SELECT status, decided_by, note FROM quarantine").fetchone()
    assert (status, by) == ("superseded", "pipeline") and "run-2" in note


def test_the_working_database_keeps_lineage_of_staged_records(tmp_path, settings, monkeypatch):
    _deaths_source(tmp_path, monkeypatch)
    _drop(tmp_path / "drop", "deaths_001.csv", ["报告卡编号,身份证号,姓名,性别,出生日期,死亡日期".encode(),
                                                f"SW1,{valid_id(1, birth='19500101')},赵一,男,1950-01-01,2020-01-01".encode()])
    jobs.ingest("deaths", "run-1")
    jobs.stage("deaths")
    con = duckdb.connect(str(settings.warehouse_dir / "work.duckdb"), read_only=True)
    assert con.execute("SELECT _source, _file, _line FROM staging_population").fetchall() == [("deaths", "deaths_001.csv", 2)]

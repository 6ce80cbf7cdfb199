"""A damaged working database, checked and rebuilt from the landings: the same libraries, every decision kept."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import typer
import yaml
from typer.testing import CliRunner

from hub.commands import conflicts as conflicts_commands
from hub.commands import identity as identity_commands
from hub.commands import quality as quality_commands
from hub.commands import warehouse as warehouse_commands
from tests.warehouse.identity_truth import load_truth
from warehouse.work import WORK_DB, open_work

SAMPLE_SOURCES = Path(__file__).resolve().parents[2] / "connectors" / "config" / "sample_sources.yaml"
POPULATION_SOURCES = ("household", "marriages", "deaths")
PUBLISHED = ("population.parquet", "population_history.parquet", "conflicts.parquet", "provenance.parquet")
runner = CliRunner()


def hub(*args: str, code: int = 0) -> str:
    """Run ``hub ARGS`` through the command modules, as hub/cli.py registers them; checks the exit status."""
    app = typer.Typer()
    for module in (quality_commands, identity_commands, conflicts_commands, warehouse_commands):
        module.register(app)
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == code, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def population(settings, monkeypatch):
    """The generated sample's three population departments, landed, staged, reconciled and published once."""
    from samples import DefectRates, generate_samples
    from hub import jobs
    from tests.conftest import _clear_caches

    config = yaml.safe_load(SAMPLE_SOURCES.read_text(encoding="utf-8"))
    config["sources"] = [s for s in config["sources"] if s["name"] in POPULATION_SOURCES]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sources = settings.data_dir / "sources.yaml"
    sources.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HUB_SOURCES_FILE", str(sources))
    _clear_caches()
    from hub.settings import get_settings

    generate_samples(get_settings().samples_dir, 1_000, seed=11, rates=DefectRates.uniform(0.03), rows_per_file=2_000)
    for name in POPULATION_SOURCES:
        jobs.ingest(name, "run-1")
        jobs.stage(name)
    jobs.reconcile_and_publish("run-1")
    return get_settings()


def _decide_one_of_each_kind(settings) -> dict:
    """A steward's decision of every kind, from the command line; returns what each one decided."""
    from hub import jobs
    from quality.gate import recheck_record
    from quality.quarantine import entries

    with open_work(settings.warehouse_dir) as conn:
        load_truth(conn, settings.samples_dir / "ground_truth" / "entities.parquet")
        misses = conn.execute(
            "SELECT m.source, m.source_record_id, m.entity_key, q.id, t.person FROM identity_near_misses m "
            "JOIN quarantine q ON q.id = m.quarantine_id JOIN truth t ON t.source = m.source AND t.source_record_id = m.source_record_id "
            "WHERE m.entity_key IS NOT NULL ORDER BY m.source, m.source_record_id").fetchall()
        link = conn.execute("SELECT source, source_record_id, entity_key FROM identity_links WHERE retired_at IS NULL "
                            "AND decided_by = 'splink' ORDER BY source, source_record_id LIMIT 1").fetchone()
        conflict = conn.execute("SELECT key, field, \"values\", rule FROM golden_population_conflicts "
                                "ORDER BY key, field LIMIT 1").fetchone()
        unreadable = [e for e in entries(conn, limit=500) if e.stage == "connector"][0]
        releasable = [m for m in misses
                      if not recheck_record(jobs.source(m[0]), {**entries_record(conn, m[3]), "id_number": m[4]})]
    released, merged = releasable[0], [m for m in misses if m[3] != releasable[0][3]][0]
    key, field, values, rule = conflict
    chosen = [v for v in json.loads(values) if not rule.endswith(v["source_department"])][0]["source_department"]

    hub("quality", "release", str(released[3]), "--by", "张三", "--note", "户籍底册核实",
        "--set", f"id_number={released[4]}")
    hub("quality", "reject", str(unreadable.id), "--by", "李四", "--note", "请部门重报")
    hub("conflicts", "resolve", "population", key, field, "--source", chosen, "--by", "王五", "--note", "核实")
    hub("identity", "merge", merged[0], merged[1], merged[2], "--by", "赵六", "--note", "同一人")
    hub("identity", "split", link[0], link[1], link[2], "--by", "钱七", "--note", "同名不同人")
    return {"released": released, "rejected": unreadable, "conflict": (key, field, chosen), "merged": merged,
            "split": link}


def entries_record(conn, entry_id: int) -> dict:
    from quality.quarantine import entry

    return entry(conn, entry_id).record


def _state(settings, decided: dict) -> dict:
    """Every decision as the working database holds it, named by what survives a rebuild (never by an id)."""
    released, rejected, merged, split = decided["released"], decided["rejected"], decided["merged"], decided["split"]
    key, field, _ = decided["conflict"]
    with open_work(settings.warehouse_dir) as conn:
        def entry(source, record_id=None, line=None):
            return conn.execute("SELECT status, decided_by, decided_at, note, corrections FROM quarantine "
                                "WHERE source = ? AND source_record_id IS NOT DISTINCT FROM ? AND "
                                "line IS NOT DISTINCT FROM ? AND stage <> 'reference'", [source, record_id, line]).fetchall()

        def link(source, record_id):
            return conn.execute("SELECT entity_key, decided_by FROM identity_links WHERE retired_at IS NULL "
                                "AND source = ? AND source_record_id = ?", [source, record_id]).fetchall()

        return {
            "released": entry(released[0], released[1]),
            "rejected": entry(rejected.source, None, rejected.line),
            "staged": conn.execute("SELECT count(*) FROM golden_population WHERE id_number = ?", [released[4]]).fetchone(),
            "resolved": conn.execute(f'SELECT "{field}", (SELECT rule FROM golden_population_provenance WHERE key = ? '
                                     f"AND field = ?) FROM golden_population WHERE id_number = ?",
                                     [key, field, key]).fetchone(),
            "merged": link(merged[0], merged[1]),
            "split": link(split[0], split[1]),
            "overrides": conn.execute("SELECT source, source_record_id, action, entity_key, decided_by, decided_at, note "
                                      "FROM identity_overrides ORDER BY decided_at").fetchall(),
            "resolutions": conn.execute("SELECT key, field, chosen_source, resolved_by, resolved_at, status "
                                        "FROM conflict_resolutions ORDER BY resolved_at").fetchall(),
        }


def _published(settings) -> dict[str, list[tuple]]:
    snapshot = settings.snapshots_dir / (settings.snapshots_dir / "CURRENT").read_text().strip()
    con = duckdb.connect()
    return {name: sorted(con.execute(f"SELECT * FROM '{snapshot / name}'").fetchall(), key=repr) for name in PUBLISHED}


def test_a_corrupt_working_database_is_rebuilt_with_the_same_libraries_and_every_decision(population):
    from hub import jobs

    settings = population
    decided = _decide_one_of_each_kind(settings)
    for name in POPULATION_SOURCES:
        jobs.stage(name)  # the released record re-enters staging
    jobs.reconcile_and_publish("run-2")
    before, published = _state(settings, decided), _published(settings)
    # Every decision holds before the damage: the checks of the test's own making.
    assert before["released"][0][0] == "released" and before["staged"] == (1,)
    assert before["rejected"][0][:2] == ("rejected", "李四")
    assert before["resolved"][1] == "steward:王五"
    assert before["merged"] == [(decided["merged"][2], "赵六")]
    assert before["split"] == [] or before["split"][0][0] != decided["split"][2]
    assert "ok:" in hub("warehouse", "check")

    # The file is damaged in the middle, as a failing disk or a half-copied backup leaves it.
    path = settings.warehouse_dir / WORK_DB
    data = bytearray(path.read_bytes())
    quarter = len(data) // 4
    data[quarter: 3 * quarter] = b"\xde\xad" * quarter
    path.write_bytes(bytes(data))
    out = hub("warehouse", "check", code=1)
    assert "error:" in out and "hub warehouse rebuild" in out

    out = hub("warehouse", "rebuild", "--publish")
    assert "moved the old working database to" in out and "published snapshot v000003" in out
    assert list(settings.warehouse_dir.glob(f"{WORK_DB}.damaged-*"))
    assert "ok:" in hub("warehouse", "check")
    after = _state(settings, decided)
    assert after == before
    assert _published(settings) == published


def test_check_names_a_missing_working_database_and_rebuild_refuses_a_whole_one(settings):
    out = hub("warehouse", "check", code=1)
    assert "there is no working database" in out and "hub warehouse rebuild" in out
    with open_work(settings.warehouse_dir):
        pass
    assert "ok:" in hub("warehouse", "check")
    out = hub("warehouse", "rebuild", code=1)
    assert "is whole" in out and "--force" in out
    assert (settings.warehouse_dir / WORK_DB).exists()


def test_check_reports_a_truncated_file_clearly_as_json(settings):
    with open_work(settings.warehouse_dir):
        pass
    path = settings.warehouse_dir / WORK_DB
    path.write_bytes(path.read_bytes()[:5000])
    found = json.loads(hub("warehouse", "check", "--json", code=1))
    assert found["ok"] is False and found["state"] == "damaged" and "cannot be opened" in found["problems"][0]

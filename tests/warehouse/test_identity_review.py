"""Stewards' identity command line: links as JSON, the export (masked, or raw and logged), the saved model, its charts."""

from __future__ import annotations

import csv
import math
import json
import re

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from hub.db import metadata_engine
from warehouse.analyst import AnalystQuery
from warehouse.identity_charts import match_weights_chart, save_chart, waterfall_chart, write_model_charts
from warehouse.identity_review import explain, export_links, saved_model
from tests.warehouse.test_identity import resolved, resolved_once, staged  # noqa: F401  (fixtures: the working database after one run)

RUN = "r1"
URL = re.compile(r"""https?://[^\s"'<>)]+""")
# Only XML namespace names may appear in an SVG: identifiers, never fetched.
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


def _cli():
    from hub.commands import identity as commands

    app = typer.Typer()
    commands.register(app)
    return app, CliRunner()


def _keys(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return [k for (k,) in conn.execute("SELECT DISTINCT entity_key FROM identity_links WHERE entity_key IS NOT NULL "
                                       "UNION SELECT entity_key FROM identity_near_misses WHERE entity_key IS NOT NULL"
                                       ).fetchall()]


def _comparison_names(conn: duckdb.DuckDBPyConnection) -> list[str]:
    (comparisons,) = conn.execute("SELECT comparisons FROM identity_links WHERE retired_at IS NULL "
                                  "AND comparisons IS NOT NULL LIMIT 1").fetchall()[0]
    return list(json.loads(comparisons))


def _offline(text: str) -> None:
    """Nothing the file would load from the network: no script, style or image from a URL, no CDN named."""
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"""@import|url\(\s*["']?https?:""", text, re.I)
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs", "googleapis"):
        assert cdn not in text


def test_list_json_is_one_document_with_masked_keys_and_iso_times(resolved):
    keys = _keys(resolved)
    (links,) = resolved.execute("SELECT count(*) FROM identity_links WHERE retired_at IS NULL").fetchall()[0]
    resolved.close()  # the CLI opens the working database itself
    app, runner = _cli()
    result = runner.invoke(app, ["identity", "list", "--json", "--limit", "10000"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"links", "near_misses", "clusters"} and len(doc["links"]) == links > 0 and doc["near_misses"]
    assert all(c["size"] == len(c["records"]) >= 2 for c in doc["clusters"])
    link = doc["links"][0]
    assert {"source", "source_record_id", "entity_key", "match_weight", "match_probability", "decided_by",
            "decided_at", "run_id"} <= set(link)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", link["decided_at"])
    assert re.fullmatch(r"\d{4}\*{13}[0-9X]", link["entity_key"])
    assert not any(k in result.stdout for k in keys)
    assert {m["reason"] for m in doc["near_misses"]} <= {"below threshold", "ambiguous", "no candidate",
                                                         "steward: not any entity"}


def test_export_has_a_level_and_weight_column_per_comparison_and_masks_like_hub_sql(resolved, tmp_path):
    names = _comparison_names(resolved)
    full = dict(resolved.execute("SELECT source || '/' || source_record_id, entity_key FROM identity_links "
                                 "WHERE retired_at IS NULL").fetchall())
    resolved.close()
    app, runner = _cli()
    out = tmp_path / "links.csv"
    result = runner.invoke(app, ["identity", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == len(full)
    for name in names:
        assert f"{name}_level" in rows[0] and f"{name}_weight" in rows[0]
    for column in ("source", "source_record_id", "entity_key", "match_probability", "match_weight", "decided_by",
                   "decided_at", "run_id"):
        assert column in rows[0]
    for row in rows:
        key = full[f"{row['source']}/{row['source_record_id']}"]
        assert row["entity_key"] == key[:10]  # region and birth year, as the analysts' masked views keep
        assert row["run_id"] == RUN
    linked = [r for r in rows if r["decided_by"] == "splink"]
    assert linked and all(r["name_level"] for r in linked) and float(linked[0]["match_weight"]) > 0
    weights = sum(float(linked[0][f"{n}_weight"]) for n in names)
    assert weights != 0
    # The export was logged like an analyst's query: masked role, no reason, its row count.
    with Session(metadata_engine()) as session:
        logged = session.query(AnalystQuery).order_by(AnalystQuery.id).all()
    assert [(q.role, q.reason, q.rows) for q in logged] == [("masked", None, len(full))]
    assert "identity_links" in logged[0].sql


def test_raw_export_needs_a_reason_and_is_logged(resolved, tmp_path):
    keys = set(_keys(resolved))
    resolved.close()
    app, runner = _cli()
    out = tmp_path / "links.parquet"
    refused = runner.invoke(app, ["identity", "export", "--out", str(out), "--raw"])
    assert refused.exit_code == 2 and not out.exists()
    assert refused.stderr.strip().count("\n") == 0 and "reason" in refused.stderr
    assert "Traceback" not in refused.output
    result = runner.invoke(app, ["identity", "export", "--out", str(out), "--raw", "--reason", "case 2026-31"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows > 0 and set(table.column("entity_key").to_pylist()) <= keys
    assert "name_level" in table.column_names and "name_weight" in table.column_names
    with Session(metadata_engine()) as session:
        logged = [(q.role, q.reason, q.rows, q.analyst is not None, q.at is not None)
                  for q in session.query(AnalystQuery).order_by(AnalystQuery.id)]
    assert logged == [("raw", "case 2026-31", table.num_rows, True, True)]


def test_export_errors_are_one_line_and_exit_2(resolved, tmp_path):
    resolved.close()
    app, runner = _cli()
    for args, expected in (
            (["--out", str(tmp_path / "x.csv"), "--library", "nowhere"], "unknown library"),
            (["--out", str(tmp_path / "no" / "such" / "x.csv")], "no directory"),
            (["--out", str(tmp_path)], "is a directory"),
            (["--out", str(tmp_path / "x.csv"), "--format", "xlsx"], "csv or parquet"),
            (["--out", str(tmp_path / "x.csv"), "--raw", "--reason", " "], "reason")):
        result = runner.invoke(app, ["identity", "export", *args])
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.stderr and result.stderr.strip().count("\n") == 0, (args, result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_export_links_reads_the_comparison_names_from_the_data(resolved):
    # A comparison the model never had: it becomes its own columns, nothing is hard-coded.
    resolved.execute("""UPDATE identity_links SET comparisons = json_merge_patch(comparisons,
                        '{"pinyin_name": {"level": "same_pinyin", "weight": 4.5}}') WHERE retired_at IS NULL""")
    table = export_links(resolved, metadata_engine(), "population")
    assert {"pinyin_name_level", "pinyin_name_weight"} <= set(table.column_names)
    assert set(table.column("pinyin_name_level").to_pylist()) == {"same_pinyin"}


def test_model_shows_m_u_weights_and_prior(resolved, tmp_path):
    model = saved_model(resolved, "population")
    assert model is not None and model.run_id == RUN
    names = [c["output_column_name"] for c in model.settings["comparisons"]]
    resolved.close()
    app, runner = _cli()
    shown = runner.invoke(app, ["identity", "model"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "prior" in shown.output and "log2(m/u)" in shown.output
    for name in names:
        assert name in shown.output
    as_json = runner.invoke(app, ["identity", "model", "--json", "--charts", str(tmp_path / "charts")])
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["run_id"] == RUN and [c["comparison"] for c in doc["comparisons"]] == names
    p = doc["prior"]["probability_two_random_records_match"]
    assert 0 < p < 1 and doc["prior"]["match_weight"] == pytest.approx(math.log2(p / (1 - p)))
    level = next(lvl for c in doc["comparisons"] for lvl in c["levels"] if not lvl["null_level"])
    assert level["match_weight"] == pytest.approx(math.log2(level["m_probability"] / level["u_probability"]))
    assert doc["blocking_rules"] and isinstance(doc["training"], dict)
    written = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert written == ["match_weights.html", "match_weights.svg"] and len(doc["charts"]) == 2


def test_no_model_yet_is_a_clear_refusal(resolved):
    resolved.execute("DELETE FROM identity_models")
    resolved.close()
    app, runner = _cli()
    result = runner.invoke(app, ["identity", "model"])
    assert result.exit_code == 2 and "no identity model" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    unknown = runner.invoke(app, ["identity", "model", "--library", "nowhere"])
    assert unknown.exit_code == 2 and "unknown library" in unknown.stderr


def test_charts_open_offline_and_name_every_comparison(resolved, tmp_path):
    model = saved_model(resolved, "population")
    names = [c["output_column_name"] for c in model.settings["comparisons"]]
    for path in write_model_charts(model.settings, tmp_path / "model"):
        text = path.read_text(encoding="utf-8")
        assert len(text) > 10_000
        for name in names:
            assert name in text, (path.name, name)
        _offline(text)
        if path.suffix == ".svg":
            assert text.lstrip().startswith("<svg") and set(URL.findall(text)) <= set(NAMESPACES)
        else:
            assert "<script>" in text and "vegaEmbed" in text  # the libraries inlined, not fetched
    source, record = resolved.execute("SELECT source, source_record_id FROM identity_links WHERE retired_at IS NULL "
                                      "AND decided_by = 'splink' ORDER BY match_weight DESC LIMIT 1").fetchall()[0]
    why = explain(resolved, source, record)
    chart = waterfall_chart(model.settings, why.comparisons, why.match_weight, why.match_probability)
    values = chart.chart_dict["data"]["values"]
    # Splink's waterfall adds up to the stored match weight: prior + each comparison's stored weight.
    assert values[-1]["log2_bayes_factor"] == pytest.approx(why.match_weight)
    steps = {v["column_name"]: v["log2_bayes_factor"] for v in values}
    for name, c in why.comparisons.items():
        assert steps[name] + steps.get(f"tf_{name}", 0.0) == pytest.approx(c["weight"], abs=0.01), name
    assert sum(v["log2_bayes_factor"] for v in values[:-1]) == pytest.approx(why.match_weight, abs=0.02)
    assert not any(v["value_l"] or v["value_r"] for v in values)  # no record's values in the file
    for suffix in (".svg", ".html"):
        text = save_chart(chart, tmp_path / f"pair{suffix}").read_text(encoding="utf-8")
        assert all(name in text for name in names) and why.entity_key not in text
        _offline(text)
    with pytest.raises(ValueError, match=".svg or .html"):
        save_chart(match_weights_chart(model.settings), tmp_path / "chart.png")


def test_show_writes_the_waterfall_of_a_link_or_near_miss(resolved, tmp_path):
    source, record = resolved.execute("SELECT source, source_record_id FROM identity_links WHERE retired_at IS NULL "
                                      "ORDER BY match_weight DESC, source_record_id LIMIT 1").fetchall()[0]
    # A near miss with a candidate: a link's evidence, weaker, left below the threshold.
    resolved.execute("INSERT INTO identity_near_misses SELECT library, source, 'near-1', quarantine_id, entity_key, "
                     "match_weight - 20, 0.001, NULL, 'below threshold', comparisons, run_id, now() FROM identity_links "
                     "WHERE retired_at IS NULL AND decided_by = 'splink' ORDER BY id LIMIT 1")
    near = resolved.execute("SELECT source, source_record_id FROM identity_near_misses WHERE comparisons IS NOT NULL "
                            "ORDER BY source, source_record_id LIMIT 1").fetchall()
    assert near
    empty = resolved.execute("SELECT source, source_record_id FROM identity_near_misses WHERE comparisons IS NULL "
                             "LIMIT 1").fetchall()
    resolved.close()
    app, runner = _cli()
    result = runner.invoke(app, ["identity", "show", source, record, "--chart", str(tmp_path / "pair.svg")],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "waterfall chart written" in result.output and (tmp_path / "pair.svg").stat().st_size > 1000
    for s, r in near:
        result = runner.invoke(app, ["identity", "show", s, r, "--chart", str(tmp_path / "near.html")])
        assert result.exit_code == 0, result.output
        assert "near miss" in result.output and "waterfall chart written" in result.output
        _offline((tmp_path / "near.html").read_text(encoding="utf-8"))
    for s, r in empty:
        result = runner.invoke(app, ["identity", "show", s, r, "--chart", str(tmp_path / "none.svg")])
        assert result.exit_code == 2 and "no scored comparisons" in result.stderr
    bad = runner.invoke(app, ["identity", "show", source, record, "--chart", str(tmp_path / "pair.png")])
    assert bad.exit_code == 2 and ".svg or .html" in bad.stderr

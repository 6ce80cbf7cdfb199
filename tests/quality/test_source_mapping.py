"""The gate on what the source mapping declares: sources without the library key, contributors omitting fields,
partial (year-month, year) dates, and dates assembled from several columns."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from connectors.config import SourceConfig
from connectors.mapping import to_canonical
from quality.gate import SourceGate
from quality.report import mask_value
from tests.household import valid_id
from warehouse.landing import LandingManifest
from warehouse.staging import Landed, with_lineage
from warehouse.work import open_work

AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TODAY = dt.date(2026, 1, 1)


def people(fields: dict, *, department: str = "hrss", **extra) -> SourceConfig:
    return SourceConfig(name="people", department=department, kind="file_drop", library="population",
                        url="file:///x", key="K", fields=fields, **extra)


def gate(settings, source: SourceConfig, raw: dict) -> tuple[dict[str, list[str]], dict[str, dict], set[str]]:
    """Reasons and quarantined record (as stored) by record id, and the names of the rules that failed."""
    n = len(next(iter(raw.values())))
    table = pa.table({"K": [str(i) for i in range(1, n + 1)], **{k: pa.array(v, pa.string()) for k, v in raw.items()}})
    manifest = LandingManifest(source.name, "run-1", None, None, n, "0" * 64, "part-0.parquet", "", "")
    landed = Landed(manifest, table, with_lineage(to_canonical(table, source, "run-1", AT), table, 1), 1, [])
    with open_work(settings.warehouse_dir) as conn:
        checked = SourceGate(source, rules={}, today=TODAY).check(conn, landed)
        checked.record(conn, staged=True)
        rows = conn.execute("SELECT source_record_id, reasons, record FROM quarantine").fetchall()
    failed = {r["expectation_config"]["meta"]["rule"] for r in checked.results["results"] if not r["success"]}
    return {r[0]: list(r[1]) for r in rows}, {r[0]: json.loads(r[2]) for r in rows}, failed


# --- a source that carries no key of the library ---------------------------------------------------


def test_a_source_without_the_key_gives_its_rows_one_reason_about_it(settings):
    source = people({"name": "XM", "gender": {"column": "XB", "codes": {"男": "1", "女": "2"}}}, carries_key=False)
    reasons, records, failed = gate(settings, source, {"XM": ["王一", "李二"], "XB": ["男", "未知"]})
    assert reasons == {"1": ["id_number: not carried by this source"],
                       "2": ["id_number: not carried by this source", "gender: unknown code"]}
    assert "id_number.not_carried" in failed and "id_number.empty" not in failed
    assert records["1"]["id_number"] is None and records["1"]["name"] == "王一"
    # What identity resolution takes: the rows whose every reason is about the key.
    assert [rid for rid, rs in reasons.items() if all(r.startswith("id_number: ") for r in rs)] == ["1"]


def test_a_constant_empty_key_still_sends_the_rows_to_identity_resolution(settings):
    source = people({"id_number": {"value": ""}, "name": "XM"})
    reasons, _records, _failed = gate(settings, source, {"XM": ["王一"]})
    assert reasons == {"1": ["id_number: empty"]}


# --- contributors and masters ------------------------------------------------------------------------


def test_a_contributor_passes_on_what_it_carries(settings):
    # Health is authoritative for life status (required) and its date, not for name, sex or birth date.
    source = people({"id_number": "SFZH", "name": "XM", "gender": "XB", "birth_date": "CSRQ",
                     "life_status": "SWBZ"}, department="health", authoritative=["life_status"])
    reasons, _records, failed = gate(settings, source, {
        "SFZH": [valid_id(1, birth="19500101"), valid_id(2, birth="19500101"), None],
        "XM": [None, "钱二", "孙三"], "XB": [None, "3", None], "CSRQ": [None, "1950-01-01", None],
        "SWBZ": ["deceased", None, "deceased"]})
    assert reasons == {"2": ["gender: unknown code", "life_status: required"],  # what it carries is still checked
                       "3": ["id_number: empty"]}  # the key stays required
    assert not {"name.required", "gender.required", "birth_date.required"} & failed


def test_a_master_still_needs_every_required_field(settings):
    source = people({"id_number": "SFZH", "name": "XM", "gender": "XB", "birth_date": "CSRQ", "life_status": "SWBZ"},
                    department="public_security", role="master")
    reasons, _records, _failed = gate(settings, source, {"SFZH": [valid_id(1, birth="19500101")], "XM": [None],
                                                         "XB": ["1"], "CSRQ": ["1950-01-01"], "SWBZ": ["living"]})
    assert reasons == {"1": ["name: required"]}


# --- partial dates ----------------------------------------------------------------------------------


def _master(birth_format: str, **fields) -> SourceConfig:
    return people({"id_number": "SFZH", "name": "XM", "gender": "XB", "life_status": "SWBZ",
                   "birth_date": {"column": "CSRQ", "date_format": birth_format}, **fields},
                  department="public_security", role="master")


def _rows(births: list[str | None], **extra) -> dict:
    n = len(births)
    return {"SFZH": [None] * n, "XM": ["王一"] * n, "XB": ["1"] * n, "SWBZ": ["living"] * n, "CSRQ": births, **extra}


@pytest.mark.parametrize(("date_format", "year_month", "year"), [
    ("%Y%m%d", "198503", "1985"), ("%Y-%m-%d", "1985-03", "1985"), ("%Y-%m-%d", "1985-3", "1985"),
    ("%Y/%m/%d", "1985/03", "1985"), ("%Y年%m月%d日", "1985年3月", "1985年"), ("%d.%m.%Y", "03.1985", "1985"),
])
def test_a_year_month_or_year_in_the_formats_style_is_a_partial_date(settings, date_format, year_month, year):
    source = _master(date_format)
    reasons, records, failed = gate(settings, source, _rows([year_month, year, "1985年3月", "31/02/1985x"]))
    # The key is missing in every row (identity's business); the birth date's reason is the partial one, alone.
    assert reasons == {
        "1": ["id_number: empty", "birth_date: partial date (year and month only)"],
        "2": ["id_number: empty", "birth_date: partial date (year only)"],
        "3": ["id_number: empty", "birth_date: partial date (year and month only)"],
        "4": ["id_number: empty", "birth_date: required", f"birth_date: not a date written as {date_format}"],
    }
    assert {"birth_date.partial", "birth_date.format"} <= failed
    # The quarantined record keeps the partial value, in ISO form; a format error keeps nothing.
    assert records["1"]["_partial"] == {"birth_date": "1985-03"}
    assert records["2"]["_partial"] == {"birth_date": "1985"}
    assert records["3"]["_partial"] == {"birth_date": "1985-03"}
    assert records["1"]["birth_date"] is None and "_partial" not in records["4"]


def test_a_value_in_another_style_is_a_format_error_not_a_partial_date(settings):
    reasons, records, _failed = gate(settings, _master("%Y%m%d"), _rows(["1985-03", "198513", "19850315"]))
    assert reasons == {"1": ["id_number: empty", "birth_date: required", "birth_date: not a date written as %Y%m%d"],
                       "2": ["id_number: empty", "birth_date: required", "birth_date: not a date written as %Y%m%d"],
                       "3": ["id_number: empty"]}
    assert not any("_partial" in r for r in records.values())


def test_every_partial_date_of_a_record_is_kept(settings):
    source = _master("%Y%m%d", life_status_date={"column": "ZXRQ", "date_format": "%Y-%m-%d"})
    rows = _rows(["198503"], ZXRQ=["2020-07"])
    reasons, records, _failed = gate(settings, source, rows)
    assert reasons["1"][1:] == ["birth_date: partial date (year and month only)",
                                "life_status_date: partial date (year and month only)"]
    assert records["1"]["_partial"] == {"birth_date": "1985-03", "life_status_date": "2020-07"}


def test_a_partial_date_is_masked_like_its_field_in_reports():
    assert mask_value("population", "_partial", {"birth_date": "1985-03"}) == {"birth_date": "1******"}


# --- dates assembled from several columns --------------------------------------------------------


def test_a_combined_date_is_checked_on_its_combined_text(settings):
    source = _master("%Y-%m-%d", birth_date={"template": "{Y}-{M}-{D}", "date_format": "%Y-%m-%d"})
    reasons, records, failed = gate(settings, source, {
        **_rows([None] * 4), "Y": ["1985", "1985", "1985", None], "M": ["03", "13", "03", None],
        "D": ["15", "01", None, None]})
    assert reasons == {
        "1": ["id_number: empty"],
        "2": ["id_number: empty", "birth_date: required", "birth_date: not a date written as %Y-%m-%d"],
        "3": ["id_number: empty", "birth_date: partial date (year and month only)"],
        "4": ["id_number: empty", "birth_date: required"],  # nothing written: missing, not malformed
    }
    assert records["3"]["_partial"] == {"birth_date": "1985-03"}
    assert {"birth_date.format", "birth_date.partial"} <= failed
    # Results and Data Docs name the text that was checked by its template.
    from quality.rules import source_suite

    checked = {r.name: r.kwargs["column"] for r in source_suite(source, {}, today=TODAY).rules if r.raw}
    assert checked == {"birth_date.partial": "{Y}-{M}-{D}", "birth_date.format": "{Y}-{M}-{D}"}


def test_the_partial_rule_is_an_expectation_gx_evaluates_the_same_way():
    from quality.engine import Batch, evaluate
    from quality.gx import to_frame, validate_with_gx
    from quality.rules import source_suite

    suite = source_suite(_master("%Y%m%d"), {}, today=TODAY)
    rule = next(r for r in suite.rules if r.name == "birth_date.partial")
    raw = pa.table({"CSRQ": ["198503", "1985", "19850315", None, "", "1985年3月", "abc", " 198512 "]})
    records = pa.table({"birth_date": pa.nulls(raw.num_rows, pa.date32())})
    ours = evaluate(Batch(records, raw), rule).fail.nonzero()[0].tolist()
    (result,) = validate_with_gx(suite, to_frame(raw), [rule]).results
    assert sorted(result.result["unexpected_index_list"]) == ours == [0, 1, 5, 7]

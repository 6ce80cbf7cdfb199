"""Rules: derived from schemas/, department rules from configuration, custom expectations, every failed rule kept."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest

from connectors.config import SourceConfig
from hub.errors import ConfigError
from quality import config as quality_config
from quality.engine import Batch, evaluate
from quality.gate import run_rules
from quality.rules import ERROR, NOTE, Rule, Suite, source_suite
from schemas import LIBRARIES, POPULATION
from schemas.catalogue import Field, Sharing
from schemas.ids import ric_check_char, uscc_check_char
from schemas.derive import arrow_schema

TODAY = dt.date(2026, 11, 22)


def rid(seq: int, region: str = "110105", birth: str = "19800101") -> str:
    body = f"{region}{birth}{seq % 1000:03d}"
    return body + ric_check_char(body)


def uscc(body: str = "91110105MA01AB2C3") -> str:
    return body + uscc_check_char(body)


def wrong_check(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


def source(library: str = "population", fields: dict | None = None, **extra) -> SourceConfig:
    fields = fields or {"id_number": "SFZH", "name": "XM", "gender": "XB", "birth_date": "CSRQ", "life_status": "SWBZ",
                        "household_region": "HJQH", "ethnicity": "MZ"}
    # A master (the household register): every required field it maps is required of every row.
    return SourceConfig(name="test_source", department="public_security", kind="sql", library=library,
                        url="sqlite://", table="T", key="K", fields=fields, **{"role": "master", **extra})


def records(library: str, rows: list[dict]) -> pa.Table:
    schema = arrow_schema(LIBRARIES[library]).remove_metadata()
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)


def person(i: int, **overrides) -> dict:
    row = {"id_number": rid(i), "name": f"王{i}", "gender": "1" if i % 2 else "2", "birth_date": dt.date(1980, 1, 1),
           "life_status": "living", "household_region": "110105", "ethnicity": "01", "source_record_id": str(i)}
    row.update(overrides)
    return row


def test_base_rules_are_derived_from_the_declarations():
    suite = source_suite(source(), {}, today=TODAY)
    by_name = {r.name: r for r in suite.rules}
    assert by_name["id_number.empty"].expectation == "expect_column_values_to_not_be_null"
    assert by_name["id_number.resident_id"].expectation == "expect_column_values_to_be_valid_resident_id"
    assert by_name["id_number.canonical"].level == NOTE
    assert by_name["gender.code"].kwargs["value_set"] == ["0", "1", "2", "9"]
    assert by_name["household_region.region"].expectation == "expect_column_values_to_be_valid_region_code"
    assert by_name["birth_date.range"].kwargs == {"column": "birth_date", "min_value": "1900-01-01",
                                                  "max_value": TODAY.isoformat()}
    assert by_name["birth_date.id_number"].expectation == "expect_column_pair_values_to_match_id_birth_date"
    assert by_name["gender.id_number"].expectation == "expect_column_pair_values_to_match_id_gender"
    assert "phone.required" not in by_name and "marital_status.code" not in by_name  # not mapped: not checked
    assert by_name["id_number.unique"].level == NOTE  # default department rule: one record per key


def test_a_field_added_to_a_schema_is_checked_without_a_new_rule(monkeypatch):
    extra = (Field("blood_type", "string", "血型", Sharing.CONDITIONAL, required=True, code_table="gender"),
             Field("spouse_id_number", "string", "配偶身份号码", validator="resident_id"),
             Field("registered_on", "date", "登记日期"))
    extended = dataclasses.replace(POPULATION, fields=POPULATION.fields + extra)
    monkeypatch.setitem(LIBRARIES, "population", extended)
    cfg = source(fields={"id_number": "SFZH", "blood_type": "XX", "spouse_id_number": "PO", "registered_on": "DJ"})
    suite = source_suite(cfg, {}, today=TODAY)
    names = {r.name for r in suite.rules}
    assert {"blood_type.required", "blood_type.code", "spouse_id_number.resident_id", "registered_on.range"} <= names
    table = pa.table({"id_number": [rid(1), rid(2), rid(3)], "blood_type": ["1", None, "7"],
                      "spouse_id_number": [rid(9), wrong_check(rid(9)), None],
                      "registered_on": pa.array([dt.date(2000, 1, 1), dt.date(1899, 1, 1), None], pa.date32()),
                      "source_record_id": ["1", "2", "3"]})
    result = run_rules(suite, table)
    reasons = dict(zip(result.failed.column("source_record_id").to_pylist(), result.failed.column("reasons").to_pylist()))
    assert reasons == {"2": ["blood_type: required", "spouse_id_number: check_digit", "registered_on: out of range"],
                       "3": ["blood_type: unknown code"]}


def test_every_failed_rule_of_a_row_is_kept_and_identifiers_of_passed_rows_are_normalised():
    suite = source_suite(source(), {}, today=TODAY)
    table = records("population", [
        person(1),
        person(2, gender="1", birth_date=dt.date(1980, 2, 2), household_region="999999", ethnicity="99"),
        person(3, id_number=wrong_check(rid(3)), name=None, life_status="alive"),
        person(5, id_number="".join(chr(ord(c) + 0xFEE0) for c in rid(5))),  # full-width digits
        person(7, id_number=rid(7, birth="19800101")[:6] + rid(7)[8:17]),  # the old 15-digit form
    ])
    result = run_rules(suite, table)
    reasons = dict(zip(result.failed.column("source_record_id").to_pylist(), result.failed.column("reasons").to_pylist()))
    assert reasons == {
        "2": ["ethnicity: unknown code", "household_region: unknown region code",
              "birth_date: disagrees with the birth date in id_number", "gender: disagrees with the sex in id_number"],
        "3": ["id_number: check_digit", "name: required", "life_status: unknown code"],
    }
    passed = {r["source_record_id"]: r["id_number"] for r in result.passed.to_pylist()}
    assert passed == {"1": rid(1), "5": rid(5), "7": rid(7)}  # canonical form, recorded in the notes
    notes = {(n["source_record_id"], n["reason"]) for n in result.notes.to_pylist()}
    assert ("5", "id_number: normalised from a non-canonical form") in notes
    assert ("7", "id_number: old 15-digit number upgraded") in notes


def test_custom_expectations_credit_codes_holders_and_licence_validity():
    licence_source = source("licence", {"licence_number": "N", "licence_type": "T", "holder_type": "HT", "holder_id": "H",
                                        "issued_on": "I", "valid_from": "F", "valid_to": "V", "status": "S"})
    suite = source_suite(licence_source, {"as_of": "2026-01-01"}, today=TODAY)
    base = {"licence_type": "business_licence", "issued_on": dt.date(2020, 1, 1), "valid_from": dt.date(2020, 1, 1),
            "status": "issued"}
    table = records("licence", [
        {**base, "licence_number": "L1", "holder_type": "legal_person", "holder_id": uscc(), "source_record_id": "1"},
        {**base, "licence_number": "L2", "holder_type": "legal_person", "holder_id": wrong_check(uscc()), "source_record_id": "2"},
        {**base, "licence_number": "L3", "holder_type": "person", "holder_id": uscc(), "source_record_id": "3"},
        {**base, "licence_number": "L4", "holder_type": "person", "holder_id": rid(4), "valid_to": dt.date(2025, 6, 30),
         "source_record_id": "4"},
        {**base, "licence_number": "L5", "holder_type": "person", "holder_id": rid(5), "valid_to": dt.date(2025, 6, 30),
         "status": "expired", "source_record_id": "5"},
        {**base, "licence_number": "L6", "holder_type": "person", "holder_id": rid(6), "valid_from": dt.date(2019, 1, 1),
         "valid_to": dt.date(2018, 1, 1), "status": "expired", "source_record_id": "6"},
    ])
    result = run_rules(suite, table)
    reasons = dict(zip(result.failed.column("source_record_id").to_pylist(), result.failed.column("reasons").to_pylist()))
    assert reasons == {
        "2": ["holder_id: check_digit"],
        "3": ["holder_id: format"],  # a credit code is no resident ID number
        "4": ["status: still issued although its validity ended before 2026-01-01"],
        "6": ["valid_to: before valid_from", "valid_from: before issued_on"],
    }


def test_region_codes_and_the_identifier_expectations_on_their_own():
    b = Batch(pa.table({"r": ["110105", "110000", "999999", None], "c": [uscc(), uscc().lower(), "91X", None]}))
    region = evaluate(b, Rule("expect_column_values_to_be_valid_region_code", {"column": "r"}, ERROR, "r", "r.region"))
    assert region.fail.tolist() == [False, False, True, False] and region.missing == 1
    code = evaluate(b, Rule("expect_column_values_to_be_valid_credit_code", {"column": "c"}, ERROR, "c", "c.valid"))
    assert code.fail.tolist() == [False, False, True, False]
    canonical = evaluate(b, Rule("expect_column_values_to_be_canonical_credit_code", {"column": "c"}, NOTE, "c", "c.canon"))
    assert canonical.fail.tolist() == [False, True, False, False]


def test_department_rules_come_from_configuration(tmp_path, monkeypatch):
    (tmp_path / "rules.yaml").write_text("""
sources:
  test_source:
    unique: [[name, birth_date]]
    expect:
      - type: expect_column_values_to_match_regex
        kwargs: {column: name, regex: "^王"}
      - type: expect_column_value_lengths_to_equal
        kwargs: {column: household_region, value: 6}
        level: note
""", encoding="utf-8")
    monkeypatch.setenv("HUB_QUALITY_RULES", str(tmp_path))
    quality_config.clear_cache()
    try:
        from quality.rules import source_rules

        cfg = source()
        suite = source_suite(cfg, source_rules(cfg), today=TODAY)
        names = {r.name: r for r in suite.rules}
        assert names["name+birth_date.unique"].level == NOTE and "id_number.unique" not in names
        assert names["name.column_values_to_match_regex"].origin == "department"
        result = run_rules(suite, records("population", [person(1), person(2, name="李2"), person(3, name="王1")]))
        assert result.failed.column("reasons").to_pylist() == [["name: does not match the expected pattern"]]
        assert {n["reason"] for n in result.notes.to_pylist()} == {"name: (name, birth_date) entered more than once in this source"}
    finally:
        quality_config.clear_cache()


def test_a_bad_rules_file_is_refused_with_every_problem(tmp_path):
    (tmp_path / "bad.yaml").write_text("""
sources:
  s1: {batch: {row_count: {ratio: 0.5}}, unknown_key: 1}
libraries:
  nowhere: {consistency: []}
  population:
    consistency:
      - {field: no_such_field, reference: health}
      - {field: name}
""", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        quality_config.load_rules(tmp_path)
    text = " | ".join(refused.value.problems)
    assert "exactly one of reference" in text  # pydantic refuses the file before the semantic checks
    (tmp_path / "bad.yaml").write_text("""
sources:
  s1: {batch: {row_count: {ratio: 0.5}}, unknown_key: 1}
libraries:
  nowhere: {consistency: []}
  population:
    consistency:
      - {field: no_such_field, reference: health}
""", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        quality_config.load_rules(tmp_path)
    problems = refused.value.problems
    assert any("ratio" in p for p in problems) and any("unknown_key" in p for p in problems)
    assert any("unknown library 'nowhere'" in p for p in problems) and any("no_such_field" in p for p in problems)


def test_an_expectation_type_without_a_vectorised_form_is_evaluated_by_gx():
    rule = Rule("expect_column_value_lengths_to_equal", {"column": "name", "value": 2}, ERROR, "name", "name.length")
    b = Batch(pa.table({"name": ["王一", "王小二", None, "李四"]}))
    outcome = evaluate(b, rule)
    assert outcome.fail.tolist() == [False, True, False, False]


def test_gx_agrees_with_the_vectorised_gate_on_every_rule():
    """The same suite, evaluated by GX's own engine and by the gate: the same unexpected rows."""
    from quality.gx import to_frame, validate_with_gx

    suite = Suite("source.agreement", "source", "agreement", "population", tuple(
        r for r in source_suite(source(fields={"id_number": "SFZH", "name": "XM", "gender": "XB", "birth_date": "CSRQ",
                                               "life_status": "SWBZ", "life_status_date": "ZX", "household_region": "HJQH",
                                               "ethnicity": "MZ"}), {}, today=TODAY).rules if not r.raw))
    rows = []
    for i in range(1, 121):
        row = person(i)
        k = i % 12
        if k == 1:
            row["id_number"] = wrong_check(row["id_number"])
        elif k == 2:
            row["gender"] = "2" if row["gender"] == "1" else "1"
        elif k == 3:
            row["birth_date"] = dt.date(1981, 1, 1)
        elif k == 4:
            row["household_region"] = "990000"
        elif k == 5:
            row["ethnicity"] = "77"
        elif k == 6:
            row["life_status"], row["life_status_date"] = "deceased", dt.date(1970, 1, 1)
        elif k == 7:
            row["name"] = None
        elif k == 8:
            row["id_number"] = row["id_number"].lower()[:-1] + row["id_number"][-1].lower()
        elif k == 9:
            row["id_number"] = rid(i - 9)  # the same number as another row
            row["gender"] = "1" if (i - 9) % 2 else "2"
        elif k == 10:
            row["birth_date"] = dt.date(2100, 1, 1)
        rows.append(row)
    table = records("population", rows)
    gate = run_rules(suite, table)
    by_rule = {r["expectation_config"]["meta"]["rule"]: r for r in gate.results}
    gx_result = validate_with_gx(suite, to_frame(table))
    compared = 0
    for res in gx_result.results:
        rule = res.expectation_config.meta["rule"]
        assert not (res.exception_info or {}).get("raised_exception"), (rule, res.exception_info)
        ours = Batch(table)
        outcome = evaluate(ours, next(r for r in suite.rules if r.name == rule))
        assert sorted(int(i) for i in res.result.get("unexpected_index_list") or []) == \
            sorted(outcome.fail.nonzero()[0].tolist()), rule
        assert res.success == by_rule[rule]["success"], rule
        compared += 1
    assert compared == len(suite.rules) >= 15


def test_control_characters_in_text_fields_are_quarantined_with_a_reason():
    cfg = source(fields={"id_number": "SFZH", "name": "XM", "gender": "XB", "birth_date": "CSRQ", "life_status": "SWBZ",
                         "household_region": "HJQH", "ethnicity": "MZ", "household_address": "HJDZ"})
    suite = source_suite(cfg, {}, today=TODAY)
    by_name = {r.name: r for r in suite.rules}
    assert {"name.control_characters", "household_address.control_characters"} <= set(by_name)
    assert "gender.control_characters" not in by_name  # a code is held to its table, an ID number to its checksum
    table = records("population", [
        person(1, household_address="北京市东城区\n人民路12号"),  # a line break in a quoted value is text
        person(2, name="董\x00利"),  # what reached conflicts.parquet
        person(3, name="王\x1b三", household_address="北京市\x7f东城区"),
        person(4, name="李\u0085四"),  # a C1 control (NEL) is as invisible
    ])
    result = run_rules(suite, table)
    reasons = dict(zip(result.failed.column("source_record_id").to_pylist(), result.failed.column("reasons").to_pylist()))
    assert reasons == {
        "2": ["name: holds a control character (U+0000-U+001F bar tab and line breaks, U+007F-U+009F)"],
        "3": ["name: holds a control character (U+0000-U+001F bar tab and line breaks, U+007F-U+009F)",
              "household_address: holds a control character (U+0000-U+001F bar tab and line breaks, U+007F-U+009F)"],
        "4": ["name: holds a control character (U+0000-U+001F bar tab and line breaks, U+007F-U+009F)"],
    }
    assert [r["source_record_id"] for r in result.passed.to_pylist()] == ["1"]


def test_an_embedded_nul_in_a_csv_field_is_quarantined_not_staged(tmp_path, settings, monkeypatch):
    from hub import jobs
    from tests.quality.test_gate import _deaths_source, _drop
    from warehouse.work import open_work

    _deaths_source(tmp_path, monkeypatch)
    good = rid(1, birth="19500101")
    _drop(tmp_path / "drop", "deaths_001.csv", [
        "报告卡编号,身份证号,姓名,性别,出生日期,死亡日期".encode(),
        f"SW1,{good},董\x00利,男,1950-01-01,2020-01-01".encode(),
        f"SW2,{rid(3, birth='19500101')},孙三,男,1950-01-01,2020-01-01".encode(),
    ])
    jobs.ingest("deaths", "run-1")
    jobs.stage("deaths")
    with open_work(settings.warehouse_dir) as conn:
        quarantined = conn.execute("SELECT source_record_id, line, reasons FROM quarantine").fetchall()
        staged = conn.execute("SELECT source_record_id FROM staging_population").fetchall()
    assert quarantined == [("SW1", 2, ["name: holds a control character (U+0000-U+001F bar tab and line breaks, "
                                       "U+007F-U+009F)"])]
    assert staged == [("SW2",)]

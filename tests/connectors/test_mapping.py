"""Mapping raw columns to canonical fields: combined columns (concatenation, templates), sources without the key."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from connectors.config import SourceConfig
from connectors.mapping import field_text, to_canonical

AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def people(fields: dict, **extra) -> SourceConfig:
    return SourceConfig(name="people", department="hrss", kind="file_drop", library="population", url="file:///x",
                        key="K", fields=fields, **extra)


def mapped(source: SourceConfig, raw: dict) -> dict:
    n = len(next(iter(raw.values())))
    table = pa.table({"K": [str(i) for i in range(n)], **{k: pa.array(v, pa.string()) for k, v in raw.items()}})
    return to_canonical(table, source, "run-1", AT).to_pydict()


def test_columns_are_concatenated_with_a_separator_skipping_empty_parts():
    source = people({"id_number": "SFZH", "name": {"columns": ["SURNAME", "GIVEN"], "separator": " "}})
    out = mapped(source, {"SFZH": ["x"] * 5, "SURNAME": ["Smith", "Smith", "", None, " Li "],
                          "GIVEN": ["John", None, "John", "  ", "Wei"]})
    assert out["name"] == ["Smith John", "Smith", "John", None, "Li Wei"]


def test_columns_join_without_a_separator_by_default():
    source = people({"id_number": "SFZH", "name": {"columns": ["XING", "MING"]}})
    assert mapped(source, {"SFZH": ["x", "x"], "XING": ["王", None], "MING": ["小明", None]})["name"] == ["王小明", None]


def test_a_template_leaves_no_doubled_or_dangling_separators_for_empty_parts():
    source = people({"id_number": "SFZH",
                     "residence_address": {"template": "{STREET_NO} {ADDRESS_1}, {SUBURB}"}})
    out = mapped(source, {
        "SFZH": ["x"] * 6,
        "STREET_NO": ["12", "12", "", "12", None, " 7 "],
        "ADDRESS_1": ["Main  St", "", "Main St", "Main St", None, "High St"],
        "SUBURB": ["Kew", "Kew", "Kew", "", "", "Kew"],
    })
    assert out["residence_address"] == ["12 Main St, Kew", "12, Kew", "Main St, Kew", "12 Main St", None,
                                        "7 High St, Kew"]


def test_a_template_keeps_literal_braces_and_text_around_placeholders():
    source = people({"id_number": "SFZH", "household_address": {"template": "{{{CODE}}} {ROAD}路{NO}号"}})
    out = mapped(source, {"SFZH": ["x"] * 3, "CODE": ["A1", "A1", None], "ROAD": ["中山", None, None],
                          "NO": ["5", None, None]})
    assert out["household_address"] == ["{A1} 中山路5号", "{A1}", None]


def test_a_date_assembled_from_year_month_and_day_columns():
    source = people({"id_number": "SFZH",
                     "birth_date": {"template": "{YEAR}-{MONTH}-{DAY}", "date_format": "%Y-%m-%d"},
                     "life_status_date": {"columns": ["Y", "M", "D"], "date_format": "%Y%m%d"}})
    out = mapped(source, {"SFZH": ["x"] * 3, "YEAR": ["1985", "1985", None], "MONTH": ["03", "3", None],
                          "DAY": ["15", "5", None], "Y": ["2020", "2020", None], "M": ["01", "13", None],
                          "D": ["02", "01", None]})
    assert out["birth_date"] == [dt.date(1985, 3, 15), dt.date(1985, 3, 5), None]
    assert out["life_status_date"] == [dt.date(2020, 1, 2), None, None]  # 20201301 is no date: the gate says so


def test_combined_columns_go_through_codes():
    source = people({"id_number": "SFZH", "gender": {"columns": ["XB1", "XB2"], "codes": {"男": "1", "女": "2"}}})
    assert mapped(source, {"SFZH": ["x", "x"], "XB1": ["男", None], "XB2": [None, "女"]})["gender"] == ["1", "2"]


def test_field_text_is_the_combined_text_before_codes_and_dates():
    source = people({"id_number": "SFZH", "birth_date": {"template": "{Y}年{M}月", "date_format": "%Y-%m-%d"}})
    raw = pa.table({"Y": ["1985", None], "M": ["3", None]})
    assert field_text(raw, source.fields["birth_date"]).to_pylist() == ["1985年3月", None]


def test_a_source_that_carries_no_key_delivers_records_with_the_key_null():
    source = people({"name": "XM", "gender": "XB"}, carries_key=False)
    out = mapped(source, {"XM": ["王一", "李二"], "XB": ["1", "2"]})
    assert out["id_number"] == [None, None]
    assert out["name"] == ["王一", "李二"] and out["source_record_id"] == ["0", "1"]


def test_combination_over_a_large_batch_is_right_at_every_row():
    # Speed belongs to bench/, not here: this checks that the column-wise combination keeps each row's own parts.
    n = 200_000
    source = people({"id_number": "SFZH", "name": {"columns": ["A", "B"], "separator": " "},
                     "residence_address": {"template": "{A} {B}, {C}"}})
    raw = {"SFZH": ["x"] * n, "A": [f"a{i}" for i in range(n)], "B": [None, "b"] * (n // 2), "C": ["c"] * n}
    out = mapped(source, raw)
    assert out["name"] == [f"a{i}" if i % 2 == 0 else f"a{i} b" for i in range(n)]
    assert out["residence_address"] == [f"a{i}, c" if i % 2 == 0 else f"a{i} b, c" for i in range(n)]
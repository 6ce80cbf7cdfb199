"""Every level of every configured comparison, reached by a pair of small hand-made records scored by Splink.

Both records of a pair are derived exactly as the pipeline derives candidates and entities: raw
fields in a DuckDB table, names converted by ``identity_features.name_table`` (through
``identity_data._ensure_names``), then the SELECTs of ``identity_data._columns_sql`` / ``_joins`` and ``_select``.
The pairs are scored with the configured comparisons (``identity_model.comparisons``) by a Splink
linker on an in-memory DuckDB, each pair blocked on its own number, and each ``gamma_<comparison>``
is read back as its level label (``identity_model.gamma_levels``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

from schemas.regions import current_code
from warehouse import identity_data as data
from warehouse.identity_config import COLUMNS, load_config
from warehouse.identity_model import comparisons, gamma_levels

CFG = load_config()["population"]
D = dt.date
# The raw fields ``_columns_sql`` derives the model's columns from (``a`` being the row).
RAW = (("name", "VARCHAR"), ("gender", "VARCHAR"), ("birth_date", "DATE"), ("birth_partial", "VARCHAR"),
       ("region", "VARCHAR"), ("id_body", "VARCHAR"), ("household_address", "VARCHAR"),
       ("residence_address", "VARCHAR"), ("life_status", "VARCHAR"), ("life_status_date", "DATE"))

BODY = "11010519850312001"  # an ID number's first 17 digits: 朝阳区, 1985-03-12, sequence 001 (male)


# (comparison, expected level, candidate's raw fields, entity's raw fields); unset fields are empty.
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # --- names
    ("name", "missing", {"name": None}, {"name": "张伟"}),
    ("name", "missing", {"name": "  "}, {"name": "张伟"}),
    ("name", "exact", {"name": "张伟"}, {"name": "张伟"}),
    ("name", "exact", {"name": "John Smith"}, {"name": "John Smith"}),
    ("name", "normalised", {"name": "张 伟"}, {"name": "张伟"}),
    ("name", "normalised", {"name": "张·伟"}, {"name": "张伟"}),
    ("name", "normalised", {"name": "张・伟"}, {"name": "张 伟"}),
    ("name", "normalised", {"name": "張偉"}, {"name": "张伟"}),
    ("name", "normalised", {"name": "歐陽娜娜"}, {"name": "欧阳娜娜"}),
    ("name", "normalised", {"name": "Ｊｏｈｎ　Ｓｍｉｔｈ"}, {"name": "John Smith"}),
    ("name", "normalised", {"name": "JOHN  SMITH"}, {"name": "John Smith"}),
    ("name", "normalised", {"name": "阿卜杜·热合曼"}, {"name": "阿卜杜热合曼"}),
    ("name", "same_pinyin", {"name": "张玮"}, {"name": "张伟"}),
    ("name", "same_pinyin", {"name": "章伟"}, {"name": "张伟"}),
    ("name", "same_pinyin", {"name": "Zhang Wei"}, {"name": "张伟"}),
    ("name", "same_pinyin", {"name": "ZHANG WEI"}, {"name": "張偉"}),
    # A family name read differently from its character's most common reading: 曾 zeng (not ceng), 单 shan
    # (not dan), 翟 zhai (not di), as departments romanise them (and as the sample generator does).
    ("name", "same_pinyin", {"name": "Zeng Guofan"}, {"name": "曾国藩"}),
    ("name", "same_pinyin", {"name": "SHAN TIANFANG"}, {"name": "单田芳"}),
    ("name", "same_pinyin", {"name": "Zhai Zhigang"}, {"name": "翟志刚"}),
    ("name", "swapped", {"name": "Wei Zhang"}, {"name": "Zhang Wei"}),
    ("name", "swapped", {"name": "Wei Zhang"}, {"name": "张伟"}),
    ("name", "swapped", {"name": "SMITH JOHN"}, {"name": "John Smith"}),
    ("name", "swapped", {"name": "Xiuying Wang"}, {"name": "王秀英"}),  # given name first, as one word
    ("name", "one_letter_off", {"name": "Jonathon Smith"}, {"name": "Jonathan Smith"}),
    ("name", "one_letter_off", {"name": "李敏"}, {"name": "李明"}),  # limin / liming
    ("name", "one_letter_off", {"name": "王晓敏"}, {"name": "王小明"}),  # xiao = xiao, min / ming
    ("name", "similar", {"name": "Jonathon Smyth"}, {"name": "Jonathan Smith"}),  # two letters, JW 0.94
    ("name", "similar", {"name": "Elisabeth Tailor"}, {"name": "Elizabeth Taylor"}),
    ("name", "similar", {"name": "张伟明"}, {"name": "张伟"}),  # an extra character
    ("name", "alike", {"name": "Muhammad Ali"}, {"name": "Mohammed Ali"}),  # JW 0.86
    ("name", "alike", {"name": "Shawn Murphey"}, {"name": "Sean Murphy"}),  # JW 0.895
    ("name", "part_missing", {"name": "John William Smith"}, {"name": "John Smith"}),  # a middle name left out
    ("name", "same_last_word", {"name": "Peter Smith"}, {"name": "John Smith"}),
    ("name", "same_first_word", {"name": "John Brown"}, {"name": "John Smith"}),
    ("name", "same_first_word", {"name": "李华"}, {"name": "李明"}),
    ("name", "different", {"name": "李娜"}, {"name": "张伟"}),
    ("name", "different", {"name": "Mary Jones"}, {"name": "John Smith"}),
    # --- birth date
    ("birth_date", "missing", {}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "exact", {"birth_date": D(1985, 3, 12)}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "one_digit_off", {"birth_date": D(1985, 8, 12)}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "one_digit_off", {"birth_date": D(1958, 3, 12)}, {"birth_date": D(1985, 3, 12)}),  # transposed
    ("birth_date", "one_digit_off", {"birth_date": D(1985, 3, 13)}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "day_month_swapped", {"birth_date": D(1985, 12, 3)}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "day_month_swapped", {"birth_date": D(1990, 11, 5)}, {"birth_date": D(1990, 5, 11)}),
    ("birth_date", "same_year_month", {"birth_partial": "1985-03"}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "same_year_month", {"birth_date": D(1985, 3, 1)}, {"birth_date": D(1985, 3, 28)}),
    ("birth_date", "same_year", {"birth_date": D(1985, 7, 25)}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "same_year", {"birth_partial": "1985-07"}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "different", {"birth_date": D(1990, 6, 30)}, {"birth_date": D(1985, 3, 12)}),
    ("birth_date", "different", {"birth_partial": "1986-03"}, {"birth_date": D(1985, 3, 12)}),
    # --- sex
    ("gender", "missing", {"gender": None}, {"gender": "1"}),
    ("gender", "exact", {"gender": "1"}, {"gender": "1"}),
    ("gender", "different", {"gender": "2"}, {"gender": "1"}),
    # --- region (the entity's ``id_body`` gives its ``id_region``)
    ("region", "missing", {"region": None}, {"region": "110105", "id_body": BODY}),
    ("region", "same_county", {"region": "110105"}, {"region": "110105", "id_body": BODY}),
    ("region", "same_county", {"region": "110224"}, {"region": "110115", "id_body": "32010219850312001"}),  # 大兴县 → 大兴区
    ("region", "registered_there", {"region": "110108"}, {"region": "110105", "id_body": "11010819850312001"}),
    ("region", "registered_there", {"region": "110115"}, {"region": "110105", "id_body": "11022419850312001"}),
    ("region", "same_city", {"region": "110108"}, {"region": "110105", "id_body": "32010219850312001"}),
    ("region", "same_province", {"region": "130102"}, {"region": "130202", "id_body": "32010219850312001"}),
    ("region", "different", {"region": "310101"}, {"region": "110105", "id_body": BODY}),
    # --- address (household address, and the residence address for "shared")
    ("address", "missing", {}, {"household_address": "朝阳区建国路88号"}),
    ("address", "same", {"household_address": "北京市朝阳区建国路88号"}, {"household_address": "朝阳区建国路88号"}),
    ("address", "same", {"household_address": "北京朝阳区建国路88号"}, {"household_address": "北京市朝阳区建国路88号"}),
    ("address", "same", {"household_address": "朝阳区建国路88号3幢201室"}, {"household_address": "朝阳区建国路88号3栋201室"}),
    ("address", "same", {"household_address": "朝阳区建国路88号3号楼201室"}, {"household_address": "朝阳区建国路88号3栋201室"}),
    ("address", "same", {"household_address": "朝阳区建国路８８号"}, {"household_address": "朝阳区建国路88号"}),
    ("address", "same", {"household_address": "朝阳区 建国路 88号"}, {"household_address": "朝阳区建国路88号"}),
    ("address", "same", {"household_address": "河北省石家庄市长安区中山东路1号"}, {"household_address": "长安区中山东路1号"}),
    ("address", "same", {"household_address": "新疆维吾尔自治区乌鲁木齐市天山区解放北路1号"},
     {"household_address": "天山区解放北路1号"}),
    ("address", "same", {"household_address": "广西壮族自治区南宁市青秀区民族大道1号"},
     {"household_address": "南宁市青秀区民族大道1号"}),
    ("address", "same", {"household_address": "宁夏回族自治区银川市兴庆区解放东街1号"},
     {"household_address": "兴庆区解放东街1号"}),
    ("address", "same", {"residence_address": "朝阳区建国路88号"}, {"household_address": "朝阳区建国路88号"}),
    ("address", "shared", {"household_address": "海淀区中关村大街1号"},
     {"household_address": "朝阳区建国路88号", "residence_address": "北京市海淀区中关村大街1号"}),
    ("address", "shared", {"household_address": "丰台区丰台路1号", "residence_address": "海淀区中关村大街1号"},
     {"household_address": "朝阳区建国路88号", "residence_address": "海淀区中关村大街1号"}),
    # a slip in one character, or another flat of the same building
    ("address", "similar", {"household_address": "朝阳区健国路88号3栋201室"}, {"household_address": "朝阳区建国路88号3栋201室"}),
    ("address", "similar", {"household_address": "朝阳区建国路88号3栋201室"},
     {"household_address": "朝阳区建国路88号5栋102室"}),
    # the district left out: street, number and building agree
    ("address", "most_parts", {"household_address": "建国路88号3栋201室"}, {"household_address": "朝阳区建国路88号3栋201室"}),
    ("address", "most_parts", {"household_address": "建国路88号3栋201室"}, {"household_address": "朝阳区建国路88号3栋102室"}),
    ("address", "some_parts", {"household_address": "建国路88号"}, {"household_address": "朝阳区建国路88号3栋201室"}),
    ("address", "some_parts", {"household_address": "光华路5号3栋"}, {"household_address": "朝阳区光华路7号3栋1单元"}),
    ("address", "different", {"household_address": "海淀区中关村大街1号"}, {"household_address": "朝阳区建国路88号"}),
    ("address", "different", {"household_address": "朝阳区光华路5号"}, {"household_address": "朝阳区建国路88号"}),
    # --- life event
    ("life_event", "missing", {}, {"life_status": "living"}),
    ("life_event", "same_death_date", {"life_status": "deceased", "life_status_date": D(2020, 5, 1)},
     {"life_status": "deceased", "life_status_date": D(2020, 5, 1)}),
    ("life_event", "same_status", {"life_status": "deceased", "life_status_date": D(2020, 5, 2)},
     {"life_status": "deceased", "life_status_date": D(2020, 5, 1)}),
    ("life_event", "same_status", {"life_status": "living"}, {"life_status": "living"}),
    ("life_event", "different", {"life_status": "deceased", "life_status_date": D(2020, 5, 1)}, {"life_status": "living"}),
    # --- ID digits (a candidate's ID body: what it typed, whatever its check digit)
    ("id_digits", "missing", {}, {"id_body": BODY}),
    ("id_digits", "same_body", {"id_body": BODY}, {"id_body": BODY}),
    ("id_digits", "one_digit_off", {"id_body": "11010619850312001"}, {"id_body": BODY}),  # a region digit
    ("id_digits", "one_digit_off", {"id_body": "11010519850812001"}, {"id_body": BODY}),  # a date digit
    # one sequence digit off: a neighbour born the same day in the same county, not a typing slip
    ("id_digits", "different", {"id_body": "11010519850312007"}, {"id_body": BODY}),
    ("id_digits", "different", {"id_body": "32010219900101002"}, {"id_body": BODY}),
]


def _rows(conn: duckdb.DuckDBPyConnection, table: str, records: list[dict[str, Any]]) -> None:
    """``table``: the model's columns of ``records`` (row i: unique_id ``<table>i``, pair i), derived as the pipeline does."""
    cols = ", ".join(f"{c} {t}" for c, t in RAW)
    conn.execute(f"CREATE OR REPLACE TABLE {table}_raw (unique_id VARCHAR, pair INTEGER, {cols})")
    conn.executemany(f"INSERT INTO {table}_raw VALUES (?, ?, {', '.join('?' for _ in RAW)})",
                     [[f"{table}{i}", i, *(r.get(c) for c, _ in RAW)] for i, r in enumerate(records)])
    data._ensure_names(conn, f"SELECT name FROM {table}_raw")
    # The pipeline's two steps: the columns of each row, then what Splink gets (``_select``: address parts added).
    conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT x.pair, {data._select('x')} FROM ("
                 f"SELECT r.unique_id, r.pair, {data._columns_sql('r', 'r.id_body')} "
                 f"FROM {table}_raw r {data._joins('r')}) x")


@pytest.fixture(scope="module")
def scored() -> dict[int, dict[str, str]]:
    """Case number -> comparison -> level label, every case scored by one Splink predict."""
    conn = duckdb.connect(":memory:")
    try:
        _rows(conn, "cand", [c for _, _, c, _ in CASES])
        _rows(conn, "ent", [e for _, _, _, e in CASES])
        db = DuckDBAPI(conn)
        settings = SettingsCreator(link_type="link_only", unique_id_column_name="unique_id",
                                   comparisons=comparisons(CFG), blocking_rules_to_generate_predictions=[block_on("pair")],
                                   retain_intermediate_calculation_columns=True, retain_matching_columns=True)
        linker = Linker([db.register("cand", table_name="cand_input", dataset_display_name="cand"),
                         db.register("ent", table_name="ent_input", dataset_display_name="ent")], settings, log_level=None)
        predictions = linker.inference.predict(warning_mode="never")
        named = gamma_levels(linker.misc.save_model_to_json())
        names = list(CFG.comparisons)
        rows = conn.sql(f"SELECT pair_l, pair_r, {', '.join(f'gamma_{n}' for n in names)} "
                        f"FROM {predictions.physical_name}").fetchall()
        out = {}
        for pair_l, pair_r, *gammas in rows:
            assert pair_l == pair_r
            out[pair_l] = {n: named[n][g] for n, g in zip(names, gammas, strict=True)}
        return out
    finally:
        conn.close()


def test_the_derivation_gives_every_model_column():
    conn = duckdb.connect(":memory:")
    _rows(conn, "t", [{"name": "张伟"}])
    derived = [c for c in conn.sql("SELECT * FROM t").columns if c not in ("unique_id", "pair")]
    assert sorted(derived) == sorted(COLUMNS) and len(derived) == len(COLUMNS)


def test_every_configured_level_has_a_case():
    configured = {(name, level.label) for name, levels in CFG.comparisons.items() for level in levels}
    assert configured == {(name, level) for name, level, _, _ in CASES}


def test_an_old_county_code_continues_as_its_successor():
    assert current_code("110224") == "110115"  # 大兴县 → 大兴区


@pytest.mark.parametrize(("number", "comparison", "level", "candidate", "entity"),
                         [(i, *case) for i, case in enumerate(CASES)],
                         ids=[f"{c}-{lvl}-{i}" for i, (c, lvl, _, _) in enumerate(CASES)])
def test_a_pair_lands_on_its_level(scored, number, comparison, level, candidate, entity):
    assert number in scored, "the pair was not scored"
    assert scored[number][comparison] == level, (candidate, entity, scored[number])


def test_a_level_no_sampled_pair_showed_keeps_its_weight():
    """At 10 M people no sampled pair shared an ID body: that level's u is one over the pairs sampled, not the others'."""
    from warehouse.identity_model import _settle

    model = {"probability_two_random_records_match": 1e-7, "comparisons": [{"output_column_name": "id_digits",
             "comparison_levels": [{"is_null_level": True},
                                   {"label_for_charts": "same_body", "m_probability": 0.9},
                                   {"label_for_charts": "one_digit_off", "m_probability": 0.05,
                                    "u_probability": "level not observed in training dataset"},
                                   {"label_for_charts": "different", "m_probability": 0.05, "u_probability": 1.0}]}]}
    levels = _settle(model, 0.005, 1 / 2_000_000)["comparisons"][0]["comparison_levels"]
    assert levels[1]["u_probability"] == levels[2]["u_probability"] == 5e-7
    assert levels[3]["u_probability"] == 1.0
    assert abs(sum(lvl["m_probability"] for lvl in levels[1:]) - 1) < 1e-9

"""The anchor of the identity benchmarks: Splink used directly, with an ordinary configuration, on the same records.

What a competent user of Splink would write without the hub: link-only between the records without
a usable ID number and the keyed records (one row per ID number, its newest values), comparisons
from Splink's library and SQL on the raw fields (ID number, name, birth date, sex, region, address),
a union of simple blocking rules, u by seeded random sampling, m by EM, and the best entity of each
record above the threshold. It reads the hub's working database only to get those two sets of
records, so both sides see exactly the same input; none of the hub's code or derived columns (no
pinyin, no normalisation modules).

Configuration (``_settings``, ``link``):

- Input: empty strings as NULL; a missing birth date read from the ID number's digits 7-14 (keyed
  entities known only from marriage registrations, and marriage registrations themselves, have
  none of their own); an address's digits (house, building, unit, room) as a column.
- ``id_number`` (the invalid number a record still carries, if any): same first 17 characters
  (only the check digit differs), else. No "one digit off" level: neighbours born the same day in
  the same county differ in one sequence digit, and EM learnt them as the match class.
- ``name``: exact (term-frequency adjusted); exact but for spaces and middle dots; one *character*
  inserted, dropped or replaced (DuckDB's Levenshtein and Jaro-Winkler count UTF-8 bytes: a Chinese
  character is three edits to them); the same words in another order (Latin-script names); else.
- ``birth_date``: ``cl.DateOfBirthComparison`` on the text (a partial date reads as missing).
- ``gender``: ``cl.ExactMatch``. ``region`` (GB/T 2260 code): same county, same city (first four
  digits), same province (first two), else.
- ``address``: exact; one is the end of the other (province or city left out); the same numbers;
  else. Addresses share long province / city / district prefixes: no edit distance on the text.
- Blocking (union): the ID's first 17 characters; name; birth date; region and birth year; address.
- Prior: deterministic rules (first 17 ID characters; name and birth date), recall 0.9. u: random
  sampling of 1e7 pairs, seeded. m: EM on (name, birth date), (birth date, sex) and (name, sex):
  each comparison is trained at least once (birth date by the last, name by the second), and none
  of them brings together the members of one household, which EM would learn as the match class.
- Prediction: match probability >= 0.9, the best entity of each record (highest match weight).
"""

from __future__ import annotations

import logging
import time

import duckdb
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

THRESHOLD = 0.9
last_model: dict | None = None  # the trained model of the last ``link`` (``linker.misc.save_model_to_json()``)


def _records(conn: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """SQL of the two sides: unkeyed records (from ``scored_records``' U set) and keyed entities."""
    unkeyed = """
        SELECT 'q' || q.id AS unique_id, q.source, q.source_record_id, q.record->>'$.id_number' AS id_number,
            q.record->>'$.name' AS name,
            q.record->>'$.gender' AS gender, q.record->>'$.birth_date' AS birth_date,
            q.record->>'$.household_region' AS region,
            coalesce(q.record->>'$.household_address', q.record->>'$.residence_address') AS address
        FROM quarantine q JOIN scored_records r ON r.unkeyed AND r.source = q.source
            AND r.source_record_id = q.source_record_id
        QUALIFY row_number() OVER (PARTITION BY q.source, q.source_record_id ORDER BY q.quarantined_at DESC, q.id DESC) = 1"""
    ts = "coalesce(source_updated_at, ingested_at)"
    keyed = f"""
        SELECT id_number AS unique_id, id_number, arg_max(name, {ts}) FILTER (WHERE name IS NOT NULL) AS name,
            arg_max(gender, {ts}) FILTER (WHERE gender IS NOT NULL) AS gender,
            CAST(arg_max(birth_date, {ts}) FILTER (WHERE birth_date IS NOT NULL) AS VARCHAR) AS birth_date,
            arg_max(household_region, {ts}) FILTER (WHERE household_region IS NOT NULL) AS region,
            arg_max(coalesce(household_address, residence_address), {ts})
                FILTER (WHERE coalesce(household_address, residence_address) IS NOT NULL) AS address
        FROM staging_population s WHERE id_number IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM identity_links l WHERE l.retired_at IS NULL AND l.source = s._source
                AND l.source_record_id = s.source_record_id)
        GROUP BY id_number"""
    return unkeyed, keyed


# Each side as Splink reads it: empty strings as NULL, and two columns made from the raw ones, as
# Splink's feature-engineering guide does. A resident ID number holds its holder's birth date (digits
# 7-14, GB 11643), read where a record has none of its own (marriage registrations carry none; keyed
# entities known only from them have none either); an address's numbers (house, building, unit,
# room), which survive it being written shorter or with other words, computed once per record.
_PREPARED = """SELECT unique_id, nullif(trim(id_number), '') AS id_number, nullif(trim(name), '') AS name,
    nullif(trim(gender), '') AS gender,
    coalesce(nullif(trim(birth_date), ''), strftime(try_strptime(substr(id_number, 7, 8), '%Y%m%d'), '%Y-%m-%d'))
        AS birth_date,
    nullif(trim(region), '') AS region, nullif(trim(address), '') AS address,
    nullif(regexp_replace(address, '[^0-9]', '', 'g'), '') AS address_numbers
FROM {table}"""
# Spaces (also full-width) and middle dots (·, ・, •) typed inside a name.
_NAME_MARKS = "' \u3000\u00b7\u30fb\u2022'"


def _one_character_off(col: str) -> str:
    """SQL: ``col`` on the two sides differs by one character (not byte) inserted, dropped or replaced."""
    left, right = f'"{col}_l"', f'"{col}_r"'

    def dropped(longer: str, shorter: str) -> str:
        return (f"length({longer}) = length({shorter}) + 1 AND list_contains(list_transform("
                f"range(1, length({longer}) + 1), lambda i: substr({longer}, 1, i - 1) || substr({longer}, i + 1)), "
                f"{shorter})")

    replaced = (f"length({left}) = length({right}) AND length(list_filter(range(1, length({left}) + 1), "
                f"lambda i: substr({left}, i, 1) <> substr({right}, i, 1))) = 1")
    # One edit keeps the first or the last character: a cheap test first, the lists only for the few left.
    keeps_an_end = f"(left({left}, 1) = left({right}, 1) OR right({left}, 1) = right({right}, 1))"
    return f"{keeps_an_end} AND (({replaced}) OR ({dropped(left, right)}) OR ({dropped(right, left)}))"


def _settings() -> SettingsCreator:
    id17 = 'substr("id_number_l", 1, 17) = substr("id_number_r", 1, 17)'
    return SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.CustomComparison(output_column_name="id_number", comparison_levels=[
                cll.NullLevel("id_number"),
                cll.CustomLevel(id17, "first 17 characters (all but the check digit)"),
                cll.ElseLevel(),
            ]),
            cl.CustomComparison(output_column_name="name", comparison_levels=[
                cll.NullLevel("name"),
                cll.ExactMatchLevel("name", term_frequency_adjustments=True),
                cll.CustomLevel(f'translate("name_l", {_NAME_MARKS}, \'\') = translate("name_r", {_NAME_MARKS}, \'\')',
                                "exact but for spaces and middle dots"),
                cll.CustomLevel(_one_character_off("name"), "one character inserted, dropped or replaced"),
                cll.CustomLevel("list_sort(string_split(\"name_l\", ' ')) = list_sort(string_split(\"name_r\", ' '))",
                                "same words in another order"),
                cll.ElseLevel(),
            ]),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("gender"),
            cl.CustomComparison(output_column_name="region", comparison_levels=[
                cll.NullLevel("region"),
                cll.ExactMatchLevel("region").configure(label_for_charts="same county"),
                cll.CustomLevel('substr("region_l", 1, 4) = substr("region_r", 1, 4)', "same city"),
                cll.CustomLevel('substr("region_l", 1, 2) = substr("region_r", 1, 2)', "same province"),
                cll.ElseLevel(),
            ]),
            cl.CustomComparison(output_column_name="address", comparison_levels=[
                cll.NullLevel("address"),
                cll.ExactMatchLevel("address"),
                cll.CustomLevel('ends_with("address_l", "address_r") OR ends_with("address_r", "address_l")',
                                "one is the end of the other"),
                cll.CustomLevel('"address_numbers_l" = "address_numbers_r"', "same numbers"),
                cll.ElseLevel(),
            ]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("substr(id_number, 1, 17)"), block_on("name"), block_on("birth_date"),
            block_on("region", "substr(birth_date, 1, 4)"), block_on("address"),
        ],
    )


def link(conn: duckdb.DuckDBPyConnection, seed: int = 42) -> tuple[int, float]:
    """Temp table ``anchor_links`` (source, source_record_id, entity_key, retired_at): Splink's best links; (count, seconds)."""
    global last_model
    logging.getLogger("splink").setLevel(logging.ERROR)
    unkeyed, keyed = _records(conn)
    left = conn.sql(unkeyed).to_arrow_table()
    right = conn.sql(keyed).to_arrow_table()
    started = time.perf_counter()
    mem = duckdb.connect(":memory:")
    mem.register("l_arrow", left)
    mem.register("r_arrow", right)
    mem.execute(f"CREATE TABLE unkeyed AS {_PREPARED.format(table='l_arrow')}")
    mem.execute(f"CREATE TABLE keyed AS {_PREPARED.format(table='r_arrow')}")
    db = DuckDBAPI(mem)
    sides = [db.register("unkeyed", table_name="unkeyed_input"), db.register("keyed", table_name="keyed_input")]
    linker = Linker(sides, _settings(), log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        ["substr(l.id_number, 1, 17) = substr(r.id_number, 1, 17)", block_on("name", "birth_date")], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=seed)
    for rule in (block_on("name", "birth_date"), block_on("birth_date", "gender"), block_on("name", "gender")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    last_model = linker.misc.save_model_to_json()
    pairs = linker.inference.predict(threshold_match_probability=THRESHOLD)
    best = mem.sql(f"""
        SELECT CASE WHEN source_dataset_l = 'unkeyed_input' THEN unique_id_l ELSE unique_id_r END AS u,
               CASE WHEN source_dataset_l = 'unkeyed_input' THEN unique_id_r ELSE unique_id_l END AS k, match_weight
        FROM {pairs.physical_name}
        QUALIFY row_number() OVER (PARTITION BY u ORDER BY match_weight DESC, k) = 1""").to_arrow_table()
    seconds = time.perf_counter() - started
    mem.close()
    conn.register("anchor_best", best)
    conn.register("anchor_left", left.select(["unique_id", "source", "source_record_id"]))
    conn.execute("""CREATE OR REPLACE TEMP TABLE anchor_links AS
        SELECT a.source, a.source_record_id, b.k AS entity_key, NULL::TIMESTAMPTZ AS retired_at
        FROM anchor_best b JOIN anchor_left a ON a.unique_id = b.u""")
    conn.unregister("anchor_best")
    conn.unregister("anchor_left")
    return best.num_rows, seconds

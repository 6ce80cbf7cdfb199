"""The anchor of the identity benchmarks: Splink used directly, with an ordinary configuration, on the same records.

What a competent user of Splink would write without the hub: link-only between the records without
a usable ID number and the keyed records (one row per ID number, its newest values), comparisons
from Splink's library on the raw fields (name, birth date, sex, region, address), a union of simple
blocking rules, u by seeded random sampling, m by EM on two passes, and the best entity of each
record above the threshold. It reads the hub's working database only to get those two sets of
records, so both sides see exactly the same input.
"""

from __future__ import annotations

import logging
import time

import duckdb
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

THRESHOLD = 0.9


def _records(conn: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """SQL of the two sides: unkeyed records (from ``scored_records``' U set) and keyed entities."""
    unkeyed = """
        SELECT 'q' || q.id AS unique_id, q.source, q.source_record_id, q.record->>'$.name' AS name,
            q.record->>'$.gender' AS gender, q.record->>'$.birth_date' AS birth_date,
            q.record->>'$.household_region' AS region,
            coalesce(q.record->>'$.household_address', q.record->>'$.residence_address') AS address
        FROM quarantine q JOIN scored_records r ON r.unkeyed AND r.source = q.source
            AND r.source_record_id = q.source_record_id
        QUALIFY row_number() OVER (PARTITION BY q.source, q.source_record_id ORDER BY q.quarantined_at DESC, q.id DESC) = 1"""
    ts = "coalesce(source_updated_at, ingested_at)"
    keyed = f"""
        SELECT id_number AS unique_id, arg_max(name, {ts}) FILTER (WHERE name IS NOT NULL) AS name,
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


def link(conn: duckdb.DuckDBPyConnection, seed: int = 42) -> tuple[int, float]:
    """Temp table ``anchor_links`` (source, source_record_id, entity_key, retired_at): Splink's best links; (count, seconds)."""
    logging.getLogger("splink").setLevel(logging.ERROR)
    unkeyed, keyed = _records(conn)
    left = conn.sql(unkeyed).to_arrow_table()
    right = conn.sql(keyed).to_arrow_table()
    started = time.perf_counter()
    mem = duckdb.connect(":memory:")
    mem.register("l_arrow", left)
    mem.register("r_arrow", right)
    mem.execute("CREATE TABLE unkeyed AS SELECT unique_id, name, gender, birth_date, region, address FROM l_arrow")
    mem.execute("CREATE TABLE keyed AS SELECT * FROM r_arrow")
    db = DuckDBAPI(mem)
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.NameComparison("name"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("gender"),
            cl.ExactMatch("region"),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.7]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("name", "birth_date"), block_on("name", "region"), block_on("birth_date", "region"),
            block_on("address"), block_on("name", "gender"),
        ],
    )
    sides = [db.register("unkeyed", table_name="unkeyed_input"), db.register("keyed", table_name="keyed_input")]
    linker = Linker(sides, settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match([block_on("name", "birth_date")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name", "birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date", "region"))
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

"""The two sides of identity resolution, as the model's columns: quarantined records without a usable key, and keyed entities."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from warehouse.identity_model import BLOCKING, COLUMNS

ENTITIES = "identity_entities"  # temp table: one row per key of the library's staged records
CANDIDATE_TABLE = "identity_candidates"  # temp table: the newest key-only quarantine entry of each record
# Typed ID numbers as departments write them: full-width digits and a lower-case x happen.
_FULL_WIDTH, _ASCII = "０１２３４５６７８９Ｘｘx", "0123456789XXX"


def _address_key(expr: str) -> str:
    # The same address is typed with and without its province, and with 幢 or 栋 for a building.
    return f"replace(regexp_replace({expr}, '^.{{2,8}}?(省|自治区)', ''), '幢', '栋')"


def load_candidates(conn: duckdb.DuckDBPyConnection, library: str, key: str) -> int:
    """Fill ``identity_candidates``: open or linked row entries whose every reason is about ``key``; returns how many.

    Only the newest entry of a record counts (a record delivered again is judged on its latest
    version), and an entry whose record has since been staged in a newer version is left out.
    """
    prefix = f"{key}: "
    raw = f"translate(upper(trim(record->>'$.{key}')), '{_FULL_WIDTH}', '{_ASCII}')"
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE {CANDIDATE_TABLE} AS
        WITH newest AS (
            SELECT * FROM quarantine WHERE library = ? AND stage = 'row' AND status IN ('open', 'linked')
                AND source_record_id IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY source, source_record_id ORDER BY quarantined_at DESC, id DESC) = 1
        ), typed AS (
            SELECT *, {raw} AS raw_id, TRY_CAST(record->>'$.ingested_at' AS TIMESTAMPTZ) AS record_ingested_at
            FROM newest WHERE len(reasons) > 0 AND len(list_filter(reasons, lambda r: NOT starts_with(r, '{prefix}'))) = 0
        )
        SELECT 'q' || id AS unique_id, id AS quarantine_id, source, source_record_id, run_id, status, record,
            md5(CAST(json_merge_patch(record, '{{"ingested_at": null, "run_id": null}}') AS VARCHAR)) AS record_hash,
            record->>'$.name' AS name, record->>'$.gender' AS gender,
            TRY_CAST(record->>'$.birth_date' AS DATE) AS birth_date,
            record->>'$.household_region' AS region,
            CASE WHEN regexp_full_match(raw_id, '[0-9]{{17}}[0-9X]') THEN substr(raw_id, 1, 17)
                 WHEN regexp_full_match(raw_id, '[0-9]{{15}}') THEN substr(raw_id, 1, 6) || '19' || substr(raw_id, 7, 9)
            END AS id_body,
            record->>'$.household_address' AS household_address, record->>'$.residence_address' AS residence_address,
            record->>'$.life_status' AS life_status, TRY_CAST(record->>'$.life_status_date' AS DATE) AS life_status_date
        FROM typed t
        WHERE NOT EXISTS (SELECT 1 FROM "staging_{library}" s WHERE s._source = t.source
            AND s.source_record_id = t.source_record_id AND s.ingested_at > t.record_ingested_at)
    """, [library])
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE {CANDIDATE_TABLE} AS SELECT *, substr(id_body, 1, 6) AS id_region,
            coalesce(region, substr(id_body, 1, 6)) AS block_region,
            {_address_key('household_address')} AS address_key, {_address_key('residence_address')} AS residence_key
        FROM {CANDIDATE_TABLE}""")
    return conn.execute(f"SELECT count(*) FROM {CANDIDATE_TABLE}").fetchall()[0][0]


def _id_gender(k: str) -> str:
    return f"CASE TRY_CAST(substr({k}, 17, 1) AS INTEGER) % 2 WHEN 1 THEN '1' WHEN 0 THEN '2' END"


def _id_birth(k: str) -> str:
    return f"TRY_CAST(strptime(substr({k}, 7, 8), '%Y%m%d') AS DATE)"


def count_entities(conn: duckdb.DuckDBPyConnection, library: str, key: str) -> int:
    """How many distinct valid keys ``staging_<library>`` holds."""
    return conn.execute(f'SELECT count(DISTINCT "{key}") FROM "staging_{library}"').fetchall()[0][0]


def load_entities(conn: duckdb.DuckDBPyConnection, library: str, key: str, seed: int, sample_size: int) -> int:
    """Fill ``identity_entities`` with the entities any candidate can reach, and a sample of all; returns all entities.

    One row per key, the newest non-empty value of each field. Only keys that share a blocking key
    with a candidate (judged on each staged record, a superset of what the entity-level blocking
    reaches) and about ``sample_size`` keys chosen by a hash of key and seed (``sampled``) are
    aggregated: the cost follows the candidates, not the library.
    """
    total = count_entities(conn, library, key)
    keep = 1_000_000 if total <= sample_size else max(1, round(1_000_000 * sample_size / total))
    k = f's."{key}"'
    record = (f"SELECT {k} AS k, s.name, substr({k}, 1, 17) AS id_body, {_id_birth(k)} AS birth_date, "
              f"{_id_gender(k)} AS gender, unnest([s.household_region, substr({k}, 1, 6)]) AS block_region "
              f'FROM "staging_{library}" s WHERE {k} IS NOT NULL')
    rules = " UNION ".join(
        f"SELECT r.k FROM staged_keys r SEMI JOIN {CANDIDATE_TABLE} c ON " + " AND ".join(f"r.{c} = c.{c}" for c in cols)
        for cols in BLOCKING)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE identity_needed AS WITH staged_keys AS ({record}) "
                 f"SELECT k, false AS sampled FROM ({rules}) UNION ALL "
                 f"SELECT DISTINCT \"{key}\", true FROM \"staging_{library}\" WHERE \"{key}\" IS NOT NULL "
                 "AND hash(\"" + key + "\" || ?) % 1000000 < ?", [str(seed), keep])
    ts = "coalesce(source_updated_at, ingested_at)"

    def newest(col: str) -> str:
        return f'arg_max("{col}", {ts}) FILTER (WHERE "{col}" IS NOT NULL)'

    # The ID number itself says birth date, sex and region of first registration: known for every entity.
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ENTITIES} AS
        SELECT k AS unique_id, name, coalesce({_id_gender('k')}, gender) AS gender,
            coalesce({_id_birth('k')}, birth_date) AS birth_date, region,
            substr(k, 1, 6) AS id_region, substr(k, 1, 17) AS id_body, coalesce(region, substr(k, 1, 6)) AS block_region,
            household_address, residence_address, {_address_key('household_address')} AS address_key,
            {_address_key('residence_address')} AS residence_key, life_status, life_status_date,
            k IN (SELECT k FROM identity_needed WHERE sampled) AS sampled
        FROM (
            SELECT "{key}" AS k, {newest('name')} AS name, {newest('gender')} AS gender, {newest('birth_date')} AS birth_date,
                {newest('household_region')} AS region, {newest('household_address')} AS household_address,
                {newest('residence_address')} AS residence_address,
                -- a death, once recorded by anyone, is final (as in reconciliation)
                CASE WHEN bool_or(life_status = 'deceased') THEN 'deceased' ELSE {newest('life_status')} END AS life_status,
                coalesce(max(life_status_date) FILTER (WHERE life_status = 'deceased'), {newest('life_status_date')})
                    AS life_status_date
            FROM "staging_{library}" WHERE "{key}" IN (SELECT k FROM identity_needed) GROUP BY "{key}")
    """)
    return total


def _select(alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in COLUMNS)


def blocked_entities(conn: duckdb.DuckDBPyConnection, scored: str) -> pa.Table:
    """The entities sharing a blocking key with one of the candidates in table ``scored``: all any pair can reach."""
    unions = " UNION ".join(
        f"SELECT e.unique_id FROM {ENTITIES} e SEMI JOIN {scored} c ON " + " AND ".join(f"e.{c} = c.{c}" for c in cols)
        for cols in BLOCKING)
    return conn.sql(f"SELECT {_select('e')} FROM {ENTITIES} e SEMI JOIN ({unions}) b ON e.unique_id = b.unique_id "
                    "ORDER BY e.unique_id").to_arrow_table()


def entity_sample(conn: duckdb.DuckDBPyConnection) -> pa.Table:
    """The hash-chosen sample of all entities (see ``load_entities``): the same every run, representative of all."""
    return conn.sql(f"SELECT {_select('e')} FROM {ENTITIES} e WHERE e.sampled ORDER BY e.unique_id").to_arrow_table()


def candidate_table(conn: duckdb.DuckDBPyConnection, scored: str) -> pa.Table:
    return conn.sql(f"SELECT {_select('c')} FROM {scored} c ORDER BY c.unique_id").to_arrow_table()


def name_frequencies(conn: duckdb.DuckDBPyConnection, library: str, *tables: pa.Table) -> pa.Table:
    """Each name's share among the staged records (Splink's term frequencies), for the names of ``tables``."""
    names = pa.concat_arrays([t.column("name").combine_chunks() for t in tables]) if tables else pa.array([], pa.string())
    conn.register("identity_names", pa.table({"name": names}))
    try:
        return conn.sql(f"""
            WITH wanted AS (SELECT DISTINCT name FROM identity_names WHERE name IS NOT NULL),
                 freq AS (SELECT name, count(*) AS n FROM "staging_{library}" SEMI JOIN wanted USING (name) GROUP BY name),
                 total AS (SELECT greatest(count(name), 1) AS t FROM "staging_{library}")
            SELECT w.name, coalesce(f.n, 1) / (SELECT t FROM total) AS tf_name
            FROM wanted w LEFT JOIN freq f USING (name) ORDER BY w.name""").to_arrow_table()
    finally:
        conn.unregister("identity_names")

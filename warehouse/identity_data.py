"""The two sides of identity resolution as the model's columns: quarantined records without a usable key, and keyed entities.

Both sides get the same derived columns (``warehouse.identity_config.COLUMNS``) from the same SQL,
so a comparison or a blocking rule means the same on either side. Names are converted in Python
once per distinct name and kept (``identity_name_features``): a later run converts only new names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from schemas.regions import successors
from warehouse.identity_config import COLUMNS, IdentityConfig
from warehouse.identity_features import NAME_COLUMNS, address_key_sql, address_tokens_sql, latin_words_sql, name_table

ENTITIES = "identity_entities"  # temp table: one row per key of the library's staged records, with the columns
CANDIDATE_TABLE = "identity_candidates"  # temp table: the newest eligible quarantine entry of each record
NAMES = "identity_name_features_v2"  # name -> derived name columns; the suffix changes when the derivation does
# Typed ID numbers as departments write them: full-width digits and a lower-case x happen.
_FULL_WIDTH, _ASCII = "０１２３４５６７８９Ｘｘx", "0123456789XXX"
SAMPLE_KEEP = 1_000_000  # hash buckets: an entity is sampled when hash(key, seed) % SAMPLE_KEEP < keep


def _reason_prefixes(key: str, optional: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{f}: '" for f in (key, *optional)) + "]"


def load_candidates(conn: duckdb.DuckDBPyConnection, library: str, key: str, cfg: IdentityConfig) -> int:
    """Fill ``identity_candidates``: open or linked row entries failing on ``key`` and at most the optional fields.

    Only the newest entry of a record counts (a record delivered again is judged on its latest
    version), and an entry whose record has since been staged in a newer version is left out.
    ``withheld`` lists the optional fields that failed: they are not compared and not staged.
    """
    prefixes = _reason_prefixes(key, cfg.optional_fields)
    raw = f"translate(upper(trim(record->>'$.{key}')), '{_FULL_WIDTH}', '{_ASCII}')"
    field_of = "split_part(r, ': ', 1)"
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE identity_eligible AS
        WITH newest AS (
            SELECT * FROM quarantine WHERE library = ? AND stage = 'row' AND status IN ('open', 'linked')
                AND source_record_id IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY source, source_record_id ORDER BY quarantined_at DESC, id DESC) = 1
        )
        SELECT *, {raw} AS raw_id, TRY_CAST(record->>'$.ingested_at' AS TIMESTAMPTZ) AS record_ingested_at,
            list_distinct(list_filter(list_transform(reasons, lambda r: {field_of}), lambda f: f <> '{key}')) AS withheld
        FROM newest
        WHERE len(list_filter(reasons, lambda r: starts_with(r, '{key}: '))) > 0
          AND len(list_filter(reasons, lambda r: NOT list_contains({prefixes}, {field_of} || ': '))) = 0
    """, [library])

    def kept(field: str, cast: str = "") -> str:
        value = f"record->>'$.{field}'"
        value = f"TRY_CAST({value} AS {cast})" if cast else value
        return f"CASE WHEN list_contains(withheld, '{field}') THEN NULL ELSE {value} END"

    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE identity_candidate_records AS
        SELECT 'q' || id AS unique_id, id AS quarantine_id, source, source_record_id, run_id, status, record, withheld,
            md5(CAST(json_merge_patch(record, '{{"ingested_at": null, "run_id": null}}') AS VARCHAR)) AS record_hash,
            record->>'$.name' AS name, {kept('gender')} AS gender, {kept('birth_date', 'DATE')} AS birth_date,
            record->'$._partial'->>'birth_date' AS birth_partial,
            {kept('household_region')} AS region,
            CASE WHEN regexp_full_match(raw_id, '[0-9]{{17}}[0-9X]') THEN substr(raw_id, 1, 17)
                 WHEN regexp_full_match(raw_id, '[0-9]{{15}}') THEN substr(raw_id, 1, 6) || '19' || substr(raw_id, 7, 9)
            END AS id_body,
            {kept('household_address')} AS household_address, {kept('residence_address')} AS residence_address,
            record->>'$.life_status' AS life_status, TRY_CAST(record->>'$.life_status_date' AS DATE) AS life_status_date
        FROM identity_eligible t
        WHERE NOT EXISTS (SELECT 1 FROM "staging_{library}" s WHERE s._source = t.source
            AND s.source_record_id = t.source_record_id AND s.ingested_at > t.record_ingested_at)
    """)
    _ensure_names(conn, "SELECT name FROM identity_candidate_records")
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE {CANDIDATE_TABLE} AS
        SELECT c.unique_id, c.quarantine_id, c.source, c.source_record_id, c.run_id, c.status, c.record, c.withheld,
            c.record_hash, {_columns_sql('c', 'c.id_body')}
        FROM identity_candidate_records c {_joins('c')}""")
    return conn.execute(f"SELECT count(*) FROM {CANDIDATE_TABLE}").fetchall()[0][0]


def _ensure_names(conn: duckdb.DuckDBPyConnection, names_sql: str) -> None:
    """Convert the names of ``names_sql`` not converted yet (``identity_name_features``); load the region successors."""
    columns = ", ".join(f'"{c}" VARCHAR' for c in NAME_COLUMNS)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {NAMES} (name VARCHAR PRIMARY KEY, {columns})")
    new = conn.sql(f"SELECT DISTINCT name FROM ({names_sql}) n WHERE name IS NOT NULL "
                   f"AND NOT EXISTS (SELECT 1 FROM {NAMES} f WHERE f.name = n.name)").to_arrow_table()
    if new.num_rows:
        conn.register("identity_new_names", name_table(new.column("name").combine_chunks()))
        try:
            conn.execute(f"INSERT INTO {NAMES} SELECT * FROM identity_new_names")
        finally:
            conn.unregister("identity_new_names")
    # Today's region codes (``_joins``), loaded once per connection.
    if conn.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = 'identity_successors'"
                    ).fetchall()[0][0]:
        return
    conn.register("identity_successors_arrow", pa.table({"code": list(successors()), "current": list(successors().values())}))
    try:
        conn.execute("CREATE TEMP TABLE identity_successors AS SELECT * FROM identity_successors_arrow")
    finally:
        conn.unregister("identity_successors_arrow")


def _joins(alias: str) -> str:
    return (f"LEFT JOIN {NAMES} n ON n.name = {alias}.name "
            f"LEFT JOIN identity_successors s1 ON s1.code = {alias}.region "
            f"LEFT JOIN identity_successors s2 ON s2.code = substr({alias}.id_body, 1, 6)")


def _columns_sql(a: str, id_body: str) -> str:
    """The derived columns (``COLUMNS``) of rows ``a`` with raw fields and names joined as ``n``, regions as ``s1``/``s2``."""
    keys = (f"{address_key_sql(f'{a}.household_address')}", f"{address_key_sql(f'{a}.residence_address')}")
    region = f"coalesce(s1.current, {a}.region)"
    partial = f"{a}.birth_partial"
    return ", ".join([
        f"{a}.name", *(f"n.{c}" for c in NAME_COLUMNS), "string_split(n.name_pinyin, ' ') AS name_words",
        f"{a}.birth_date", f"strftime({a}.birth_date, '%Y%m%d') AS birth_text",
        f"coalesce(strftime({a}.birth_date, '%Y-%m'), CASE WHEN length({partial}) = 7 THEN {partial} END) AS birth_ym",
        f"coalesce(year({a}.birth_date), TRY_CAST(substr({partial}, 1, 4) AS INTEGER)) AS birth_year",
        f"coalesce(month({a}.birth_date), TRY_CAST(substr({partial}, 6, 2) AS INTEGER)) AS birth_month",
        f"day({a}.birth_date) AS birth_day", f"{a}.gender",
        f"{region} AS region", f"coalesce(s2.current, substr({id_body}, 1, 6)) AS id_region",
        f"substr({region}, 1, 4) AS city", f"substr({region}, 1, 2) AS province",
        f"{id_body} AS id_body", f"substr({id_body}, 1, 9) AS id_head", f"substr({id_body}, 10, 8) AS id_tail",
        f"coalesce({keys[0]}, {keys[1]}) AS address_key", f"{keys[1]} AS residence_key",
        f"{a}.household_address", f"{a}.residence_address",
        f"{a}.life_status", f"{a}.life_status_date",
    ])


def count_entities(conn: duckdb.DuckDBPyConnection, library: str, key: str) -> int:
    """How many distinct valid keys ``staging_<library>`` holds."""
    return conn.execute(f'SELECT count(DISTINCT "{key}") FROM "staging_{library}"').fetchall()[0][0]


def _id_gender(k: str) -> str:
    return f"CASE TRY_CAST(substr({k}, 17, 1) AS INTEGER) % 2 WHEN 1 THEN '1' WHEN 0 THEN '2' END"


def _id_birth(k: str) -> str:
    return f"TRY_CAST(strptime(substr({k}, 7, 8), '%Y%m%d') AS DATE)"


def load_entities(conn: duckdb.DuckDBPyConnection, library: str, key: str, seed: int, sample_size: int) -> int:
    """Fill ``identity_entities``: every valid key, the newest non-empty value of each field, the columns; returns how many.

    The ID number itself says birth date, sex and region of first registration: known for every
    entity. About ``sample_size`` keys, chosen by a hash of key and seed, are ``sampled`` (training).
    """
    ts = "coalesce(source_updated_at, ingested_at)"

    def newest(col: str) -> str:
        return f'arg_max("{col}", {ts}) FILTER (WHERE "{col}" IS NOT NULL)'

    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE identity_entity_records AS
        SELECT "{key}" AS k, {newest('name')} AS name, {newest('gender')} AS gender,
            {newest('household_region')} AS region, {newest('household_address')} AS household_address,
            {newest('residence_address')} AS residence_address,
            -- a death, once recorded by anyone, is final (as in reconciliation)
            CASE WHEN bool_or(life_status = 'deceased') THEN 'deceased' ELSE {newest('life_status')} END AS life_status,
            coalesce(max(life_status_date) FILTER (WHERE life_status = 'deceased'), {newest('life_status_date')})
                AS life_status_date
        FROM "staging_{library}" s WHERE "{key}" IS NOT NULL
            -- records staged by an identity link are not evidence about their entity: the model's
            -- inputs must not depend on what an earlier run linked
            AND NOT EXISTS (SELECT 1 FROM identity_links l WHERE l.retired_at IS NULL AND l.library = ?
                            AND l.source = s._source AND l.source_record_id = s.source_record_id)
        GROUP BY "{key}"
    """, [library])
    total = conn.execute("SELECT count(*) FROM identity_entity_records").fetchall()[0][0]
    keep = SAMPLE_KEEP if total <= sample_size else max(1, round(SAMPLE_KEEP * sample_size / total))
    _ensure_names(conn, "SELECT name FROM identity_entity_records")
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ENTITIES} AS
        SELECT e.k AS unique_id, {_columns_sql('e', 'e.id_body')},
            hash(e.k || ?) % {SAMPLE_KEEP} < ? AS sampled
        FROM (SELECT r.* EXCLUDE (gender, region), coalesce({_id_gender('r.k')}, r.gender) AS gender,
                     coalesce(r.region, substr(r.k, 1, 6)) AS region,
                     {_id_birth('r.k')} AS birth_date, NULL::VARCHAR AS birth_partial, substr(r.k, 1, 17) AS id_body
              FROM identity_entity_records r) e {_joins('e')}
    """, [str(seed), keep])
    conn.execute("DROP TABLE identity_entity_records")
    return total


def count_comparisons(conn: duckdb.DuckDBPyConnection, rules: tuple[tuple[str, ...], ...]) -> list[dict[str, Any]]:
    """Per blocking rule: the candidate × entity pairs it makes (exact, from the sizes of its blocks)."""
    out = []
    for rule in rules:
        cols = ", ".join(f'"{c}"' for c in rule)
        nonnull = " AND ".join(f'"{c}" IS NOT NULL' for c in rule)
        (n,) = conn.execute(f"""
            SELECT coalesce(sum(c.n * e.n), 0)::BIGINT FROM
                (SELECT {cols}, count(*) AS n FROM {CANDIDATE_TABLE} WHERE {nonnull} GROUP BY ALL) c
            JOIN (SELECT {cols}, count(*) AS n FROM {ENTITIES} WHERE {nonnull} GROUP BY ALL) e USING ({cols})
        """).fetchall()[0]
        out.append({"rule": list(rule), "comparisons": int(n)})
    return out


def _blocked_sql(rules: list[tuple[str, ...]]) -> str:
    unions = " UNION ".join(
        f"SELECT e.unique_id FROM {ENTITIES} e SEMI JOIN {CANDIDATE_TABLE} c ON "
        + " AND ".join(f'e."{col}" = c."{col}"' for col in rule) for rule in rules) or "SELECT NULL AS unique_id WHERE false"
    return (f"SELECT {_select('e')} FROM {ENTITIES} e SEMI JOIN ({unions}) b ON e.unique_id = b.unique_id "
            "ORDER BY e.unique_id")


def blocked_entities(conn: duckdb.DuckDBPyConnection, rules: list[tuple[str, ...]]) -> pa.Table:
    """The entities some rule puts beside a candidate: all any scored pair can reach."""
    return conn.sql(_blocked_sql(rules)).to_arrow_table()


def write_blocked_entities(conn: duckdb.DuckDBPyConnection, rules: list[tuple[str, ...]], path: Path) -> int:
    """``blocked_entities`` written to a Parquet file (millions of rows at 10 M people); returns how many."""
    conn.execute(f"COPY ({_blocked_sql(rules)}) TO '{path}' (FORMAT parquet)")
    return conn.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()[0][0]


def _tokens(a: str) -> str:
    """SQL: the address parts of rows ``a`` (computed only for the rows Splink gets: they cost a regex each)."""
    tokens = (f"list_distinct(list_concat({address_tokens_sql(f'{a}.address_key')}, "
              f"{address_tokens_sql(f'{a}.residence_key')}, "
              f"{latin_words_sql(f'{a}.household_address')}, {latin_words_sql(f'{a}.residence_address')}))")
    return f"CASE WHEN len({tokens}) > 0 THEN {tokens} END AS address_tokens"


def _select(alias: str) -> str:
    return ", ".join([f"{alias}.unique_id", *(_tokens(alias) if c == "address_tokens" else f'{alias}."{c}"'
                                              for c in COLUMNS)])


def write_entity_sample(conn: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The hash-chosen sample of all entities (see ``load_entities``), written to a Parquet file; returns how many."""
    conn.execute(f"COPY (SELECT {_select('e')} FROM {ENTITIES} e WHERE e.sampled ORDER BY e.unique_id) TO '{path}' "
                 "(FORMAT parquet)")
    return conn.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()[0][0]


def candidate_table(conn: duckdb.DuckDBPyConnection, where: str = "true") -> pa.Table:
    """The candidates' model columns (those matching ``where``, alias ``c``)."""
    return conn.sql(f"SELECT {_select('c')} FROM {CANDIDATE_TABLE} c WHERE {where} ORDER BY c.unique_id").to_arrow_table()


def frequencies(conn: duckdb.DuckDBPyConnection, column: str, *tables: pa.Table | Path) -> pa.Table:
    """Each value's share among all entities (Splink's term frequencies), for the values in ``tables`` (or files)."""
    arrays = [conn.sql(f'SELECT "{column}" FROM read_parquet(?)', params=[str(t)]).to_arrow_table().column(0)
              if isinstance(t, Path) else t.column(column) for t in tables]
    values = pa.concat_arrays([a.combine_chunks() for a in arrays])
    conn.register("identity_tf_values", pa.table({column: values}))
    try:
        return conn.sql(f"""
            WITH wanted AS (SELECT DISTINCT "{column}" FROM identity_tf_values WHERE "{column}" IS NOT NULL),
                 freq AS (SELECT "{column}", count(*) AS n FROM {ENTITIES} SEMI JOIN wanted USING ("{column}") GROUP BY 1),
                 total AS (SELECT greatest(count("{column}"), 1) AS t FROM {ENTITIES})
            SELECT w."{column}", coalesce(f.n, 1) / (SELECT t FROM total) AS "tf_{column}"
            FROM wanted w LEFT JOIN freq f USING ("{column}") ORDER BY 1""").to_arrow_table()
    finally:
        conn.unregister("identity_tf_values")

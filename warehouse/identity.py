"""Identity resolution: quarantined records whose only fault is their key, linked by Splink to entities with a valid key.

Called before ``build_golden``. For one library, each run:

1. takes the newest quarantine entry of every record whose only failed rules concern the key (ID
   number empty or invalid) and that is open or already linked;
2. applies the stewards' overrides first (``identity_overrides``: this record *is* entity K, *is
   not* entity K, or is no entity at all), so an override survives every later run;
3. keeps every earlier link whose record is unchanged (same content hash) and not overridden;
4. scores the rest with Splink against the entities of ``staging_<library>``, shares each record's
   probability out over its candidates and "no entity" (``_posteriors``), and links a record to its
   best entity when that probability reaches the configured threshold and the second-best entity is
   far enough behind (``warehouse/config/identity.yaml``);
5. stores every link with its weight, probability and the comparisons that decided it
   (``identity_links``), stages the linked record with its key filled in (replacing the source's
   earlier version), and marks its quarantine entry ``linked`` with a note naming the link; records
   below the threshold stay open, their best candidate recorded in ``identity_near_misses``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from schemas import LIBRARIES
from schemas.derive import duckdb_type
from warehouse import db
from warehouse import identity_data as data
from warehouse.identity_config import IdentityConfig, load_config
from warehouse.identity_model import Model, cluster, match, tf_columns
from warehouse.staging import merge

SPLINK = "splink"
MERGE, SPLIT, NONE = "merge", "split", "none"
LINKED = "linked"
SAMPLE_SIZE = 200_000  # entities the u probabilities are trained on

SCHEMA = [
    "CREATE SEQUENCE IF NOT EXISTS identity_link_id START 1",
    # Every link ever made; the current ones have no ``retired_at``. ``comparisons``: per comparison
    # its level, weight (log2 Bayes factor) and Bayes factor, as JSON. ``decided_by``: splink or the steward.
    """CREATE TABLE IF NOT EXISTS identity_links (
        id BIGINT DEFAULT nextval('identity_link_id'), library VARCHAR, source VARCHAR, source_record_id VARCHAR,
        quarantine_id BIGINT, record_hash VARCHAR, entity_key VARCHAR, match_weight DOUBLE, match_probability DOUBLE,
        comparisons JSON, decided_by VARCHAR, decided_at TIMESTAMPTZ, run_id VARCHAR,
        retired_at TIMESTAMPTZ, retired_reason VARCHAR)""",
    # The records left in quarantine at the last run, with their best candidate: what stewards review.
    """CREATE TABLE IF NOT EXISTS identity_near_misses (
        library VARCHAR, source VARCHAR, source_record_id VARCHAR, quarantine_id BIGINT, entity_key VARCHAR,
        match_weight DOUBLE, match_probability DOUBLE, second_weight DOUBLE, reason VARCHAR, comparisons JSON,
        run_id VARCHAR, scored_at TIMESTAMPTZ)""",
    # The model each run trained: Splink's settings (m, u, prior, comparisons, blocking) and what training saw.
    """CREATE TABLE IF NOT EXISTS identity_models (
        library VARCHAR, run_id VARCHAR, trained_at TIMESTAMPTZ, settings JSON, training JSON)""",
    # Records matched to no entity but to each other (Splink's clustering): one steward case per cluster.
    """CREATE TABLE IF NOT EXISTS identity_clusters (
        library VARCHAR, cluster_id VARCHAR, source VARCHAR, source_record_id VARCHAR, quarantine_id BIGINT,
        size INTEGER, run_id VARCHAR, clustered_at TIMESTAMPTZ)""",
    "CREATE SEQUENCE IF NOT EXISTS identity_override_id START 1",
    # Stewards' decisions, applied in order before automatic matching on every run.
    """CREATE TABLE IF NOT EXISTS identity_overrides (
        id BIGINT DEFAULT nextval('identity_override_id'), library VARCHAR, source VARCHAR,
        source_record_id VARCHAR, action VARCHAR, entity_key VARCHAR, decided_by VARCHAR,
        decided_at TIMESTAMPTZ DEFAULT now(), note VARCHAR)""",
]
db.declare("identity", SCHEMA)


@dataclass(frozen=True)
class IdentityResult:
    """What one run did for one library."""

    library: str
    run_id: str
    candidates: int = 0  # records without a usable key considered
    entities: int = 0  # keyed entities they were matched against
    linked: int = 0  # records linked after the run
    new_links: int = 0  # of which linked (or re-linked) by this run
    kept: int = 0  # links of earlier runs kept as they were
    by_steward: int = 0  # links a steward's merge decided
    near_misses: int = 0  # left in quarantine with a best candidate
    unlinked: int = 0  # earlier links retired (content changed, override, record superseded)
    seconds: float = 0.0


def _config(library: str, config: IdentityConfig | Path | None) -> IdentityConfig | None:
    if isinstance(config, IdentityConfig):
        return config
    return load_config(config).get(library)


def resolve_identities(conn: duckdb.DuckDBPyConnection, library: str, config: IdentityConfig | Path | None = None,
                       *, run_id: str | None = None) -> IdentityResult:
    """Link the library's key-only quarantined records to keyed entities; see the module docstring."""
    started = time.perf_counter()
    run_id = run_id or f"identity-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    cfg = _config(library, config)
    lib = LIBRARIES[library]
    if cfg is None:  # no model configured for this library: nothing is matched
        return IdentityResult(library, run_id)
    candidates = data.load_candidates(conn, library, lib.key, cfg)
    conn.execute("BEGIN")
    try:
        unlinked = _retire_vanished(conn, library)
        _load_overrides(conn, library)
        unlinked += _retire_changed(conn, library)
        if candidates:
            entities = data.load_entities(conn, library, lib.key, cfg.seed, SAMPLE_SIZE)
            model, pairs = _score(conn, cfg, entities)
        else:
            entities, model, pairs = data.count_entities(conn, library, lib.key), None, pa.table({})
        _decide(conn, cfg, pairs, model, entities)
        clusters = _cluster(conn, cfg, model, library, run_id)
        new = _write(conn, library, run_id)
        if model is not None:
            conn.execute("INSERT INTO identity_models VALUES (?, ?, now(), ?, ?)",
                         [library, run_id, json.dumps(model.settings), json.dumps({**model.training, "clusters": clusters})])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    counts = conn.execute(
        "SELECT count(*) FILTER (WHERE retired_at IS NULL), count(*) FILTER (WHERE retired_at IS NULL AND run_id = ?), "
        "count(*) FILTER (WHERE retired_at IS NULL AND decided_by <> ?) FROM identity_links WHERE library = ?",
        [run_id, SPLINK, library]).fetchall()[0]
    (misses,) = conn.execute("SELECT count(*) FROM identity_near_misses WHERE library = ?", [library]).fetchall()[0]
    return IdentityResult(library, run_id, candidates, entities, counts[0], new, counts[0] - counts[1], counts[2],
                          misses, unlinked, round(time.perf_counter() - started, 3))


def _retire(conn: duckdb.DuckDBPyConnection, where: str, reason: str, params: list) -> int:
    """Retire the current links matching ``where`` (alias ``l``): their staged record leaves staging, their entry reopens."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE identity_retired AS SELECT l.* FROM identity_links l "
                 f"WHERE l.retired_at IS NULL AND {where}", params)
    (n,) = conn.execute("SELECT count(*) FROM identity_retired").fetchall()[0]
    if not n:
        return 0
    conn.execute("UPDATE identity_links SET retired_at = now(), retired_reason = ? "
                 "WHERE id IN (SELECT id FROM identity_retired)", [reason])
    return n


def _reopen_and_unstage(conn: duckdb.DuckDBPyConnection, library: str, note: str) -> None:
    """The retired links' records: out of staging (only the version the link put there), entry open again."""
    conn.execute(f'DELETE FROM "staging_{library}" s USING identity_retired r, quarantine q '
                 f"WHERE q.id = r.quarantine_id AND s._source = r.source AND s.source_record_id = r.source_record_id "
                 f"AND s.\"{LIBRARIES[library].key}\" = r.entity_key "
                 "AND s.ingested_at <= TRY_CAST(q.record->>'$.ingested_at' AS TIMESTAMPTZ)")
    conn.execute("UPDATE quarantine SET status = 'open', decided_by = NULL, decided_at = NULL, note = ? "
                 "WHERE status = 'linked' AND id IN (SELECT quarantine_id FROM identity_retired)", [note])


def _retire_vanished(conn: duckdb.DuckDBPyConnection, library: str) -> int:
    """Links whose record is no longer a candidate (a newer version passed the gate, or the entry was closed)."""
    n = _retire(conn, f"l.library = ? AND NOT EXISTS (SELECT 1 FROM {data.CANDIDATE_TABLE} c "
                      "WHERE c.source = l.source AND c.source_record_id = l.source_record_id)",
                "record superseded", [library])
    if n:
        _reopen_and_unstage(conn, library, "")
        conn.execute("UPDATE quarantine SET status = 'superseded', decided_by = 'pipeline', decided_at = now(), "
                     "note = 'a later version of the record was staged' "
                     "WHERE status = 'open' AND id IN (SELECT quarantine_id FROM identity_retired)")
    return n


def _load_overrides(conn: duckdb.DuckDBPyConnection, library: str) -> None:
    """``identity_assigned`` (record -> merge K or none) and ``identity_excluded`` (record, K) from the overrides in order."""
    assigned: dict[tuple[str, str], tuple[str, str | None, str]] = {}
    excluded: dict[tuple[str, str], set[str]] = {}
    for source, record, action, key, by in conn.execute(
            "SELECT source, source_record_id, action, entity_key, decided_by FROM identity_overrides "
            "WHERE library = ? ORDER BY decided_at, id", [library]).fetchall():
        rec = (source, record)
        if action == MERGE:
            assigned[rec] = (MERGE, key, by)
            excluded.get(rec, set()).discard(key)
        elif action == SPLIT:
            excluded.setdefault(rec, set()).add(key)
            if assigned.get(rec, (None, None, None))[1] == key:
                del assigned[rec]
        elif action == NONE:
            assigned[rec] = (NONE, None, by)
    conn.register("assigned_arrow", pa.table({
        "source": [s for s, _ in assigned], "source_record_id": [r for _, r in assigned],
        "action": [a for a, _, _ in assigned.values()], "entity_key": [k for _, k, _ in assigned.values()],
        "decided_by": [b for _, _, b in assigned.values()]}, schema=pa.schema([
            ("source", pa.string()), ("source_record_id", pa.string()), ("action", pa.string()),
            ("entity_key", pa.string()), ("decided_by", pa.string())])))
    pairs = [(s, r, k) for (s, r), keys in excluded.items() for k in sorted(keys)]
    conn.register("excluded_arrow", pa.table({"source": [p[0] for p in pairs], "source_record_id": [p[1] for p in pairs],
                                               "entity_key": [p[2] for p in pairs]},
                                              schema=pa.schema([("source", pa.string()), ("source_record_id", pa.string()),
                                                                ("entity_key", pa.string())])))
    try:
        conn.execute("CREATE OR REPLACE TEMP TABLE identity_assigned AS SELECT * FROM assigned_arrow")
        conn.execute("CREATE OR REPLACE TEMP TABLE identity_excluded AS SELECT * FROM excluded_arrow")
    finally:
        conn.unregister("assigned_arrow")
        conn.unregister("excluded_arrow")


def _retire_changed(conn: duckdb.DuckDBPyConnection, library: str) -> int:
    """Links that no longer hold: the record's content changed, or a steward decided otherwise."""
    n = _retire(conn, f"""l.library = ? AND (
        EXISTS (SELECT 1 FROM {data.CANDIDATE_TABLE} c WHERE c.source = l.source
                AND c.source_record_id = l.source_record_id AND c.record_hash IS DISTINCT FROM l.record_hash)
        OR EXISTS (SELECT 1 FROM identity_excluded x WHERE x.source = l.source
                   AND x.source_record_id = l.source_record_id AND x.entity_key = l.entity_key)
        OR EXISTS (SELECT 1 FROM identity_assigned a WHERE a.source = l.source AND a.source_record_id = l.source_record_id
                   AND (a.action = 'none' OR a.entity_key IS DISTINCT FROM l.entity_key OR a.decided_by <> l.decided_by))
        OR (l.decided_by <> '{SPLINK}' AND NOT EXISTS (SELECT 1 FROM identity_assigned a WHERE a.source = l.source
                   AND a.source_record_id = l.source_record_id)))""",
                "content changed or a steward decided otherwise", [library])
    if n:
        _reopen_and_unstage(conn, library, "identity link retired: the record changed or a steward decided otherwise")
    return n


def _score(conn: duckdb.DuckDBPyConnection, cfg: IdentityConfig, entities: int) -> tuple[Model | None, pa.Table]:
    """Splink's pairs for every candidate (trained on all of them, so a run's weights do not depend on what was linked).

    Each blocking rule's comparisons are counted first; a rule over either bound of ``blocking`` is left out.
    """
    counts = data.count_comparisons(conn, cfg.blocking_rules)
    (n_candidates,) = conn.execute(f"SELECT count(*) FROM {data.CANDIDATE_TABLE}").fetchone()
    for c in counts:
        c["used"] = cfg.admits(c["comparisons"], n_candidates)
    rules = [tuple(c["rule"]) for c in counts if c["used"]]
    with tempfile.TemporaryDirectory(prefix="hub-identity-") as tmp:
        blocked, sample = Path(tmp) / "blocked.parquet", Path(tmp) / "sample.parquet"
        n_blocked = data.write_blocked_entities(conn, rules, blocked)
        if not n_blocked:
            return None, pa.table({})
        n_sample = data.write_entity_sample(conn, sample)
        candidates = data.candidate_table(conn)
        tf = {col: data.frequencies(conn, col, candidates, blocked, sample) for col in tf_columns(cfg)}
        model, pairs = match(cfg, candidates, sample, blocked, tf, entities, rules)
    return Model(model.settings, model.levels, {**model.training, "blocking": counts, "candidates": candidates.num_rows,
                                                 "blocked_entities": n_blocked, "sample": n_sample}), pairs


def _cluster(conn: duckdb.DuckDBPyConnection, cfg: IdentityConfig, model: Model | None, library: str,
             run_id: str) -> int:
    """Records matched to no entity that match each other: one steward case per cluster (``identity_clusters``)."""
    conn.execute("DELETE FROM identity_clusters WHERE library = ?", [library])
    if model is None:
        return 0
    records = data.candidate_table(conn, "c.unique_id IN (SELECT unique_id FROM identity_decisions "
                                         "WHERE decision IN ('no candidate', 'below threshold'))")
    if records.num_rows < 2:
        return 0
    rules = [tuple(c["rule"]) for c in model.training["blocking"] if c["used"]]
    tf = {col: data.frequencies(conn, col, records) for col in tf_columns(cfg)}
    clusters = cluster(model, records, tf, cfg.threshold_match_probability, rules)
    conn.register("identity_clusters_arrow", clusters)
    try:
        conn.execute(f"""
            INSERT INTO identity_clusters
            SELECT ?, 'c-' || k.cluster_id, c.source, c.source_record_id, c.quarantine_id, k.size, ?, now()
            FROM (SELECT unique_id, cluster_id, count(*) OVER (PARTITION BY cluster_id) AS size
                  FROM identity_clusters_arrow) k
            JOIN {data.CANDIDATE_TABLE} c USING (unique_id) WHERE k.size > 1""", [library, run_id])
    finally:
        conn.unregister("identity_clusters_arrow")
    return conn.execute("SELECT count(DISTINCT cluster_id) FROM identity_clusters WHERE library = ?",
                        [library]).fetchall()[0][0]


def _posteriors(conn: duckdb.DuckDBPyConnection, model: Model, entities: int) -> float:
    """Each pair's ``match_probability``: how likely the record is this entity, given all of its candidates.

    Splink's probability weighs one pair against "anything else", as if every other entity were as
    likely as a random one. Here the other candidates have been scored: with ``s_k`` the Bayes factor
    of the record's candidate ``k`` over the number of entities, and ``pi`` the share of records that
    have an entity at all, the record is entity ``j`` with probability
    ``pi * s_j / (pi * sum(s_k) + 1 - pi)``. ``pi`` is estimated from the records themselves (the
    mean of that sum over all candidates, iterated to its fixed point, starting from the prior).
    Two namesakes born the same day each get at most one half. Returns ``pi``.
    """
    offset = model.prior_weight + math.log2(max(entities, 1))
    conn.execute("UPDATE identity_pairs SET match_probability = pow(2, least(match_weight - ?, 1000))", [offset])
    sums = np.array([v for (v,) in conn.execute(
        f"SELECT coalesce(sum(p.match_probability), 0) FROM {data.CANDIDATE_TABLE} c "
        "LEFT JOIN identity_pairs p ON p.candidate = c.unique_id GROUP BY c.unique_id ORDER BY 1").fetchall()], dtype=float)
    p = model.settings["probability_two_random_records_match"]
    pi = min(max(p * entities, 0.01), 0.99)
    for _ in range(50):
        pi = float(np.clip(np.mean(pi * sums / (pi * sums + 1 - pi)), 0.01, 0.99)) if len(sums) else pi
    # Rounded, like the model's parameters: the order in which threads add up sums must not change a decision.
    pi = float(f"{pi:.12g}")
    conn.execute("UPDATE identity_pairs p SET match_probability = round(? * p.match_probability / (? * t.total + 1 - ?), 12) "
                 "FROM (SELECT candidate, sum(match_probability) AS total FROM identity_pairs GROUP BY 1) t "
                 "WHERE t.candidate = p.candidate", [pi, pi, pi])
    return pi


def _decide(conn: duckdb.DuckDBPyConnection, cfg: IdentityConfig, pairs: pa.Table, model: Model | None,
            entities: int) -> None:
    """``identity_decisions``: per candidate, keep / merge / none / link / near miss, with the entity and evidence."""
    if pairs.num_rows:
        conn.register("pairs_arrow", pairs)
        # A steward's "not entity K" removes K before the record's probabilities are shared out.
        conn.execute(f"""CREATE OR REPLACE TEMP TABLE identity_pairs AS SELECT p.* FROM pairs_arrow p
            JOIN {data.CANDIDATE_TABLE} c ON c.unique_id = p.candidate
            WHERE NOT EXISTS (SELECT 1 FROM identity_excluded x WHERE x.source = c.source
                              AND x.source_record_id = c.source_record_id AND x.entity_key = p.entity_key)""")
        conn.unregister("pairs_arrow")
        if model is not None:
            model.training["share_with_entity"] = round(_posteriors(conn, model, entities), 6)
    else:
        conn.execute("CREATE OR REPLACE TEMP TABLE identity_pairs (candidate VARCHAR, entity_key VARCHAR, "
                     "match_weight DOUBLE, match_probability DOUBLE, comparisons JSON)")
    # A steward's "not entity K" removes K before the best entity is chosen; ties go to the lower key.
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE identity_best AS
        SELECT p.*, row_number() OVER w AS rank, lead(p.match_weight) OVER w AS second_weight
        FROM identity_pairs p JOIN {data.CANDIDATE_TABLE} c ON c.unique_id = p.candidate
        WHERE NOT EXISTS (SELECT 1 FROM identity_excluded x WHERE x.source = c.source
                          AND x.source_record_id = c.source_record_id AND x.entity_key = p.entity_key)
        WINDOW w AS (PARTITION BY p.candidate ORDER BY p.match_weight DESC, p.entity_key)""")
    conn.execute("DELETE FROM identity_best WHERE rank > 1")
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE identity_decisions AS
        SELECT c.unique_id, c.quarantine_id, c.source, c.source_record_id, c.record_hash, c.withheld,
            CASE WHEN l.id IS NOT NULL THEN 'keep' WHEN a.action = 'merge' THEN 'merge' WHEN a.action = 'none' THEN 'none'
                 WHEN b.candidate IS NULL THEN 'no candidate'
                 WHEN b.match_probability < ? THEN 'below threshold'
                 WHEN b.second_weight IS NOT NULL AND b.match_weight - b.second_weight < ? THEN 'ambiguous'
                 ELSE 'link' END AS decision,
            CASE WHEN a.action = 'merge' THEN a.entity_key ELSE b.entity_key END AS entity_key,
            coalesce(a.decided_by, '{SPLINK}') AS decided_by, b.second_weight
        FROM {data.CANDIDATE_TABLE} c
        LEFT JOIN identity_links l ON l.retired_at IS NULL AND l.source = c.source AND l.source_record_id = c.source_record_id
        LEFT JOIN identity_assigned a ON a.source = c.source AND a.source_record_id = c.source_record_id
        LEFT JOIN identity_best b ON b.candidate = c.unique_id""",
                 [cfg.threshold_match_probability, cfg.min_margin_weight])


def _write(conn: duckdb.DuckDBPyConnection, library: str, run_id: str) -> int:
    """Store the new links, stage their records, mark their entries; record the near misses. Returns the new links."""
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE identity_new AS
        SELECT nextval('identity_link_id') AS id, d.*, p.match_weight, p.match_probability, p.comparisons
        FROM identity_decisions d LEFT JOIN identity_pairs p ON p.candidate = d.unique_id AND p.entity_key = d.entity_key
        WHERE d.decision IN ('link', 'merge')""")
    conn.execute("INSERT INTO identity_links (id, library, source, source_record_id, quarantine_id, record_hash, "
                 "entity_key, match_weight, match_probability, comparisons, decided_by, decided_at, run_id) "
                 "SELECT id, ?, source, source_record_id, quarantine_id, record_hash, entity_key, match_weight, "
                 "match_probability, comparisons, decided_by, now(), ? FROM identity_new", [library, run_id])
    (new,) = conn.execute("SELECT count(*) FROM identity_new").fetchall()[0]
    if new:
        _stage(conn, library)
        # The note names the link (its id) and the entity, masked: quarantine notes are shown to stewards.
        masked = _mask_sql("n.entity_key")
        conn.execute(f"""
            UPDATE quarantine q SET status = '{LINKED}', decided_by = n.decided_by, decided_at = now(),
                note = 'identity link ' || n.id || ': entity ' || {masked} || ' by ' || n.decided_by
                    || coalesce(', weight ' || round(n.match_weight, 2) || ', probability ' || round(n.match_probability, 6), '')
                    || CASE WHEN len(n.withheld) > 0 THEN '; not staged (failed their rules): '
                            || array_to_string(n.withheld, ', ') ELSE '' END
            FROM identity_new n WHERE q.id = n.quarantine_id""")
    conn.execute("DELETE FROM identity_near_misses WHERE library = ?", [library])
    conn.execute(f"""
        INSERT INTO identity_near_misses SELECT ?, d.source, d.source_record_id, d.quarantine_id, d.entity_key,
            p.match_weight, p.match_probability, d.second_weight,
            CASE d.decision WHEN 'none' THEN 'steward: not any entity' ELSE d.decision END, p.comparisons, ?, now()
        FROM identity_decisions d LEFT JOIN identity_pairs p ON p.candidate = d.unique_id AND p.entity_key = d.entity_key
        WHERE d.decision IN ('below threshold', 'ambiguous', 'no candidate', 'none')""", [library, run_id])
    masked = _mask_sql("m.entity_key")
    conn.execute(f"""
        UPDATE quarantine q SET note = CASE WHEN m.entity_key IS NULL THEN 'identity: ' || m.reason
            ELSE 'identity: ' || m.reason || ', best candidate ' || {masked} || ' weight ' || round(m.match_weight, 2)
                 || ', probability ' || round(m.match_probability, 6) END
        FROM identity_near_misses m WHERE m.library = ? AND q.id = m.quarantine_id AND q.status = 'open'""", [library])
    return new


def _mask_sql(expr: str) -> str:
    """``hub.masking.mask_id`` in SQL: region prefix and last character kept."""
    return (f"CASE WHEN {expr} IS NULL THEN '<empty>' WHEN length({expr}) <= 4 THEN repeat('*', length({expr})) "
            f"ELSE substr({expr}, 1, 4) || repeat('*', length({expr}) - 5) || substr({expr}, length({expr}), 1) END")


def _stage(conn: duckdb.DuckDBPyConnection, library: str) -> None:
    """Each newly linked record into staging with its key filled in, replacing its source's earlier version."""
    lib = LIBRARIES[library]
    struct = "{" + ", ".join(f'"{f.name}": "{duckdb_type(f.type)}"' for f in lib.fields) + "}"
    # A field that failed its rule (``withheld``) is not staged: the linked record contributes only what passed.
    columns = ", ".join(f'entity_key AS "{f.name}"' if f.name == lib.key else
                        f"CASE WHEN list_contains(withheld, '{f.name}') THEN NULL ELSE struct_extract(r, '{f.name}') END "
                        f'AS "{f.name}"' for f in lib.fields)
    sources = [s for (s,) in conn.execute("SELECT DISTINCT source FROM identity_new ORDER BY 1").fetchall()]
    for source in sources:
        records = conn.sql(
            f"SELECT {columns}, file AS _file, line AS _line FROM (SELECT n.entity_key, n.withheld, q.file, q.line, "
            f"from_json(q.record, '{struct}') AS r FROM identity_new n JOIN quarantine q ON q.id = n.quarantine_id "
            "WHERE n.source = ?)", params=[source]).to_arrow_table()
        merge(conn, library, source, records)

"""The Splink model that scores records without a usable key against keyed entities: built from configuration, trained on the data.

Splink runs on its own in-memory DuckDB database: only the candidates, the entities some blocking
rule puts beside one of them, and a hash-chosen sample of all entities are copied there, so the cost
follows the number of candidates, not of entities. Comparisons and blocking rules come from
``warehouse/config/identity.yaml`` (levels of Splink's comparison library). Training, all by Splink:

- u: random sampling of candidate × sample pairs (seeded);
- the prior: the pairs the deterministic rules find among candidate × sample pairs, over their recall
  (the sample is a random share of all entities, so this is the prior against all of them);
- m: expectation maximisation over each configured training pass, on candidate × reachable-entity
  pairs; each pass trains the comparisons that don't use its columns.

Trained values are rounded to 12 significant digits, so that the order in which DuckDB's threads
add up a sum never changes a weight: the same inputs give the same weights and links.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.internals.exceptions import EMTrainingException

from warehouse.identity_config import IdentityConfig, Level

CANDIDATES, ENTITIES, SAMPLE, BLOCKED = "candidates", "entities", "entity_sample", "blocked_entities"
KEPT_PAIRS = 10  # a record's strongest candidates kept for the decision (and its probabilities)


def _level(level: Level) -> Any:
    """One configured level as Splink's comparison level."""
    kind, arg, opt = level.kind, level.argument, level.options
    built = {
        "empty": lambda: cll.NullLevel(arg),
        "exact": lambda: cll.ExactMatchLevel(arg, term_frequency_adjustments=bool(opt.get("tf_adjustment"))),
        "jaro_winkler": lambda: cll.JaroWinklerLevel(arg, opt["threshold"]),
        "jaro": lambda: cll.JaroLevel(arg, opt["threshold"]),
        "levenshtein": lambda: cll.LevenshteinLevel(arg, opt["threshold"]),
        "damerau_levenshtein": lambda: cll.DamerauLevenshteinLevel(arg, opt["threshold"]),
        "jaccard": lambda: cll.JaccardLevel(arg, opt["threshold"]),
        "array_intersect": lambda: cll.ArrayIntersectLevel(arg, opt.get("min_intersection", 1)),
        "array_subset": lambda: cll.ArraySubsetLevel(arg),
        "columns_reversed": lambda: cll.ColumnsReversedLevel(arg[0], arg[1]),
        "sql": lambda: cll.CustomLevel(arg),
        "else": cll.ElseLevel,
    }[kind]()
    return built.configure(label_for_charts=level.label)


def comparisons(cfg: IdentityConfig) -> list[cl.CustomComparison]:
    """The configured comparisons, in order."""
    return [cl.CustomComparison([_level(lvl) for lvl in levels], output_column_name=name)
            for name, levels in cfg.comparisons.items()]


def tf_columns(cfg: IdentityConfig) -> list[str]:
    """Columns some level weights by term frequency."""
    return sorted({lvl.argument for levels in cfg.comparisons.values() for lvl in levels
                   if lvl.options.get("tf_adjustment")})


def settings(cfg: IdentityConfig, rules: list[tuple[str, ...]]) -> SettingsCreator:
    """Link-only settings: candidates against entities, never within either side."""
    return SettingsCreator(
        link_type="link_only", unique_id_column_name="unique_id", comparisons=comparisons(cfg),
        blocking_rules_to_generate_predictions=[block_on(*cols) for cols in rules],
        retain_intermediate_calculation_columns=True, retain_matching_columns=True,
    )


@dataclass(frozen=True)
class Model:
    """A trained model: Splink's settings dictionary (m, u, prior), gamma -> level label per comparison, training notes."""

    settings: dict[str, Any]
    levels: dict[str, dict[int, str]]
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def prior_weight(self) -> float:
        p = self.settings["probability_two_random_records_match"]
        return math.log2(p / (1 - p))


def _quiet() -> None:
    for name in ("splink", "splink.internals"):
        logging.getLogger(name).setLevel(logging.ERROR)


def gamma_levels(model: dict[str, Any]) -> dict[str, dict[int, str]]:
    """Each comparison's gamma value -> its level label (-1: either side empty)."""
    out = {}
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        real = [lvl for lvl in levels if not lvl.get("is_null_level")]
        # Splink numbers the non-null levels from the most similar (n-1) down to the else level (0).
        named = {len(real) - 1 - i: lvl["label_for_charts"] for i, lvl in enumerate(real)}
        named[-1] = "missing"
        out[comparison["output_column_name"]] = named
    return out


def _round(x: float) -> float:
    return float(f"{x:.12g}")


def _probability(value: Any) -> bool:
    """A trained probability (Splink writes a level it could not train as text or leaves it out)."""
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _settle(model: dict[str, Any], smoothing: float, unseen_u: float) -> dict[str, Any]:
    """Keep every m off zero, give unseen levels a u, round (see the module docstring).

    EM gives a level the data never showed among matches an m of (almost) zero, and so a weight of
    minus infinity: one unusual disagreement would veto any match. Such a level gets an m of
    ``smoothing``, or its u when that is smaller: a common disagreement then weighs against a match
    (log2(smoothing / u)), a rare agreement no pair showed among matches weighs nothing (m = u),
    rather than a lot. A level none of the sampled pairs showed gets ``unseen_u`` (one over the
    number of pairs sampled: rare among non-matches, not impossible; the comparison's other u say
    nothing about it: at 10 M people no sampled pair shared an ID body, and borrowing the "different"
    level's u of 1 took all weight from the ID digits). Each comparison's m are scaled back to one.
    """
    for comparison in model["comparisons"]:
        levels = [lvl for lvl in comparison["comparison_levels"] if not lvl.get("is_null_level")]
        for lvl in levels:
            u = lvl.get("u_probability")
            lvl["u_probability"] = u if _probability(u) else unseen_u
        m = [lvl.get("m_probability") for lvl in levels]
        m = [max(x if _probability(x) else 0.0, min(smoothing, lvl["u_probability"]))
             for x, lvl in zip(m, levels, strict=True)]
        total = sum(m)
        for lvl, mi in zip(levels, m, strict=True):
            lvl["m_probability"] = _round(mi / total)
            lvl["u_probability"] = _round(lvl["u_probability"])
    model["probability_two_random_records_match"] = _round(model["probability_two_random_records_match"])
    return model


def _connection(tables: dict[str, pa.Table | Path]) -> duckdb.DuckDBPyConnection:
    """Splink's own database, under the pipeline's memory limit (it spills beyond), holding ``tables``.

    A table is an Arrow table or a Parquet file: at 10 M people the entities Splink needs are
    millions of rows, which are read from a file rather than held twice in memory.
    """
    from hub.settings import get_settings

    mem = duckdb.connect(":memory:", config={"memory_limit": get_settings().warehouse_memory_limit})
    for name, table in tables.items():
        if isinstance(table, Path):
            mem.execute(f'CREATE TABLE "{name}" AS SELECT * FROM read_parquet(?)', [str(table)])
            continue
        mem.register(f"{name}_arrow", table)
        mem.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "{name}_arrow"')
        mem.unregister(f"{name}_arrow")
    return mem


def _prior(linker: Linker, mem: duckdb.DuckDBPyConnection, cfg: IdentityConfig, entities: int) -> str:
    """How likely two random records are the same person, from the pairs the deterministic rules find (Splink)."""
    found = 0
    for rule in cfg.deterministic_rules:
        on = " AND ".join(f'c."{col}" = e."{col}"' for col in rule)
        found += mem.execute(f"SELECT count(*) FROM {CANDIDATES} c JOIN {SAMPLE} e ON {on}").fetchall()[0][0]
    if found:
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*rule) for rule in cfg.deterministic_rules], recall=cfg.deterministic_recall)
        return "deterministic rules"
    # Too few entities sampled to find any: about half the candidates have an entity among all of them.
    linker._settings_obj._probability_two_random_records_match = 0.5 / max(entities, 1)
    return "default (no deterministic match in the sample)"


def _register(db: DuckDBAPI, table: str, side: str) -> Any:
    return db.register(table, table_name=f"{table}_input", dataset_display_name=side)


_ITERATIONS = (25, 8, 3)  # EM's iteration budget, tried in turn when a pass drives some m to exactly 0


def _em_pass(db_tables: tuple[Any, Any], model: dict[str, Any], rule: tuple[str, ...], tf: dict[str, Any],
             max_pairs: float) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """One EM pass on a fresh linker (a failed pass must not leave a half-trained model behind)."""
    why = ""
    for iterations in _ITERATIONS:
        learner = Linker(list(db_tables), {**model, "max_iterations": iterations}, log_level=None)
        for column, table in tf.items():
            learner.table_management.register_term_frequency_lookup(table, column)
        try:
            session = learner.training.estimate_parameters_using_expectation_maximisation(
                block_on(*rule), fix_probability_two_random_records_match=True, max_pairs=max_pairs)
        except EMTrainingException as exc:  # the rule brings no pair together (a source without that field)
            return None, {"rule": list(rule), "trained": False, "why": str(exc).splitlines()[0][:200]}
        except ValueError as exc:
            # Splink 5 refuses an m of exactly 0, which EM reaches for a level seen only in pairs it is
            # sure are non-matches; fewer iterations stop before that underflow.
            why = str(exc).splitlines()[0][:200]
            continue
        fixed = {c.output_column_name for c in session._comparisons_that_cannot_be_estimated}
        return learner.misc.save_model_to_json(), {"rule": list(rule), "iterations": iterations, "fixed": sorted(fixed)}
    return None, {"rule": list(rule), "trained": False, "why": why}


def _em(db_tables: tuple[Any, Any], model: dict[str, Any], cfg: IdentityConfig, tf: dict[str, Any]
        ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Expectation maximisation over each training pass; each level's m is the mean of the passes that trained it."""
    estimates: dict[tuple[str, str], list[float]] = {}
    passes = []
    for rule in cfg.training:
        trained, note = _em_pass(db_tables, model, rule, tf, cfg.max_pairs_for_em)
        if trained is not None:
            for comparison in trained["comparisons"]:
                if comparison["output_column_name"] in note["fixed"]:
                    continue
                for lvl in comparison["comparison_levels"]:
                    if not lvl.get("is_null_level") and lvl.get("m_probability") is not None:
                        estimates.setdefault((comparison["output_column_name"], lvl["label_for_charts"]), []).append(
                            lvl["m_probability"])
            fixed = note.pop("fixed")
            note["trained"] = [c for c in cfg.comparisons if c not in fixed]
        passes.append(note)
    for comparison in model["comparisons"]:
        for lvl in comparison["comparison_levels"]:
            found = estimates.get((comparison["output_column_name"], lvl.get("label_for_charts")))
            if found and not lvl.get("is_null_level"):
                lvl["m_probability"] = sum(found) / len(found)
    return model, passes


def train(cfg: IdentityConfig, db: DuckDBAPI, mem: duckdb.DuckDBPyConnection, cands: Any, blocked: Any,
          rules: list[tuple[str, ...]], entities: int, tf: dict[str, Any]) -> Model:
    """Prior and u on candidates × the sample of all entities, m by EM on candidates × reachable entities."""
    sampler = Linker([cands, _register(db, SAMPLE, ENTITIES)], settings(cfg, rules), log_level=None)
    for column, table in tf.items():
        sampler.table_management.register_term_frequency_lookup(table, column)
    prior = _prior(sampler, mem, cfg, entities)
    sampler.training.estimate_u_using_random_sampling(max_pairs=cfg.max_pairs_for_u, seed=cfg.seed)
    model, passes = _em((cands, blocked), sampler.misc.save_model_to_json(), cfg, tf)
    model = _settle(model, cfg.m_smoothing, 1 / cfg.max_pairs_for_u)
    return Model(model, gamma_levels(model), {"prior": prior, "em_passes": passes, "entities": entities})


def match(cfg: IdentityConfig, candidates: pa.Table | Path, sample: pa.Table | Path, blocked: pa.Table | Path,
          tf_tables: dict[str, pa.Table], entities: int, rules: list[tuple[str, ...]]) -> tuple[Model, pa.Table]:
    """Train on the data and score every blocked pair of candidate and entity (see ``_pairs_sql``)."""
    _quiet()
    mem = _connection({CANDIDATES: candidates, SAMPLE: sample, BLOCKED: blocked,
                       **{f"tf_{c}": t for c, t in tf_tables.items()}})
    try:
        db = DuckDBAPI(mem)
        cands = _register(db, CANDIDATES, CANDIDATES)
        tf = {c: db.register(f"tf_{c}") for c in tf_tables}
        blocked_sdf = _register(db, BLOCKED, ENTITIES)
        model = train(cfg, db, mem, cands, blocked_sdf, rules, entities, tf)
        scorer = Linker([cands, blocked_sdf], model.settings, log_level=None)
        for column, table in tf.items():
            scorer.table_management.register_term_frequency_lookup(table, column)
        predictions = scorer.inference.predict(warning_mode="never")
        return model, mem.sql(_pairs_sql(model, predictions.physical_name)).to_arrow_table()
    finally:
        mem.close()


def cluster(model: Model, records: pa.Table, tf_tables: dict[str, pa.Table], threshold: float,
            rules: list[tuple[str, ...]]) -> pa.Table:
    """Records (without a key, matched to no entity) that match each other, clustered by Splink: unique_id, cluster_id."""
    if records.num_rows < 2:
        return pa.table({"unique_id": records.column("unique_id"), "cluster_id": records.column("unique_id")})
    _quiet()
    mem = _connection({"unmatched": records, **{f"tf_{c}": t for c, t in tf_tables.items()}})
    try:
        db = DuckDBAPI(mem)
        dedupe = {**model.settings, "link_type": "dedupe_only",
                  "blocking_rules_to_generate_predictions": [block_on(*r).get_blocking_rule("duckdb").blocking_rule_sql
                                                             for r in rules]}
        linker = Linker(db.register("unmatched", table_name="unmatched_input"), dedupe, log_level=None)
        for column in tf_tables:
            linker.table_management.register_term_frequency_lookup(db.register(f"tf_{column}"), column)
        pairs = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, threshold)
        return mem.sql(f"SELECT unique_id, cluster_id FROM {clusters.physical_name} ORDER BY unique_id").to_arrow_table()
    finally:
        mem.close()


def _pairs_sql(model: Model, table: str) -> str:
    """Candidate id, entity key, weight, probability and, as JSON, each comparison's level, weight and Bayes factor."""
    tf = {c["output_column_name"] for c in model.settings["comparisons"]
          if any(lvl.get("tf_adjustment_column") for lvl in c["comparison_levels"])}
    parts = []
    for comparison, named in model.levels.items():
        level = "CASE " + " ".join(f"WHEN gamma_{comparison} = {g} THEN '{n}'" for g, n in named.items()) + " END"
        weight = f"mw_{comparison}" + (f" + coalesce(mw_tf_adj_{comparison}, 0)" if comparison in tf else "")
        parts.append(f"'{comparison}', json_object('level', {level}, 'weight', round({weight}, 3), "
                     f"'bayes_factor', round(pow(2, {weight}), 6))")
    # Splink puts either side on the left: candidates and entities are told apart by their dataset.
    # A record's strongest candidates decide; beyond them the pairs (millions at 10 M people) are dropped.
    candidate = f"CASE WHEN source_dataset_l = '{CANDIDATES}' THEN unique_id_l ELSE unique_id_r END"
    entity = f"CASE WHEN source_dataset_l = '{CANDIDATES}' THEN unique_id_r ELSE unique_id_l END"
    return (f"SELECT {candidate} AS candidate, {entity} AS entity_key, "
            f"match_weight, match_probability, json_object({', '.join(parts)}) AS comparisons FROM {table} "
            f"QUALIFY row_number() OVER (PARTITION BY {candidate} ORDER BY match_weight DESC, {entity}) <= {KEPT_PAIRS}")

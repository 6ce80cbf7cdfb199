"""The Splink model that scores records without a usable key against keyed entities: comparisons, blocking, training.

Splink runs on its own in-memory DuckDB database: only the candidates, the entities they could
match (those sharing a blocking key with one of them) and a hash-chosen sample of all entities
for training are copied there, so the cost follows the number of candidates, not of entities.
``u`` probabilities and the prior are trained by Splink on the sample with a fixed seed (its
sampling hashes record ids); ``m`` probabilities are counted on the records whose ID number is
wrong only in its check digit (their other 17 digits name their entity), pulled toward the
stewards' configured values. The same inputs therefore give the same weights.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

from warehouse.identity_config import LEVELS, IdentityConfig

# Columns both sides carry (see warehouse.identity_data); ``block_region`` is the household region,
# or the ID number's region when the entity has no household record.
COLUMNS = ("unique_id", "name", "gender", "birth_date", "region", "id_region", "id_body", "block_region",
           "household_address", "residence_address", "address_key", "residence_key", "life_status", "life_status_date")
BLOCKING = (("id_body",), ("name", "birth_date"), ("birth_date", "gender", "block_region"), ("name", "block_region"))
CANDIDATES, ENTITIES, SAMPLE, BLOCKED = "candidates", "entities", "entity_sample", "blocked_entities"
LABEL_COMPARISON = "id_digits"  # the comparison that picks the training labels
DETERMINISTIC = ("name", "birth_date", "gender")  # the rule that estimates the prior
_NAME_CHARS = 6  # names compared character by character up to this length


def _one_character_off(col: str) -> str:
    # DuckDB's edit distances count UTF-8 bytes: a Chinese character is three. Compare characters.
    diffs = " + ".join(f'CAST(substr("{col}_l", {i}, 1) <> substr("{col}_r", {i}, 1) AS INTEGER)'
                       for i in range(1, _NAME_CHARS + 1))
    return f'length("{col}_l") = length("{col}_r") AND length("{col}_l") <= {_NAME_CHARS} AND ({diffs}) = 1'


def _levels(cfg: IdentityConfig, comparison: str, levels: list) -> cl.CustomComparison:
    """A comparison whose levels (after the null level) get the configured m probabilities, in order."""
    names = LEVELS[cfg.library][comparison]
    m = cfg.m_probabilities[comparison]
    configured = [levels[0]]
    for name, level in zip(names, levels[1:], strict=True):
        level.configure(label_for_charts=name, m_probability=m[name])
        configured.append(level)
    return cl.CustomComparison(configured, output_column_name=comparison)


def population_comparisons(cfg: IdentityConfig) -> list[cl.CustomComparison]:
    """Name, birth date, sex, region, address, life event and the ID digits when a record has them.

    The ID digits are compared by ``id_digits`` only: region and birth date compare what the record
    says itself, so the candidates that have digits (the training labels) tell the same story as
    those that have none.
    """
    any_address = '("{0}_l" IS NULL AND "{1}_l" IS NULL) OR ("{0}_r" IS NULL AND "{1}_r" IS NULL)'
    shared = " OR ".join(f'"{a}_l" = "{b}_r"' for a in ("household_address", "residence_address")
                         for b in ("household_address", "residence_address"))
    similar = " OR ".join(f'"{a}_l" = "{b}_r"' for a in ("address_key", "residence_key") for b in ("address_key", "residence_key"))
    other_region = 'coalesce("region_r", "id_region_r")'
    return [
        _levels(cfg, "id_digits", [
            cll.NullLevel("id_body"), cll.ExactMatchLevel("id_body"),
            cll.CustomLevel('levenshtein("id_body_l", "id_body_r") = 1'), cll.ElseLevel()]),
        _levels(cfg, "name", [
            cll.NullLevel("name"), cll.ExactMatchLevel("name").configure(tf_adjustment_column="name"),
            cll.CustomLevel(_one_character_off("name")), cll.ElseLevel()]),
        _levels(cfg, "birth_date", [
            cll.NullLevel("birth_date"), cll.ExactMatchLevel("birth_date"),
            cll.CustomLevel('levenshtein(CAST("birth_date_l" AS VARCHAR), CAST("birth_date_r" AS VARCHAR)) = 1'),
            cll.ElseLevel()]),
        _levels(cfg, "gender", [cll.NullLevel("gender"), cll.ExactMatchLevel("gender"), cll.ElseLevel()]),
        _levels(cfg, "region", [
            cll.CustomLevel(f'"region_l" IS NULL OR {other_region} IS NULL').configure(is_null_level=True),
            cll.CustomLevel('"region_l" = "region_r"'),
            cll.CustomLevel('"region_l" = "id_region_r"'),
            cll.CustomLevel(f'substr("region_l", 1, 4) = substr({other_region}, 1, 4)'),
            cll.CustomLevel(f'substr("region_l", 1, 2) = substr({other_region}, 1, 2)'),
            cll.ElseLevel()]),
        _levels(cfg, "address", [
            cll.CustomLevel(any_address.format("household_address", "residence_address")).configure(is_null_level=True),
            cll.ExactMatchLevel("household_address"), cll.CustomLevel(shared), cll.CustomLevel(similar), cll.ElseLevel()]),
        _levels(cfg, "life_event", [
            cll.NullLevel("life_status"),
            cll.CustomLevel('"life_status_date_l" = "life_status_date_r"'),
            cll.CustomLevel('"life_status_l" = "life_status_r"'), cll.ElseLevel()]),
    ]


def settings(cfg: IdentityConfig) -> SettingsCreator:
    """Link-only settings: candidates against entities, never within either side."""
    return SettingsCreator(
        link_type="link_only", unique_id_column_name="unique_id",
        comparisons=population_comparisons(cfg),
        blocking_rules_to_generate_predictions=[block_on(*cols) for cols in BLOCKING],
        retain_intermediate_calculation_columns=True, retain_matching_columns=True,  # gamma_* needs both
    )


@dataclass(frozen=True)
class Model:
    """A trained model: Splink's settings dictionary (m, u, prior) and the gamma -> level name of each comparison."""

    settings: dict[str, Any]
    levels: dict[str, dict[int, str]]

    @property
    def prior_weight(self) -> float:
        p = self.settings["probability_two_random_records_match"]
        return math.log2(p / (1 - p))


def _quiet() -> None:
    logging.getLogger("splink").setLevel(logging.WARNING)


def _gamma_levels(model: dict[str, Any]) -> dict[str, dict[int, str]]:
    out = {}
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        real = [lvl for lvl in levels if not lvl.get("is_null_level")]
        # Splink numbers the non-null levels from the most similar (n-1) down to the else level (0).
        named = {len(real) - 1 - i: lvl["label_for_charts"] for i, lvl in enumerate(real)}
        named[-1] = "missing"
        out[comparison["output_column_name"]] = named
    return out


def _fill_unseen_u(model: dict[str, Any]) -> dict[str, Any]:
    """A level no sampled non-match showed gets the comparison's smallest observed u: rare among non-matches."""
    for comparison in model["comparisons"]:
        levels = [lvl for lvl in comparison["comparison_levels"] if not lvl.get("is_null_level")]
        seen = [lvl["u_probability"] for lvl in levels if lvl.get("u_probability")]
        for lvl in levels:
            if not lvl.get("u_probability"):
                lvl["u_probability"] = min(seen) if seen else 1e-6
    return model


def _connection(tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    mem = duckdb.connect(":memory:")
    for name, table in tables.items():
        mem.register(f"{name}_arrow", table)
        mem.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "{name}_arrow"')
        mem.unregister(f"{name}_arrow")
    return mem


def _prior(linker: Linker, mem: duckdb.DuckDBPyConnection, cfg: IdentityConfig, entities: int) -> None:
    """How likely two random records are the same person, from the pairs a strict rule finds (Splink's estimate)."""
    found = mem.execute(f"SELECT count(*) FROM {CANDIDATES} c JOIN {SAMPLE} e USING ({', '.join(DETERMINISTIC)})"
                        ).fetchall()[0][0]
    if found:
        linker.training.estimate_probability_two_random_records_match([block_on(*DETERMINISTIC)],
                                                                      recall=cfg.deterministic_recall)
    else:  # nothing to count on (a tiny sample): about half the candidates have an entity
        linker._settings_obj._probability_two_random_records_match = 0.5 / max(entities, 1)


def _m_from_labels(model: dict[str, Any], mem: duckdb.DuckDBPyConnection, labels: str,
                   cfg: IdentityConfig) -> dict[str, Any]:
    """Each level's m: its share among labelled true matches, shrunk toward the configured prior by ``prior_pairs``."""
    for comparison in model["comparisons"]:
        name = comparison["output_column_name"]
        if name == LABEL_COMPARISON:
            continue  # the labels are chosen by it: they would say it never disagrees
        counts = dict(mem.execute(f"SELECT gamma_{name}, count(*) FROM {labels} WHERE gamma_{name} >= 0 "
                                  "GROUP BY 1").fetchall())
        n = sum(counts.values())
        real = [lvl for lvl in comparison["comparison_levels"] if not lvl.get("is_null_level")]
        for i, lvl in enumerate(real):
            prior = cfg.m_probabilities[name][lvl["label_for_charts"]]
            lvl["m_probability"] = (counts.get(len(real) - 1 - i, 0) + cfg.prior_pairs * prior) / (n + cfg.prior_pairs)
    return model


def _register(db: DuckDBAPI, table: str, side: str) -> Any:
    return db.register(table, table_name=f"{table}_input", dataset_display_name=side)


def match(cfg: IdentityConfig, candidates: pa.Table, sample: pa.Table, blocked: pa.Table, name_tf: pa.Table,
          entities: int) -> tuple[Model, pa.Table]:
    """Train on the data (prior, u, m) and score every blocked pair of candidate and entity.

    - prior: Splink's estimate from the candidates matching a sample entity on name, birth date and sex;
    - u: Splink's random sampling of candidate-entity pairs, seeded;
    - m: from the candidates whose ID number is wrong only in its check digit: their 17 other
      digits name their entity (labels), so how often true matches show each level is counted there.
    Returns the trained model and the pairs (see ``_pairs_sql``).
    """
    _quiet()
    mem = _connection({CANDIDATES: candidates, SAMPLE: sample, BLOCKED: blocked, "name_tf": name_tf})
    try:
        db = DuckDBAPI(mem)
        cands = _register(db, CANDIDATES, CANDIDATES)
        trainer = Linker([cands, _register(db, SAMPLE, ENTITIES)], settings(cfg), log_level=None)
        tf = db.register("name_tf")
        trainer.table_management.register_term_frequency_lookup(tf, "name")
        _prior(trainer, mem, cfg, entities)
        trainer.training.estimate_u_using_random_sampling(max_pairs=cfg.max_pairs_for_u, seed=cfg.seed)
        blocked_sdf = _register(db, BLOCKED, ENTITIES)
        labels = trainer.inference.predict_between(cands, blocked_sdf, warning_mode="never",
                                                   blocking_rules_to_generate_predictions=[block_on("id_body")])
        model = _fill_unseen_u(trainer.misc.save_model_to_json())
        model = _m_from_labels(model, mem, labels.physical_name, cfg)
        scorer = Linker([cands, blocked_sdf], model, log_level=None)
        scorer.table_management.register_term_frequency_lookup(tf, "name")
        trained = Model(model, _gamma_levels(model))
        predictions = scorer.inference.predict(warning_mode="never")
        return trained, mem.sql(_pairs_sql(trained, predictions.physical_name)).to_arrow_table()
    finally:
        mem.close()


def _pairs_sql(model: Model, table: str) -> str:
    """Candidate id, entity key, weight, probability and, as JSON, each comparison's level, weight and Bayes factor."""
    parts = []
    for comparison, named in model.levels.items():
        level = "CASE " + " ".join(f"WHEN gamma_{comparison} = {g} THEN '{n}'" for g, n in named.items()) + " END"
        weight = f"mw_{comparison}" + (f" + mw_tf_adj_{comparison}" if comparison == "name" else "")
        parts.append(f"'{comparison}', json_object('level', {level}, 'weight', round({weight}, 3), "
                     f"'bayes_factor', round(pow(2, {weight}), 6))")
    # Splink puts either side on the left: candidates and entities are told apart by their dataset.
    return (f"SELECT CASE WHEN source_dataset_l = '{CANDIDATES}' THEN unique_id_l ELSE unique_id_r END AS candidate, "
            f"CASE WHEN source_dataset_l = '{CANDIDATES}' THEN unique_id_r ELSE unique_id_l END AS entity_key, "
            f"match_weight, match_probability, json_object({', '.join(parts)}) AS comparisons FROM {table}")

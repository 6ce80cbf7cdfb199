"""Steward-editable settings of identity resolution (``warehouse/config/identity.yaml``), checked with every problem listed."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hub.errors import ConfigError

CONFIG_FILE = Path(__file__).parent / "config" / "identity.yaml"
# The comparisons of each library's model and their levels, most similar first (the null level has no m).
LEVELS: dict[str, dict[str, tuple[str, ...]]] = {
    "population": {
        "id_digits": ("same_body", "one_digit_off", "different"),
        "name": ("exact", "one_character_off", "different"),
        "birth_date": ("exact", "one_digit_off", "different"),
        "gender": ("exact", "different"),
        "region": ("same_household_region", "same_birth_region", "same_city", "same_province", "different"),
        "address": ("same_household_address", "shared_address", "similar_address", "different"),
        "life_event": ("same_death_date", "same_status", "different"),
    },
}
_SCALARS = {"threshold_match_probability", "min_margin_weight", "seed", "max_pairs_for_u", "deterministic_recall",
            "prior_pairs"}


@dataclass(frozen=True)
class IdentityConfig:
    """One library's matching settings."""

    library: str
    threshold_match_probability: float
    min_margin_weight: float
    seed: int
    max_pairs_for_u: int
    deterministic_recall: float
    prior_pairs: float
    m_probabilities: dict[str, dict[str, float]]

    @property
    def threshold_match_weight(self) -> float:
        """The threshold as a match weight: log2 of the posterior odds."""
        p = self.threshold_match_probability
        return math.inf if p >= 1 else math.log2(p / (1 - p))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _library_problems(name: str, section: Any) -> list[str]:
    where = f"identity.{name}"
    if not isinstance(section, dict):
        return [f"{where}: expected a mapping of settings"]
    problems = [f"{where}: unknown setting {k!r}" for k in sorted(set(section) - _SCALARS - {"m_probabilities"})]
    problems += [f"{where}: missing setting {k!r}" for k in sorted((_SCALARS | {"m_probabilities"}) - set(section))]
    p = section.get("threshold_match_probability")
    if p is not None and not (_number(p) and 0 < p < 1):
        problems.append(f"{where}.threshold_match_probability: must be a number between 0 and 1 (exclusive), got {p!r}")
    margin = section.get("min_margin_weight")
    if margin is not None and not (_number(margin) and margin >= 0):
        problems.append(f"{where}.min_margin_weight: must be a number >= 0, got {margin!r}")
    pairs = section.get("prior_pairs")
    if pairs is not None and not (_number(pairs) and pairs > 0):
        problems.append(f"{where}.prior_pairs: must be a number > 0, got {pairs!r}")
    for key, low in (("seed", 0), ("max_pairs_for_u", 1000)):
        value = section.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            problems.append(f"{where}.{key}: must be a whole number >= {low}, got {value!r}")
    recall = section.get("deterministic_recall")
    if recall is not None and not (_number(recall) and 0 < recall <= 1):
        problems.append(f"{where}.deterministic_recall: must be a number in (0, 1], got {recall!r}")
    m = section.get("m_probabilities")
    if m is None:
        return problems
    if not isinstance(m, dict):
        return problems + [f"{where}.m_probabilities: expected a mapping comparison -> level -> probability"]
    expected = LEVELS[name]
    problems += [f"{where}.m_probabilities: unknown comparison {c!r} (known: {', '.join(expected)})"
                 for c in sorted(set(m) - set(expected))]
    problems += [f"{where}.m_probabilities: missing comparison {c!r}" for c in expected if c not in m]
    for comparison, levels in expected.items():
        given = m.get(comparison)
        if given is None:
            continue
        at = f"{where}.m_probabilities.{comparison}"
        if not isinstance(given, dict):
            problems.append(f"{at}: expected a mapping level -> probability ({', '.join(levels)})")
            continue
        problems += [f"{at}: unknown level {lvl!r} (known: {', '.join(levels)})" for lvl in sorted(set(given) - set(levels))]
        problems += [f"{at}: missing level {lvl!r}" for lvl in levels if lvl not in given]
        bad = [lvl for lvl in levels if lvl in given and not (_number(given[lvl]) and 0 < given[lvl] < 1)]
        problems += [f"{at}.{lvl}: must be a probability strictly between 0 and 1, got {given[lvl]!r}" for lvl in bad]
        if not bad and set(levels) <= set(given) and abs(sum(given[lvl] for lvl in levels) - 1) > 0.01:
            problems.append(f"{at}: levels add up to {sum(given[lvl] for lvl in levels):.3f}, not 1")
    return problems


def parse_config(data: Any) -> dict[str, IdentityConfig]:
    """Settings per library from the parsed YAML; ConfigError lists every problem."""
    if not isinstance(data, dict):
        raise ConfigError("identity configuration: expected a mapping of library -> settings")
    problems = [f"identity: no identity model for library {name!r} (known: {', '.join(LEVELS)})"
                for name in sorted(set(data) - set(LEVELS))]
    for name in LEVELS:
        if name in data:
            problems += _library_problems(name, data[name])
    if problems:
        raise ConfigError(problems)
    return {name: IdentityConfig(name, float(s["threshold_match_probability"]), float(s["min_margin_weight"]),
                                 int(s["seed"]), int(s["max_pairs_for_u"]), float(s["deterministic_recall"]),
                                 float(s["prior_pairs"]),
                                 {c: {lvl: float(v) for lvl, v in levels.items()} for c, levels in s["m_probabilities"].items()})
            for name, s in data.items()}


def load_config(path: Path | None = None) -> dict[str, IdentityConfig]:
    """The identity settings in ``path`` (default: ``HUB_IDENTITY_CONFIG`` or warehouse/config/identity.yaml)."""
    path = Path(path or os.environ.get("HUB_IDENTITY_CONFIG") or CONFIG_FILE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read identity configuration {path}: {exc}") from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError([f"{path.name}: {p}" for p in exc.problems]) from None

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
# The matching columns both sides carry (see warehouse.identity_features and warehouse.identity_data).
COLUMNS = (
    "name", "name_norm", "name_pinyin", "name_compact", "name_key", "name_first", "name_last", "surname",
    "birth_date", "birth_text", "birth_ym", "birth_year", "birth_month", "birth_day", "gender",
    "name_words", "region", "id_region", "city", "province", "id_body", "id_head", "id_tail",
    "address_key", "residence_key", "address_tokens", "life_status", "life_status_date",
)
LIBRARIES_WITH_MODELS = ("population",)
# Level kinds (Splink's comparison level library) and the settings each takes besides ``label``.
KINDS: dict[str, tuple[str, ...]] = {
    "empty": (), "exact": ("tf_adjustment",), "jaro_winkler": ("threshold",), "jaro": ("threshold",),
    "levenshtein": ("threshold",), "damerau_levenshtein": ("threshold",), "jaccard": ("threshold",),
    "array_intersect": ("min_intersection",), "array_subset": (), "columns_reversed": (), "sql": (), "else": (),
}
_SCALARS = {"threshold_match_probability", "min_margin_weight", "seed", "max_pairs_for_u", "max_pairs_for_em",
            "deterministic_recall", "m_smoothing"}
_LISTS = {"optional_fields", "deterministic_rules", "training", "blocking", "comparisons"}


@dataclass(frozen=True)
class Level:
    """One comparison level: its label, kind (a key of ``KINDS``), argument (column(s), SQL) and settings."""

    label: str
    kind: str
    argument: Any
    options: dict[str, Any]


@dataclass(frozen=True)
class IdentityConfig:
    """One library's matching settings."""

    library: str
    threshold_match_probability: float
    min_margin_weight: float
    seed: int
    max_pairs_for_u: int
    max_pairs_for_em: int
    deterministic_recall: float
    m_smoothing: float
    optional_fields: tuple[str, ...]
    deterministic_rules: tuple[tuple[str, ...], ...]
    training: tuple[tuple[str, ...], ...]
    blocking_rules: tuple[tuple[str, ...], ...]
    max_comparisons: int
    max_comparisons_per_record: int
    comparisons: dict[str, tuple[Level, ...]]

    @property
    def threshold_match_weight(self) -> float:
        """The threshold as a match weight: log2 of the posterior odds."""
        p = self.threshold_match_probability
        return math.inf if p >= 1 else math.log2(p / (1 - p))

    def admits(self, comparisons: int, candidates: int) -> bool:
        """Whether a blocking rule making ``comparisons`` pairs for ``candidates`` records is used in this run."""
        # Both bounds: the total keeps a run's cost in hand at any size, the mean per record keeps a rule that
        # blocks on almost nothing (a surname alone) out of small libraries too, where it would pass the total.
        return comparisons <= self.max_comparisons and comparisons <= self.max_comparisons_per_record * max(candidates, 1)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _rules(where: str, value: Any, problems: list[str]) -> tuple[tuple[str, ...], ...]:
    """A list of rules, each a non-empty list of known columns."""
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: expected a non-empty list of rules, each a list of columns")
        return ()
    out = []
    for i, rule in enumerate(value):
        if not isinstance(rule, list) or not rule or not all(isinstance(c, str) for c in rule):
            problems.append(f"{where}[{i}]: expected a non-empty list of column names, got {rule!r}")
            continue
        unknown = [c for c in rule if c not in COLUMNS]
        problems += [f"{where}[{i}]: unknown column {c!r} (known: {', '.join(COLUMNS)})" for c in unknown]
        out.append(tuple(rule))
    return tuple(out)


def _columns_of(level: dict[str, Any], kind: str) -> list[str]:
    arg = level[kind]
    if kind == "columns_reversed":
        return list(arg) if isinstance(arg, list) else [arg]
    return [arg] if kind not in ("sql", "else") else []


def _level(where: str, spec: Any, problems: list[str]) -> Level | None:
    if not isinstance(spec, dict):
        problems.append(f"{where}: expected a mapping such as {{label: exact, exact: name}}, got {spec!r}")
        return None
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1:
        problems.append(f"{where}: name exactly one kind of level ({', '.join(KINDS)}), got {sorted(spec)}")
        return None
    kind = kinds[0]
    label = spec.get("label")
    if not isinstance(label, str) or not label:
        problems.append(f"{where}: every level needs a label")
    extra = sorted(set(spec) - {"label", kind, *KINDS[kind]})
    problems += [f"{where}: unknown setting {k!r} for a {kind} level" for k in extra]
    arg = spec[kind]
    if kind == "columns_reversed":
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(c, str) for c in arg)):
            problems.append(f"{where}: columns_reversed takes two columns, got {arg!r}")
            return None
    elif kind == "sql":
        if not isinstance(arg, str) or not arg.strip():
            problems.append(f"{where}: sql takes a condition on \"COL_l\" and \"COL_r\"")
    elif kind == "else":
        if arg is not True:
            problems.append(f"{where}: write the last level as {{label: different, else: true}}")
    elif not isinstance(arg, str):
        problems.append(f"{where}: {kind} takes one column name, got {arg!r}")
        return None
    problems += [f"{where}: unknown column {c!r}" for c in _columns_of(spec, kind) if c not in COLUMNS]
    options = {k: spec[k] for k in KINDS[kind] if k in spec}
    if kind in ("jaro_winkler", "jaro", "jaccard") and not (_number(options.get("threshold")) and 0 < options["threshold"] <= 1):
        problems.append(f"{where}: threshold must be a number in (0, 1], got {options.get('threshold')!r}")
    if kind in ("levenshtein", "damerau_levenshtein") and not _whole(options.get("threshold"), 1):
        problems.append(f"{where}: threshold must be a whole number >= 1, got {options.get('threshold')!r}")
    if kind == "array_intersect" and not _whole(options.get("min_intersection", 1), 1):
        problems.append(f"{where}: min_intersection must be a whole number >= 1")
    if "tf_adjustment" in options and not isinstance(options["tf_adjustment"], bool):
        problems.append(f"{where}: tf_adjustment is true or false")
    return Level(str(label), kind, arg, options)


def _comparisons(where: str, value: Any, problems: list[str]) -> dict[str, tuple[Level, ...]]:
    if not isinstance(value, dict) or not value:
        problems.append(f"{where}: expected a mapping comparison -> list of levels")
        return {}
    out = {}
    for name, levels in value.items():
        at = f"{where}.{name}"
        if not isinstance(levels, list) or len(levels) < 3:
            problems.append(f"{at}: expected a list of at least three levels (empty, one or more, else)")
            continue
        parsed = [_level(f"{at}[{i}]", spec, problems) for i, spec in enumerate(levels)]
        ok = [p for p in parsed if p is not None]
        if parsed[0] is not None and parsed[0].kind != "empty":
            problems.append(f"{at}: the first level must be {{label: missing, empty: COLUMN}} (either side empty)")
        if parsed[-1] is not None and parsed[-1].kind != "else":
            problems.append(f"{at}: the last level must be {{label: different, else: true}}")
        if any(p is not None and p.kind in ("empty", "else") for p in parsed[1:-1]):
            problems.append(f"{at}: empty and else levels go first and last only")
        labels = [p.label for p in ok]
        problems += [f"{at}: label {lbl!r} used twice" for lbl in sorted({x for x in labels if labels.count(x) > 1})]
        out[str(name)] = tuple(ok)
    return out


def _library(name: str, section: Any) -> tuple[IdentityConfig | None, list[str]]:
    where = f"identity.{name}"
    if not isinstance(section, dict):
        return None, [f"{where}: expected a mapping of settings"]
    known = _SCALARS | _LISTS
    problems = [f"{where}: unknown setting {k!r}" for k in sorted(set(section) - known)]
    problems += [f"{where}: missing setting {k!r}" for k in sorted(known - set(section))]
    p = section.get("threshold_match_probability")
    if p is not None and not (_number(p) and 0 < p < 1):
        problems.append(f"{where}.threshold_match_probability: must be a number between 0 and 1 (exclusive), got {p!r}")
    margin = section.get("min_margin_weight")
    if margin is not None and not (_number(margin) and margin >= 0):
        problems.append(f"{where}.min_margin_weight: must be a number >= 0, got {margin!r}")
    for key, low in (("seed", 0), ("max_pairs_for_u", 1000), ("max_pairs_for_em", 1000)):
        value = section.get(key)
        if value is not None and not _whole(value, low):
            problems.append(f"{where}.{key}: must be a whole number >= {low}, got {value!r}")
    recall = section.get("deterministic_recall")
    if recall is not None and not (_number(recall) and 0 < recall <= 1):
        problems.append(f"{where}.deterministic_recall: must be a number in (0, 1], got {recall!r}")
    smoothing = section.get("m_smoothing")
    if smoothing is not None and not (_number(smoothing) and 0 <= smoothing < 0.5):
        problems.append(f"{where}.m_smoothing: must be a number in [0, 0.5), got {smoothing!r}")
    optional = section.get("optional_fields", [])
    if not isinstance(optional, list) or not all(isinstance(f, str) for f in optional):
        problems.append(f"{where}.optional_fields: expected a list of field names")
        optional = []
    else:
        from schemas import LIBRARIES

        fields = LIBRARIES[name].field_names if name in LIBRARIES else set()
        problems += [f"{where}.optional_fields: unknown field {f!r}" for f in optional if f not in fields]
        if LIBRARIES[name].key in optional:
            problems.append(f"{where}.optional_fields: the key {LIBRARIES[name].key!r} is what is being resolved")
    deterministic = _rules(f"{where}.deterministic_rules", section.get("deterministic_rules"), problems) \
        if "deterministic_rules" in section else ()
    training = _rules(f"{where}.training", section.get("training"), problems) if "training" in section else ()
    blocking = section.get("blocking")
    rules: tuple[tuple[str, ...], ...] = ()
    cap = per_record = 0
    if blocking is not None:
        if not isinstance(blocking, dict) or set(blocking) - {"rules", "max_comparisons", "max_comparisons_per_record"}:
            problems.append(f"{where}.blocking: expected {{max_comparisons: N, max_comparisons_per_record: M, "
                            "rules: [[col, ...], ...]}")
        else:
            rules = _rules(f"{where}.blocking.rules", blocking.get("rules"), problems)
            cap, per_record = blocking.get("max_comparisons"), blocking.get("max_comparisons_per_record")
            for key, value in (("max_comparisons", cap), ("max_comparisons_per_record", per_record)):
                if not _whole(value, 1):
                    problems.append(f"{where}.blocking.{key}: must be a whole number >= 1, got {value!r}")
    comparisons = _comparisons(f"{where}.comparisons", section.get("comparisons"), problems) \
        if "comparisons" in section else {}
    if problems:
        return None, problems
    return IdentityConfig(name, float(p), float(margin), int(section["seed"]), int(section["max_pairs_for_u"]),
                          int(section["max_pairs_for_em"]), float(recall), float(smoothing), tuple(optional), deterministic, training, rules, int(cap), int(per_record), comparisons), []


def parse_config(data: Any) -> dict[str, IdentityConfig]:
    """Settings per library from the parsed YAML; ConfigError lists every problem."""
    if not isinstance(data, dict):
        raise ConfigError("identity configuration: expected a mapping of library -> settings")
    problems = [f"identity: no identity model for library {name!r} (known: {', '.join(LIBRARIES_WITH_MODELS)})"
                for name in sorted(set(data) - set(LIBRARIES_WITH_MODELS))]
    out = {}
    for name in LIBRARIES_WITH_MODELS:
        if name in data:
            cfg, found = _library(name, data[name])
            problems += found
            if cfg:
                out[name] = cfg
    if problems:
        raise ConfigError(problems)
    return out


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

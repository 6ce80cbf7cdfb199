"""Splink's charts of a saved identity model, as files a steward opens offline: SVG, or HTML with its JavaScript inlined.

- the match-weights chart of a model (each comparison level's weight log2(m/u), and the prior);
- the waterfall chart of one pair, rebuilt from the comparisons stored with a link or near miss
  (``identity_links.comparisons``: per comparison its level and weight), so no record is read again
  and no personal value reaches the file: only levels and weights.

Both are Splink's own charts (``Linker.visualisations``): the Linker is built from the saved
settings (``identity_models.settings``, Splink's model JSON) on an empty in-memory DuckDB table,
since drawing them reads no data. SVG is rendered by vl-convert; HTML embeds the Vega libraries
Splink ships, so neither file loads anything from the network.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FORMATS = (".svg", ".html")
MATCH_WEIGHTS = "match_weights"
MISSING = "missing"  # the level name a stored comparison has when either side is empty (Splink's null level)


@contextmanager
def _linker(settings: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    """A Splink Linker of the saved model over an empty table: enough for charts, which read no data."""
    import duckdb
    from splink import DuckDBAPI, Linker

    conn = duckdb.connect(":memory:")
    try:
        unique_id = settings.get("unique_id_column_name", "unique_id")
        conn.execute(f'CREATE TABLE identity_chart_input ("{unique_id}" VARCHAR)')
        db = DuckDBAPI(conn)
        sides = 1 if settings.get("link_type") == "dedupe_only" else 2
        tables = [db.register("identity_chart_input", table_name=f"identity_chart_{i}") for i in range(sides)]
        yield Linker(tables if sides > 1 else tables[0], dict(settings), log_level=None, validate_settings=False)
    finally:
        conn.close()


def match_weights_chart(settings: Mapping[str, Any]) -> Any:
    """Splink's match-weights chart of the model (a ``SplinkChart``)."""
    with _linker(settings) as linker:
        return linker.visualisations.match_weights_chart()


def _levels(comparison: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    """(gamma, level) of each non-null level: Splink numbers them from the most similar (n-1) down to the else level (0)."""
    real = [lvl for lvl in comparison["comparison_levels"] if not lvl.get("is_null_level")]
    return [(len(real) - 1 - i, lvl) for i, lvl in enumerate(real)]


def level_weight(level: Mapping[str, Any]) -> float | None:
    """A level's match weight log2(m/u); None when the model has no m or u for it."""
    m, u = level.get("m_probability"), level.get("u_probability")
    if not m or not u:
        return None
    return math.log2(m / u)


def _gamma(comparison: Mapping[str, Any], stored: Mapping[str, Any]) -> tuple[int, float]:
    """The level a stored comparison names (by its label, else the level of nearest weight) and that level's weight."""
    levels = _levels(comparison)
    label, weight = stored.get("level"), stored.get("weight")
    for gamma, lvl in levels:
        if lvl.get("label_for_charts") == label:
            return gamma, level_weight(lvl) or 0.0
    if label in (None, MISSING) or not weight:
        return -1, 0.0
    weighted = [(abs((level_weight(lvl) or 0.0) - weight), gamma, level_weight(lvl) or 0.0) for gamma, lvl in levels]
    _, gamma, w = min(weighted)
    return gamma, w


def pair_record(settings: Mapping[str, Any], comparisons: Mapping[str, Mapping[str, Any]], match_weight: float,
                match_probability: float | None = None) -> dict[str, Any]:
    """The prediction row Splink's waterfall chart reads, rebuilt from stored comparisons (levels and weights).

    A comparison with term-frequency adjustment stored its total weight: the part beyond its level's
    weight is the adjustment.
    """
    mw = settings.get("match_weight_column_prefix", "mw_")
    tf = settings.get("term_frequency_adjustment_column_prefix", "tf_")
    gamma_prefix = settings.get("comparison_vector_value_column_prefix", "gamma_")
    record: dict[str, Any] = {"match_weight": match_weight, "match_probability": match_probability}
    for comparison in settings["comparisons"]:
        name = comparison["output_column_name"]
        stored = comparisons.get(name) or {}
        gamma, weight = _gamma(comparison, stored)
        record[f"{gamma_prefix}{name}"] = gamma
        if any(lvl.get("tf_adjustment_column") for lvl in comparison["comparison_levels"]):
            record[f"{mw}{tf}adj_{name}".replace(" ", "_")] = (stored.get("weight") or 0.0) - weight if gamma >= 0 else 0.0
    return record


def waterfall_chart(settings: Mapping[str, Any], comparisons: Mapping[str, Mapping[str, Any]], match_weight: float,
                    match_probability: float | None = None) -> Any:
    """Splink's waterfall chart of one pair: the prior, each comparison's weight, the final match weight."""
    record = pair_record(settings, comparisons, match_weight, match_probability)
    with _linker(settings) as linker:
        return linker.visualisations.waterfall_chart([record], filter_nulls=False, remove_sensitive_data=True)


def save_chart(chart: Any, path: Path) -> Path:
    """Write ``chart`` as ``path`` says: ``.svg`` (rendered by vl-convert) or ``.html`` (Vega libraries inlined)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"a chart is written as .svg or .html, not {path.name!r}")
    if suffix == ".svg":
        import vl_convert

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = vl_convert.vegalite_to_svg(chart.chart_dict)
    else:
        text = chart.to_html(inline=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_model_charts(settings: Mapping[str, Any], directory: Path) -> list[Path]:
    """The model's match-weights chart in ``directory`` (created), as ``match_weights.svg`` and ``match_weights.html``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chart = match_weights_chart(settings)
    return [save_chart(chart, directory / f"{MATCH_WEIGHTS}{suffix}") for suffix in FORMATS]

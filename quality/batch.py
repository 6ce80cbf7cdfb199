"""Whole-batch rules: a batch far from the usual is held back from publication, with the reason.

Each staged batch leaves a profile (rows, empty values per column, counts per code); the rules
compare a new batch with the profiles of the source's earlier batches:

- row count far from the usual (outside median / ratio .. median * ratio of the last batches);
- a column suddenly empty (nearly all values missing where they usually were not);
- a code never seen before (in the code table nor in earlier batches) at a high rate.

Each rule is also a Great Expectations table or column expectation with bounds computed from the
history, so the suite's results and Data Docs show it like any other.
"""

from __future__ import annotations

import json
import statistics as stats
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from quality.config import BatchRules
from quality.rules import BATCH, REGION_TABLE, Rule
from schemas.events import record_type
from schemas.codes import TABLES

MAX_CODES = 200  # distinct values kept per coded column in a profile


@dataclass(frozen=True)
class Profile:
    """What a batch looked like: rows, missing values per field, value counts of coded fields."""

    rows: int
    missing: dict[str, int]
    codes: dict[str, dict[str, int]]

    def as_json(self) -> str:
        return json.dumps({"rows": self.rows, "missing": self.missing, "codes": self.codes}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        data = json.loads(text)
        return cls(data["rows"], data["missing"], data["codes"])


@dataclass
class Verdict:
    """The whole-batch rules of one batch: which failed and why, with their GX-shaped results."""

    failures: list[str] = field(default_factory=list)
    results: list[tuple[Rule, dict, bool]] = field(default_factory=list)  # (rule, result, success)

    @property
    def passed(self) -> bool:
        return not self.failures


def coded_fields(library: str, present: set[str]) -> dict[str, set[str] | None]:
    """Fields with a code table the batch fills -> the codes of that table (None: region codes, known by lookup)."""
    out: dict[str, set[str] | None] = {}
    for f in record_type(library).fields:
        if f.metadata or f.name not in present or not f.code_table:
            continue
        out[f.name] = None if f.code_table == REGION_TABLE else set(TABLES[f.code_table])
    return out


def profile(records: pa.Table, library: str, present: set[str]) -> Profile:
    """The profile of a batch of canonical records (only the fields the source fills)."""
    missing = {name: records.column(name).null_count for name in sorted(present) if name in records.column_names}
    codes: dict[str, dict[str, int]] = {}
    for name in coded_fields(library, present):
        counts = pc.value_counts(records.column(name).combine_chunks().cast(pa.string()))
        pairs = sorted(((v.as_py(), c.as_py()) for v, c in zip(counts.field("values"), counts.field("counts"))
                        if v.as_py() is not None), key=lambda p: -p[1])
        codes[name] = dict(pairs[:MAX_CODES])
    return Profile(records.num_rows, missing, codes)


def history(conn: duckdb.DuckDBPyConnection, source: str, limit: int = 20) -> list[Profile]:
    """Profiles of the source's earlier batches that were staged (blocked ones excluded), newest first."""
    rows = conn.execute(
        "SELECT profile FROM batch_profiles WHERE source = ? AND accepted ORDER BY checked_at DESC LIMIT ?",
        [source, limit]).fetchall()
    return [Profile.from_json(r[0]) for r in rows]


def judge(current: Profile, past: list[Profile], library: str, rules: BatchRules) -> Verdict:
    """Apply the whole-batch rules to ``current`` given the earlier profiles."""
    verdict = Verdict()
    _row_count(current, past, rules, verdict)
    if current.rows:
        _empty_columns(current, past, rules, verdict)
        _new_codes(current, past, library, rules, verdict)
    return verdict


def _row_count(current: Profile, past: list[Profile], rules: BatchRules, verdict: Verdict) -> None:
    cfg = rules.row_count
    sizes = [p.rows for p in past if p.rows][: cfg.history]
    if not cfg.enabled or not current.rows or len(sizes) < cfg.min_history:
        return  # an empty batch means "nothing changed"; too little history says nothing about "usual"
    usual = stats.median(sizes)
    low, high = int(usual / cfg.ratio), int(usual * cfg.ratio) + 1
    ok = low <= current.rows <= high
    rule = Rule("expect_table_row_count_to_be_between", {"min_value": low, "max_value": high}, BATCH, None,
                "batch.row_count", "history", f"row count within {cfg.ratio:g}x of the usual {usual:,.0f}")
    verdict.results.append((rule, {"observed_value": current.rows}, ok))
    if not ok:
        verdict.failures.append(f"row count {current.rows:,} is far from the usual {usual:,.0f} "
                                f"(median of the last {len(sizes)} batches; accepted {low:,}..{high:,})")


def _empty_columns(current: Profile, past: list[Profile], rules: BatchRules, verdict: Verdict) -> None:
    cfg = rules.empty_column
    if not cfg.enabled or current.rows < cfg.min_rows:
        return
    for name, missing in current.missing.items():
        earlier = [p.missing[name] / p.rows for p in past[: cfg.history] if p.rows >= cfg.min_rows and name in p.missing]
        if not earlier:
            continue
        usual = stats.mean(earlier)
        if usual > cfg.usual_max:
            continue  # a column usually empty may well be empty
        share = missing / current.rows
        ok = share < cfg.share
        rule = Rule("expect_column_proportion_of_non_null_values_to_be_between",
                    {"column": name, "min_value": round(1 - cfg.share, 6)}, BATCH, name, f"{name}.not_empty",
                    "history", f"{name} usually {100 * (1 - usual):.1f}% filled")
        verdict.results.append((rule, {"observed_value": 1 - share}, ok))
        if not ok:
            verdict.failures.append(f"column {name} is suddenly empty: {100 * share:.1f}% missing "
                                    f"(usually {100 * usual:.1f}%)")


def _new_codes(current: Profile, past: list[Profile], library: str, rules: BatchRules, verdict: Verdict) -> None:
    cfg = rules.new_code
    if not cfg.enabled or current.rows < cfg.min_rows:
        return
    from quality.engine import region_codes

    tables = coded_fields(library, set(current.codes))
    for name, counts in current.codes.items():
        table = tables.get(name)
        known = set(region_codes().to_pylist()) if table is None else set(table)
        for p in past:
            known |= set(p.codes.get(name, {}))
        new = {code: count for code, count in counts.items() if code not in known}
        total = sum(new.values())
        share = total / current.rows
        ok = share < cfg.share
        mostly = round(1 - cfg.share, 6)
        if table is None:  # region codes: the GB/T 2260 expectation, relaxed to "mostly"
            rule = Rule("expect_column_values_to_be_valid_region_code", {"column": name, "mostly": mostly}, BATCH, name,
                        f"{name}.known_codes", "history", f"{name} codes known (at most {100 * cfg.share:g}% new)")
        else:
            rule = Rule("expect_column_values_to_be_in_set", {"column": name, "value_set": sorted(known), "mostly": mostly},
                        BATCH, name, f"{name}.known_codes", "history",
                        f"{name} codes seen before (at most {100 * cfg.share:g}% new)")
        verdict.results.append((rule, {"observed_value": share, "unexpected_count": total,
                                       "partial_unexpected_list": sorted(new)[:20]}, ok))
        if not ok:
            shown = ", ".join(f"{c!r} ({n:,})" for c, n in sorted(new.items(), key=lambda kv: -kv[1])[:5])
            verdict.failures.append(f"column {name}: codes never seen before in {100 * share:.1f}% of the rows: {shown}")

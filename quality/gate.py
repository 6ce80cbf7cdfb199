"""The quality gate of one source: row rules, notes, whole-batch rules, and what each landing leaves behind.

``SourceGate(source).check(conn, landed)`` evaluates the source's suite over a landing's canonical
records, vectorised; the outcome's ``record(conn, staged=...)`` writes, inside staging's
transaction, the quarantine (every failed rule of every failed row, with source, run, file and
line), the notes on rows that passed, the suite's results and the batch profile and verdict.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.config import SourceConfig
from connectors.mapping import field_text
from hub.errors import QualityGateFailed
from quality import batch as batch_rules
from quality.config import SourceRules
from quality.engine import Batch, Outcome, evaluate, reasons_of, statistics
from quality.rules import ERROR, NOTE, Rule, Suite, mapped_fields, source_rules, source_suite
from schemas.events import record_type

if TYPE_CHECKING:
    from warehouse.staging import Landed

REASONS = "reasons"
PARTIAL = "_partial"  # failed rows: JSON of values kept beside the record (partial dates), see quarantine_rows
LINEAGE_COLUMNS = ("_file", "_line")


PASS = "_pass"  # the flag column: staging takes the rows where it is true (no copy of the batch)


@dataclass
class RowResult:
    """Rows split by the row rules, with every reason and note, and each rule's GX-shaped statistics."""

    checked: pa.Table  # every record, identifiers normalised, plus the ``_pass`` flag
    failed: pa.Table  # canonical columns as typed, lineage, and ``reasons: list<string>``
    notes: pa.Table  # source_record_id, _file, _line, rule, field, reason
    results: list[dict]

    @property
    def passed(self) -> pa.Table:
        """The records that passed (a copy: for small batches and tests; staging reads ``checked``)."""
        if PASS not in self.checked.column_names:
            return self.checked
        return self.checked.filter(self.checked.column(PASS)).drop_columns([PASS])

    @property
    def passed_count(self) -> int:
        return passed_count(self.checked)


def passed_count(table: pa.Table) -> int:
    """Rows a flagged table lets through."""
    if PASS not in table.column_names:
        return table.num_rows
    return int(pc.sum(table.column(PASS)).as_py() or 0)


def run_rules(suite: Suite, records: pa.Table, raw: pa.Table | None = None, parts: int = 1) -> RowResult:
    """Evaluate the suite's error and note rules over ``records``; identifiers of passed rows normalised."""
    b = Batch(records, raw, parts)
    outcomes = _excused([(rule, evaluate(b, rule)) for rule in suite.rules
                         if rule.level in (ERROR, NOTE) and _applicable(rule, b)])
    results = []
    for rule, outcome in outcomes:
        stats = statistics(b, rule, outcome, suite.library)
        results.append(result_entry(rule, stats, outcome.count == 0 or _mostly_ok(rule, stats)))
    errors = [(r, o) for r, o in outcomes if r.level == ERROR]
    failing = np.zeros(b.n, dtype=bool)
    for _rule, outcome in errors:
        failing |= outcome.fail
    rows = np.flatnonzero(failing)
    reasons = _reason_lists([reasons_of(o, r, rows) for r, o in errors], len(rows))
    columns = {name: b.column(name) for name in records.column_names}
    failed = pa.Table.from_arrays(list(columns.values()), names=list(columns)).take(pa.array(rows))
    failed = failed.append_column(REASONS, reasons)
    kept = [(r, o) for r, o in errors if o.values is not None]
    if kept:
        failed = failed.append_column(PARTIAL, _kept_values(kept, rows))
    passed_columns = dict(columns)
    _normalise(b, suite, passed_columns)
    passed_columns[PASS] = pa.array(~failing)
    checked = pa.Table.from_arrays(list(passed_columns.values()), names=list(passed_columns))
    notes = _notes(b, [(r, o) for r, o in outcomes if r.level == NOTE], failing)
    return RowResult(checked, failed, notes, results)


def _excused(outcomes: list[tuple[Rule, Outcome]]) -> list[tuple[Rule, Outcome]]:
    """Each rule's failures less the rows failing the rule its ``unless`` names (a partial date, not a bad one)."""
    failing: dict[str, np.ndarray] = {}
    for rule, outcome in outcomes:
        failing[rule.name] = failing[rule.name] | outcome.fail if rule.name in failing else outcome.fail
    return [(rule, dataclasses.replace(outcome, fail=outcome.fail & ~failing[rule.unless]))
            if rule.unless in failing else (rule, outcome) for rule, outcome in outcomes]


def _kept_values(kept: list[tuple[Rule, Outcome]], rows: np.ndarray) -> pa.Array:
    """Per failing row, a JSON object of what its rules kept ({"birth_date": "1985-03"}), or null."""
    out = pa.nulls(len(rows), pa.string())
    idx = pa.array(rows)
    for rule, outcome in kept:
        values = outcome.values.take(idx).cast(pa.string())  # ISO dates: nothing to escape
        entry = pc.binary_join_element_wise(f'"{rule.field}":"', values, '"', "")
        entry = pc.if_else(pa.array(outcome.fail[rows]), entry, pa.scalar(None, pa.string()))
        joined = pc.binary_join_element_wise(out, entry, ",")
        out = pc.coalesce(joined, out, entry)
    return pc.binary_join_element_wise("{", out, "}", "")


def _applicable(rule: Rule, b: Batch) -> bool:
    if rule.raw:
        return b.raw is not None and rule.kwargs["column"] in b.raw.column_names
    cols = [rule.kwargs[k] for k in ("column", "column_A", "column_B") if k in rule.kwargs]
    cols += list(rule.kwargs.get("column_list", []))
    return b.has(*cols)


def _mostly_ok(rule: Rule, stats: dict) -> bool:
    mostly = rule.kwargs.get("mostly")
    pct = stats.get("unexpected_percent")
    return mostly is not None and pct is not None and (100 - pct) / 100 >= mostly


def _normalise(b: Batch, suite: Suite, columns: dict[str, pa.Array]) -> None:
    """Identifier columns in canonical form (the notes say which values were typed otherwise)."""
    lib = record_type(suite.library)
    for f in lib.fields:
        if f.validator and f.name in columns:
            normalised = b.identifiers(f.name, f.validator).column("normalised")
            columns[f.name] = pc.coalesce(normalised, columns[f.name])
    if lib.name == "licence" and b.has("holder_type", "holder_id"):
        kind = b.column("holder_type").cast(pa.string())
        person = b.identifiers("holder_id", "resident_id").column("normalised")
        legal = b.identifiers("holder_id", "credit_code").column("normalised")
        chosen = pc.if_else(pc.fill_null(pc.equal(kind, "person"), False), person,
                            pc.if_else(pc.fill_null(pc.equal(kind, "legal_person"), False), legal,
                                       pa.scalar(None, pa.string())))
        columns["holder_id"] = pc.coalesce(chosen, columns["holder_id"])


def _reason_lists(per_rule: list[pa.Array], n: int) -> pa.Array:
    """One list per failing row: the reasons of every rule it fails, in rule order."""
    if not per_rule or n == 0:
        return pa.array([[] for _ in range(n)], pa.list_(pa.string()))
    present = np.stack([pc.is_valid(r).to_numpy(zero_copy_only=False) for r in per_rule], axis=1)
    rows, rules = np.nonzero(present)  # row-major: each row's reasons in rule order
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    values = pc.take(pa.concat_arrays([r.cast(pa.string()) for r in per_rule]), pa.array(rules * n + rows))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _notes(b: Batch, notes: list[tuple[Rule, Outcome]], failing: np.ndarray) -> pa.Table:
    parts: list[pa.Table] = []
    for rule, outcome in notes:
        rows = np.flatnonzero(outcome.fail & ~failing)  # a quarantined row carries its story in the quarantine
        if not rows.size:
            continue
        idx = pa.array(rows)
        texts = reasons_of(outcome, rule, rows)
        parts.append(pa.table({
            "source_record_id": b.column("source_record_id").take(idx).cast(pa.string()),
            "file": _lineage(b, "_file", idx, pa.string()),
            "line": _lineage(b, "_line", idx, pa.int64()),
            "rule": pa.array([rule.name] * len(rows), pa.string()),
            "field": pa.array([rule.field] * len(rows), pa.string()),
            "reason": texts,
        }))
    if not parts:
        return pa.table({"source_record_id": pa.array([], pa.string()), "file": pa.array([], pa.string()),
                         "line": pa.array([], pa.int64()), "rule": pa.array([], pa.string()),
                         "field": pa.array([], pa.string()), "reason": pa.array([], pa.string())})
    return pa.concat_tables(parts)


def _lineage(b: Batch, name: str, idx: pa.Array, kind: pa.DataType) -> pa.Array:
    return b.column(name).take(idx).cast(kind) if b.has(name) else pa.nulls(len(idx), kind)


def result_entry(rule: Rule, stats: dict, success: bool) -> dict:
    """One expectation's result in the shape GX stores it (configuration, result, success)."""
    return {"expectation_config": {"type": rule.expectation, "kwargs": dict(rule.kwargs), "meta": rule.meta},
            "result": stats, "success": bool(success)}


def suite_result(suite: Suite, results: list[dict], run_id: str, batch: dict[str, Any]) -> dict:
    """A whole suite's result in the shape of a GX ``ExpectationSuiteValidationResult``."""
    ok = sum(1 for r in results if r["success"])
    return {
        "suite_name": suite.name, "success": ok == len(results), "results": results,
        "statistics": {"evaluated_expectations": len(results), "successful_expectations": ok,
                       "unsuccessful_expectations": len(results) - ok,
                       "success_percent": 100.0 * ok / len(results) if results else 100.0},
        "meta": {"run_id": run_id, "batch": batch, "validation_time": dt.datetime.now(dt.UTC).isoformat(),
                 "engine": "hub vectorised (Arrow/numpy/DuckDB)"},
    }


# --- one source --------------------------------------------------------------------------------


@dataclass
class Checked:
    """The gate's verdict on one landing; ``record`` writes it into the working database."""

    gate: SourceGate
    landed: Landed
    passed: pa.Table  # every record with the ``_pass`` flag
    failed: pa.Table
    notes: pa.Table
    results: dict
    profile: batch_rules.Profile
    held: list[str] = field(default_factory=list)
    rejected: bool = False

    def record(self, conn: duckdb.DuckDBPyConnection, *, staged: bool) -> int:
        source, library, run_id = self.gate.source.name, self.gate.library, self.landed.manifest.run_id
        conn.execute("INSERT INTO quality_results (suite, kind, subject, library, run_id, success, result) "
                     "VALUES (?, 'source', ?, ?, ?, ?, ?)",
                     [self.gate.suite.name, source, library, run_id, self.results["success"],
                      json.dumps(self.results, ensure_ascii=False, default=str)])
        conn.execute("INSERT OR REPLACE INTO batch_profiles VALUES (?, ?, ?, ?, now())",
                     [source, run_id, self.profile.as_json(), staged and not self.rejected])
        if not staged:
            conn.execute("INSERT INTO batch_checks (source, run_id, sha256, status, reasons) VALUES (?, ?, ?, 'held', ?) "
                         "ON CONFLICT (source, run_id) DO UPDATE SET sha256 = excluded.sha256, reasons = excluded.reasons, "
                         "status = 'held', checked_at = now()",
                         [source, run_id, self.landed.manifest.sha256, self.held])
            return 0
        if self.rejected:
            return 0
        from quality.quarantine import quarantine_rows, quarantine_unreadable, record_notes, supersede

        conn.execute("DELETE FROM quarantine WHERE source = ? AND run_id = ? AND status = 'open'", [source, run_id])
        conn.execute("DELETE FROM quality_notes WHERE source = ? AND run_id = ?", [source, run_id])
        count = quarantine_rows(conn, library, source, run_id, self.failed)
        count += quarantine_unreadable(conn, library, source, run_id, self.landed.unreadable)
        record_notes(conn, library, source, run_id, self.notes)
        supersede(conn, source, run_id, self.passed)
        return count


class SourceGate:
    """The gate of one configured source (its suite is built once)."""

    def __init__(self, source: SourceConfig, rules: dict | None = None, today: dt.date | None = None):
        self.source = source
        self.library = source.delivers  # what the gate checks: the library's records or its events
        self.rules_config = SourceRules.model_validate(rules if rules is not None else source_rules(source))
        self.suite = source_suite(source, self.rules_config.model_dump(mode="json", exclude_none=True), today=today)
        self.present = mapped_fields(source) | {record_type(source.delivers).key}

    def check(self, conn: duckdb.DuckDBPyConnection, landed: Landed) -> Checked:
        """Row rules, notes and whole-batch rules over one landing."""
        run_id = landed.manifest.run_id
        decision = conn.execute("SELECT status, decided_by FROM batch_checks WHERE source = ? AND run_id = ?",
                                [self.source.name, run_id]).fetchone()
        if landed.records.num_rows:
            rows = run_rules(self.suite, landed.records, self.raw_texts(landed.raw), landed.parts)
            profile = batch_rules.profile(landed.records, self.library, self.present)
        else:
            empty = pa.table({})
            rows = RowResult(empty, empty, empty, [])
            profile = batch_rules.Profile(0, {}, {})
        verdict = batch_rules.judge(profile, batch_rules.history(conn, self.source.name), self.library,
                                    self.rules_config.batch)
        results = rows.results + [result_entry(rule, res, ok) for rule, res, ok in verdict.results]
        batch_meta = {"source": self.source.name, "run_id": run_id, "rows": landed.manifest.rows,
                      "records": landed.records.num_rows, "unreadable": len(landed.unreadable),
                      "sha256": landed.manifest.sha256, "held": verdict.failures}
        checked = Checked(self, landed, rows.checked, rows.failed, rows.notes,
                          suite_result(self.suite, results, run_id, batch_meta), profile)
        status = decision[0] if decision else None
        if status == "rejected":
            checked.rejected = True
        elif verdict.failures and status != "released":
            checked.held = verdict.failures
        elif verdict.failures:  # a steward released it: staged despite its whole-batch rules, and the result says by whom
            checked.results["meta"]["released_by"] = decision[1]
        return checked

    def raw_texts(self, raw: pa.Table) -> pa.Table:
        """The landed columns plus the combined text of every field built from several, for the rules on raw text."""
        combined = {spec.text_name: spec for fields in self.source.record_fields() for spec in fields.values()
                    if spec.columns is not None or spec.template is not None}
        wanted = {r.kwargs["column"] for r in self.suite.rules if r.raw} - set(raw.column_names)
        for name in sorted(wanted & set(combined)):
            raw = raw.append_column(name, field_text(raw, combined[name]))
        return raw

    def released(self, conn: duckdb.DuckDBPyConnection) -> tuple[pa.Table, Callable[[], None]]:
        from quality.quarantine import released_records

        return released_records(conn, self.source.name, self.library)


def recheck_record(source: SourceConfig, record: dict[str, Any]) -> list[str]:
    """The row rules a (corrected) record still fails, for a steward's release; format rules on raw text excluded."""
    lib = record_type(source.delivers)
    gate = SourceGate(source)
    rules = tuple(r for r in gate.suite.rules if r.level == ERROR and not r.raw)
    suite = Suite(gate.suite.name, gate.suite.kind, gate.suite.subject, gate.suite.library, rules)
    columns = {}
    for f in lib.fields:
        value = record.get(f.name)
        kind = pa.string() if f.type in ("string", "json") else None
        if f.type == "date":
            columns[f.name] = pa.array([None if value is None else str(value)[:10]], pa.string()).cast(pa.date32())
        elif kind is not None:
            columns[f.name] = pa.array([None if value is None else str(value)], kind)
        else:
            columns[f.name] = pa.nulls(1, pa.string())
    result = run_rules(suite, pa.table(columns))
    return list(result.failed.column(REASONS)[0].as_py()) if result.failed.num_rows else []


def held_batches(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[str]]]:
    """(source, run_id, reasons) of every batch held back and not yet decided."""
    return [(s, r, list(reasons)) for s, r, reasons in conn.execute(
        "SELECT source, run_id, reasons FROM batch_checks WHERE status = 'held' ORDER BY checked_at").fetchall()]


def assert_publishable(conn: duckdb.DuckDBPyConnection) -> None:
    """QualityGateFailed if any batch is held back: a publication now would leave it out or let it in unjudged."""
    held = held_batches(conn)
    if held:
        raise QualityGateFailed([f"{source} batch {run_id} held: {'; '.join(reasons)}" for source, run_id, reasons in held])

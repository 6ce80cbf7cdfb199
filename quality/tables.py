"""Suites of the shared tables, after reconciliation: keys, references, and agreement between departments.

- Key uniqueness (and presence) of every golden table: a failure refuses the publication.
- Referential integrity: every licence holder exists in the population or legal-person library.
  A licence whose holder does not is held back from the golden table and quarantined (stage
  ``reference``) until the holder appears or a steward releases it; it stays in staging meanwhile.
  Likewise every licence status event names a licence of the library: one that does not changes
  nothing and is quarantined (stage ``reference``) until the licence appears.
- No conflicting values: where departments give a record different values for a field (the
  authoritative department against the others, or a field against another library, as configured),
  each disagreeing record is a finding the stewards see; reconciliation decides the golden value.
- Completeness of required fields in the golden records (reported).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

from quality.config import Consistency, RulesFile, department_rules
from quality.gate import result_entry, suite_result
from quality.rules import BATCH, ERROR, NOTE, Rule, Suite
from schemas import LIBRARIES
from warehouse import db

HOLDER_LIBRARIES = {"person": ("population", "id_number", "no person with this ID number in the population library"),
                    "legal_person": ("legal_person", "credit_code",
                                     "no legal person with this credit code in the legal-person library")}


@dataclass
class TableCheck:
    """What the shared-table suites found; ``blocking`` refuses the publication."""

    blocking: list[str] = field(default_factory=list)
    held_back: dict[str, int] = field(default_factory=dict)  # library -> records held back (references)
    unknown_events: int = 0  # status events naming a licence the library does not know (quarantined)
    findings: int = 0
    results: dict[str, dict] = field(default_factory=dict)  # library -> suite result


def _tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return db.tables(conn)


def check_tables(conn: duckdb.DuckDBPyConnection, run_id: str, libraries: list[str],
                 rules: RulesFile | None = None) -> TableCheck:
    """Run the shared-table suites over the golden tables just built; record results and findings."""
    rules = rules or department_rules()
    present = _tables(conn)
    out = TableCheck()
    per_library: dict[str, list[dict]] = {lib: [] for lib in libraries}
    if "licence" in libraries and "golden_licence" in present:
        if "staging_licence_events" in present:
            per_library["licence"] += _event_references(conn, run_id, out)
        per_library["licence"] += _references(conn, run_id, present, out)
    conn.execute("DELETE FROM quality_findings WHERE kind = 'consistency'")
    for lib in libraries:
        if f"golden_{lib}" not in present:
            continue
        per_library[lib] += _keys(conn, lib, out)
        per_library[lib] += _completeness(conn, lib)
        configured = rules.libraries.get(lib)
        for rule in configured.consistency if configured else []:
            per_library[lib].append(_consistency(conn, run_id, lib, rule, present, out))
    for lib, results in per_library.items():
        if not results:
            continue
        suite = Suite(f"table.{lib}", "table", lib, lib, ())
        (rows,) = conn.execute(f'SELECT count(*) FROM "golden_{lib}"').fetchone()
        result = suite_result(suite, results, run_id, {"table": f"golden_{lib}", "rows": rows})
        out.results[lib] = result
        conn.execute("INSERT INTO quality_results (suite, kind, subject, library, run_id, success, result) "
                     "VALUES (?, 'table', ?, ?, ?, ?, ?)",
                     [suite.name, lib, lib, run_id, result["success"], json.dumps(result, ensure_ascii=False, default=str)])
    return out


def _keys(conn: duckdb.DuckDBPyConnection, library: str, out: TableCheck) -> list[dict]:
    lib = LIBRARIES[library]
    total, missing, duplicated = conn.execute(
        f'SELECT count(*), count(*) FILTER ("{lib.key}" IS NULL), count("{lib.key}") - count(DISTINCT "{lib.key}") '
        f'FROM "golden_{library}"').fetchone()
    results = []
    for expectation, count, what in (("expect_column_values_to_not_be_null", missing, "without a key"),
                                     ("expect_column_values_to_be_unique", duplicated, "with a duplicated key")):
        rule = Rule(expectation, {"column": lib.key}, BATCH, lib.key, f"{lib.key}.{expectation.split('_')[-1]}", "hub",
                    f"one golden record per {lib.key}")
        results.append(result_entry(rule, _counts(total, count), count == 0))
        if count:
            out.blocking.append(f"golden {library}: {count:,} record(s) {what} ({lib.key})")
    return results


def _counts(total: int, unexpected: int, missing: int = 0) -> dict:
    nonmissing = total - missing
    return {"element_count": total, "missing_count": missing, "unexpected_count": unexpected,
            "unexpected_percent": 100.0 * unexpected / nonmissing if nonmissing else None,
            "partial_unexpected_list": []}


def _completeness(conn: duckdb.DuckDBPyConnection, library: str) -> list[dict]:
    lib = LIBRARIES[library]
    required = [f for f in lib.fields if f.required and not f.metadata and f.name != lib.key]
    if not required:
        return []
    counts = conn.execute("SELECT count(*), " + ", ".join(f'count(*) FILTER ("{f.name}" IS NULL)' for f in required)
                          + f' FROM "golden_{library}"').fetchone()
    total = counts[0]
    return [result_entry(Rule("expect_column_values_to_not_be_null", {"column": f.name}, NOTE, f.name,
                              f"{f.name}.required", "schema", f"{f.label} present in every golden record"),
                         _counts(total, n), n == 0)
            for f, n in zip(required, counts[1:])]


def _references(conn: duckdb.DuckDBPyConnection, run_id: str, present: set[str], out: TableCheck) -> list[dict]:
    """Hold back licences whose holder is in no library; quarantine them (stage ``reference``)."""
    results = []
    (total,) = conn.execute("SELECT count(*) FROM golden_licence").fetchone()
    conn.execute("CREATE OR REPLACE TEMP TABLE dangling (licence_number VARCHAR, holder_type VARCHAR, reason VARCHAR)")
    for holder_type, (library, key, reason) in HOLDER_LIBRARIES.items():
        if f"golden_{library}" not in present:
            continue  # a library the hub does not build cannot be referred to: nothing to check against
        conn.execute(f"INSERT INTO dangling SELECT g.licence_number, g.holder_type, ? FROM golden_licence g "
                     f"WHERE g.holder_type = ? AND NOT EXISTS (SELECT 1 FROM \"golden_{library}\" x "
                     f"WHERE x.\"{key}\" = g.holder_id)", [f"holder_id: {reason}", holder_type])
    # Where each golden licence came from (source, record, file, line), for the quarantine entry.
    conn.execute("""CREATE OR REPLACE TEMP TABLE dangling_src AS
        SELECT d.licence_number, d.reason, s._source AS source, s.source_record_id, s._file AS file, s._line AS line,
               s.run_id, to_json(g) AS record
        FROM dangling d JOIN golden_licence g USING (licence_number)
        JOIN staging_licence s ON s.licence_number = g.licence_number AND s.source_record_id = g.source_record_id
             AND s.source_department IS NOT DISTINCT FROM g.source_department
        QUALIFY row_number() OVER (PARTITION BY d.licence_number ORDER BY s.ingested_at DESC) = 1""")
    # A steward may release a licence despite its reference (the holder is known elsewhere): it is then kept.
    conn.execute("""DELETE FROM dangling_src d WHERE EXISTS (SELECT 1 FROM quarantine q WHERE q.stage = 'reference'
                    AND q.status = 'released' AND q.source = d.source AND q.source_record_id = d.source_record_id)""")
    conn.execute("""UPDATE quarantine SET status = 'superseded', decided_by = 'pipeline', decided_at = now(),
                    note = 'the holder is now in the library (run ' || ? || ')'
                    WHERE stage = 'reference' AND status = 'open' AND library = 'licence' AND NOT EXISTS (SELECT 1 FROM dangling_src d
                    WHERE d.source = quarantine.source AND d.source_record_id = quarantine.source_record_id)""", [run_id])
    conn.execute("""INSERT INTO quarantine (library, source, run_id, source_record_id, file, line, reasons, record, stage)
                    SELECT 'licence', source, run_id, source_record_id, file, line, [reason], record, 'reference'
                    FROM dangling_src d WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.stage = 'reference'
                    AND q.status = 'open' AND q.source = d.source AND q.source_record_id = d.source_record_id)""")
    (held,) = conn.execute("SELECT count(*) FROM dangling_src").fetchone()
    conn.execute("DELETE FROM golden_licence WHERE licence_number IN (SELECT licence_number FROM dangling_src)")
    sample = [r[0] for r in conn.execute("SELECT DISTINCT holder_type FROM dangling").fetchall()]
    rule = Rule("expect_column_values_to_reference_library",
                {"column": "holder_id", "by": "holder_type",
                 "libraries": {t: lib for t, (lib, _k, _r) in HOLDER_LIBRARIES.items()}},
                ERROR, "holder_id", "holder_id.reference", "hub", "every licence holder exists in its library")
    res = _counts(total, held)
    res["partial_unexpected_list"] = sample
    results.append(result_entry(rule, res, held == 0))
    out.held_back["licence"] = held
    conn.execute("DROP TABLE dangling")
    conn.execute("DROP TABLE dangling_src")
    return results


def _event_references(conn: duckdb.DuckDBPyConnection, run_id: str, out: TableCheck) -> list[dict]:
    """Quarantine (stage ``reference``) status events of licences the library does not know; close those it now knows.

    Run before holders are checked: an event of a licence held back for its holder is not unknown.
    """
    reason = "licence_number: no licence with this number in the licence library"
    conn.execute("""CREATE OR REPLACE TEMP TABLE unknown_events AS
        SELECT e._source AS source, e.source_record_id, e._file AS file, e._line AS line, e.run_id, to_json(e) AS record
        FROM staging_licence_events e ANTI JOIN golden_licence g ON g.licence_number = e.licence_number
        ANTI JOIN (SELECT source, source_record_id FROM quarantine WHERE stage = 'reference' AND status = 'released'
                   AND library = 'licence_events') r ON r.source = e._source AND r.source_record_id = e.source_record_id""")
    conn.execute("""UPDATE quarantine SET status = 'superseded', decided_by = 'pipeline', decided_at = now(),
                    note = 'the licence is now in the library (run ' || ? || ')'
                    WHERE stage = 'reference' AND status = 'open' AND library = 'licence_events' AND NOT EXISTS
                    (SELECT 1 FROM unknown_events u WHERE u.source = quarantine.source
                     AND u.source_record_id = quarantine.source_record_id)""", [run_id])
    conn.execute("""INSERT INTO quarantine (library, source, run_id, source_record_id, file, line, reasons, record, stage)
                    SELECT 'licence_events', source, run_id, source_record_id, file, line, [?], record, 'reference'
                    FROM unknown_events u WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.stage = 'reference'
                    AND q.status = 'open' AND q.source = u.source AND q.source_record_id = u.source_record_id)""", [reason])
    (total,) = conn.execute("SELECT count(*) FROM staging_licence_events").fetchone()
    (unknown,) = conn.execute("SELECT count(*) FROM unknown_events").fetchone()
    conn.execute("DROP TABLE unknown_events")
    out.unknown_events = unknown
    rule = Rule("expect_column_values_to_reference_library", {"column": "licence_number", "library": "licence"},
                ERROR, "licence_number", "licence_events.reference", "hub", "every status event names a licence of the library")
    return [result_entry(rule, _counts(total, unknown), unknown == 0)]


def _consistency(conn: duckdb.DuckDBPyConnection, run_id: str, library: str, rule: Consistency, present: set[str],
                 out: TableCheck) -> dict:
    lib = LIBRARIES[library]
    col, key = rule.field, lib.key
    if rule.reference:
        pairs = [(ref, other) for ref, others in rule.compatible.items() for other in others]
        conn.execute("CREATE OR REPLACE TEMP TABLE compat (ref VARCHAR, other VARCHAR)")
        if pairs:
            conn.executemany("INSERT INTO compat VALUES (?, ?)", pairs)
        # Every record of the other departments (a stale duplicate too) against the reference's latest word.
        conn.execute(f"""CREATE OR REPLACE TEMP TABLE said AS
            SELECT "{key}" AS key, source_department AS dept, _source, source_record_id, _file, _line,
                   CAST("{col}" AS VARCHAR) AS value,
                   row_number() OVER (PARTITION BY "{key}", source_department
                                      ORDER BY source_updated_at DESC NULLS LAST, ingested_at DESC, source_record_id DESC) AS newest
            FROM "staging_{library}" WHERE "{key}" IS NOT NULL AND "{col}" IS NOT NULL""")
        compared_sql = ("SELECT count(DISTINCT o.key) FROM said o JOIN said r ON o.key = r.key AND r.dept = ? AND r.newest = 1 "
                        "WHERE o.dept <> ?")
        conn.execute(f"""INSERT INTO quality_findings (library, field, kind, key, source, source_record_id, file, line, detail, run_id)
            SELECT ?, ?, 'consistency', o.key, o._source, o.source_record_id, o._file, o._line,
                   o.dept || ' gives ' || o.value || ', ' || r.dept || ' gives ' || r.value, ?
            FROM said o JOIN said r ON o.key = r.key AND r.dept = ? AND r.newest = 1
            WHERE o.dept <> ? AND o.value <> r.value
              AND NOT EXISTS (SELECT 1 FROM compat c WHERE c.ref = r.value AND c.other = o.value)""",
                     [library, col, run_id, rule.reference, rule.reference])
        (compared,) = conn.execute(compared_sql, [rule.reference, rule.reference]).fetchone()
        kwargs = {"column": col, "reference": rule.reference, "compatible": rule.compatible}
        expectation, what = "expect_column_values_to_agree_with_reference_department", f"agrees with {rule.reference}"
        conn.execute("DROP TABLE said")
        conn.execute("DROP TABLE compat")
    else:
        other = rule.against
        assert other is not None
        if f"golden_{other.library}" not in present:
            return result_entry(Rule("expect_column_values_to_agree_with_library", {"column": col}, NOTE, col,
                                     f"{col}.agrees", "department", "not evaluated: library not built"),
                                _counts(0, 0), True)
        okey = LIBRARIES[other.library].key
        join = (f'FROM "staging_{library}" s JOIN "golden_{other.library}" g ON g."{okey}" = s."{other.key}" '
                f'WHERE s."{col}" IS NOT NULL AND g."{other.field}" IS NOT NULL')
        conn.execute(f"""INSERT INTO quality_findings (library, field, kind, key, source, source_record_id, file, line, detail, run_id)
            SELECT ?, ?, 'consistency', s."{key}", s._source, s.source_record_id, s._file, s._line,
                   s.source_department || ' differs from the {other.library} library ({other.field})', ? {join}
              AND CAST(s."{col}" AS VARCHAR) <> CAST(g."{other.field}" AS VARCHAR)""", [library, col, run_id])
        (compared,) = conn.execute(f"SELECT count(DISTINCT s.\"{key}\") {join}").fetchone()
        kwargs = {"column": col, "library": other.library, "key": other.key, "field": other.field}
        expectation, what = "expect_column_values_to_agree_with_library", f"agrees with {other.library}.{other.field}"
    (found,) = conn.execute("SELECT count(DISTINCT key) FROM quality_findings WHERE kind = 'consistency' AND library = ? "
                            "AND field = ?", [library, col]).fetchone()
    out.findings += found
    rule_obj = Rule(expectation, kwargs, NOTE, col, f"{col}.consistent", "department", f"{lib.field(col).label} {what}")
    return result_entry(rule_obj, _counts(compared, found), found == 0)


"""Life events across libraries: licence status events, holders that ended, validity that ran out.

Applied to ``golden_licence`` after the golden records of every library are built (and after the
stewards' resolutions), in one vectorised pass:

1. **Status history.** The issuers' status events (``staging_licence_events``), the status the
   licence record itself carries (dated by ``status_date``, else by issue date / validity start /
   validity end for issued / renewed / expired) and any history the record already has make the
   licence's history, in date order (same day: the order of ``schemas.codes.LICENCE_STATUS``; one
   entry per status and date, an event's first). Its last entry gives ``status`` and ``status_date``
   (rule ``event:<department>`` when an event decided).
2. **What ends a licence by itself**, for a licence whose status is not final yet (expired, revoked,
   cancelled): its holder ended, or its validity ran out. The earlier of the two is appended:

   - the holder, a legal person, is deregistered (注销) in ``golden_legal_person``: ``cancelled`` on the
     holder's status date (``life_event:holder_deregistered``), or revoked (吊销): ``revoked``
     (``life_event:holder_revoked``);
   - the holder, a person, is deceased in ``golden_population``: ``cancelled`` on the date of death
     (``life_event:holder_deceased``), except licences that record a civil-status act rather than
     grant a qualification (``schemas.codes.OUTLIVE_HOLDER``: a marriage certificate stays as issued;
     the death shows in the survivor's marital status);
   - ``valid_to`` lies before ``today``: ``expired`` on ``valid_to`` (``life_event:expired``).

   A derived end is never undone by the licence's own entries: an event dated after its holder ended
   stays in the history but does not revive the licence. The record's own status, when it decides,
   keeps its own ``status_date`` (the issue date only places it in the history).

Every changed field gets a provenance row naming the rule (the history too, unless it is only the
record's own status: provenance is kept for values from elsewhere, as ``warehouse.reconcile`` does).
An undated status the record carries is the same as a dated entry of that status, when there is one;
otherwise it sorts before every dated entry (the issuers' exports carry no status date; their events do).
Applying twice gives the same result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from schemas import LEGAL_PERSON, POPULATION
from schemas.codes import FINAL_LICENCE_STATUSES, LICENCE_STATUS, OUTLIVE_HOLDER
from schemas.licences import validity_ended_sql
from warehouse import db

_FINAL = ", ".join(f"'{s}'" for s in FINAL_LICENCE_STATUSES)
_OUTLIVE = ", ".join(f"'{t}'" for t in sorted(OUTLIVE_HOLDER)) or "NULL"
# Same-day order of statuses; an undated status sorts before every dated one.
_RANK = "CASE status " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(LICENCE_STATUS)) + " ELSE 15 END"
_SORT = f"(coalesce(date - DATE '1800-01-01', -1) * 16 + {_RANK})"
# Where an entry comes from; on the same status and date the first wins: an event, the record's status, its history.
EVENT, RECORD, HISTORY, DERIVED = 0, 1, 2, 3
_HISTORY_TYPE = '[{"status": "VARCHAR", "date": "DATE", "source": "VARCHAR", "rule": "VARCHAR"}]'
# One number per entry, greatest decides: a derived end above everything, then the latest entry.
_DECIDE = f"((origin = {DERIVED})::BIGINT << 40) + sort"


@dataclass(frozen=True)
class LifeEventsResult:
    licences: int  # golden licences looked at
    events: int  # staged status events of licences the library knows
    changed: int  # licences whose status or status date changed
    by_rule: dict[str, int] = field(default_factory=dict)  # those licences by the rule that decided their status


def _tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return db.tables(conn)


def _authority(field_name: str, library_fields, alias: str) -> str:  # type: ignore[no-untyped-def]
    """SQL: the golden record's own department is an authority for the field (no provenance row: its own value)."""
    authorities = ", ".join(f"'{a}'" for a in next(f for f in library_fields if f.name == field_name).authorities)
    return f"coalesce({alias}.source_department IN ({authorities or 'NULL'}), false)"


def _holders_sql(present: set[str]) -> str:
    """Holders that ended: holder type and id, the status their licences take, its date, rule and provenance.

    Provenance is sparse (``warehouse.reconcile``): without a row, the value came from the record's own source.
    """
    parts = ["SELECT NULL::VARCHAR AS holder_type, NULL::VARCHAR AS holder_id, NULL::VARCHAR AS status, "
             "NULL::DATE AS date, NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id, "
             "NULL::VARCHAR AS rule, NULL::BOOLEAN AS verified WHERE false"]
    if {"golden_legal_person", "golden_legal_person_provenance"} <= present:
        parts.append(
            "SELECT 'legal_person', l.credit_code, CASE l.status WHEN 'deregistered' THEN 'cancelled' ELSE 'revoked' END, "
            "l.status_date, coalesce(p.source_department, l.source_department), "
            "coalesce(p.source_record_id, l.source_record_id), 'life_event:holder_' || l.status, "
            f"coalesce(p.verified, {_authority('status', LEGAL_PERSON.fields, 'l')}) "
            "FROM golden_legal_person l LEFT JOIN golden_legal_person_provenance p "
            "ON p.key = l.credit_code AND p.field = 'status' WHERE l.status IN ('deregistered', 'revoked')")
    if {"golden_population", "golden_population_provenance"} <= present:
        parts.append(
            "SELECT 'person', g.id_number, 'cancelled', g.life_status_date, coalesce(p.source_department, g.source_department), "
            "coalesce(p.source_record_id, g.source_record_id), 'life_event:holder_deceased', "
            f"coalesce(p.verified, {_authority('life_status', POPULATION.fields, 'g')}) "
            "FROM golden_population g LEFT JOIN golden_population_provenance p "
            "ON p.key = g.id_number AND p.field = 'life_status' WHERE g.life_status = 'deceased'")
    return " UNION ALL ".join(parts)


def _events_sql(present: set[str]) -> str:
    if "staging_licence_events" not in present:
        return ""
    # Events of licences the library does not know drop out at the join with the licences (step 2).
    return f"""SELECT licence_number AS key, event AS status, event_date AS date, event_date AS own_date,
                   source_department AS source, source_record_id, 'event:' || source_department AS rule,
                   NULL::BOOLEAN AS verified, {EVENT} AS origin
            FROM staging_licence_events WHERE licence_number IS NOT NULL AND event IS NOT NULL
            UNION ALL"""


def apply_life_events(conn: duckdb.DuckDBPyConnection, today: dt.date) -> LifeEventsResult:
    """Set status, status date and status history of every golden licence from events, holders and validity."""
    present = _tables(conn)
    if "golden_licence" not in present:
        return LifeEventsResult(0, 0, 0)
    # 1. Every status a licence had: its issuers' events, its record's status, and its record's history; one
    # entry per status and date (an event's first). ``own_date`` is the date the status keeps if it decides:
    # the record's own status keeps its own (perhaps none); the issue date only places it in the history.
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE le_entries AS
        SELECT key, status, date, arg_min_null(own_date, prio) AS own_date, arg_min(source, prio) AS source,
               arg_min_null(source_record_id, prio) AS source_record_id, arg_min(rule, prio) AS rule,
               arg_min_null(verified, prio) AS verified, min(origin) AS origin
        FROM (SELECT *, (origin::BIGINT << 60) + (hash(source, source_record_id) >> 4)::BIGINT AS prio FROM (
            {_events_sql(present)}
            SELECT g.licence_number AS key, g.status,
                   coalesce(g.status_date, CASE g.status WHEN 'issued' THEN g.issued_on WHEN 'renewed' THEN g.valid_from
                                                         WHEN 'expired' THEN g.valid_to END) AS date, g.status_date AS own_date,
                   coalesce(p.source_department, g.source_department) AS source,
                   coalesce(p.source_record_id, g.source_record_id) AS source_record_id,
                   coalesce(p.rule, 'record') AS rule, p.verified, {RECORD} AS origin
            FROM golden_licence g LEFT JOIN (SELECT * FROM golden_licence_provenance WHERE field = 'status') p
                 ON p.key = g.licence_number
            WHERE g.status IS NOT NULL
            UNION ALL
            SELECT licence_number, h.status, h.date, h.date, h.source, NULL, h.rule, NULL, {HISTORY}
            FROM (SELECT licence_number, unnest(from_json(status_history, '{_HISTORY_TYPE}')) AS h
                  FROM golden_licence WHERE status_history IS NOT NULL)
            WHERE h.status IS NOT NULL))
        GROUP BY key, status, date""")
    # An undated status the record carries is the same status a dated entry gives, when there is one.
    conn.execute("""DELETE FROM le_entries u WHERE u.date IS NULL AND EXISTS (
                        SELECT 1 FROM le_entries d WHERE d.key = u.key AND d.status = u.status AND d.date IS NOT NULL)""")
    conn.execute(f"ALTER TABLE le_entries ADD COLUMN sort BIGINT")
    conn.execute(f"UPDATE le_entries SET sort = {_SORT}")
    # 2. Where each licence stands on its own entries; what ends it, if it is not final yet (the earliest).
    conn.execute("""CREATE OR REPLACE TEMP TABLE le_base AS
        SELECT g.licence_number AS key, g.licence_type, g.holder_type, g.holder_id, g.valid_to, g.issuer,
               g.status AS old_status, g.status_date AS old_status_date, g.status_history AS old_history, e.status
        FROM golden_licence g LEFT JOIN (SELECT key, arg_max(status, sort) AS status FROM le_entries GROUP BY key) e
             ON e.key = g.licence_number""")
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE le_derived AS
        SELECT key, arg_min(status, pick) AS status, arg_min_null(date, pick) AS date, arg_min(source, pick) AS source,
               arg_min_null(source_record_id, pick) AS source_record_id, arg_min(rule, pick) AS rule,
               arg_min_null(verified, pick) AS verified
        FROM (SELECT *, coalesce(date - DATE '1800-01-01', 1 << 30) * 2 + expiry AS pick FROM (
            SELECT b.key, h.status, h.date, h.source, h.source_record_id, h.rule, h.verified, 0 AS expiry
            FROM le_base b JOIN ({_holders_sql(present)}) h ON h.holder_type = b.holder_type AND h.holder_id = b.holder_id
            WHERE (b.status IS NULL OR b.status NOT IN ({_FINAL}))
              AND NOT (b.holder_type = 'person' AND coalesce(b.licence_type IN ({_OUTLIVE}), false))
            UNION ALL
            SELECT key, 'expired', valid_to, 'hub', NULL, 'life_event:expired', false, 1 FROM le_base
            WHERE (status IS NULL OR status NOT IN ({_FINAL})) AND {validity_ended_sql('valid_to', '?')}))
        GROUP BY key""", [today])
    # 3. The history in date order; the status from a derived end, else from the last entry.
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE le_all AS
        SELECT key, status, date, own_date, source, source_record_id, rule, verified, origin, sort FROM le_entries
        UNION ALL
        SELECT key, status, date, date, source, source_record_id, rule, verified, {DERIVED}, {_SORT} FROM le_derived""")
    # Decisions by a fixed-size number keep the aggregation on DuckDB's fast path; the ordered list goes apart.
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE le_decided AS
        SELECT key, arg_max(status, decide) AS status, arg_max_null(own_date, decide) AS status_date,
               arg_max(source, decide) AS source, arg_max_null(source_record_id, decide) AS source_record_id,
               arg_max(rule, decide) AS rule, arg_max_null(verified, decide) AS verified,
               arg_max(origin, decide) AS origin,
               bool_or(rule IS DISTINCT FROM 'record') AS told  -- more than the record's own source record
        FROM (SELECT *, {_DECIDE} AS decide FROM le_all) GROUP BY key""")
    conn.execute("""CREATE OR REPLACE TEMP TABLE le_history AS
        SELECT key, '[' || array_to_string(list(json_object('status', status, 'date', strftime(date, '%Y-%m-%d'),
                                                            'source', source, 'rule', rule)::VARCHAR ORDER BY sort), ',')
                    || ']' AS status_history
        FROM le_all GROUP BY key""")
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE le_changed AS
        SELECT d.* REPLACE (CASE WHEN d.origin = {EVENT} THEN d.source IS NOT DISTINCT FROM b.issuer
                                 ELSE d.verified END AS verified), h.status_history,
               b.old_status IS DISTINCT FROM d.status OR b.old_status_date IS DISTINCT FROM d.status_date AS status_changed,
               b.old_history IS DISTINCT FROM h.status_history AS history_changed
        FROM le_decided d JOIN le_history h USING (key) JOIN le_base b USING (key)
        WHERE b.old_status IS DISTINCT FROM d.status OR b.old_status_date IS DISTINCT FROM d.status_date
           OR b.old_history IS DISTINCT FROM h.status_history""")
    conn.execute("""UPDATE golden_licence g SET status = c.status, status_date = c.status_date,
                    status_history = c.status_history FROM le_changed c WHERE g.licence_number = c.key""")
    _provenance(conn)
    (licences,) = conn.execute("SELECT count(*) FROM le_base").fetchone()
    (events,) = conn.execute(f"SELECT count(*) FROM le_entries e SEMI JOIN le_base b USING (key) "
                             f"WHERE e.origin = {EVENT}").fetchone()
    by_rule = dict(conn.execute("SELECT rule, count(*) FROM le_changed WHERE status_changed GROUP BY 1 ORDER BY 1").fetchall())
    for table in ("le_entries", "le_base", "le_derived", "le_all", "le_decided", "le_history", "le_changed"):
        conn.execute(f"DROP TABLE {table}")
    return LifeEventsResult(licences, events, sum(by_rule.values()), by_rule)


def _provenance(conn: duckdb.DuckDBPyConnection) -> None:
    """Replace the provenance of the fields this pass changed: each names the entry (and its rule) that decided."""
    conn.execute("""CREATE OR REPLACE TEMP TABLE le_fields AS
        SELECT c.key, f.field, CASE f.field WHEN 'status' THEN c.status WHEN 'status_date' THEN CAST(c.status_date AS VARCHAR)
                                            ELSE c.status_history END AS value,
               c.source AS source_department, c.source_record_id, CAST(c.status_date AS TIMESTAMPTZ) AS updated_at,
               coalesce(c.verified, false) AS verified, c.rule,
               -- Provenance is kept where a value came from elsewhere than the licence record itself (reconcile).
               f.field <> 'status_history' OR c.told AS kept
        FROM le_changed c, (VALUES ('status'), ('status_date'), ('status_history')) f(field)
        WHERE CASE f.field WHEN 'status_history' THEN c.history_changed ELSE c.status_changed END""")
    conn.execute("DELETE FROM golden_licence_provenance p USING le_fields f WHERE p.key = f.key AND p.field = f.field")
    conn.execute("INSERT INTO golden_licence_provenance BY NAME SELECT * EXCLUDE (kept) FROM le_fields "
                 "WHERE kept AND value IS NOT NULL")
    conn.execute("DROP TABLE le_fields")

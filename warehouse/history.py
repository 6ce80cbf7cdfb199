"""History: every version of every golden record, with the interval in which it was valid.

``history_<library>`` holds every column of ``golden_<library>`` plus ``_valid_from`` and ``_valid_to``
(TIMESTAMPTZ, ``_valid_to`` NULL = the current version; intervals are half-open, ``[from, to)``). The
interval columns carry a leading underscore because the licence library has ``valid_from`` and
``valid_to`` fields of its own (its validity period). After each reconciliation the new golden rows
are compared with the open versions by a hash of their data fields; the record metadata
(source department and record, source update time, ingestion time, run) is left out, so a
department re-sending unchanged data, or a re-ingestion, makes no new version. Changed and
vanished records are closed, new versions opened: a few set-based statements in one transaction.

What ``_valid_from`` means: the time the version took effect at its source, as far as the record
shows it, never later than the reconciliation that found it and never before the previous version:

- A changed or reappearing record: its status date (``life_status_date`` / ``status_date``) when the
  status changed, else its ``source_updated_at``, if that falls after the previous version began and
  after the previous version's own ``source_updated_at`` (the source vouched for the old values
  then), or after the record vanished, and not after ``as_of``; otherwise ``as_of``, the
  reconciliation time.
- A record's first version reaches back to when the record began to exist (birth date, establishment
  date, issue date), at midnight on the hub's calendar: the hub only learns of a person decades
  after their birth, and "as of" any day in between must find them, not answer "no such record".
  The values the hub first saw are the best it knows for that time, with one exception: a status
  that came later with its own date (a death, a deregistration, a revocation) did not hold before
  that date, so the first version is split there, the earlier part in the state every such record
  starts in (living, active, issued) with no status date. Without a beginning date the first
  version starts at ``source_updated_at`` (or ``as_of`` when that is missing or later).
- A vanished record is closed at ``as_of``: nothing says when it left its source.

``as_of`` must not be earlier than a time the history already holds: history only moves forward.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from hub.errors import PipelineError
from schemas import LIBRARIES
from schemas.catalogue import Library
from schemas.derive import duckdb_type
from warehouse import db
from warehouse.published import VALID_FROM, VALID_TO

# The calendar the sources' dates are written in (the exchange API's default timezone is the same).
CALENDAR = "Asia/Shanghai"


@dataclass(frozen=True)
class Origin:
    """How a library's records begin: the date they begin on, their status field, its date, and the first status."""

    begins: str
    status: str
    status_date: str
    initial: str


ORIGINS = {
    "population": Origin("birth_date", "life_status", "life_status_date", "living"),
    "legal_person": Origin("established_on", "status", "status_date", "active"),
    "licence": Origin("issued_on", "status", "status_date", "issued"),
}


@dataclass(frozen=True)
class HistoryResult:
    library: str
    new: int  # records seen for the first time (or again after vanishing)
    changed: int  # records whose data changed: one version closed, one opened
    vanished: int  # records no longer in the golden table: their version closed
    versions: int  # rows of the history table afterwards


def history_ddl(lib: Library) -> str:
    """``CREATE TABLE IF NOT EXISTS history_<library>``: the golden columns plus the validity interval."""
    columns = [f'    "{f.name}" {duckdb_type(f.type)}' for f in lib.fields]
    columns += [f'    "{VALID_FROM}" TIMESTAMPTZ NOT NULL', f'    "{VALID_TO}" TIMESTAMPTZ']
    return f'CREATE TABLE IF NOT EXISTS "history_{lib.name}" (\n' + ",\n".join(columns) + "\n)"


db.declare("history", [history_ddl(lib) for lib in LIBRARIES.values()])


def _data_hash(lib: Library) -> str:
    # Positional: hash(a, NULL) differs from hash(NULL, a). Compared key by key, so a change goes unseen with
    # odds of 2^-64. Not stored: a DuckDB upgrade that changes hash() cannot make every record look changed.
    data = [f for f in lib.fields if not f.metadata and f.name != lib.key]
    return "hash(" + ", ".join(f'"{f.name}"' for f in data) + ")"


def record_history(conn: duckdb.DuckDBPyConnection, library: str, as_of: dt.datetime, *,
                   calendar: str = CALENDAR) -> HistoryResult:
    """Bring ``history_<library>`` up to date with ``golden_<library>`` as reconciled at ``as_of``; idempotent."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a timezone")
    lib = LIBRARIES[library]
    history, key = f'"history_{lib.name}"', f'"{lib.key}"'
    if f"golden_{lib.name}" not in db.tables(conn):
        raise PipelineError(f"no golden_{lib.name} table to record the history of")
    conn.execute(history_ddl(lib))
    (latest,) = conn.execute(f'SELECT max(greatest("{VALID_FROM}", "{VALID_TO}")) FROM {history}').fetchone()
    if latest is not None and as_of < latest:
        raise PipelineError(f"history of {lib.name} already records a change at {latest.isoformat()}, "
                            f"after as_of {as_of.isoformat()}: history only moves forward")
    (ordered,) = conn.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    # Versions are found by key and published sorted: their order in the table does not matter, and not
    # keeping it makes the big first insert twice as fast.
    conn.execute("SET preserve_insertion_order = false")
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(_delta_sql(lib, calendar), {"as_of": as_of})
        conn.execute(
            f'UPDATE {history} h SET "{VALID_TO}" = d.starts FROM history_delta d '
            f"WHERE h.{key} = d.key AND h.\"{VALID_TO}\" IS NULL AND d.kind IN ('changed', 'vanished')"
        )
        conn.execute(_insert_sql(lib))
        counts = dict(conn.execute("SELECT kind, count(*) FROM history_delta GROUP BY kind").fetchall())
        (versions,) = conn.execute(f"SELECT count(*) FROM {history}").fetchone()
        conn.execute("DROP TABLE history_delta")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute(f"SET preserve_insertion_order = {bool(ordered)}")
    return HistoryResult(lib.name, counts.get("new", 0), counts.get("changed", 0), counts.get("vanished", 0), versions)


def _delta_sql(lib: Library, calendar: str) -> str:
    """``history_delta``: one row per record that is new, changed or vanished, with when its new version starts."""
    origin = ORIGINS.get(lib.name)
    day = lambda col: f"timezone('{calendar}', CAST(\"{col}\" AS TIMESTAMP))"  # noqa: E731 - midnight, hub calendar
    status, status_day = (f'"{origin.status}"', day(origin.status_date)) if origin else ("NULL", "NULL")
    begins, initial = (day(origin.begins), _quote(origin.initial)) if origin else ("NULL", "NULL")
    key, history = f'"{lib.key}"', f'"history_{lib.name}"'
    # The evidence of when a change took effect: the status date if the status changed, else the update time.
    evidence = "CASE WHEN status_changed AND status_day IS NOT NULL THEN status_day ELSE updated END"
    return f"""
        CREATE OR REPLACE TEMP TABLE history_delta AS
        WITH g AS (SELECT {key} AS key, {_data_hash(lib)} AS h, {status} AS status, {status_day} AS status_day,
                          source_updated_at AS updated, {begins} AS begins FROM "golden_{lib.name}"),
             o AS (SELECT {key} AS key, {_data_hash(lib)} AS h, greatest("{VALID_FROM}", source_updated_at) AS since,
                          {status} AS status, {status_day} AS status_day FROM {history} WHERE "{VALID_TO}" IS NULL),
             gone AS (SELECT {key} AS key, max("{VALID_TO}") AS gone_at FROM {history}
                      WHERE "{VALID_TO}" IS NOT NULL GROUP BY {key}),
             d AS (SELECT coalesce(g.key, o.key) AS key,
                          CASE WHEN o.key IS NULL THEN 'new' WHEN g.key IS NULL THEN 'vanished' ELSE 'changed' END
                              AS kind,
                          coalesce(o.since, gone.gone_at) AS after,
                          g.status IS DISTINCT FROM o.status OR g.status_day IS DISTINCT FROM o.status_day
                              AS status_changed,
                          g.status, g.status_day, g.updated, g.begins
                   FROM g FULL JOIN o ON g.key = o.key LEFT JOIN gone ON gone.key = g.key AND o.key IS NULL
                   WHERE g.h IS DISTINCT FROM o.h)
        SELECT key, kind, status_day,
               CASE WHEN kind = 'vanished' THEN $as_of
                    WHEN after IS NOT NULL THEN  -- changed, or back after vanishing
                        CASE WHEN {evidence} > after AND {evidence} <= $as_of THEN {evidence} ELSE $as_of END
                    ELSE least(coalesce(begins, updated, $as_of), coalesce(status_day, $as_of), $as_of) END AS starts,
               -- A first version whose status came later, on its own date: before that date the record was in
               -- its initial state (a person living, a company active, a licence issued).
               coalesce(kind = 'new' AND after IS NULL AND status_day > begins AND status_day <= $as_of
                        AND status <> {initial}, false) AS split
        FROM d"""


def _insert_sql(lib: Library) -> str:
    """Insert the new versions; a split first version as two rows, the initial state first."""
    origin = ORIGINS.get(lib.name)
    replace = ""
    if origin:
        replace = (f' REPLACE (CASE WHEN _initial THEN {_quote(origin.initial)} ELSE "{origin.status}" END '
                   f'AS "{origin.status}", CASE WHEN NOT _initial THEN "{origin.status_date}" END '
                   f'AS "{origin.status_date}")')
    return f"""
        INSERT INTO "history_{lib.name}" BY NAME
        SELECT * EXCLUDE (_initial, _split, _day, _starts){replace},
               CASE WHEN _initial OR NOT _split THEN _starts ELSE _day END AS "{VALID_FROM}",
               CASE WHEN _initial THEN _day END AS "{VALID_TO}"
        FROM (SELECT g.*, d.split AS _split, d.status_day AS _day, d.starts AS _starts,
                     unnest(CASE WHEN d.split THEN [true, false] ELSE [false] END) AS _initial
              FROM "golden_{lib.name}" g JOIN history_delta d ON g."{lib.key}" = d.key
              WHERE d.kind IN ('new', 'changed'))"""


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

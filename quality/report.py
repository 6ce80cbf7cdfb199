"""The stewards' quality page: per source and per library, completeness, validity, consistency between
departments, freshness, quarantine counts by reason, each with its trend over the last runs.

Each report appends its figures to ``quality_metrics`` (the trends) and writes, under
``<data>/reports``::

    quality/index.html    the page (static: it draws its tables and charts from quality.json)
    quality/quality.json  the same figures, for monitoring
    data_docs/            Great Expectations Data Docs of the suites' results since the last report

Every value that could identify a person is masked with ``hub.masking`` before it is written.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from connectors.config import SourceConfig
from hub.masking import mask_id, mask_name
from hub.settings import Settings
from quality.rules import mapped_fields
from schemas import LIBRARIES
from schemas.events import EVENT_TYPES, record_type
from schemas.catalogue import PersonalData
from warehouse import db
from warehouse.landing import landed_runs

TREND_RUNS = 20  # reports shown in the trend charts
RECENT_ENTRIES = 25  # quarantine entries listed on the page
SITE_FILES = Path(__file__).parent / "site"
METRICS = ("completeness", "validity", "consistency", "quarantine_open", "hours_since_change", "hours_since_extraction")


@dataclass(frozen=True)
class ReportPaths:
    page: Path
    json: Path
    data_docs: Path | None


def report_dirs(settings: Settings) -> tuple[Path, Path, Path]:
    """(quality page folder, Data Docs folder, GX project folder) under the data directory."""
    reports = settings.data_dir / "reports"
    return reports / "quality", reports / "data_docs", settings.data_dir / "quality" / "gx"


def write_report(conn: duckdb.DuckDBPyConnection, settings: Settings, run_id: str,
                 sources: Mapping[str, SourceConfig], *, data_docs: bool = True,
                 now: dt.datetime | None = None) -> ReportPaths:
    """Compute the figures, append them to the trends, write the page, its JSON and the Data Docs."""
    now = now or dt.datetime.now(dt.UTC)
    page_dir, docs_dir, gx_dir = report_dirs(settings)
    report = build(conn, settings, run_id, sources, now)
    _append_metrics(conn, run_id, now, report)
    report["trends"] = trends(conn)
    docs = None
    if data_docs:
        docs = _data_docs(conn, gx_dir, docs_dir)
        report["data_docs"] = "../data_docs/index.html" if docs else None
    page_dir.mkdir(parents=True, exist_ok=True)
    for asset in SITE_FILES.iterdir():
        shutil.copyfile(asset, page_dir / asset.name)
    tmp = page_dir / "quality.json.tmp"
    tmp.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    tmp.replace(page_dir / "quality.json")
    return ReportPaths(page_dir / "index.html", page_dir / "quality.json", docs)


# --- the figures --------------------------------------------------------------------------------


def _tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return db.tables(conn)


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


def build(conn: duckdb.DuckDBPyConnection, settings: Settings, run_id: str, sources: Mapping[str, SourceConfig],
          now: dt.datetime) -> dict[str, Any]:
    """The report as a JSON-ready dict (no trends yet)."""
    tables = _tables(conn)
    open_by_source = dict(conn.execute("SELECT source, count(*) FROM quarantine WHERE status = 'open' GROUP BY 1").fetchall())
    findings_by_source = dict(conn.execute(
        "SELECT source, count(DISTINCT source_record_id) FROM quality_findings WHERE kind = 'consistency' GROUP BY 1").fetchall())
    per_source = []
    for name, cfg in sorted(sources.items()):
        per_source.append(_source_figures(conn, settings, name, cfg, tables, now, open_by_source.get(name, 0),
                                          findings_by_source.get(name, 0)))
    libraries = sorted({cfg.library for cfg in sources.values()})
    per_library = [_library_figures(conn, lib, [s for s in per_source if s["library"] == lib], tables) for lib in libraries]
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "run_id": run_id,
        "published": _published(settings),
        "sources": per_source,
        "libraries": per_library,
        "quarantine_by_reason": [{"library": lib, "source": src, "reason": reason, "count": n}
                                 for lib, src, reason, n in conn.execute(
                                     "SELECT library, source, r, count(*) FROM (SELECT library, source, unnest(reasons) AS r "
                                     "FROM quarantine WHERE status = 'open') GROUP BY ALL ORDER BY 4 DESC, 2, 3").fetchall()],
        "quarantine_by_status": [{"status": s, "count": n} for s, n in conn.execute(
            "SELECT status, count(*) FROM quarantine GROUP BY 1 ORDER BY 1").fetchall()],
        "notes_by_rule": [{"source": s, "rule": r, "count": n} for s, r, n in conn.execute(
            "SELECT source, rule, count(*) FROM quality_notes GROUP BY ALL ORDER BY 3 DESC").fetchall()],
        "consistency": [{"library": lib, "field": f, "records": n} for lib, f, n in conn.execute(
            "SELECT library, field, count(*) FROM quality_findings WHERE kind = 'consistency' GROUP BY ALL ORDER BY 1, 2").fetchall()],
        "held_batches": [{"source": s, "run_id": r, "reasons": list(reasons), "since": str(at)} for s, r, reasons, at in
                         conn.execute("SELECT source, run_id, reasons, checked_at FROM batch_checks WHERE status = 'held' "
                                      "ORDER BY checked_at").fetchall()],
        "recent_quarantine": _recent(conn),
        "suites": [{"suite": s, "kind": k, "run_id": r, "success": ok, "at": str(at)} for s, k, r, ok, at in conn.execute(
            "SELECT suite, kind, run_id, success, evaluated_at FROM quality_results "
            "QUALIFY row_number() OVER (PARTITION BY suite ORDER BY evaluated_at DESC) = 1 ORDER BY suite").fetchall()],
    }


def _published(settings: Settings) -> str | None:
    try:
        return (settings.snapshots_dir / "CURRENT").read_text().strip()
    except OSError:
        return None


def _source_figures(conn: duckdb.DuckDBPyConnection, settings: Settings, name: str, cfg: SourceConfig,
                    tables: set[str], now: dt.datetime, open_entries: int, inconsistent: int) -> dict[str, Any]:
    lib = record_type(cfg.delivers)  # an events source's records are staged apart
    staging = f"staging_{lib.name}"
    fields = sorted(f for f in mapped_fields(cfg) if f in lib.field_names)
    staged = filled = 0
    last_change = None
    if staging in tables and fields:
        counts = conn.execute(f'SELECT count(*), max(source_updated_at), ' + ", ".join(f'count("{f}")' for f in fields)
                              + f' FROM "{staging}" WHERE _source = ?', [name]).fetchone()
        staged, last_change = counts[0], counts[1]
        filled = sum(counts[2:])
    landings = landed_runs(settings.landing_dir, name)
    extracted = dt.datetime.fromisoformat(landings[-1][1].finished_at) if landings else None
    changed_landings = [m for _d, m in landings if m.rows]
    if last_change is None and changed_landings:
        last_change = dt.datetime.fromisoformat(changed_landings[-1].finished_at)  # no update times: when rows last came
    last = conn.execute("SELECT rows, quarantined FROM staged_landings WHERE source = ? AND rows + quarantined > 0 "
                        "ORDER BY staged_at DESC LIMIT 1", [name]).fetchone()
    return {
        "source": name, "department": cfg.department, "library": cfg.library, "kind": cfg.kind,
        "staged_records": staged,
        "completeness": _share(filled, staged * len(fields)),
        "validity": _share(last[0], last[0] + last[1]) if last else None,
        "consistency": _share(staged - inconsistent, staged) if staged else None,
        "quarantine_open": open_entries,
        "last_changed_at": _iso(last_change),
        "last_extracted_at": _iso(extracted),
        "hours_since_change": _hours(now, last_change),
        "hours_since_extraction": _hours(now, extracted),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _hours(now: dt.datetime, then: dt.datetime | None) -> float | None:
    if then is None:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return round((now - then).total_seconds() / 3600, 2)


def _library_figures(conn: duckdb.DuckDBPyConnection, library: str, sources: list[dict], tables: set[str]) -> dict[str, Any]:
    lib = LIBRARIES[library]
    golden = f"golden_{library}"
    records = filled = 0
    fields = [f.name for f in lib.fields if not f.metadata]
    if golden in tables:
        counts = conn.execute("SELECT count(*), " + ", ".join(f'count("{f}")' for f in fields) + f' FROM "{golden}"').fetchone()
        records, filled = counts[0], sum(counts[1:])
    staged = sum(s["staged_records"] for s in sources)
    last_rows = [(s["validity"], s["staged_records"]) for s in sources if s["validity"] is not None]
    (inconsistent,) = conn.execute("SELECT count(DISTINCT key) FROM quality_findings WHERE library = ? AND kind = 'consistency'",
                                   [library]).fetchone()
    open_entries = sum(s["quarantine_open"] for s in sources)
    change = [s["hours_since_change"] for s in sources if s["hours_since_change"] is not None]
    extraction = [s["hours_since_extraction"] for s in sources if s["hours_since_extraction"] is not None]
    return {
        "library": library, "label": lib.label, "golden_records": records, "sources": [s["source"] for s in sources],
        "completeness": _share(filled, records * len(fields)),
        "validity": _share(sum(v * n for v, n in last_rows), sum(n for _v, n in last_rows)) if last_rows else None,
        "consistency": _share(records - inconsistent, records) if records else None,
        "quarantine_open": open_entries,
        "staged_records": staged,
        # The stalest source says how fresh the library is.
        "hours_since_change": max(change) if change else None,
        "hours_since_extraction": max(extraction) if extraction else None,
    }


def mask_value(library: str, name: str, value: Any) -> Any:
    """A field's value as reports may show it: identifiers and personal fields masked."""
    lib = LIBRARIES.get(library) or EVENT_TYPES.get(library)
    if name == "_partial" and isinstance(value, dict):  # partial dates kept beside a quarantined record
        return {k: mask_value(library, k, v) for k, v in value.items()}
    if value is None or lib is None or name not in lib.field_names:
        return None if value is None else mask_name(str(value))
    level = lib.field(name).personal
    if level is PersonalData.IDENTIFIER:
        return mask_id(str(value))
    if level in (PersonalData.PERSONAL, PersonalData.SENSITIVE):
        return mask_name(str(value))
    return value


def _recent(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The latest open entries, with the record's identifying fields masked."""
    rows = conn.execute("SELECT id, library, source, run_id, source_record_id, file, line, stage, reasons, record "
                        "FROM quarantine WHERE status = 'open' ORDER BY quarantined_at DESC, id LIMIT ?",
                        [RECENT_ENTRIES]).fetchall()
    out = []
    for entry_id, library, source, run_id, record_id, file, line, stage, reasons, record in rows:
        data = json.loads(record) if record else {}
        lib = record_type(library)
        shown = {}
        for name in (lib.key, "name", "holder_id", "holder_name"):
            if name in data and name in lib.field_names:
                shown[name] = mask_value(library, name, data[name])
        out.append({"id": entry_id, "library": library, "source": source, "run_id": run_id,
                    "record_id": mask_id(record_id) if record_id and _looks_personal(record_id) else record_id,
                    "file": file, "line": line, "stage": stage, "reasons": list(reasons), "record": shown})
    return out


def _looks_personal(text: str) -> bool:
    """Record ids that are ID numbers (a deaths register keyed by ID number, say) are masked too."""
    from schemas.ids import is_valid_resident_id

    return is_valid_resident_id(text)


# --- trends -----------------------------------------------------------------------------------


def _append_metrics(conn: duckdb.DuckDBPyConnection, run_id: str, now: dt.datetime, report: dict) -> None:
    rows = []
    for scope, key, items in (("source", "source", report["sources"]), ("library", "library", report["libraries"])):
        for item in items:
            for metric in METRICS:
                if item.get(metric) is not None:
                    rows.append([run_id, now, scope, item[key], metric, float(item[metric])])
    for item in report["quarantine_by_reason"]:
        rows.append([run_id, now, "reason", f"{item['source']}|{item['reason']}", "quarantine_open", float(item["count"])])
    if rows:
        conn.executemany("INSERT INTO quality_metrics VALUES (?, ?, ?, ?, ?, ?)", rows)


def trends(conn: duckdb.DuckDBPyConnection, runs: int = TREND_RUNS) -> dict[str, Any]:
    """The last ``runs`` reports' figures: {scope: {subject: {metric: [[time, value], ...]}}}."""
    rows = conn.execute(
        "WITH recent AS (SELECT DISTINCT measured_at FROM quality_metrics ORDER BY measured_at DESC LIMIT ?) "
        "SELECT scope, subject, metric, measured_at, value FROM quality_metrics WHERE measured_at IN (SELECT * FROM recent) "
        "ORDER BY measured_at", [runs]).fetchall()
    out: dict[str, Any] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for scope, subject, metric, at, value in rows:
        out[scope][subject][metric].append([at.isoformat(timespec="seconds"), value])
    return json.loads(json.dumps(out))


# --- Data Docs ----------------------------------------------------------------------------------


def _data_docs(conn: duckdb.DuckDBPyConnection, gx_dir: Path, docs_dir: Path) -> Path | None:
    """Store the suite results written since the last report in GX and rebuild their Data Docs pages."""
    pending = conn.execute("SELECT rowid, suite, subject, run_id, result, evaluated_at FROM quality_results "
                           "WHERE NOT documented ORDER BY evaluated_at").fetchall()
    if not pending and (docs_dir / "index.html").exists():
        return docs_dir / "index.html"
    from quality.gx import DataDocs

    docs = DataDocs(gx_dir, docs_dir)
    keys = []
    for rowid, _suite, subject, run_id, result, at in pending:
        keys.append(docs.add(json.loads(result), at.astimezone(dt.UTC), f"{subject}-{run_id}"))
    index = docs.build(keys)
    if pending:
        conn.execute("UPDATE quality_results SET documented = true WHERE rowid IN (SELECT unnest(?::BIGINT[]))",
                     [[r[0] for r in pending]])
    return index

"""``hub identity``: stewards review and override the links made for records without a usable ID number.

::

    hub identity list [--library population] [--limit 50] [--json]   # current links and near misses (masked)
    hub identity show SOURCE RECORD_ID [--chart FILE.svg|FILE.html]  # why: weight, probability, each comparison;
                                                                     # the chart: Splink's waterfall of the pair
    hub identity merge SOURCE RECORD_ID ENTITY_KEY --by NAME [--note TEXT]   # this record is that entity
    hub identity split SOURCE RECORD_ID [ENTITY_KEY] --by NAME [--note TEXT] # is not that entity (or none)
    hub identity resolve [--library population]                      # run identity resolution now
    hub identity export --out FILE [--library population] [--format csv|parquet] [--raw --reason TEXT]
                                    # every current link: probability, weight, each comparison's level and weight
    hub identity model [--library population] [--json] [--charts DIR]
                                    # the model the last run trained: m, u, match weight per level, the prior

Overrides take effect at the next resolution (``hub identity resolve`` or the next reconcile) and on
every one after it. ID numbers are shown masked (``list --json`` too), an export under the raw role excepted.
An export is masked as analysts' views are (``hub sql``: a resident ID keeps its region and birth
year) unless taken under the raw role with a stated reason; every export is logged in
``analyst_queries`` (who, when, role, reason, rows) like an analyst's query. Charts (``show --chart``,
``model --charts``) are Splink's, written as SVG or as HTML with the JavaScript inlined: they open
offline and carry levels and weights only, never a record's values. Errors of ``export``, ``model``
and charts are one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from hub.errors import HubError
from hub.masking import mask_id
from hub.commands.common import ByOption, NoteOption, fail as _fail, work as _work
from hub.commands.work_db import read_work as _read_work

console = Console()
app = typer.Typer(name="identity", help="Identity resolution of records without a usable ID number (data stewards).",
                  no_args_is_help=True)

LibraryOption = Annotated[str | None, typer.Option("--library", help="Only this library.")]


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _prob(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _refuse(message: str) -> NoReturn:
    """One line on stderr, exit status 2: what ``export``, ``model`` and charts do with every error."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _json(value: Any) -> str:
    def default(v: Any) -> Any:
        if hasattr(v, "isoformat"):
            return v.isoformat()
        raise TypeError(f"not JSON: {type(v).__name__}")

    return json.dumps(value, ensure_ascii=False, indent=2, default=default)


def _masked_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "entity_key": mask_id(row["entity_key"]) if row["entity_key"] else None} for row in rows]


@app.command("list")
def list_(library: LibraryOption = None, limit: Annotated[int, typer.Option(help="Rows per table.")] = 50,
          as_json: Annotated[bool, typer.Option("--json", help='One JSON document: {"links": [...], '
                                                               '"near_misses": [...], "clusters": [...]}, ID numbers masked.')] = False,
          ) -> None:
    """Current links and the records left in quarantine with their best candidate."""
    from warehouse.identity_review import clusters, links, near_misses

    with _read_work() as conn:
        current, misses, cases = links(conn, library, limit), near_misses(conn, library, limit), clusters(conn, library, limit)
    if as_json:
        sys.stdout.write(_json({"links": _masked_rows(current), "near_misses": _masked_rows(misses),
                                "clusters": cases}) + "\n")
        return
    table = Table("link", "source", "record", "entity", "weight", "probability", "decided by", "run", title="Links")
    for row in current:
        table.add_row(str(row["id"]), row["source"], row["source_record_id"], mask_id(row["entity_key"]),
                      _num(row["match_weight"]), _num(row["match_probability"], 6), row["decided_by"], row["run_id"])
    console.print(table)
    table = Table("source", "record", "best candidate", "weight", "probability", "second", "why not linked",
                  title="Near misses")
    for row in misses:
        table.add_row(row["source"], row["source_record_id"], mask_id(row["entity_key"]) if row["entity_key"] else "",
                      _num(row["match_weight"]), _num(row["match_probability"], 6), _num(row["second_weight"]),
                      row["reason"])
    console.print(table)
    table = Table("cluster", "records", "sources and record ids", "run",
                  title="Clusters: records matching each other but no entity (one case each)")
    for case in cases:
        table.add_row(case["cluster_id"], str(case["size"]), ", ".join(case["records"]), case["run_id"])
    console.print(table)


ChartOption = Annotated[Path | None, typer.Option(
    "--chart", help="Also write Splink's waterfall chart of the pair to this .svg or .html file (opens offline).")]


@app.command()
def show(source: str, record_id: str, chart: ChartOption = None) -> None:
    """Why one record is linked (or not): weight, probability and each comparison's level and weight."""
    from warehouse.identity_charts import FORMATS
    from warehouse.identity_review import explain, saved_model

    if chart and chart.suffix.lower() not in FORMATS:
        _refuse(f"a chart is written as .svg or .html, not {chart.name!r}")
    try:
        with _read_work() as conn:
            why = explain(conn, source, record_id)
            model = saved_model(conn, why.library, why.run_id) if chart else None
    except HubError as exc:
        raise _fail(exc) from exc
    console.print(f"[bold]{why.source} {why.source_record_id}[/] ({why.library}): {why.status}"
                  + (f" — {why.reason}" if why.reason else ""))
    if why.entity_key:
        label = "entity" if why.status == "linked" else "best candidate"
        console.print(f"{label} {mask_id(why.entity_key)}, match weight {_num(why.match_weight)}, "
                      f"probability {_num(why.match_probability, 6)}"
                      + (f", link {why.link_id} by {why.decided_by} at {why.decided_at:%Y-%m-%d %H:%M}" if why.link_id else ""))
    if why.comparisons:
        table = Table("comparison", "level", "weight", "Bayes factor", title="Comparisons")
        for name, c in why.comparisons.items():
            table.add_row(name, str(c.get("level")), _num(c.get("weight")), _num(c.get("bayes_factor"), 4))
        console.print(table)
    _rows("Steward overrides", why.overrides, ("action", "entity_key", "decided_by", "decided_at", "note"))
    _rows("Earlier links", why.history, ("id", "entity_key", "match_weight", "decided_by", "retired_at", "retired_reason"))
    if chart:
        _waterfall(why, model, chart)


def _waterfall(why: Any, model: Any, path: Path) -> None:
    from warehouse.identity_charts import save_chart, waterfall_chart

    if not why.comparisons or why.match_weight is None:
        _refuse(f"no chart: {why.source} {why.source_record_id} has no scored comparisons ({why.status})")
    if model is None:
        _refuse(f"no chart: no identity model saved for the {why.library} library yet (run `hub identity resolve`)")
    try:
        written = save_chart(waterfall_chart(model.settings, why.comparisons, why.match_weight, why.match_probability),
                             path)
    except (ValueError, OSError) as exc:
        _refuse(f"cannot write the chart {path}: {exc}")
    note = "" if model.run_id == why.run_id else f"; scored by run {why.run_id}, drawn with the model of {model.run_id}"
    console.print(f"waterfall chart written to {written} (model of run {model.run_id}{note})")


def _rows(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if not rows:
        return
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*[mask_id(row[c]) if c == "entity_key" and row[c] else "" if row[c] is None else str(row[c])
                        for c in columns])
    console.print(table)


def _decide(source: str, record_id: str, action: str, by: str, key: str | None, note: str | None) -> None:
    from warehouse.identity_review import override

    try:
        with _work() as conn:
            number = override(conn, source, record_id, action, by, key, note)
    except HubError as exc:
        raise _fail(exc) from exc
    what = {"merge": f"is entity {mask_id(key)}", "split": f"is not entity {mask_id(key)}",
            "none": "is no entity"}[action]
    console.print(f"override {number}: {source} {record_id} {what} (by {by}); applied at the next identity resolution")


@app.command()
def merge(source: str, record_id: str, entity_key: str, by: ByOption, note: NoteOption = None) -> None:
    """Record that this record is that entity (a standing decision)."""
    _decide(source, record_id, "merge", by, entity_key, note)


@app.command()
def split(source: str, record_id: str,
          entity_key: Annotated[str | None, typer.Argument(help="The entity it is not; omit: it is no entity.")] = None,
          by: ByOption = "", note: NoteOption = None) -> None:
    """Record that this record is not that entity (or, without ENTITY_KEY, not any entity)."""
    _decide(source, record_id, "split" if entity_key else "none", by, entity_key, note)


@app.command()
def resolve(library: LibraryOption = None) -> None:
    """Run identity resolution now for every library with a model (or one)."""
    from warehouse.identity import resolve_identities
    from warehouse.identity_config import load_config

    try:
        configured = load_config()
        names = [library] if library else sorted(configured)
        with _work() as conn:
            results = [resolve_identities(conn, name, configured.get(name)) for name in names]
    except HubError as exc:
        raise _fail(exc) from exc
    table = Table("library", "considered", "linked", "new", "kept", "by steward", "near misses", "unlinked", "seconds")
    for r in results:
        table.add_row(r.library, f"{r.candidates:,}", f"{r.linked:,}", f"{r.new_links:,}", f"{r.kept:,}",
                      f"{r.by_steward:,}", f"{r.near_misses:,}", f"{r.unlinked:,}", f"{r.seconds:.1f}")
    console.print(table)


ModelLibraryOption = Annotated[str, typer.Option("--library", help="The library.")]


def _writable(out: Path) -> str | None:
    """Why ``out`` can't be written, or None."""
    import os

    if out.is_dir():
        return f"{out} is a directory"
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return f"no directory {parent}"
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return f"{out} is not writable"
    return None


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    library: ModelLibraryOption = "population",
    fmt: Annotated[str | None, typer.Option("--format", help="csv or parquet (default: from --out's suffix, else csv).")]
    = None,
    raw: Annotated[bool, typer.Option(help="The raw role: unmasked entity keys (needs --reason; logged).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why the raw role is needed (recorded).")] = None,
) -> None:
    """Every current link with its probability, weight and each comparison's level and weight, to CSV or Parquet."""
    fmt = (fmt or ("parquet" if out.suffix.lower() == ".parquet" else "csv")).lower()
    if fmt not in ("csv", "parquet"):
        _refuse(f"--format is csv or parquet, not {fmt!r}")
    import duckdb
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from hub.db import metadata_engine
    from warehouse.analyst import analyst_role
    from warehouse.identity_review import check_library, export_links

    try:
        analyst_role(raw, reason)
        check_library(library)
    except HubError as exc:  # the raw role's refusal (AccessRefused) included
        _refuse(str(exc))
    if problem := _writable(out):
        _refuse(f"cannot write {out}: {problem}")
    try:
        with _read_work() as conn:
            table = export_links(conn, metadata_engine(), library, raw=raw, reason=reason)
    except (HubError, duckdb.Error) as exc:
        _refuse(str(exc).splitlines()[0])
    try:
        if fmt == "parquet":
            pq.write_table(table, out)
        else:
            pacsv.write_csv(table, out)
    except OSError as exc:
        _refuse(f"cannot write {out}: {exc}")
    role = "raw (logged)" if raw else "masked"
    console.print(f"wrote {table.num_rows:,} links of {library} to {out} ({fmt}, {role})")


@app.command()
def model(
    library: ModelLibraryOption = "population",
    as_json: Annotated[bool, typer.Option("--json", help="Print the model as JSON.")] = False,
    charts: Annotated[Path | None, typer.Option(
        "--charts", help="Write Splink's match-weights chart (SVG and offline HTML) into this directory.")] = None,
) -> None:
    """The model the last identity run trained: per comparison and level m, u and match weight, and the prior."""
    from warehouse.identity_review import model_summary, saved_model

    try:
        with _read_work() as conn:
            saved = saved_model(conn, library)
    except HubError as exc:
        _refuse(str(exc))
    if saved is None:
        _refuse(f"no identity model for the {library} library yet: run `hub identity resolve` (or the reconcile)")
    summary = model_summary(saved)
    written: list[Path] = []
    if charts:
        from warehouse.identity_charts import write_model_charts

        try:
            written = write_model_charts(saved.settings, charts)
        except (ValueError, OSError) as exc:
            _refuse(f"cannot write the charts to {charts}: {exc}")
    if as_json:
        sys.stdout.write(_json({**summary, "charts": [str(p) for p in written]}) + "\n")
        return
    prior = summary["prior"]
    console.print(f"[bold]{library}[/]: model of run {saved.run_id}"
                  + (f", trained {saved.trained_at:%Y-%m-%d %H:%M}" if saved.trained_at else ""))
    console.print(f"prior: probability two random records match {_prob(prior['probability_two_random_records_match'])}"
                  f", match weight {_num(prior['match_weight'])}")
    table = Table("comparison", "level", "m", "u", "match weight", "tf", title="Comparisons (match weight = log2(m/u))")
    for comparison in summary["comparisons"]:
        for i, level in enumerate(comparison["levels"]):
            table.add_row(comparison["comparison"] if i == 0 else "",
                          "missing (null level)" if level["null_level"] else str(level["level"]),
                          _prob(level["m_probability"]), _prob(level["u_probability"]),
                          _num(level["match_weight"]), level["tf_adjustment_column"] or "")
        table.add_section()
    console.print(table)
    if summary["blocking_rules"]:
        console.print("blocking rules:")
        for rule in summary["blocking_rules"]:
            console.print(f"  {rule}", markup=False, highlight=False)
    if summary["training"]:
        console.print("training: " + json.dumps(summary["training"], ensure_ascii=False, default=str),
                      markup=False, highlight=False)
    for path in written:
        console.print(f"chart written to {path}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="identity")

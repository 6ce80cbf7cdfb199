"""The stewards' reports: the quality page (HTML and JSON) with trends, the Data Docs, opened in a real headless
Chromium that must render tables and charts without errors and show no unmasked personal data."""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest
import yaml

from hub import jobs
from tests.exchange_api.conftest import running
from tests.household import create_table, insert, person_row
from tests.quality.cli import hub_quality

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NAME = re.compile(r"王\d")  # the sample names are 王<n>; masked they are 王*


def _bad_check(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


@pytest.fixture
def household_only(settings, tmp_path, monkeypatch):
    """The household source alone (as in the sample configuration), so that every figure is known exactly."""
    from connectors.config import configured_sources
    from hub.settings import get_settings
    from tests.quality.samples import SOURCES_FILE

    (household,) = [s for s in yaml.safe_load(SOURCES_FILE.read_text(encoding="utf-8"))["sources"]
                    if s["name"] == "household"]
    path = tmp_path / "household.yaml"
    path.write_text(yaml.safe_dump({"sources": [household]}, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HUB_SOURCES_FILE", str(path))
    get_settings.cache_clear()
    configured_sources.cache_clear()
    return get_settings()


@pytest.fixture
def reported(household_only):
    """Two pipeline runs over a household source with defects: two reports, so each figure has a trend."""
    settings = household_only
    settings.samples_dir.mkdir(parents=True)
    engine = create_table(f"sqlite:///{settings.samples_dir / 'household.sqlite'}")
    rows = [person_row(i) for i in range(1, 41)]
    for i in (2, 9, 17):
        rows[i]["SFZH"] = _bad_check(rows[i]["SFZH"])
    rows[5]["SFZH"] = None
    rows[6]["SFZH"] = "".join(chr(ord(c) + 0xFEE0) for c in rows[6]["SFZH"])  # full-width: normalised, noted
    insert(engine, rows)
    jobs.ingest("household", "run-1")
    jobs.stage("household")
    jobs.reconcile_and_publish("run-1")
    more = [person_row(i) for i in range(41, 61)]
    more[3]["SFZH"] = _bad_check(more[3]["SFZH"])
    more[4]["XB"] = "未说明"
    insert(engine, more)
    jobs.ingest("household", "run-2")
    jobs.stage("household")
    jobs.reconcile_and_publish("run-2")
    return rows + more


def _secrets(rows: list[dict]) -> list[str]:
    """Every ID number as typed and normalised: none may appear in a report."""
    from schemas.ids import normalise

    out = set()
    for r in rows:
        if r["SFZH"]:
            out |= {r["SFZH"], normalise(r["SFZH"])}
    return sorted(out)


def test_report_json_has_every_figure_with_its_trend(reported, settings):
    page = settings.data_dir / "reports" / "quality"
    report = json.loads((page / "quality.json").read_text(encoding="utf-8"))
    (source,) = report["sources"]
    assert source["source"] == "household" and source["staged_records"] == 54
    for metric in ("completeness", "validity", "consistency", "quarantine_open", "hours_since_change",
                   "hours_since_extraction"):
        assert source[metric] is not None, metric
        assert len(report["trends"]["source"]["household"][metric]) == 2, metric
    assert source["quarantine_open"] == 6 and 0 < source["validity"] < 1
    (population,) = report["libraries"]
    assert population["library"] == "population" and population["golden_records"] == 54
    assert len(report["trends"]["library"]["population"]["validity"]) == 2
    reasons = {r["reason"]: r["count"] for r in report["quarantine_by_reason"]}
    assert reasons == {"id_number: check_digit": 4, "id_number: empty": 1, "gender: unknown code": 1}
    assert {n["rule"] for n in report["notes_by_rule"]} == {"id_number.canonical"}
    assert {s["suite"] for s in report["suites"]} == {"source.household", "table.population"}
    assert report["published"] == "v000002" and report["data_docs"] == "../data_docs/index.html"
    assert (page / "index.html").exists()
    out = hub_quality("report", "--no-data-docs")  # a steward can rewrite it any time
    assert "quality.json" in out
    again = json.loads((page / "quality.json").read_text(encoding="utf-8"))
    assert len(again["trends"]["source"]["household"]["validity"]) == 3


def test_data_docs_are_built_and_masked(reported, settings):
    docs = settings.data_dir / "reports" / "data_docs"
    pages = list(docs.rglob("*.html"))
    assert (docs / "index.html").exists()
    assert any("validations" in p.parts and "household" in str(p) for p in pages)
    assert any("expectations" in p.parts for p in pages)
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    assert "expect_column_values_to_be_valid_resident_id" in text
    for secret in _secrets(reported):
        assert secret not in text
    assert not NAME.search(text)


def test_the_quality_page_renders_in_headless_chromium_without_errors_or_personal_data(reported, settings):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium (scripts/system-packages.sh)")
    from playwright.sync_api import sync_playwright

    from quality.site import create_app

    problems: list[str] = []
    with running(create_app(settings)) as url, sync_playwright() as pw:
        as_json = httpx.get(f"{url}/quality.json")
        assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
        assert as_json.json()["run_id"] == "run-2"
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            page.goto(f"{url}/quality/", wait_until="networkidle")
            page.wait_for_selector("body[data-rendered=true]", timeout=15_000)
            tables = page.locator("table")
            assert tables.count() >= 7
            assert page.locator("#libraries tbody tr").count() == 1 and page.locator("#sources tbody tr").count() == 1
            assert page.locator("#reasons tbody tr").count() == 3 and page.locator("#recent tbody tr").count() == 6
            # Charts: a trend line per figure (two runs each), sparklines in the tables, the reasons' bars.
            assert page.locator("#library-charts figure.trend svg path.series").count() == 6
            assert page.locator("#source-charts figure.trend svg path.series").count() == 6
            assert page.locator("#sources td svg.spark path.series").count() == 6
            assert page.locator("#reason-charts svg.bars rect.series").count() == 3
            first_line = page.locator("#library-charts figure.trend svg path.series").first.get_attribute("d")
            assert first_line.startswith("M") and " L" in first_line  # drawn through both runs
            assert "Data Docs" in page.locator("#meta").inner_text()
            html = page.content()
            text = page.locator("body").inner_text()
            assert problems == [], problems
            # The Data Docs are served beside the page (GX's pages load their styles from a CDN: not judged here).
            docs = browser.new_page()
            docs.goto(f"{url}/data_docs/index.html")
            assert "Data Docs" in docs.content()
        finally:
            browser.close()
    report_json = as_json.text
    for secret in _secrets(reported):
        assert secret not in html and secret not in report_json, "an unmasked ID number in the report"
    assert not NAME.search(html) and not NAME.search(report_json)
    assert "王*" in text and "1101" in text  # masked: surname kept, ID number to its region prefix

"""Landing: immutable per-run folders with manifests; retries neither lose nor duplicate rows."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from connectors.sql import SqlConnector
from hub.db import metadata_engine
from warehouse.landing import MANIFEST, land, landed_runs
from warehouse.runs import get_watermark, set_watermark
from tests.household import COLUMNS, create_table, insert, person_row


@pytest.fixture
def household(tmp_path):
    url = f"sqlite:///{tmp_path / 'household.sqlite'}"
    engine = create_table(url)
    insert(engine, [person_row(i) for i in range(1, 26)])
    return url, engine


def _connector(url):
    return SqlConnector(url, "HJ_RKXX", "RKBH", "GXSJ", COLUMNS[1:], batch_size=10)


def _landed_keys(settings) -> list[int]:
    keys = []
    for run_dir, manifest in landed_runs(settings.landing_dir, "household"):
        if manifest.rows:
            keys += [int(k) for k in pq.read_table(run_dir / manifest.file).column("RKBH").to_pylist()]
    return sorted(keys)


def test_landing_writes_parquet_and_manifest_then_advances_watermark(household, settings):
    url, _ = household
    manifest = land("household", _connector(url), "run-1", settings.landing_dir, metadata_engine())
    run_dir = settings.landing_dir / "household" / "run-1"
    on_disk = json.loads((run_dir / MANIFEST).read_text())
    assert on_disk["rows"] == manifest.rows == 25
    assert on_disk["since"] is None and int(json.loads(on_disk["watermark"])["k"]) == 25
    assert len(on_disk["sha256"]) == 64
    assert get_watermark(metadata_engine(), "household") == manifest.watermark


def test_next_run_lands_only_new_rows(household, settings):
    url, engine = household
    land("household", _connector(url), "run-1", settings.landing_dir, metadata_engine())
    insert(engine, [person_row(i) for i in range(26, 31)])
    second = land("household", _connector(url), "run-2", settings.landing_dir, metadata_engine())
    assert second.rows == 5
    assert _landed_keys(settings) == list(range(1, 31))


def test_retry_of_the_same_run_replaces_its_own_output(household, settings):
    url, engine = household
    land("household", _connector(url), "run-1", settings.landing_dir, metadata_engine())
    insert(engine, [person_row(i) for i in range(26, 31)])
    land("household", _connector(url), "run-2", settings.landing_dir, metadata_engine())
    # Airflow retries run-2: it starts again from where run-2 started, not from run-2's end.
    retried = land("household", _connector(url), "run-2", settings.landing_dir, metadata_engine())
    assert retried.rows == 5
    assert _landed_keys(settings) == list(range(1, 31))


class Crash(Exception):
    pass


def test_crash_mid_extraction_leaves_watermark_and_next_run_lands_the_rest(household, settings):
    url, _ = household
    connector = _connector(url)
    real_extract = connector.extract

    def crashing_extract(since, *, full=False):
        extraction = real_extract(since, full=full)
        inner = extraction.batches

        def two_then_crash():
            yield next(inner)
            yield next(inner)
            raise Crash("killed")

        extraction.batches = two_then_crash()
        return extraction

    connector.extract = crashing_extract
    with pytest.raises(Crash):
        land("household", connector, "run-1", settings.landing_dir, metadata_engine())
    assert get_watermark(metadata_engine(), "household") is None
    assert landed_runs(settings.landing_dir, "household") == []  # only a .partial folder, never read

    land("household", _connector(url), "run-2", settings.landing_dir, metadata_engine())
    assert _landed_keys(settings) == list(range(1, 26))


def test_crash_after_landing_before_watermark_is_recovered(household, settings):
    url, engine = household
    first = land("household", _connector(url), "run-1", settings.landing_dir, metadata_engine())
    # Simulate dying between the folder rename and the watermark update.
    set_watermark(metadata_engine(), "household", None, "run-0")
    insert(engine, [person_row(i) for i in range(26, 29)])
    second = land("household", _connector(url), "run-2", settings.landing_dir, metadata_engine())
    assert second.since == first.watermark
    assert _landed_keys(settings) == list(range(1, 29))


def test_rest_field_type_change_fails_naming_the_field_and_leaves_nothing(settings):
    from samples.fake_rest import fake_rest_app, make_records, serving
    from connectors.rest import RestConnector
    from hub.errors import SchemaDrift

    app = fake_rest_app(make_records(500), page_size=100, drift_after_page=2, drift_field="capital")
    with serving(app) as base_url:
        connector = RestConnector(base_url, path="/items", pagination="page", key="id", watermark="updated_at",
                                  batch_size=100, since_param="updated_since")
        with pytest.raises(SchemaDrift, match="capital"):
            land("registry", connector, "run-1", settings.landing_dir, metadata_engine())
    assert get_watermark(metadata_engine(), "registry") is None
    assert not (settings.landing_dir / "registry").exists() or not any((settings.landing_dir / "registry").iterdir())

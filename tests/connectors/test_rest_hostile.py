"""The REST connector against a hostile source: loops, trickles, endless bodies, oversized pages, errors in a 200.

Every extraction runs under ``bounded``: a connector that hangs fails the test instead of hanging the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.config import SourceConfig, problems_of
from connectors.rest import Paging, RestConnector
from connectors.rest_config import from_config
from hub.db import metadata_engine
from hub.errors import SchemaDrift, SourceError, SourceUnavailable
from tests.connectors.hostile_rest import (alternating_cursor, body, declared_huge, endless_chunked,
                                           fresh_cursor_same_items, hostile, oversized_page, trickle)
from warehouse.landing import landed_runs, land
from warehouse.runs import get_watermark

HANG = 30.0  # far beyond any limit set below: reaching it means the connector would have hung


def bounded(work: Callable[[], Any]) -> Any:
    """``work()``'s result or exception, or a test failure if it has not finished within HANG seconds."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        pytest.fail(f"the extraction was still running after {HANG:g} s: no limit stopped it")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def connector(base_url: str, style: str = "cursor", **options: Any) -> RestConnector:
    paging = Paging("cursor") if style == "cursor" else Paging("page")
    settings = dict(path="/changes", pagination=paging, key="id", batch_size=10, backoff=0.01, max_retries=2,
                    timeout=5.0, deadline=10.0)
    return RestConnector(base_url, **(settings | options))


def rows(rest: RestConnector) -> int:
    return sum(b.num_rows for b in rest.extract(None).batches)


def test_a_cursor_seen_before_is_a_loop():
    with hostile(alternating_cursor()) as (url, seen):
        with pytest.raises(SourceError, match="cursor 'A' was already followed at page 2"):
            bounded(lambda: rows(connector(url)))
        assert len(seen) == 3  # stopped at the first cursor that came back, not at a deadline


def test_fresh_cursors_over_the_same_records_are_a_loop():
    with hostile(fresh_cursor_same_items()) as (url, seen):
        with pytest.raises(SourceError, match="page 2 holds the same records as page 1"):
            bounded(lambda: rows(connector(url)))
        assert len(seen) == 2


def test_a_trickled_body_times_out_as_a_whole_request():
    # One byte every 0.2 s never trips a read timeout; the request's own time limit does, and is retried.
    with hostile(trickle(0.2)) as (url, seen):
        with pytest.raises(SourceUnavailable, match=r"2 attempt.*timed out after 1 s"):
            bounded(lambda: rows(connector(url, timeout=1.0, max_retries=1)))
        assert len(seen) == 2


def test_the_extraction_deadline_stops_retries_of_a_trickled_body():
    with hostile(trickle(0.2)) as (url, seen):
        with pytest.raises(SourceError, match=r"deadline of 2 s") as failed:
            bounded(lambda: rows(connector(url, timeout=1.0, max_retries=100, deadline=2.0)))
        assert not isinstance(failed.value, SourceUnavailable)  # retrying the same source would hang the same way
        assert len(seen) < 10


def test_an_endless_chunked_body_is_cut_at_max_page_bytes():
    with hostile(endless_chunked()) as (url, _):
        with pytest.raises(SourceError, match=r"more than limits.max_page_bytes \(1048576\)"):
            bounded(lambda: rows(connector(url, max_page_bytes=1 << 20)))


def test_a_declared_length_over_max_page_bytes_is_refused_before_reading():
    with hostile(declared_huge()) as (url, _):
        with pytest.raises(SourceError, match=r"declares 10737418240 bytes, more than limits.max_page_bytes"):
            bounded(lambda: rows(connector(url, max_page_bytes=1 << 20)))


def test_a_page_larger_than_asked_is_refused_unless_configured():
    with hostile(oversized_page(200)) as (url, _):
        with pytest.raises(SourceError, match=r"page 1 holds 200 items, more than limits.max_page_items \(10;"):
            bounded(lambda: rows(connector(url, "page", path="/items")))
        # An API with fixed pages larger than asked for is allowed when its source says so.
        assert bounded(lambda: rows(connector(url, "page", path="/items", max_page_items=200))) == 2000


@pytest.mark.parametrize("answer, shown", [
    ({"error": "token expired for 110105198001010019", "items": []}, "token expired for 1101*************9"),
    ({"error": {"code": 503, "message": "database down"}}, '"message":"database down"'),
    ({"errors": [{"message": "quota exceeded"}], "items": None}, "quota exceeded"),
])
def test_an_error_in_a_200_answer_is_an_error_not_an_empty_success(answer, shown):
    with hostile(body(answer)) as (url, _):
        with pytest.raises(SourceError, match="answered 200 with an error and no items") as failed:
            bounded(lambda: rows(connector(url)))
    assert shown in str(failed.value)
    assert "110105198001010019" not in str(failed.value)  # an ID number the API echoes is masked
    assert not isinstance(failed.value, SchemaDrift)


def test_an_empty_page_without_an_error_is_still_the_end():
    with hostile(body({"items": [], "error": None, "next_cursor": None})) as (url, _):
        assert bounded(lambda: rows(connector(url))) == 0


def test_nothing_is_landed_and_the_watermark_stays_when_the_source_loops(settings):
    engine = metadata_engine()
    with hostile(fresh_cursor_same_items()) as (url, _):
        with pytest.raises(SourceError, match="same records"):
            bounded(lambda: land("registry", connector(url), "run-1", settings.landing_dir, engine))
    assert landed_runs(settings.landing_dir, "registry") == []
    assert not (settings.landing_dir / "registry").exists() or not any((settings.landing_dir / "registry").iterdir())
    assert get_watermark(engine, "registry") is None


def _source(**limits: Any) -> SourceConfig:
    return SourceConfig(name="registry", department="market_regulation", kind="rest", library="legal_person",
                        url="http://127.0.0.1:9", key="id", fields={"name": "name"},
                        options={"path": "/items", "page_size": 10, "max_retries": 0}, limits=limits)


def test_limits_come_from_the_source_configuration(tmp_path):
    with hostile(oversized_page(50)) as (url, _):
        source = _source(max_page_items=50, max_page_bytes=1 << 20, deadline_seconds=20)
        rest = from_config(source.model_copy(update={"url": url}), tmp_path)
        assert (rest.max_page_items, rest.max_page_bytes, rest.deadline) == (50, 1 << 20, 20.0)
        assert bounded(lambda: rows(rest)) == 500
        defaults = from_config(_source().model_copy(update={"url": url}), tmp_path)
        assert defaults.max_page_items == 10  # what was asked for
        with pytest.raises(SourceError, match="max_page_items"):
            bounded(lambda: rows(defaults))


def test_bad_limits_are_refused_with_every_problem():
    with pytest.raises(ValidationError) as refused:
        _source(max_page_items=0, deadline_seconds=-1, max_page_bytes=10, max_pages=3)
    assert {e["loc"][-1] for e in refused.value.errors()} == {"max_page_items", "deadline_seconds", "max_page_bytes",
                                                               "max_pages"}
    sql = SourceConfig(name="h", department="public_security", kind="sql", library="population", url="sqlite://",
                       table="T", key="K", fields={"id_number": "SFZH"}, limits={"deadline_seconds": 5})
    assert problems_of(sql) == ["source 'h': limits apply to rest sources only"]

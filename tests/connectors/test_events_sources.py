"""Event sources: licence status events configured beside the issuers, mapped to their own record type."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from connectors.config import SAMPLE_SOURCES, load_sources
from connectors.mapping import to_canonical
from hub.errors import ConfigError
from quality.rules import source_suite

EVENTS_SOURCE = """
sources:
  - name: ev
    department: transport
    kind: file_drop
    library: {library}
    role: events
    url: file:///tmp/x
    key: 许可证号
    fields:
      licence_number: 许可证号
      event: 事件
{extra}
"""


def test_every_licence_issuer_has_an_events_source_staged_apart():
    sources = load_sources(SAMPLE_SOURCES)
    issuers = {s.department for s in sources.values() if s.library == "licence" and s.role == "master"}
    events = {s.department: s for s in sources.values() if s.role == "events"}
    assert set(events) == issuers and len(events) == 7
    assert {s.delivers for s in events.values()} == {"licence_events"}
    assert sources["licences_transport"].delivers == "licence"
    # The issuers' own drops do not pick up the events files beside them, and the other way round.
    assert events["transport"].options["pattern"] == "transport_events_[0-9]*.csv"
    assert sources["licences_transport"].options["pattern"] == "transport_[0-9]*.csv"


def test_an_events_source_maps_every_event_field_and_only_where_events_exist(tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text(EVENTS_SOURCE.format(library="licence", extra="      status: 状态\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_sources(bad)
    assert set(caught.value.problems) == {"source 'ev': unknown field 'status' for library licence_events",
                                          "source 'ev': required field 'event_date' of licence_events is not mapped"}
    bad.write_text(EVENTS_SOURCE.format(library="population", extra="      event_date: 日期\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match="library population has no events"):
        load_sources(bad)


def test_events_are_identified_by_number_event_and_date(tmp_path):
    good = tmp_path / "sources.yaml"
    good.write_text(EVENTS_SOURCE.format(library="licence", extra="      event_date: 日期\n"), encoding="utf-8")
    source = load_sources(good)["ev"]
    raw = pa.table({"许可证号": ["110105000001", "110105000001"], "事件": ["issued", "suspended"],
                    "日期": ["2020-01-01", None]})
    records = to_canonical(raw, source, "run-1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert records.column_names[:3] == ["licence_number", "event", "event_date"]
    assert records.column("source_record_id").to_pylist() == ["110105000001/issued/2020-01-01",
                                                              "110105000001/suspended/"]
    assert records.column("event_date").to_pylist() == [dt.date(2020, 1, 1), None]
    rules = {r.name for r in source_suite(source, today=dt.date(2026, 1, 1)).rules}
    # Rules derived from the event declaration, not the licence's required fields; an event entered twice is noted.
    assert {"event.required", "event.code", "event_date.required", "event_date.range",
            "licence_number+event+event_date.unique"} <= rules
    assert not any(r.startswith(("holder_id", "issued_on", "status")) for r in rules)

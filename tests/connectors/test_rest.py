"""The REST connector against the fake API under a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.config import SourceConfig
from samples.fake_rest import Fail, fake_rest_app, make_records, serving
from connectors.rest import Paging, RestConnector
from connectors.rest_config import from_config
from hub.errors import ConfigError, SchemaDrift, SourceError, SourceUnavailable

STYLES = {
    "page": ("/items", Paging("page")),
    "offset": ("/items", Paging("offset", page_param="offset")),
    "cursor": ("/changes", Paging("cursor")),
}


@pytest.fixture
def serve():
    """Start a fake API for ``records`` (keyword arguments go to fake_rest_app); returns (base URL, fake source)."""
    with ExitStack() as stack:
        def start(records, **options):
            app = fake_rest_app(records, **options)
            return stack.enter_context(serving(app)), app.state.source

        yield start


def connector(base_url: str, style: str = "page", **options) -> RestConnector:
    path, paging = STYLES[style]
    settings = dict(path=path, pagination=paging, key="id", watermark="updated_at", batch_size=10,
                    since_param="updated_since", backoff=0.01, max_retries=3, timeout=5.0)
    return RestConnector(base_url, **(settings | options))


def drain(extraction) -> pa.Table:
    batches = list(extraction.batches)
    return pa.Table.from_batches(batches) if batches else pa.table({})


def ids(table: pa.Table) -> list[str]:
    return table.column("id").to_pylist() if table.num_rows else []


@pytest.mark.parametrize("style", STYLES)
def test_every_record_exactly_once(serve, style):
    records = make_records(95)  # ten records share each update time: ties across page boundaries
    url, _ = serve(records, max_page_size=7)  # the server caps pages below what the connector asks for
    extraction = connector(url, style).extract(None)
    table = drain(extraction)
    assert sorted(ids(table)) == [r["id"] for r in records]
    assert json.loads(extraction.watermark)["k"] == "E0000094"


@pytest.mark.parametrize("style", STYLES)
def test_incremental_run_returns_only_changed_records(serve, style):
    url, source = serve(make_records(50))
    rest = connector(url, style)
    first = rest.extract(None)
    assert len(ids(drain(first))) == 50
    last_time = json.loads(first.watermark)["w"]

    changed = [dict(r, name="改名", updated_at="2026-02-01T00:00:00") for r in make_records(3, start=10)]
    tied = make_records(2, start=50, updated=last_time, ties=1000)  # same update time as the mark, later keys
    source.put(changed + tied)
    second = rest.extract(first.watermark)
    assert sorted(ids(drain(second))) == ["E0000010", "E0000011", "E0000012", "E0000050", "E0000051"]
    assert json.loads(second.watermark)["w"] == "2026-02-01T00:00:00"

    third = rest.extract(second.watermark)
    assert ids(drain(third)) == []
    assert third.watermark == second.watermark
    assert len(ids(drain(rest.extract(second.watermark, full=True)))) == 52


def test_watermark_only_reflects_pulled_batches(serve):
    url, _ = serve(make_records(30))
    extraction = connector(url).extract(None)
    next(extraction.batches)
    assert extraction.watermark is None  # the first batch is out, but the consumer has not come back for more
    next(extraction.batches)
    assert json.loads(extraction.watermark) == {"w": "2026-01-01T00:00:00", "k": "E0000009"}


def test_bearer_token(serve):
    url, source = serve(make_records(12), token="s3cret")
    with pytest.raises(SourceError, match="401") as refused:
        drain(connector(url).extract(None))
    assert not isinstance(refused.value, SourceUnavailable)  # a refusal is not retried
    assert len(source.requests) == 1
    assert len(ids(drain(connector(url, auth="bearer", token="s3cret").extract(None)))) == 12


def test_signed_requests_are_verified_by_the_source(serve):
    key = Ed25519PrivateKey.generate()
    url, source = serve(make_records(25), public_keys={"hub-1": key.public_key()}, fail_plan=[503])
    signed = connector(url, "cursor", auth="signed", signing_key=key, key_id="hub-1")
    assert len(ids(drain(signed.extract(None)))) == 25  # the retry after the 503 is signed afresh (new nonce)
    assert [r.status for r in source.requests] == [503, 200, 200, 200]

    impostor = connector(url, auth="signed", signing_key=Ed25519PrivateKey.generate(), key_id="hub-1")
    with pytest.raises(SourceError, match="401"):
        drain(impostor.extract(None))
    with pytest.raises(SourceError, match="401"):
        drain(connector(url).extract(None))


def test_retries_503_then_succeeds(serve):
    url, source = serve(make_records(20), fail_plan=[503, 502, 500])
    assert len(ids(drain(connector(url).extract(None)))) == 20
    assert [r.status for r in source.requests] == [503, 502, 500, 200, 200]


def test_429_retry_after_is_honoured(serve):
    url, source = serve(make_records(20), fail_plan=[Fail(429, retry_after=1)])
    started = time.monotonic()
    assert len(ids(drain(connector(url).extract(None)))) == 20
    assert source.requests[1].at - source.requests[0].at >= 1.0
    assert time.monotonic() - started >= 1.0


def test_retries_exhausted_leave_the_watermark_unchanged(serve):
    url, source = serve(make_records(20), fail_plan=[503] * 10)
    since = json.dumps({"w": "2025-12-31T00:00:00", "k": "E0000000"})
    extraction = connector(url, max_retries=2).extract(since)
    with pytest.raises(SourceUnavailable) as failed:
        drain(extraction)
    message = str(failed.value)
    assert "HTTP 503" in message and "/items" in message and "3 attempt" in message
    assert len(source.requests) == 3
    assert extraction.watermark == since


def test_a_retry_after_beyond_max_wait_gives_up_at_once(serve):
    url, source = serve(make_records(20), fail_plan=[Fail(503, retry_after=3600)])
    with pytest.raises(SourceUnavailable, match="3600"):
        drain(connector(url, max_wait=5).extract(None))
    assert len(source.requests) == 1


def test_timeouts_are_retried(serve):
    url, source = serve(make_records(20), fail_plan=[Fail(None, delay=1.0)])
    assert len(ids(drain(connector(url, timeout=0.3).extract(None)))) == 20

    url, source = serve(make_records(20), fail_plan=[Fail(None, delay=1.0)] * 3)
    with pytest.raises(SourceUnavailable, match="timed out") as failed:
        drain(connector(url, timeout=0.3, max_retries=2).extract(None))
    assert "3 attempt" in str(failed.value)


def test_unreachable_source(serve):
    rest = connector("http://127.0.0.1:9", max_retries=1)  # the discard port: nothing listens
    with pytest.raises(SourceUnavailable, match="2 attempt"):
        drain(rest.extract(None))


def test_a_page_parameter_the_api_ignores_is_refused(serve):
    url, _ = serve(make_records(30))
    with pytest.raises(SourceError, match="previous page again"):
        drain(connector(url, pagination=Paging("page", page_param="p")).extract(None))


def test_rate_limit_is_respected(serve):
    url, source = serve(make_records(55))  # 6 pages of 10
    started = time.monotonic()
    assert len(ids(drain(connector(url, rate_limit=10).extract(None)))) == 55
    assert len(source.requests) == 6
    assert time.monotonic() - started >= (6 - 1) / 10


@pytest.mark.parametrize("declared", [None, {"id": "string", "capital": "number", "updated_at": "string"}])
def test_type_change_is_drift_raised_before_the_page(serve, declared):
    url, _ = serve(make_records(40), drift_after_page=2, drift_field="capital")
    extraction = connector(url, schema=declared).extract(None)
    pulled = []
    with pytest.raises(SchemaDrift, match=r"page 3.*'capital' is string, expected number"):
        for batch in extraction.batches:
            pulled.append(batch)
    assert sum(b.num_rows for b in pulled) == 20  # pages 1 and 2 only: nothing of page 3 was handed out
    assert json.loads(extraction.watermark)["k"] == "E0000019"


@pytest.mark.parametrize("declared", [None, {"id": "string", "employees": "integer"}])
def test_a_required_field_that_disappears_is_drift(serve, declared):
    url, _ = serve(make_records(30), drift_after_page=1, drift_field="employees", drift_drop=True)
    with pytest.raises(SchemaDrift, match=r"page 2.*'employees' is missing"):
        drain(connector(url, "cursor", schema=declared).extract(None))


def test_learned_schema_tolerates_nulls_and_whole_numbers(serve):
    records = make_records(30)
    for r in records[:10]:
        r["closed_on"] = None  # only nulls on page 1: the type is learned from page 2
    records[25]["capital"] = 7  # an integer where page 1 had fractions is still a number
    url, _ = serve(records)
    assert len(ids(drain(connector(url).extract(None)))) == 30

    records[29]["closed_on"] = 20250101
    url, _ = serve(records)
    with pytest.raises(SchemaDrift, match="'closed_on' is number, expected string"):
        drain(connector(url).extract(None))


def test_values_land_as_strings(serve):
    record = make_records(1)[0] | {"capital": 12345678901234567.25, "big": 123456789012345678901234567890,
                                   "flag": True, "nothing": None}
    url, _ = serve([record] + make_records(14, start=1))
    table = drain(connector(url).extract(None))
    assert all(t == pa.string() for t in table.schema.types)
    assert table.column_names[:2] == ["id", "updated_at"]  # key and watermark first, then the source's order
    first = table.slice(0, 1).to_pylist()[0]
    assert first["capital"] == json.dumps(12345678901234567.25)  # exactly the JSON text the source sent
    assert first["big"] == "123456789012345678901234567890"
    assert first["employees"] == "0" and first["flag"] == "true" and first["nothing"] is None
    assert first["address"] == '{"city":"北京市","street":"建国路0号"}'
    assert first["tags"] == '["a",0]'


def _source(connection: str | None, **options) -> SourceConfig:
    return SourceConfig(name="registry", department="market_regulation", kind="rest", library="legal_person",
                        connection=connection, url="http://127.0.0.1:9", key="id", watermark="updated_at",
                        fields={"name": "name", "registered_capital": "capital"}, options=options)


def test_from_config_takes_the_token_from_the_connection(serve, monkeypatch, tmp_path):
    url, source = serve(make_records(12), token="tok/en")
    host, port = url.removeprefix("http://").split(":")
    monkeypatch.setenv("AIRFLOW_CONN_REG_API", f"http://:tok%2Fen@{host}:{port}")
    rest = from_config(_source("reg_api", path="/changes", pagination="cursor", auth="bearer",
                               since_param="updated_since", page_size=5, max_retries=0), tmp_path)
    table = drain(rest.extract(None))
    assert table.column_names == ["id", "updated_at", "name", "capital"]  # the mapped columns only
    assert table.num_rows == 12
    assert all(r.query["limit"] == "5" for r in source.requests)


def test_from_config_signs_with_the_connections_key(serve, monkeypatch, tmp_path):
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "hub.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    url, _ = serve(make_records(12), public_keys={"hub-1": key.public_key()})
    monkeypatch.setenv("AIRFLOW_CONN_REG_SIGNED", json.dumps(
        {"conn_type": "http", "host": url, "extra": {"key_id": "hub-1", "private_key_file": str(pem)}}))
    rest = from_config(_source("reg_signed", path="/items", auth="signed"), tmp_path)
    assert drain(rest.extract(None)).num_rows == 12


def test_from_config_refuses_secrets_and_unknown_options(tmp_path):
    with pytest.raises(ConfigError) as refused:
        from_config(_source(None, path="/items", token="abc", pagesize=5), tmp_path)
    assert len(refused.value.problems) == 2
    assert "secret" in refused.value.problems[0] and "'pagesize'" in refused.value.problems[1]
    with pytest.raises(ConfigError, match="needs connection"):
        from_config(_source(None, path="/items", auth="bearer"), tmp_path)
    with pytest.raises(ConfigError, match="pagination 'pages'.*schema type 'text'"):
        from_config(_source(None, pagination="pages", schema={"id": "text"}), tmp_path)


"""Lookups and verification "as of" a past date, served from the history a real publish writes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from exchange_api.client import HubRequestError
from hub.checksums import sha256_file
from schemas import LIBRARIES
from schemas.derive import duckdb_type
from schemas.ids import uscc_check_char
from tests.exchange_api.conftest import ABSENT_ID, OTHER_PERSON_ID, PERSON_ID, hub_at, person
from warehouse.history import record_history
from warehouse.publish import publish
from warehouse.work import open_work

UTC = dt.UTC
PURPOSE = "social_assistance"
COMPANY = (lambda b: b + uscc_check_char(b))("91110105MA01AB2C3")
LICENCE = "SP1101050001"
SEEN = dt.datetime(2025, 1, 5, tzinfo=UTC)  # the sources' last update before the first reconciliation
FIRST_RECONCILE = dt.datetime(2025, 2, 1, tzinfo=UTC)
MARRIED = dt.datetime(2025, 3, 10, 9, tzinfo=UTC)  # when the civil-affairs change took effect at its source
REVOKED = dt.date(2025, 3, 5)
SECOND_RECONCILE = dt.datetime(2025, 4, 1, tzinfo=UTC)


def licence(**overrides):
    row = {"licence_number": LICENCE, "licence_type": "food_business", "holder_type": "legal_person",
           "holder_id": COMPANY, "holder_name": "示例科技有限公司", "issuer": "market_regulation",
           "issued_on": dt.date(2020, 1, 1), "valid_from": dt.date(2020, 1, 1), "valid_to": dt.date(2099, 1, 1),
           "status": "issued", "status_date": dt.date(2020, 1, 1), "status_history": None, "file_digest": None,
           "source_department": "market_regulation", "source_record_id": "L-1",
           "source_updated_at": SEEN, "ingested_at": dt.datetime(2025, 1, 6, tzinfo=UTC),
           "run_id": "r"}
    row.update(overrides)
    return row


def reconcile(conn: duckdb.DuckDBPyConnection, as_of: dt.datetime, tables: dict[str, list[dict]]) -> None:
    """Stand in for build_golden: ``golden_<library>`` typed as reconciliation types it, then its history."""
    for name, rows in tables.items():
        lib = LIBRARIES[name]
        columns = ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in lib.fields)
        conn.execute(f'CREATE OR REPLACE TABLE "golden_{name}" ({columns})')
        if rows:
            conn.executemany(f'INSERT INTO "golden_{name}" VALUES ({", ".join("?" for _ in lib.fields)})',
                             [[r.get(f.name) for f in lib.fields] for r in rows])
        record_history(conn, name, as_of)


@pytest.fixture(scope="module")
def history_hub(tmp_path_factory):
    """A hub serving the second of two real publishes: a person married and a licence revoked between them."""
    data = tmp_path_factory.mktemp("as-of") / "data"
    snapshots = data / "snapshots"
    with open_work(data / "warehouse") as conn:
        reconcile(conn, FIRST_RECONCILE, {
            "population": [person(PERSON_ID, marital_status="10", source_updated_at=SEEN)],
            "licence": [licence()]})
        publish(conn, snapshots, ["run-1"])
        reconcile(conn, SECOND_RECONCILE, {
            "population": [person(PERSON_ID, marital_status="20", source_updated_at=MARRIED),
                           person(OTHER_PERSON_ID, birth_date=dt.date(1992, 3, 15), source_updated_at=SEEN)],
            "licence": [licence(status="revoked", status_date=REVOKED,
                                source_updated_at=dt.datetime(2025, 3, 6, tzinfo=UTC))]})
        publish(conn, snapshots, ["run-1", "run-2"])
    with hub_at(data, snapshot=False) as hub:
        yield hub


def test_a_changed_record_answers_as_it_stood_before_and_after_the_change(history_hub):
    dept = history_hub.department([("population", ["marital_status"], PURPOSE)])
    ask = lambda when: dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-A1",  # noqa: E731
                                          fields=["marital_status"], as_of=when)
    assert ask("2025-03-09").value("marital_status") == "10"
    assert ask("2025-03-10T09:00:00+00:00").value("marital_status") == "20"  # from the instant it took effect
    assert ask("2025-03-10T08:59:59+00:00").value("marital_status") == "10"
    assert ask("2025-03-20").value("marital_status") == "20"
    assert ask("2000-01-01").value("marital_status") == "10"  # known since birth, though first seen in 2025
    assert ask(None).value("marital_status") == "20" and ask(None).snapshot_version == "v000002"
    batch = dept.client.lookup_batch("population", [PERSON_ID, OTHER_PERSON_ID], PURPOSE, "CASE-A2",
                                     fields=["marital_status"], as_of="2025-03-01")
    assert [r["found"] for r in batch.results] == [True, True]
    assert batch.results[0]["record"]["marital_status"]["value"] == "10"


def test_a_record_that_did_not_exist_yet_is_not_found(history_hub):
    dept = history_hub.department()
    assert not dept.client.lookup("population", OTHER_PERSON_ID, PURPOSE, "CASE-A3", as_of="1992-03-14").found
    assert dept.client.lookup("population", OTHER_PERSON_ID, PURPOSE, "CASE-A4", as_of="1992-03-15").found
    assert not dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-A5", as_of="1979-12-31").found
    assert not dept.client.lookup("population", ABSENT_ID, PURPOSE, "CASE-A6", as_of="2025-03-20").found
    exists = [dept.client.verify_existence("population", OTHER_PERSON_ID, PURPOSE, "CASE-A7", on=day).answer
              for day in ("1990-01-01", "2000-01-01")]
    assert exists == [False, True]


def test_licence_verification_on_a_past_day_reads_the_history(history_hub):
    dept = history_hub.department()
    check = lambda day: dept.client.verify_licence(LICENCE, COMPANY, PURPOSE, "CASE-A8", on=day).answer  # noqa: E731
    assert check("2025-03-04") is True  # in force until the revocation
    assert check("2025-03-05") is False  # revoked that day
    assert check(None) is False
    assert check("2019-12-31") is False  # not issued yet


def test_the_history_is_in_the_snapshot_and_its_manifest(history_hub):
    path = Path(history_hub.settings.snapshots_dir) / "v000002"
    rows = duckdb.connect().execute(f"SELECT id_number, marital_status, _valid_from, _valid_to "
                                    f"FROM '{path}/population_history.parquet'").fetchall()
    assert [(k, m, e is None) for k, m, _, e in rows] == [(PERSON_ID, "10", False), (PERSON_ID, "20", True),
                                                          (OTHER_PERSON_ID, "20", True)]
    assert rows[0][3] == rows[1][2] == MARRIED
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["tables"]["population_history"]["rows"] == 3
    assert manifest["tables"]["licence_history"]["rows"] == 2
    assert manifest["tables"]["licence_history"]["sha256"] == sha256_file(path / "licence_history.parquet")


def test_as_of_on_a_snapshot_without_history_is_refused(tmp_path):
    with hub_at(tmp_path / "plain") as hub:  # the default snapshot: no history files
        dept = hub.department([("population", ["marital_status"], PURPOSE)])
        for fields in (["marital_status"], []):
            with pytest.raises(HubRequestError) as refused:
                dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-A9", fields=fields, as_of="2025-03-01")
            assert (refused.value.status, refused.value.code) == (422, "as_of_unavailable")
        with pytest.raises(HubRequestError) as refused:
            dept.client.verify_existence("population", PERSON_ID, PURPOSE, "CASE-A10", on="2025-03-01")
        assert (refused.value.status, refused.value.code) == (422, "as_of_unavailable")

"""Golden records field by field: authority first, then the most recent; provenance and conflicts kept."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from schemas import POPULATION
from schemas.derive import arrow_schema
from warehouse.publish import publish
from warehouse.published import open_current
from warehouse.reconcile import build_golden
from warehouse.work import open_work
from tests.household import valid_id

PERSON = valid_id(7, birth="19800101")
OTHER = valid_id(9, birth="19800101")


def _record(source: str, department: str, record_id: str, updated: dt.datetime, **values) -> dict:
    row = {f.name: None for f in POPULATION.fields}
    row.update(values, source_department=department, source_record_id=record_id, source_updated_at=updated,
               ingested_at=updated, run_id="run-1", _source=source)
    return row


def _stage(conn, rows: list[dict]) -> None:
    schema = arrow_schema(POPULATION).append(pa.field("_source", pa.string()))
    conn.register("incoming", pa.Table.from_pylist(rows, schema=schema.remove_metadata()))
    conn.execute('INSERT INTO "staging_population" BY NAME SELECT * FROM incoming')
    conn.unregister("incoming")


def test_authority_wins_then_the_most_recent_with_provenance_and_conflicts(settings):
    early, late = dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    with open_work(settings.warehouse_dir) as conn:
        _stage(conn, [
            # The household register (master) still says unmarried and living, and is the newest.
            _record("household", "public_security", "1", late, id_number=PERSON, name="王五", gender="1",
                    birth_date=dt.date(1980, 1, 1), marital_status="10", life_status="living",
                    residence_address="北京市朝阳区建国路1号"),
            # Civil affairs, authoritative for marital status, registered the marriage earlier.
            _record("marriages", "civil_affairs", "J1#1", early, id_number=PERSON, name="王五", gender="1",
                    marital_status="20"),
            # Health and public security are both authoritative for life status; a recorded death is final.
            _record("deaths", "health", "SW1", early, id_number=PERSON, name="王五", life_status="deceased",
                    life_status_date=dt.date(2024, 12, 30)),
            # Known only to a contributing source: no golden record of its own.
            _record("deaths", "health", "SW2", early, id_number=OTHER, name="李四", life_status="deceased"),
        ])
        result = build_golden(conn, "population", masters=["household"])
        golden = conn.execute('SELECT id_number, name, marital_status, life_status, life_status_date, '
                              'residence_address, source_department FROM golden_population').fetchall()
        provenance = {r[0]: r[1:] for r in conn.execute(
            "SELECT field, source_department, verified, rule FROM golden_population_provenance").fetchall()}
        conflicts = {r[0]: (r[1], r[2], json.loads(r[3])) for r in conn.execute(
            'SELECT field, golden_value, rule, "values" FROM golden_population_conflicts').fetchall()}
        publish(conn, settings.snapshots_dir, ["run-1"])
    assert result.golden == 1 and golden == [
        (PERSON, "王五", "20", "deceased", dt.date(2024, 12, 30), "北京市朝阳区建国路1号", "public_security")]
    assert provenance["marital_status"] == ("civil_affairs", True, "authority:civil_affairs")
    assert provenance["life_status"] == ("health", True, "life_event:health")
    # The name came from the record's own source record (the household register): no exception row.
    assert "name" not in provenance and golden[0][-1] == "public_security"
    assert set(conflicts) == {"marital_status", "life_status"}
    golden_value, rule, values = conflicts["marital_status"]
    assert (golden_value, rule) == ("20", "authority:civil_affairs")
    assert {(v["value"], v["source_department"]) for v in values} == {("20", "civil_affairs"), ("10", "public_security")}

    snapshot = open_current(settings.snapshots_dir)
    assert snapshot.conflicts("population", PERSON)["life_status"]["golden_value"] == "deceased"
    assert snapshot.provenance("population", PERSON)["marital_status"]["source_department"] == "civil_affairs"
    assert snapshot.manifest["tables"]["_conflicts"]["rows"] == 2

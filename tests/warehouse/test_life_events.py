"""Life events across libraries: licence status events, ended holders and lapsed validity reach the golden licences."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from schemas.derive import arrow_schema
from schemas.events import record_type
from schemas.ids import uscc_check_char
from tests.household import valid_id
from warehouse.life_events import apply_life_events
from warehouse.reconcile import build_golden
from warehouse.work import open_work

TODAY = dt.date(2026, 1, 1)
AT = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
PERSON = valid_id(7, birth="19800101")
WIDOW = valid_id(8, birth="19820101")


def credit_code(i: int) -> str:
    body = f"91110105MA{i:07d}"
    return body + uscc_check_char(body)


ACTIVE, GONE, BANNED = credit_code(1), credit_code(2), credit_code(3)


def stage(conn, name: str, source: str, rows: list[dict]) -> None:
    """Rows straight into ``staging_<name>`` (unset fields null; metadata filled in)."""
    rt = record_type(name)
    full = []
    for i, values in enumerate(rows):
        row = {f.name: None for f in rt.fields}
        row.update(source_record_id=f"{source}-{i}", source_updated_at=AT, ingested_at=AT, run_id="run-1")
        row.update(values)
        full.append(row)
    schema = arrow_schema(rt).append(pa.field("_source", pa.string())).remove_metadata()
    conn.register("incoming", pa.Table.from_pylist([{**r, "_source": source} for r in full], schema=schema))
    conn.execute(f'INSERT INTO "staging_{name}" BY NAME SELECT * FROM incoming')
    conn.unregister("incoming")


def licence(number: str, holder: str, *, kind: str = "food_business", holder_type: str = "legal_person",
            issuer: str = "market_regulation", issued: dt.date = dt.date(2020, 1, 1), valid_to: dt.date | None = None,
            status: str = "issued") -> dict:
    return {"licence_number": number, "licence_type": kind, "holder_type": holder_type, "holder_id": holder,
            "issuer": issuer, "issued_on": issued, "valid_from": issued, "valid_to": valid_to, "status": status,
            "source_department": issuer}


def event(number: str, kind: str, day: dt.date, dept: str = "market_regulation") -> dict:
    return {"licence_number": number, "event": kind, "event_date": day, "source_department": dept,
            "source_record_id": f"{number}/{kind}/{day}"}


@pytest.fixture
def work(settings):
    with open_work(settings.warehouse_dir) as conn:
        yield conn


def golden(conn, number: str) -> dict:
    cur = conn.execute("SELECT * FROM golden_licence WHERE licence_number = ?", [number])
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone()))


def provenance(conn, number: str) -> dict[str, tuple]:
    return {f: (d, r) for f, d, r in conn.execute(
        "SELECT field, source_department, rule FROM golden_licence_provenance WHERE key = ?", [number]).fetchall()}


def build_all(conn) -> None:
    build_golden(conn, "population", ["household"])
    build_golden(conn, "legal_person", ["business_registry"])
    build_golden(conn, "licence", ["licences"])


@pytest.fixture
def world(work):
    """Two people, three companies, and licences in every situation life events handle."""
    stage(work, "population", "household", [
        # The household register still says living, and is the newest word on this person...
        {"id_number": PERSON, "name": "王五", "gender": "1", "birth_date": dt.date(1980, 1, 1), "life_status": "living",
         "source_department": "public_security", "source_updated_at": dt.datetime(2025, 12, 1, tzinfo=dt.UTC)},
        {"id_number": WIDOW, "name": "李四", "gender": "2", "birth_date": dt.date(1982, 1, 1), "life_status": "living",
         "source_department": "public_security"},
    ])
    # ... but health reported the death earlier: a death is final (reconcile's terminal life status).
    stage(work, "population", "deaths", [{"id_number": PERSON, "name": "王五", "life_status": "deceased",
                                          "life_status_date": dt.date(2025, 3, 1), "source_department": "health",
                                          "source_updated_at": dt.datetime(2025, 3, 2, tzinfo=dt.UTC)}])
    stage(work, "legal_person", "business_registry", [
        {"credit_code": code, "name": name, "entity_type": "91", "established_on": dt.date(2010, 1, 1), "status": status,
         "status_date": day, "source_department": "market_regulation"}
        for code, name, status, day in ((ACTIVE, "甲公司", "active", None), (GONE, "乙公司", "deregistered", dt.date(2024, 5, 1)),
                                        (BANNED, "丙公司", "revoked", dt.date(2023, 2, 1)))])
    stage(work, "licence", "licences", [
        licence("L-EVENTS", ACTIVE),
        licence("L-GONE", GONE),
        licence("L-GONE-REVOKED", GONE),
        licence("L-BANNED", BANNED),
        licence("L-LAPSED", ACTIVE, valid_to=dt.date(2025, 6, 30)),
        licence("L-LAPSED-FIRST", GONE, valid_to=dt.date(2022, 12, 31)),
        licence("L-VALID", ACTIVE, valid_to=dt.date(2027, 1, 1)),
        licence("L-DOCTOR", PERSON, kind="medical_practitioner", holder_type="person", issuer="health"),
        licence("L-MARRIAGE", PERSON, kind="marriage_certificate", holder_type="person", issuer="civil_affairs"),
        licence("L-MARRIAGE-2", WIDOW, kind="marriage_certificate", holder_type="person", issuer="civil_affairs"),
    ])
    stage(work, "licence_events", "licence_events_market_regulation", [
        # Out of order in the file: the history is by date.
        event("L-EVENTS", "suspended", dt.date(2024, 9, 1)),
        event("L-EVENTS", "issued", dt.date(2020, 1, 1)),
        event("L-EVENTS", "renewed", dt.date(2023, 1, 1)),
        event("L-GONE-REVOKED", "revoked", dt.date(2021, 7, 1)),
        event("L-NOBODY", "revoked", dt.date(2021, 7, 1)),  # no such licence: changes nothing
    ])
    build_all(work)
    return work


def test_events_set_status_date_and_history_in_date_order(world):
    result = apply_life_events(world, TODAY)
    lic = golden(world, "L-EVENTS")
    assert (lic["status"], lic["status_date"]) == ("suspended", dt.date(2024, 9, 1))
    history = json.loads(lic["status_history"])
    assert [(h["status"], h["date"]) for h in history] == [
        ("issued", "2020-01-01"), ("renewed", "2023-01-01"), ("suspended", "2024-09-01")]
    assert history[0]["rule"] == "event:market_regulation"  # the record's own "issued" merged into the event
    # The record alone: its history is its status, and its status keeps its own (missing) date.
    valid = golden(world, "L-VALID")
    assert (valid["status"], valid["status_date"]) == ("issued", None)
    assert json.loads(valid["status_history"]) == [
        {"status": "issued", "date": "2020-01-01", "source": "market_regulation", "rule": "record"}]
    assert "status_history" not in provenance(world, "L-VALID")
    assert provenance(world, "L-EVENTS")["status"] == ("market_regulation", "event:market_regulation")
    assert result.events == 4 and result.licences == 10


def test_a_deregistered_or_revoked_holder_ends_its_licences(world):
    apply_life_events(world, TODAY)
    gone = golden(world, "L-GONE")
    assert (gone["status"], gone["status_date"]) == ("cancelled", dt.date(2024, 5, 1))
    assert provenance(world, "L-GONE")["status"] == ("market_regulation", "life_event:holder_deregistered")
    assert [h["status"] for h in json.loads(gone["status_history"])] == ["issued", "cancelled"]
    banned = golden(world, "L-BANNED")
    assert (banned["status"], banned["status_date"]) == ("revoked", dt.date(2023, 2, 1))
    assert provenance(world, "L-BANNED")["status_date"] == ("market_regulation", "life_event:holder_revoked")
    # Revoked by its issuer before the holder was deregistered: final, and it stays as the issuer said.
    revoked = golden(world, "L-GONE-REVOKED")
    assert (revoked["status"], revoked["status_date"]) == ("revoked", dt.date(2021, 7, 1))
    assert provenance(world, "L-GONE-REVOKED")["status"][1] == "event:market_regulation"
    assert golden(world, "L-VALID")["status"] == "issued"


def test_a_licence_past_its_validity_expires_on_its_last_valid_day(world):
    result = apply_life_events(world, TODAY)
    lapsed = golden(world, "L-LAPSED")
    assert (lapsed["status"], lapsed["status_date"]) == ("expired", dt.date(2025, 6, 30))
    assert provenance(world, "L-LAPSED")["status"] == ("hub", "life_event:expired")
    # It lapsed before its holder was deregistered: the earlier end is the one that counts.
    first = golden(world, "L-LAPSED-FIRST")
    assert (first["status"], first["status_date"]) == ("expired", dt.date(2022, 12, 31))
    assert golden(world, "L-VALID")["status"] == "issued"
    assert result.by_rule == {"event:market_regulation": 2, "life_event:expired": 2,
                              "life_event:holder_deceased": 1, "life_event:holder_deregistered": 1,
                              "life_event:holder_revoked": 1}


def test_a_death_report_marks_the_person_deceased_and_ends_personal_qualifications(world):
    person = world.execute("SELECT life_status, life_status_date FROM golden_population WHERE id_number = ?",
                           [PERSON]).fetchone()
    rule = world.execute("SELECT rule FROM golden_population_provenance WHERE key = ? AND field = 'life_status'",
                         [PERSON]).fetchone()
    assert person == ("deceased", dt.date(2025, 3, 1)) and rule == ("life_event:health",)
    apply_life_events(world, TODAY)
    doctor = golden(world, "L-DOCTOR")
    assert (doctor["status"], doctor["status_date"]) == ("cancelled", dt.date(2025, 3, 1))
    assert provenance(world, "L-DOCTOR")["status"] == ("health", "life_event:holder_deceased")
    # A marriage certificate records a civil-status act: the death does not cancel it.
    assert golden(world, "L-MARRIAGE")["status"] == "issued"


def test_applying_twice_changes_nothing_more(world):
    apply_life_events(world, TODAY)
    licences = world.execute("SELECT * FROM golden_licence ORDER BY licence_number").fetchall()
    prov = world.execute("SELECT * FROM golden_licence_provenance ORDER BY key, field").fetchall()
    again = apply_life_events(world, TODAY)
    assert again.changed == 0 and again.by_rule == {}
    assert world.execute("SELECT * FROM golden_licence ORDER BY licence_number").fetchall() == licences
    assert world.execute("SELECT * FROM golden_licence_provenance ORDER BY key, field").fetchall() == prov


def test_nothing_to_do_without_licences(work):
    assert apply_life_events(work, TODAY).licences == 0


def test_events_of_unknown_licences_are_quarantined_until_the_licence_appears(world):
    from quality.tables import check_tables

    apply_life_events(world, TODAY)
    check = check_tables(world, "run-1", ["licence"])
    assert check.unknown_events == 1
    entries = world.execute("SELECT library, source, source_record_id, reasons, stage FROM quarantine "
                            "WHERE status = 'open'").fetchall()
    assert entries == [("licence_events", "licence_events_market_regulation", "L-NOBODY/revoked/2021-07-01",
                        ["licence_number: no licence with this number in the licence library"], "reference")]
    stage(world, "licence", "licences", [licence("L-NOBODY", ACTIVE)])
    build_golden(world, "licence", ["licences"])
    apply_life_events(world, TODAY)
    assert golden(world, "L-NOBODY")["status"] == "revoked"
    check_tables(world, "run-2", ["licence"])
    assert world.execute("SELECT status FROM quarantine WHERE library = 'licence_events'").fetchall() == [("superseded",)]


# --- end to end on the generated sample -------------------------------------------------------------------


def _stage_source(name: str, settings) -> None:
    """Land and stage one configured source, as hub.jobs.stage does with the source's record type."""
    from connectors.mapping import to_canonical
    from hub import jobs
    from quality.gate import SourceGate
    from warehouse.staging import stage_pending

    cfg = jobs.source(name)
    with open_work(settings.warehouse_dir) as conn:
        stage_pending(conn, cfg.name, cfg.delivers, settings.landing_dir,
                      lambda raw, run_id, at: to_canonical(raw, cfg, run_id, at), SourceGate(cfg),
                      parts=len(cfg.record_fields()))


def test_sample_events_files_are_ingested_checked_and_change_the_golden_licences(settings):
    from samples import DefectRates, generate_samples
    from hub import jobs
    from quality.tables import check_tables

    generate_samples(settings.samples_dir, 1_500, seed=11, rates=DefectRates.none(), rows_per_file=100_000)
    names = ["licences_market_regulation", "licence_events_market_regulation"]
    for name in names:
        jobs.ingest(name, "run-1")
        _stage_source(name, settings)
    with open_work(settings.warehouse_dir) as conn:
        build_golden(conn, "licence", ["licences_market_regulation"])
        first = apply_life_events(conn, TODAY)
        (staged,) = conn.execute("SELECT count(*) FROM staging_licence_events").fetchone()
        # Revoked licences carry their revocation date from the events file; the history is the file's, in order.
        revoked = conn.execute("SELECT licence_number, status_date, status_history FROM golden_licence "
                               "WHERE status = 'revoked' LIMIT 1").fetchone()
        event_date = conn.execute("SELECT event_date FROM staging_licence_events WHERE licence_number = ? "
                                  "AND event = 'revoked'", [revoked[0]]).fetchone()[0]
        target = conn.execute("SELECT licence_number FROM golden_licence WHERE status = 'issued' "
                              "AND valid_to IS NULL ORDER BY licence_number LIMIT 1").fetchone()[0]
    assert first.events == staged > 0 and first.by_rule["event:market_regulation"] > 0
    assert revoked[1] == event_date and [h["status"] for h in json.loads(revoked[2])][-1] == "revoked"

    # Later the department drops a new events file: a suspension, and rows the gate must stop.
    folder = settings.samples_dir / "licences"
    path = folder / "market_regulation_events_900.csv"
    path.write_text("证照编号,事件类型,事件日期\n"
                    f"{target},suspended,2025-10-01\n"
                    f"{target},withdrawn,2025-10-02\n"
                    f"{target},suspended,2025/10/03\n"
                    "NO-SUCH-LICENCE,revoked,2025-10-04\n", encoding="utf-8")
    (folder / (path.name + ".done")).write_bytes(b"")
    jobs.ingest("licence_events_market_regulation", "run-2")
    _stage_source("licence_events_market_regulation", settings)
    with open_work(settings.warehouse_dir) as conn:
        build_golden(conn, "licence", ["licences_market_regulation"])
        apply_life_events(conn, TODAY)
        check_tables(conn, "run-2", ["licence"])
        lic = golden(conn, target)
        rule = provenance(conn, target)["status"]
        quarantined = {tuple(r[0]) for r in conn.execute(
            "SELECT reasons FROM quarantine WHERE source = 'licence_events_market_regulation'").fetchall()}
    assert (lic["status"], lic["status_date"], rule) == (
        "suspended", dt.date(2025, 10, 1), ("market_regulation", "event:market_regulation"))
    reasons = {reason.split(":")[0] for entry in quarantined for reason in entry}
    assert len(quarantined) == 3 and reasons == {"event", "event_date", "licence_number"}
    assert ("licence_number: no licence with this number in the licence library",) in quarantined


def test_without_events_sources_the_record_and_its_holder_decide(work):
    stage(work, "licence", "licences", [licence("L-LAPSED", "x", valid_to=dt.date(2025, 6, 30))])
    build_golden(work, "licence", ["licences"])
    assert apply_life_events(work, TODAY).by_rule == {"life_event:expired": 1}

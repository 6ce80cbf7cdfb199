"""The audit log: a row for every attributable lookup, identifiers hashed and masked, a chain that detects tampering."""

from __future__ import annotations

import datetime as dt
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
import typer
from typer.testing import CliRunner

from exchange_api.audit import AuditDraft, AuditLog, audit_salt
from exchange_api.client import HubRequestError
from exchange_api.models import exchange_sessions
from hub.commands import api as api_commands
from hub.masking import hash_id, mask_id
from hub.settings import get_settings
from tests.exchange_api.conftest import OTHER_PERSON_ID, PERSON_ID

PURPOSE = "social_assistance"


def test_allowed_and_refused_lookups_are_audited_with_the_id_hashed_and_masked(hub):
    dept = hub.department([("population", ["name"], PURPOSE)])
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-A1", fields=["name"])
    with pytest.raises(HubRequestError) as refused:
        dept.client.lookup("population", OTHER_PERSON_ID, PURPOSE, "CASE-A2", fields=["birth_date"])

    salt = audit_salt(hub.settings.keys_dir)
    allowed = hub.audit_row(answer.request_id)
    assert (allowed.department, allowed.kid, allowed.authenticated) == (dept.code, dept.kid, True)
    assert (allowed.library, allowed.purpose, allowed.case_number) == ("population", PURPOSE, "CASE-A1")
    assert (allowed.outcome, allowed.status, allowed.code) == ("answered", 200, None)
    assert (allowed.fields_requested, allowed.fields_released) == ("name", "name")
    assert allowed.snapshot_version == "v000001"
    assert allowed.key_hash == hash_id(PERSON_ID, salt)
    assert allowed.key_masked == mask_id(PERSON_ID) != PERSON_ID

    denied = hub.audit_row(refused.value.request_id)
    assert (denied.outcome, denied.status, denied.code) == ("refused", 403, "fields_not_granted")
    assert denied.fields_released == ""
    assert "birth_date" in denied.reason
    assert denied.key_hash == hash_id(OTHER_PERSON_ID, salt)


def test_raw_id_numbers_never_reach_the_database(hub):
    dept = hub.department([("population", ["name", "birth_date"], PURPOSE)])
    dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-A3")
    dept.client.lookup("population", OTHER_PERSON_ID, PURPOSE, "CASE-A4")
    db = hub.settings.data_dir / "metadata.db"
    files = [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]
    assert files
    for path in files:
        data = path.read_bytes()
        for raw in (PERSON_ID, OTHER_PERSON_ID):
            assert raw.encode() not in data, f"raw ID number found in {path.name}"


def test_the_chain_stays_intact_under_concurrent_lookups(hub):
    departments = [hub.department() for _ in range(4)]
    before = len(hub.audit_rows())
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: departments[i % 4].client.lookup("population", PERSON_ID, PURPOSE,
                                                                            f"CASE-P{i}"), range(24)))
    assert all(a.found for a in answers)
    assert len(hub.audit_rows()) == before + 24
    report = hub.app.state.services.audit.verify()
    assert report.ok, report


def _draft(i: int) -> AuditDraft:
    return AuditDraft(request_id=f"req-{i}", at=dt.datetime.now(dt.UTC), department="civil_affairs", kid="k1",
                      authenticated=True, library="population", key=PERSON_ID, purpose=PURPOSE,
                      case_number=f"CASE-{i}", outcome="answered", fields_released=("gender",))


def _verify_cli() -> tuple[int, str]:
    app = typer.Typer()
    api_commands.register(app)
    result = CliRunner().invoke(app, ["verify-audit"])
    return result.exit_code, result.output


def _write_chain(n: int) -> AuditLog:
    settings = get_settings()  # HUB_DATA_DIR is this test's tmp_path (tests/conftest.py)
    log = AuditLog(exchange_sessions(settings), audit_salt(settings.keys_dir))
    for i in range(1, n + 1):
        log.append(_draft(i), 200)
    return log


def test_verify_audit_reports_an_intact_chain(hub_env):
    _write_chain(3)
    code, output = _verify_cli()
    assert code == 0, output
    assert "intact: 3 rows" in output


def test_tampering_is_detected_at_the_changed_row(hub_env):
    _write_chain(4)
    with sqlite3.connect(hub_env / "metadata.db") as con:
        con.execute("UPDATE exchange_audit_log SET department = 'somebody_else' WHERE seq = 2")
    code, output = _verify_cli()
    assert code == 1
    assert "broken at row 2" in output and "content does not match" in output


def test_a_rehashed_row_breaks_the_next_link(hub_env):
    from exchange_api.audit_chain import HASHED_COLUMNS, row_hash
    from exchange_api.models import AuditEntry

    log = _write_chain(4)
    with log.sessions() as session:
        entry = session.get(AuditEntry, 2)
        content = {c: getattr(entry, c) for c in HASHED_COLUMNS}
    # A careful forger recomputes row 2's own hash; row 3 still points at the old one.
    content["case_number"] = "FORGED"
    with sqlite3.connect(hub_env / "metadata.db") as con:
        con.execute("UPDATE exchange_audit_log SET case_number = 'FORGED', row_hash = ? WHERE seq = 2",
                    (row_hash(content),))
    code, output = _verify_cli()
    assert code == 1
    assert "broken at row 3" in output and "does not link" in output


def test_a_deleted_row_is_detected(hub_env):
    _write_chain(4)
    with sqlite3.connect(hub_env / "metadata.db") as con:
        con.execute("DELETE FROM exchange_audit_log WHERE seq = 2")
    code, output = _verify_cli()
    assert code == 1
    assert "broken at row 2" in output and "row 2 is missing" in output  # the first bad row is the missing one


def test_rows_written_before_the_operation_column_still_verify(hub_env):
    """Rows of the first release had no ``operation``: their hash did not cover it, and still does not."""
    from exchange_api.audit_chain import HASHED_COLUMNS, row_hash

    log = _write_chain(2)
    with sqlite3.connect(hub_env / "metadata.db") as con:
        con.execute("UPDATE exchange_audit_log SET operation = NULL")
        (prev,) = con.execute("SELECT row_hash FROM exchange_audit_log WHERE seq = 2").fetchone()
    old_style = {c: None for c in HASHED_COLUMNS} | {"seq": 3, "prev_hash": prev, "request_id": "old", "status": 200,
                                                      "authenticated": True, "fields_released": "", "outcome": "answered",
                                                      "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    assert row_hash(old_style) == row_hash({**old_style, "operation": None})
    assert log.verify().ok


def test_every_signed_endpoint_is_audited_and_tampering_with_a_batch_row_is_caught(hub):
    dept = hub.department()
    batch = dept.client.lookup_batch("population", [PERSON_ID, OTHER_PERSON_ID], PURPOSE, "CASE-AB1")
    dept.client.verify_existence("population", PERSON_ID, PURPOSE, "CASE-AB2")
    dept.client.catalogue()
    dept.client.usage()
    operations = [r.operation for r in hub.audit_rows() if r.department == dept.code]
    assert operations == ["batch", "batch", "verify_existence", "catalogue", "usage"]
    assert hub.app.state.services.audit.verify().ok
    (row, *_) = [r for r in hub.audit_rows() if r.request_id == batch.request_id]
    with sqlite3.connect(hub.settings.data_dir / "metadata.db") as con:
        con.execute("UPDATE exchange_audit_log SET fields_released = '' WHERE seq = ?", (row.seq,))
    try:
        report = hub.app.state.services.audit.verify()
        assert (report.ok, report.broken_seq) == (False, row.seq)
    finally:
        with sqlite3.connect(hub.settings.data_dir / "metadata.db") as con:
            con.execute("UPDATE exchange_audit_log SET fields_released = ? WHERE seq = ?", (row.fields_released, row.seq))
    assert hub.app.state.services.audit.verify().ok


def test_a_nonce_replayed_within_one_group_is_refused(hub_env):
    from exchange_api.audit import REPLAYED, Ticket

    settings = get_settings()
    log = AuditLog(exchange_sessions(settings), audit_salt(settings.keys_dir))
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    tickets = [Ticket(_draft(i), 200, nonce=("k1", "same-nonce-0123456789", expires)) for i in range(3)]
    log.commit(tickets)
    assert [t.verdict for t in tickets] == ["accepted", REPLAYED, REPLAYED]
    rows = log.sessions().query(__import__("exchange_api.models", fromlist=["AuditEntry"]).AuditEntry).all()
    assert [(r.status, r.code) for r in rows] == [(200, None), (401, "replayed_nonce"), (401, "replayed_nonce")]

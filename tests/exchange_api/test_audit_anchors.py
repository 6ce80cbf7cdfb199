"""Anchors of the audit chain outside the database: the head in every signed answer, signed checkpoints, witnesses.

Each way of tampering found by an independent client (delete the last rows, delete every row, edit a row,
forge a row and recompute every later hash) must be reported by ``hub verify-audit``, and so must a forged
checkpoint line and a witness ahead of the database; an untampered chain reports intact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import typer
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hub.commands import api as api_commands
from tests.conftest import POSTGRES_URL
from tests.exchange_api.conftest import ABSENT_ID, OTHER_PERSON_ID, PERSON_ID, Hub, b64url_decode, hub_at

PURPOSE = "social_assistance"
EVERY_ROWS = 3  # a checkpoint each time the chain passes a multiple of 3


@contextmanager
def anchored_hub(path: Path, **api) -> Iterator[Hub]:
    """A hub of one's own that checkpoints every EVERY_ROWS rows (and not by time, unless asked)."""
    with hub_at(path, api={"audit_checkpoint_rows": EVERY_ROWS, "audit_checkpoint_seconds": 3600, **api}) as hub:
        yield hub


@pytest.fixture
def own_hub(tmp_path, monkeypatch) -> Iterator[Hub]:
    """A hub whose data directory the commands use too."""
    from hub.settings import get_settings

    data_dir = tmp_path / "anchored"
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    with anchored_hub(data_dir) as hub:
        yield hub
    get_settings.cache_clear()


def lookups(hub: Hub, n: int) -> list[str]:
    """``n`` real signed lookups, one audit row each; the JWS answers as the department keeps them."""
    dept = hub.department()
    return [dept.client.lookup("population", PERSON_ID, PURPOSE, f"CASE-W{i}").token for i in range(n)]


def payload(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[1]))


def verify_audit(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    api_commands.register(app)
    result = CliRunner().invoke(app, ["verify-audit", *args])
    return result.exit_code, result.output


def verify_json(*args: str) -> tuple[int, dict]:
    code, output = verify_audit("--json", *args)
    return code, json.loads(output)


def witness_file(tmp_path: Path, lines: list[str], name: str = "witness.txt") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def checkpoint_lines(hub: Hub) -> list[dict]:
    folder = hub.settings.data_dir / "audit-checkpoints"
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


def sql(hub: Hub, statement: str, *params) -> None:
    with sqlite3.connect(hub.settings.data_dir / "metadata.db") as con:
        con.execute(statement, params)


def forge_and_rehash(db: Path, seq: int, **changes) -> None:
    """What an outsider does with plain SHA-256: change row ``seq``, then recompute its hash and every later one."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM exchange_audit_log WHERE seq >= ? ORDER BY seq", (seq,))]
    prev = con.execute("SELECT row_hash FROM exchange_audit_log WHERE seq = ?", (seq - 1,)).fetchone()
    prev_hash = prev[0] if prev else "0" * 64
    for row in rows:
        if row["seq"] == seq:
            row.update(changes)
        row["prev_hash"] = prev_hash
        content = {k: v for k, v in row.items() if k != "row_hash" and not (k == "operation" and v is None)}
        content["authenticated"] = bool(content["authenticated"])
        content["at"] = dt.datetime.fromisoformat(content["at"]).replace(tzinfo=dt.UTC).isoformat()
        prev_hash = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False,
                                              separators=(",", ":")).encode()).hexdigest()
        con.execute("UPDATE exchange_audit_log SET case_number = ?, prev_hash = ?, row_hash = ? WHERE seq = ?",
                    (row["case_number"], row["prev_hash"], prev_hash, row["seq"]))
    con.commit()
    con.close()


# ----- the head in every signed answer ---------------------------------------------------------------------

def test_every_signed_answer_carries_the_chain_head_after_its_own_row(own_hub):
    dept = own_hub.department()
    single = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-H1")
    batch = dept.client.lookup_batch("population", [PERSON_ID, OTHER_PERSON_ID, ABSENT_ID], PURPOSE, "CASE-H2")
    check = dept.client.verify_existence("population", PERSON_ID, PURPOSE, "CASE-H3")
    rows = {r.seq: r for r in own_hub.audit_rows()}
    for answer in (single, batch, check):
        head = answer.payload["audit"]
        own = [r for r in rows.values() if r.request_id == answer.request_id]
        assert head == {"seq": max(r.seq for r in own), "hash": rows[head["seq"]].row_hash}
    assert batch.payload["audit"]["seq"] == single.payload["audit"]["seq"] + 3  # after all three of its rows


# ----- untampered --------------------------------------------------------------------------------------------

def test_an_untampered_chain_agrees_with_its_checkpoints_and_a_witness(own_hub, tmp_path):
    tokens = lookups(own_hub, 7)
    heads = [json.dumps(payload(t)["audit"]) for t in tokens[:2]]
    witness = witness_file(tmp_path, ["# kept by the department", *tokens[2:], *heads, ""])
    code, output = verify_audit("--witness", witness)
    assert code == 0, output
    assert "intact: 7 rows" in output
    code, report = verify_json("--witness", witness)
    assert code == 0 and report["ok"] is True and report["problems"] == []
    assert (report["rows"], report["last_seq"]) == (7, 7)
    assert report["checkpoints"] == 2 and report["witness_heads"] == 7  # at rows 3 and 6; one head per answer


def test_checkpoints_are_signed_lines_apart_from_the_database_and_not_one_per_request(own_hub):
    lookups(own_hub, 7)
    lines = checkpoint_lines(own_hub)
    assert [line["seq"] for line in lines] == [3, 6]
    rows = {r.seq: r.row_hash for r in own_hub.audit_rows()}
    jwks = own_hub.app.state.exchange.keyring.jwks()
    from tests.exchange_api.conftest import verify_with_cryptography
    from exchange_api.answers import b64url

    for line in lines:
        assert line["hash"] == rows[line["seq"]]
        header, _, signature = line["jws"].split(".")
        signed = {k: line[k] for k in ("at", "hash", "seq")}
        body = b64url(json.dumps(signed, sort_keys=True, separators=(",", ":")).encode())
        assert verify_with_cryptography(f"{header}.{body}.{signature}", jwks) == signed  # any JOSE library


def test_a_checkpoint_follows_idle_rows_after_the_configured_seconds(tmp_path):
    with anchored_hub(tmp_path / "timed", audit_checkpoint_rows=1000, audit_checkpoint_seconds=1.0) as hub:
        lookups(hub, 2)
        import time

        deadline = time.monotonic() + 20  # a bound on waiting, not a timing assertion
        while [line["seq"] for line in checkpoint_lines(hub)][-1:] != [2] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [line["seq"] for line in checkpoint_lines(hub)][-1:] == [2]  # the idle tail is covered, no request needed


def test_stopping_the_api_checkpoints_the_last_head(tmp_path):
    with anchored_hub(tmp_path / "stopped", audit_checkpoint_rows=1000) as hub:
        lookups(hub, 4)
        assert checkpoint_lines(hub) == []  # rows below the threshold: nothing written on the answer path
    assert [line["seq"] for line in checkpoint_lines(hub)] == [4]


# ----- each way of tampering -------------------------------------------------------------------------------

def test_deleting_the_last_rows_is_reported_by_a_checkpoint(own_hub):
    lookups(own_hub, 6)  # checkpoints at 3 and 6
    sql(own_hub, "DELETE FROM exchange_audit_log WHERE seq > 4")
    code, output = verify_audit()
    assert code == 1
    assert "broken at row 5" in output and "missing" in output
    code, report = verify_json()
    assert report["ok"] is False and report["first_bad_seq"] == 5
    assert report["problems"][0]["kind"] == "truncated"


def test_deleting_the_last_rows_after_the_last_checkpoint_is_reported_by_a_witness(own_hub, tmp_path):
    tokens = lookups(own_hub, 5)  # checkpoint at 3; rows 4 and 5 only in the answers
    sql(own_hub, "DELETE FROM exchange_audit_log WHERE seq > 3")
    assert verify_audit()[0] == 0  # the checkpoints alone cannot see it
    code, output = verify_audit("--witness", witness_file(tmp_path, tokens))
    assert code == 1
    assert "broken at row 4" in output and "witness" in output


def test_deleting_every_row_is_reported(own_hub):
    lookups(own_hub, 3)
    sql(own_hub, "DELETE FROM exchange_audit_log")
    code, output = verify_audit()
    assert code == 1
    assert "broken at row 1" in output and "every row" in output


def test_editing_a_row_is_reported_at_that_row(own_hub):
    lookups(own_hub, 4)
    sql(own_hub, "UPDATE exchange_audit_log SET purpose = 'curiosity' WHERE seq = 2")
    code, report = verify_json()
    assert code == 1 and report["first_bad_seq"] == 2
    assert report["problems"][0]["kind"] == "edited"


def test_a_forged_row_with_every_later_hash_recomputed_is_reported_by_a_checkpoint(own_hub):
    lookups(own_hub, 6)  # checkpoints at 3 and 6
    forge_and_rehash(own_hub.settings.data_dir / "metadata.db", 5, case_number="FORGED")
    assert own_hub.app.state.exchange.audit.verify().ok  # the hash chain alone is fooled
    code, output = verify_audit()
    assert code == 1
    assert "broken at row 4" in output and "rewritten" in output  # after row 3 (checkpoint), by row 6
    code, report = verify_json()
    assert report["problems"][0]["kind"] == "rewritten" and report["problems"][0]["seq"] == 4


def test_a_forged_row_with_every_later_hash_recomputed_is_pinned_by_a_witness(own_hub, tmp_path):
    tokens = lookups(own_hub, 6)
    forge_and_rehash(own_hub.settings.data_dir / "metadata.db", 5, case_number="FORGED")
    code, report = verify_json("--witness", witness_file(tmp_path, tokens))
    assert code == 1 and report["first_bad_seq"] == 5  # the answer of row 4 still matches: row 5 is the first


def test_a_forged_checkpoint_line_is_reported(own_hub):
    lookups(own_hub, 3)
    (path,) = (own_hub.settings.data_dir / "audit-checkpoints").glob("*.jsonl")
    (line,) = checkpoint_lines(own_hub)
    forged = {**line, "seq": 9, "hash": hashlib.sha256(b"made up").hexdigest()}  # the old signature kept
    with path.open("a") as fh:
        fh.write(json.dumps(forged) + "\n")
    code, output = verify_audit()
    assert code == 1
    assert "signature" in output and f"{path.name}:2" in output
    code, report = verify_json()
    assert report["problems"][0]["kind"] == "bad_checkpoint"


def test_a_witness_ahead_of_the_database_is_reported(own_hub, tmp_path):
    lookups(own_hub, 2)
    ahead = json.dumps({"seq": 8, "hash": hashlib.sha256(b"later").hexdigest()})
    code, output = verify_audit("--witness", witness_file(tmp_path, [ahead]))
    assert code == 1
    assert "broken at row 3" in output and "witness.txt:1" in output


def test_a_witness_answer_whose_signature_does_not_verify_is_reported(own_hub, tmp_path):
    (token,) = lookups(own_hub, 1)
    header, body, signature = token.split(".")
    changed = {**payload(token), "audit": {"seq": 1, "hash": "0" * 64}}
    from exchange_api.answers import b64url

    forged = f"{header}.{b64url(json.dumps(changed).encode())}.{signature}"
    code, report = verify_json("--witness", witness_file(tmp_path, [forged, "not an answer"]))
    assert code == 1
    assert [p["kind"] for p in report["problems"]] == ["bad_witness", "bad_witness"]


def test_a_missing_witness_file_is_a_clear_error(own_hub, tmp_path):
    code, output = verify_audit("--witness", str(tmp_path / "nowhere.txt"))
    assert code != 0 and "nowhere.txt" in output and "Traceback" not in output


# ----- PostgreSQL ----------------------------------------------------------------------------------------------

@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"hub_anchor_test_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        from hub.db import engine_for

        engine_for.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_checkpoints_anchor_a_postgresql_chain_too(tmp_path, monkeypatch, postgres_url):
    from hub.settings import get_settings

    data_dir = tmp_path / "pg"
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HUB_METADATA_URL", postgres_url)
    get_settings.cache_clear()
    with hub_at(data_dir, metadata_url=postgres_url,
                api={"audit_checkpoint_rows": EVERY_ROWS, "audit_checkpoint_seconds": 3600}) as hub:
        tokens = lookups(hub, 6)
        assert hub.app.state.exchange.writer.mode == "thread"
        assert [line["seq"] for line in checkpoint_lines(hub)] == [3, 6]
        assert payload(tokens[-1])["audit"]["seq"] == 6
        assert verify_audit()[0] == 0
        engine = create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM exchange_audit_log WHERE seq > 4"))
        engine.dispose()
        code, output = verify_audit()
        assert code == 1 and "broken at row 5" in output
    get_settings.cache_clear()


def test_the_protocol_documents_the_head_with_an_answer_that_verifies():
    import base64

    from cryptography.hazmat.primitives import serialization

    import exchange_api

    protocol = (Path(exchange_api.__file__).parent / "PROTOCOL.md").read_text()
    (token,) = [line for line in protocol.splitlines() if line.startswith("eyJ") and line.count(".") == 2]
    rfc_key = serialization.load_der_private_key(base64.b64decode(
        "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"), None)  # RFC 9421 B.1.4
    header, body, signature = token.split(".")
    rfc_key.public_key().verify(b64url_decode(signature), f"{header}.{body}".encode())
    assert set(payload(token)["audit"]) == {"seq", "hash"}
    assert "hub verify-audit [--witness FILE ...] [--json]" in protocol and "hub-audit-checkpoint+jws" in protocol

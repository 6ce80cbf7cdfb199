"""The request path's shortcuts give the same answers as the general code they stand in for."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import ContentDigest, HTTPMessageSignaturesException

from exchange_api import ed25519
from exchange_api.audit_chain import canonical_json
from exchange_api.request_signatures import FieldLines, _digest_matches


def test_ed25519_backend_signs_the_same_bytes_and_refuses_what_openssl_refuses():
    private = Ed25519PrivateKey.generate()
    sign, verify = ed25519.signer(private), ed25519.verifier(private.public_key())
    for size in (0, 1, 64, 1500):
        message = os.urandom(size)
        signature = sign(message)
        assert signature == private.sign(message)  # deterministic (RFC 8032): identical whichever backend
        verify(signature, message)
        private.public_key().verify(signature, message)
        with pytest.raises(InvalidSignature):
            verify(signature, message + b"x")
        with pytest.raises(InvalidSignature):
            verify(bytes([signature[0] ^ 1]) + signature[1:], message)
        with pytest.raises(InvalidSignature):
            verify(signature[:63], message)  # wrong length: refused, not a crash
    other = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidSignature):
        ed25519.verifier(other.public_key())(sign(b"m"), b"m")


def _library_accepts(value: str, body: bytes) -> bool:
    try:
        ContentDigest.verify(value, body)
    except HTTPMessageSignaturesException:
        return False
    return True


def _sf(algorithm: str, digest: bytes) -> str:
    return f"{algorithm}=:{base64.b64encode(digest).decode()}:"


@pytest.mark.parametrize("body", [b"", b'{"library":"population"}', os.urandom(3000)])
def test_the_digest_shortcut_decides_like_the_library(body):
    good256, good512 = hashlib.sha256(body).digest(), hashlib.sha512(body).digest()
    values = [
        _sf("sha-256", good256), _sf("sha-512", good512),
        _sf("sha-256", hashlib.sha256(body + b"x").digest()),  # another body
        _sf("sha-256", good256[:31]),  # wrong length
        _sf("sha-512", good256),  # length of the other algorithm
        _sf("sha-256", good256) + ", " + _sf("sha-512", good512),  # several: the library decides
        _sf("sha-256", good256) + ", " + _sf("sha-512", hashlib.sha512(b"other").digest()),
        _sf("md5", hashlib.md5(body).digest()),  # noqa: S324 - an unsupported algorithm, on purpose
        "sha-256=:not base64!:", "sha-256=" + base64.b64encode(good256).decode(), "", "garbage",
        _sf("sha-256", good256) + ";param=1",
    ]
    for value in values:
        assert _digest_matches(value, body) is _library_accepts(value, body), value


def test_field_lines_join_repeated_fields_as_the_signature_base_needs():
    lines = FieldLines(type("H", (), {"items": lambda self: [("X-A", " one "), ("x-a", "two"), ("Host", "h")]})())
    assert lines.joined("x-a") == " one , two"
    assert lines.value("x-a") == "one, two"
    assert lines.joined("missing") is None and lines.value("missing") is None
    assert FieldLines.of(lines) is lines


def test_canonical_row_json_is_the_standard_library_form_for_every_character():
    # The audit chain's hashes must not depend on which encoder wrote them: rows written before and after
    # the orjson shortcut, and any other verifier, use json.dumps(sort_keys, ensure_ascii=False, compact).
    def standard(content):
        return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for start in range(0, len(text), 4096):
        content = {"reason": text[start:start + 4096], "seq": start, "authenticated": True, "code": None}
        assert canonical_json(content) == standard(content)
    for content in ({"big": 2**70}, {"status": 200, "z": "\x00\x1f\x7f", "a": "\u2028\ufeff"}):
        assert canonical_json(content) == standard(content)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate fails as it always did: no row, no answer
        canonical_json({"case_number": "\ud800"})


def _audit_log(tmp_path):
    from exchange_api.audit import AuditLog
    from exchange_api.models import exchange_sessions
    from hub.settings import Settings

    return AuditLog(exchange_sessions(Settings(data_dir=tmp_path)), "salt")


def _ticket(i: int):
    import datetime as dt

    from exchange_api.audit import AuditDraft, Ticket

    draft = AuditDraft(request_id=f"req-{i}", at=dt.datetime.now(dt.UTC), department="civil_affairs", kid="k1",
                       authenticated=True, library="population", key="11010519800101011X", purpose="p",
                       case_number=f"CASE-{i}", outcome="answered", fields_released=("gender",))
    return Ticket(draft, 200, nonce=("k1", f"nonce-{i:020d}", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)))


def test_answers_wait_for_the_wal_fsync_while_the_next_group_is_written(tmp_path):
    """With synchronous=FULL, COMMIT frees the chain lock at once; each group's answers wait for its own fsync."""
    import asyncio
    import threading

    from exchange_api.writer import GroupWriter

    audit = _audit_log(tmp_path)
    assert audit.wal_path is not None and audit.wal_path.endswith("-wal")
    gate, synced = threading.Event(), []
    real_sync = audit.sync

    def held_sync() -> None:
        synced.append(threading.current_thread().name)
        assert gate.wait(10)
        real_sync()

    audit.sync = held_sync  # type: ignore[method-assign]
    writer = GroupWriter(audit, mode="inline")

    async def scenario() -> None:
        first = asyncio.ensure_future(writer.submit(_ticket(1)))
        while len(synced) < 1:
            await asyncio.sleep(0.005)
        second = asyncio.ensure_future(writer.submit(_ticket(2)))  # written and committed during the first fsync
        while len(synced) < 2:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()  # committed, not yet on disk: no answer may leave
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, second), 10)

    asyncio.run(scenario())
    writer.close()
    assert writer.groups == 2 and audit.verify().rows == 2 and audit.verify().ok


def test_a_failed_fsync_withholds_the_answers(tmp_path):
    import asyncio

    from exchange_api.writer import GroupWriter

    audit = _audit_log(tmp_path)

    def broken_sync() -> None:
        raise OSError(5, "I/O error")

    audit.sync = broken_sync  # type: ignore[method-assign]
    writer = GroupWriter(audit, mode="inline")

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="could not be written"):
            await writer.submit(_ticket(1))

    asyncio.run(scenario())
    writer.close()


def test_other_synchronous_modes_leave_durability_to_sqlite(tmp_path):
    from exchange_api.audit import AuditLog
    from exchange_api.audit_sql import sqlite_synchronous
    from exchange_api.models import exchange_sessions
    from hub.settings import Settings

    assert sqlite_synchronous("full") == ("NORMAL", True) and sqlite_synchronous("EXTRA") == ("NORMAL", True)
    assert sqlite_synchronous("normal") == ("NORMAL", False) and sqlite_synchronous("off") == ("OFF", False)
    assert sqlite_synchronous("nonsense") == ("NORMAL", True)  # unknown: the safe default
    log = AuditLog(exchange_sessions(Settings(data_dir=tmp_path)), "salt", synchronous="NORMAL")
    assert log.wal_path is None
    log.commit([_ticket(1)])
    assert log.verify().rows == 1


def test_a_direct_commit_is_synced_once_and_never_appended_twice(tmp_path):
    audit = _audit_log(tmp_path)
    calls = []
    real_sync = audit.sync
    audit.sync = lambda: (calls.append(1), real_sync())  # type: ignore[method-assign]
    audit.commit([_ticket(1)])
    assert calls == [1]

    def broken_sync() -> None:
        raise OSError(5, "I/O error")

    audit.sync = broken_sync  # type: ignore[method-assign]
    with pytest.raises(OSError):
        audit.commit([_ticket(2)])
    report = audit.verify()
    assert report.ok and report.rows == 2  # committed once, not retried into a second copy

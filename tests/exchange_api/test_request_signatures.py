"""Every refusal of a request signature, against a real server, each with its own code."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ED25519

from exchange_api.client import COVERED_COMPONENTS, generate_department_key, sign_request
from exchange_api.registry import add_key, retire_key
from exchange_api.audit import audit_salt
from hub.masking import hash_id
from tests.exchange_api.conftest import PERSON_ID, json_request, lookup_body


class Signer(NamedTuple):
    """A key id and private key to sign with, registered or not."""

    kid: str
    private_key: Ed25519PrivateKey


class _View:
    def __init__(self, request: httpx.Request):
        self.method, self.url, self.headers = request.method, str(request.url), request.headers


def sign_by_hand(request: httpx.Request, kid: str, key: Ed25519PrivateKey, *, covered: Sequence[str],
                 digest: bool = True, nonce: str | None = "auto", created: dt.datetime | None = None) -> httpx.Request:
    """Sign with the library directly, so a test can leave out what the client never would."""
    signer = HTTPMessageSigner(signature_algorithm=ED25519,
                               key_resolver=MappingKeyResolver(public_keys={}, private_keys={kid: key}))
    signer.sign(_View(request), key_id=kid, created=created or dt.datetime.now(dt.UTC),
                nonce=secrets.token_urlsafe(24) if nonce == "auto" else nonce, label="hub",
                covered_component_ids=tuple(covered), body=request.content if digest else None,
                use_existing_digest="content-digest" in request.headers)
    return request


def send(request: httpx.Request) -> httpx.Response:
    with httpx.Client() as client:
        return client.send(request)


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    return response.json()["error"]["code"]


@pytest.fixture
def dept(hub):
    return hub.department()


def signed(hub, dept, body: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Request:
    request = json_request(hub.url, body or lookup_body())
    sign_request(request, dept.kid, dept.private_key, **kwargs)
    return request


def test_a_correctly_signed_request_is_accepted(hub, dept):
    assert send(signed(hub, dept)).status_code == 200


def test_path_and_authority_may_stand_in_for_the_target_uri(hub, dept):
    request = json_request(hub.url, lookup_body())
    sign_request(request, dept.kid, dept.private_key, covered=("@method", "@path", "@authority", "content-digest"))
    assert send(request).status_code == 200


def test_missing_signature(hub):
    assert refusal(send(json_request(hub.url, lookup_body()))) == "signature_missing"


@pytest.mark.parametrize("headers", [
    {"Signature-Input": "hub=(((", "Signature": "hub=:AAAA:"},
    {"Signature-Input": 'hub=("@method");keyid="k"', "Signature": "other=:AAAA:"},
    {"Signature-Input": 'hub=("@method");keyid="k";alg="rsa-v1_5-sha256"', "Signature": "hub=:AAAA:"},
    {"Signature-Input": 'hub=("@method");keyid="k";created="yesterday"', "Signature": "hub=:AAAA:"},
])
def test_malformed_signature(hub, headers):
    request = json_request(hub.url, lookup_body())
    request.headers.update(headers)
    assert refusal(send(request)) == "signature_malformed"


def test_two_signatures_are_malformed(hub, dept):
    request = signed(hub, dept)
    request.headers["Signature-Input"] += ", " + request.headers["Signature-Input"].replace("hub=", "again=", 1)
    request.headers["Signature"] += ", " + request.headers["Signature"].replace("hub=", "again=", 1)
    assert refusal(send(request)) == "signature_malformed"


@pytest.mark.parametrize("covered, digest, nonce", [
    (("@method", "@target-uri"), False, "auto"),  # body not covered
    (("@target-uri", "content-digest"), True, "auto"),  # method not covered
    (("@method", "content-digest"), True, "auto"),  # target not covered
    (("@method", "@path", "content-digest"), True, "auto"),  # @path without @authority
    (COVERED_COMPONENTS, True, None),  # no nonce parameter
])
def test_incomplete_coverage(hub, dept, covered, digest, nonce):
    request = sign_by_hand(json_request(hub.url, lookup_body()), dept.kid, dept.private_key,
                           covered=covered, digest=digest, nonce=nonce)
    assert refusal(send(request)) == "signature_incomplete"


def test_digest_mismatch(hub, dept):
    request = signed(hub, dept, lookup_body(case_number="CASE-AAAA"))
    # Same length, other case number: what a body swapped in transit looks like.
    tampered = httpx.Request("POST", request.url, headers=request.headers,
                             content=request.content.replace(b"CASE-AAAA", b"CASE-BBBB"))
    assert refusal(send(tampered)) == "digest_mismatch"


def test_digest_missing(hub, dept):
    request = signed(hub, dept)
    del request.headers["Content-Digest"]
    assert refusal(send(request)) == "digest_mismatch"


def test_sha512_digests_are_accepted(hub, dept):
    import base64
    import hashlib

    request = json_request(hub.url, lookup_body())
    request.headers["Content-Digest"] = "sha-512=:" + base64.b64encode(hashlib.sha512(request.content).digest()).decode() + ":"
    sign_by_hand(request, dept.kid, dept.private_key, covered=COVERED_COMPONENTS, digest=False)
    assert send(request).status_code == 200


def test_unknown_key(hub):
    kid, private_key, _ = generate_department_key()
    assert refusal(send(signed(hub, Signer(kid, private_key)))) == "unknown_key"


def test_retired_key(hub, dept):
    with hub.sessions.begin() as session:
        retire_key(session, dept.kid)
    assert refusal(send(signed(hub, dept))) == "unknown_key"


def test_key_not_yet_valid(hub, dept):
    kid, private_key, public_pem = generate_department_key()
    with hub.sessions.begin() as session:
        add_key(session, dept.code, public_pem, kid=kid, not_before=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    future = Signer(kid, private_key)
    assert refusal(send(signed(hub, future))) == "unknown_key"


@pytest.mark.parametrize("offset", [-200, +200])  # the shared hub's window is 120 s
def test_stale_or_future_created(hub, dept, offset):
    created = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    assert refusal(send(signed(hub, dept, created=created))) == "stale_request"


def test_created_inside_the_window_is_accepted(hub, dept):
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
    assert send(signed(hub, dept, created=created)).status_code == 200


def test_replayed_nonce(hub, dept):
    request = signed(hub, dept)
    assert send(request).status_code == 200
    assert refusal(send(request)) == "replayed_nonce"


def test_same_nonce_with_another_key_is_not_a_replay(hub, dept):
    other = hub.department()
    assert send(signed(hub, dept, nonce="shared-nonce-0123456789")).status_code == 200
    assert send(signed(hub, other, nonce="shared-nonce-0123456789")).status_code == 200


def test_bad_signature(hub, dept):
    impostor = Signer(dept.kid, Ed25519PrivateKey.generate())
    assert refusal(send(signed(hub, impostor))) == "signature_invalid"


def test_changed_covered_header_breaks_the_signature(hub, dept):
    request = signed(hub, dept)
    request.headers["Content-Type"] = "application/json; charset=latin-1"
    assert refusal(send(request)) == "signature_invalid"


def test_a_failed_signature_does_not_burn_the_nonce(hub, dept):
    impostor = Signer(dept.kid, Ed25519PrivateKey.generate())
    assert refusal(send(signed(hub, impostor, nonce="contested-nonce-0123456789"))) == "signature_invalid"
    assert send(signed(hub, dept, nonce="contested-nonce-0123456789")).status_code == 200


def test_refusals_of_a_known_department_are_audited_and_anonymous_ones_are_not(hub, dept):
    impostor = Signer(dept.kid, Ed25519PrivateKey.generate())
    response = send(signed(hub, impostor))
    row = hub.audit_row(response.headers["X-Request-ID"])
    assert row is not None
    assert (row.department, row.authenticated, row.status, row.code, row.outcome) == (
        dept.code, False, 401, "signature_invalid", "refused")
    assert row.key_hash == hash_id(PERSON_ID, audit_salt(hub.settings.keys_dir))

    anonymous = send(json_request(hub.url, lookup_body()))
    assert hub.audit_row(anonymous.headers["X-Request-ID"]) is None


# ----- the server's verifier agrees with the library, and with the RFC ----------------------------------------

RFC_KEY = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""


def _library_accepts(request: httpx.Request, public_key, kid: str = "k") -> bool:
    from http_message_signatures import HTTPMessageVerifier, InvalidSignature as LibraryRefusal, MappingKeyResolver

    verifier = HTTPMessageVerifier(signature_algorithm=ED25519,
                                   key_resolver=MappingKeyResolver(public_keys={kid: public_key}, private_keys={}))
    verifier.max_clock_skew = dt.timedelta(days=1)
    try:
        verifier.verify(_View(request), max_age=None)
        return True
    except LibraryRefusal:
        return False


def _ours_accepts(request: httpx.Request, public_key) -> bool:
    from cryptography.exceptions import InvalidSignature

    from exchange_api.request_signatures import SignatureRefused, SignedMessage, parse_signature, signature_base

    try:
        parsed = parse_signature(request.headers)
        public_key.verify(parsed.signature, signature_base(SignedMessage(request.method, str(request.url),
                                                                         request.headers), parsed))
        return True
    except (SignatureRefused, InvalidSignature):
        return False


@pytest.mark.parametrize("url, covered", [
    ("http://127.0.0.1:8750/v1/lookup", COVERED_COMPONENTS),
    ("https://hub.example.gov.cn/v1/lookup?x=1&y=%20z", ("@method", "@target-uri", "@query", "content-digest")),
    ("https://HUB.example.gov.cn:443/v1/lookup", ("@method", "@authority", "@path", "@scheme", "content-digest")),
    ("http://hub.example.gov.cn:8080/a/b", ("@request-target", "@method", "content-type", "content-digest", "x-extra")),
])
def test_the_server_verifier_agrees_with_the_library(url, covered):
    key = Ed25519PrivateKey.generate()
    request = httpx.Request("POST", url, content=b'{"a": 1}',
                            headers={"Content-Type": "application/json", "X-Extra": " two ", "x-extra": "lines"})
    signer = HTTPMessageSigner(signature_algorithm=ED25519,
                               key_resolver=MappingKeyResolver(public_keys={}, private_keys={"k": key}))
    signer.sign(_View(request), key_id="k", created=dt.datetime.now(dt.UTC), nonce=secrets.token_urlsafe(24),
                label="sig", covered_component_ids=covered, body=request.content)
    public = key.public_key()
    assert _library_accepts(request, public) and _ours_accepts(request, public)
    for tamper in (lambda r: setattr(r, "method", "PUT"),
                   lambda r: setattr(r, "url", httpx.URL(str(r.url).replace("/v1", "/v2").replace("/a/", "/c/"))),
                   lambda r: r.headers.__setitem__("Content-Digest", "sha-256=:" + "A" * 43 + "=:")):
        forged = httpx.Request(request.method, request.url, headers=request.headers, content=request.content)
        tamper(forged)
        assert _library_accepts(forged, public) == _ours_accepts(forged, public) is False


def test_the_rfc_9421_ed25519_example_verifies():
    """RFC 9421 appendix B.2.6: the signature base is rebuilt byte for byte and the RFC's signature verifies."""
    from cryptography.hazmat.primitives import serialization

    request = httpx.Request("POST", "http://example.com/foo?param=Value&Pet=dog", content=b'{"hello": "world"}',
                            headers={"Host": "example.com", "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
                                     "Content-Type": "application/json",
                                     "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWn"
                                                       "rIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
                                     "Signature-Input": 'sig-b26=("date" "@method" "@path" "@authority" '
                                                        '"content-type" "content-length");created=1618884473'
                                                        ';keyid="test-key-ed25519"',
                                     "Signature": "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9E"
                                                  "DgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"})
    public = serialization.load_pem_private_key(RFC_KEY.encode(), None).public_key()
    assert _ours_accepts(request, public)
    assert _library_accepts(request, public, "test-key-ed25519")


@pytest.mark.parametrize("extra", [{}, {"Signature-Input": None}])
def test_the_fast_parser_reads_what_the_general_parser_reads(hub, dept, monkeypatch, extra):
    import exchange_api.request_signatures as signatures

    request = signed(hub, dept)
    if extra:  # a non-canonical spelling (extra spaces): only the general parser accepts it
        request.headers["Signature-Input"] = request.headers["Signature-Input"].replace('" "', '"  "')
    fast = signatures.parse_signature(request.headers)
    monkeypatch.setattr(signatures, "FAST_PATH", False)
    assert signatures.parse_signature(request.headers) == fast
    monkeypatch.undo()
    assert send(request).status_code == 200

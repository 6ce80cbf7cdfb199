"""A small client for departments: signs requests (RFC 9421 + Content-Digest) and verifies the hub's JWS answers.

::

    kid, private_key, public_pem = generate_department_key()   # public_pem goes to the hub operator
    with HubClient("https://hub.example", kid, private_key) as hub:
        answer = hub.lookup("population", "11010519491231002X", purpose="social_assistance", case_number="2024-17")
        answer.record["gender"]["value"]
        hub.verify_licence("JY13101010000001", "91310000MA1FL8XQ3A", "food_inspection", "2024-18").answer  # True/False
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ED25519
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from exchange_api.jose import JWS_ALG, REGISTRY
from hub.errors import HubError

LOOKUP_PATH = "/v1/lookup"
BATCH_PATH = "/v1/lookup/batch"
VERIFY_LICENCE_PATH = "/v1/verify/licence"
VERIFY_EXISTENCE_PATH = "/v1/verify/existence"
ACCESS_LOG_PATH = "/v1/citizen/access-log"
CATALOGUE_PATH = "/v1/catalogue"
USAGE_PATH = "/v1/usage"
JWKS_PATH = "/.well-known/jwks.json"
SIGNATURE_LABEL = "hub"
COVERED_COMPONENTS = ("@method", "@target-uri", "content-type", "content-digest")
COVERED_WITHOUT_BODY = ("@method", "@target-uri", "content-digest")  # GET: the digest of the empty body
JWKS_TTL_SECONDS = 300.0


class HubRequestError(HubError):
    """The hub refused a request; ``code`` is the stable code of its error body."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None):
        self.status, self.code, self.message, self.request_id = status, code, message, request_id
        super().__init__(f"{status} {code}: {message} (request {request_id})")


class AnswerNotTrusted(HubError):
    """An answer failed verification: bad signature, unknown key, or it answers another request."""


@dataclass(frozen=True)
class VerifiedAnswer:
    """A hub answer whose signature has been verified against the hub's published keys."""

    payload: dict[str, Any]
    kid: str
    token: str  # the compact JWS itself, to keep as evidence

    @property
    def request_id(self) -> str:
        return self.payload["request_id"]

    @property
    def snapshot_version(self) -> str | None:
        return self.payload.get("snapshot_version")

    @property
    def issued_at(self) -> str:
        return self.payload["issued_at"]

    @property
    def department(self) -> str | None:
        return self.payload.get("department")

    @property
    def nonce(self) -> str | None:
        return self.payload.get("nonce")

    @property
    def library(self) -> str | None:
        return self.payload.get("library")

    @property
    def found(self) -> bool:
        """A lookup: whether fields were released (False for no such record and for nothing releasable alike)."""
        return bool(self.payload.get("found"))

    @property
    def record(self) -> dict[str, dict[str, Any]]:
        return self.payload.get("record") or {}

    @property
    def results(self) -> list[dict[str, Any]]:
        """A batch: one {key, found, record} per key, in request order."""
        return self.payload.get("results") or []

    @property
    def answer(self) -> bool | None:
        """A verification: the yes/no answer."""
        return self.payload.get("answer")

    def value(self, field: str) -> Any:
        """The value of one released field (KeyError if it was not released)."""
        return self.record[field]["value"]


def generate_department_key() -> tuple[str, Ed25519PrivateKey, str]:
    """A new Ed25519 key pair: (kid = JWK thumbprint, private key, public key PEM for the hub operator)."""
    private_key = Ed25519PrivateKey.generate()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return OKPKey.import_key(private_key.public_key()).thumbprint(), private_key, public_pem


def load_private_key(pem: bytes | str) -> Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PKCS#8 PEM."""
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the department key must be Ed25519")
    return key


@dataclass
class _SignableRequest:
    """The view of an httpx request the signature library reads and writes headers on."""

    method: str
    url: str
    headers: httpx.Headers


def sign_request(
    request: httpx.Request,
    kid: str,
    private_key: Ed25519PrivateKey,
    *,
    created: dt.datetime | None = None,
    nonce: str | None = None,
    covered: Sequence[str] = COVERED_COMPONENTS,
) -> None:
    """Add Content-Digest (sha-256), Signature-Input and Signature to ``request`` in place."""
    signer = HTTPMessageSigner(
        signature_algorithm=ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={kid: private_key}),
    )
    signer.sign(
        _SignableRequest(request.method, str(request.url), request.headers),
        key_id=kid,
        created=created or dt.datetime.now(dt.UTC),
        nonce=nonce or secrets.token_urlsafe(24),
        label=SIGNATURE_LABEL,
        covered_component_ids=tuple(covered),
        body=request.content,
    )


def _jws_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified; AnswerNotTrusted if it is not one."""
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError):
        raise AnswerNotTrusted("the answer is not a compact JWS") from None
    if token.count(".") != 2 or not isinstance(header, dict):
        raise AnswerNotTrusted("the answer is not a compact JWS")
    return header


def verify_answer(
    token: str,
    jwks: dict[str, Any],
    *,
    expected_nonce: str | None = None,
    expected_department: str | None = None,
) -> VerifiedAnswer:
    """Verify a compact JWS answer against a JWK Set; AnswerNotTrusted on any doubt."""
    header = _jws_header(token)
    if header.get("alg") != JWS_ALG:
        raise AnswerNotTrusted("the answer is not signed with EdDSA")
    kid = header.get("kid")
    if not any(k.get("kid") == kid for k in jwks.get("keys", [])):
        raise AnswerNotTrusted("the answer is signed with a key the hub does not publish")
    try:
        result = jws.deserialize_compact(token, KeySet.import_key_set(jwks), registry=REGISTRY)
        payload = json.loads(result.payload)
    except (JoseError, ValueError) as exc:
        raise AnswerNotTrusted("the answer's signature does not verify") from exc
    if not isinstance(payload, dict):
        raise AnswerNotTrusted("the answer's payload is not a hub answer")
    if expected_nonce is not None and payload.get("nonce") != expected_nonce:
        raise AnswerNotTrusted("the answer belongs to another request")
    if expected_department is not None and payload.get("department") != expected_department:
        raise AnswerNotTrusted("the answer was issued to another department")
    if not isinstance(payload.get("request_id"), str) or not isinstance(payload.get("issued_at"), str):
        raise AnswerNotTrusted("the answer's payload is not a hub answer")
    return VerifiedAnswer(payload=payload, kid=kid, token=token)


class HubClient:
    """Signed lookups against one hub, with its JWKS fetched and cached."""

    def __init__(
        self,
        base_url: str,
        department_kid: str,
        private_key: Ed25519PrivateKey | bytes | str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.kid = department_kid
        self.private_key = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = 0.0
        self._lock = threading.Lock()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        """The hub's public keys, cached for JWKS_TTL_SECONDS."""
        with self._lock:
            if refresh or self._jwks is None or time.monotonic() - self._jwks_at > JWKS_TTL_SECONDS:
                response = self._http.get(JWKS_PATH)
                if response.status_code != 200:
                    raise _refusal(response)
                self._jwks, self._jwks_at = response.json(), time.monotonic()
            return self._jwks

    def post(self, path: str, body: dict[str, Any]) -> VerifiedAnswer:
        """POST a signed JSON body and verify the signed answer; HubRequestError if refused."""
        request = self._http.build_request(
            "POST", path, content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
        )
        nonce = secrets.token_urlsafe(24)
        sign_request(request, self.kid, self.private_key, nonce=nonce)
        response = self._http.send(request)
        if response.status_code != 200:
            raise _refusal(response)
        return self.verify(response.text, expected_nonce=nonce)

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """A signed GET (the digest covers the empty body); the JSON it returns."""
        request = self._http.build_request("GET", path, params=params)
        sign_request(request, self.kid, self.private_key, covered=COVERED_WITHOUT_BODY)
        response = self._http.send(request)
        if response.status_code != 200:
            raise _refusal(response)
        return response.json()

    def lookup(
        self,
        library: str,
        key: str,
        purpose: str,
        case_number: str,
        fields: Sequence[str] | None = None,
        as_of: str | dt.date | None = None,
    ) -> VerifiedAnswer:
        """Look a record up; HubRequestError if refused, AnswerNotTrusted if the answer does not verify."""
        body: dict[str, Any] = {"library": library, "key": key, "purpose": purpose, "case_number": case_number}
        if fields is not None:
            body["fields"] = list(fields)
        if as_of is not None:
            body["as_of"] = str(as_of)
        return self.post(LOOKUP_PATH, body)

    def lookup_batch(self, library: str, keys: Sequence[str], purpose: str, case_number: str,
                     fields: Sequence[str] | None = None, as_of: str | dt.date | None = None) -> VerifiedAnswer:
        """Look many keys of one library up in one signed request; ``.results`` is in the order of ``keys``."""
        body: dict[str, Any] = {"library": library, "keys": list(keys), "purpose": purpose, "case_number": case_number}
        if fields is not None:
            body["fields"] = list(fields)
        if as_of is not None:
            body["as_of"] = str(as_of)
        return self.post(BATCH_PATH, body)

    def verify_licence(self, licence_number: str, holder_id: str, purpose: str, case_number: str,
                       on: str | dt.date | None = None) -> VerifiedAnswer:
        """Is the licence valid for this holder today (or on ``on``)? ``.answer`` is True or False."""
        body: dict[str, Any] = {"licence_number": licence_number, "holder_id": holder_id, "purpose": purpose,
                                "case_number": case_number}
        if on is not None:
            body["on"] = str(on)
        return self.post(VERIFY_LICENCE_PATH, body)

    def verify_existence(self, library: str, key: str, purpose: str, case_number: str,
                         on: str | dt.date | None = None) -> VerifiedAnswer:
        """Does this person (population) or company (legal_person) exist and is it active? ``.answer``."""
        body: dict[str, Any] = {"library": library, "key": key, "purpose": purpose, "case_number": case_number}
        if on is not None:
            body["on"] = str(on)
        return self.post(VERIFY_EXISTENCE_PATH, body)

    def access_log(self, id_number: str, purpose: str, case_number: str,
                   since: str | dt.date | None = None) -> VerifiedAnswer:
        """(Citizen portal only) who looked at this person's record; ``.payload["entries"]``."""
        body: dict[str, Any] = {"id_number": id_number, "purpose": purpose, "case_number": case_number}
        if since is not None:
            body["since"] = str(since)
        return self.post(ACCESS_LOG_PATH, body)

    def catalogue(self) -> dict[str, Any]:
        """The libraries, fields, sharing classes, this department's grants and how to apply for more."""
        return self.get(CATALOGUE_PATH)

    def usage(self, since: str | dt.date | None = None) -> dict[str, Any]:
        """This department's usage figures per purpose."""
        return self.get(USAGE_PATH, {"since": str(since)} if since else None)

    def verify(self, token: str, *, expected_nonce: str | None = None) -> VerifiedAnswer:
        """Verify an answer with the cached JWKS, refetching once if it names a key not seen yet (a rotation)."""
        kid = _jws_header(token).get("kid")
        jwks = self.jwks()
        if not any(k.get("kid") == kid for k in jwks.get("keys", [])):
            jwks = self.jwks(refresh=True)
        return verify_answer(token, jwks, expected_nonce=expected_nonce)


def _refusal(response: httpx.Response) -> HubRequestError:
    try:
        error = response.json()["error"]
        return HubRequestError(response.status_code, error["code"], error["message"], error.get("request_id"))
    except (ValueError, KeyError, TypeError):
        return HubRequestError(response.status_code, "unexpected_response", response.reason_phrase, None)

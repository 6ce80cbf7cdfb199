"""Verification of RFC 9421 request signatures: shape, coverage, time window, digest, key, signature, then nonce.

A request must carry exactly one signature (any label) with ``alg`` absent or ``"ed25519"``,
the parameters ``created``, ``keyid`` and ``nonce``, and it must cover ``"@method"``,
``"content-digest"`` and either ``"@target-uri"`` or both ``"@path"`` and ``"@authority"``.
Each refusal is an :class:`AuthError` (401) with a stable code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import http_sf
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
)
from http_message_signatures.algorithms import ED25519
from sqlalchemy.orm import sessionmaker

from exchange_api.nonces import NonceStore
from exchange_api.registry import find_key, key_status, load_public_key
from hub.errors import AuthError

ALLOWED_PARAMS = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
REQUIRED_PARAMS = ("created", "keyid", "nonce")
ALWAYS_COVERED = ("@method", "content-digest")
TARGET_CHOICES = (("@target-uri",), ("@path", "@authority"))
NONCE_LENGTH = (16, 256)  # short nonces collide; long ones bloat the store


@dataclass(frozen=True)
class Claimant:
    """Who a request says it comes from (the key's department), before the signature is proven."""

    kid: str
    department: str


@dataclass(frozen=True)
class VerifiedCaller:
    """A department whose request signature has been verified."""

    department: str
    kid: str
    nonce: str
    created: dt.datetime
    covered: tuple[str, ...]


class SignatureRefused(AuthError):
    """A request signature was refused; ``claimant`` is set when the key id names a registered key."""

    def __init__(self, code: str, message: str, claimant: Claimant | None = None):
        super().__init__(message, code=code)
        self.claimant = claimant


@dataclass
class SignedMessage:
    """The request as the signature library sees it: method, absolute target URI, header field lines."""

    method: str
    url: str
    headers: Any  # anything with items() yielding every (name, value) field line, in order


class _OneKey(HTTPSignatureKeyResolver):
    """Resolves only the key already looked up and checked, so the library cannot reach any other."""

    def __init__(self, kid: str, key: Any):
        self.kid, self.key = kid, key

    def resolve_public_key(self, key_id: str) -> Any:
        return self.key if key_id == self.kid else None

    def resolve_private_key(self, key_id: str) -> Any:
        raise KeyError(key_id)


def _header(headers: Any, name: str) -> str | None:
    values = [v for k, v in headers.items() if k.lower() == name]
    return ", ".join(values) if values else None


def _parse_signature(headers: Any) -> tuple[list[str], dict[str, Any]]:
    """The covered component ids and parameters of the one signature; refuses missing or malformed ones."""
    sig_input, signature = _header(headers, "signature-input"), _header(headers, "signature")
    if sig_input is None or signature is None:
        raise SignatureRefused("signature_missing", "the request carries no Signature and Signature-Input")
    try:
        inputs = http_sf.parse(sig_input.encode("latin-1"), tltype="dictionary")
        signatures = http_sf.parse(signature.encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeError):
        raise SignatureRefused("signature_malformed", "Signature or Signature-Input is not a structured dictionary") from None
    if len(inputs) != 1 or inputs.keys() != signatures.keys():
        raise SignatureRefused("signature_malformed", "exactly one signature, with matching labels, is expected")
    label = next(iter(inputs))
    members, params = inputs[label]
    sig_value = signatures[label][0]
    if not isinstance(members, list) or not isinstance(sig_value, bytes):
        raise SignatureRefused("signature_malformed", "Signature-Input must be an inner list and Signature bytes")
    components: list[str] = []
    for value, item_params in members:
        if not isinstance(value, str):
            raise SignatureRefused("signature_malformed", "covered components must be strings")
        # Parameterised components (e.g. "content-digest";sf) do not count towards the required coverage.
        components.append(value + "".join(f";{name}" for name in item_params))
    unknown = set(params) - ALLOWED_PARAMS
    if unknown:
        raise SignatureRefused("signature_malformed", f"unknown signature parameter(s): {', '.join(sorted(unknown))}")
    if params.get("alg", "ed25519") != "ed25519":
        raise SignatureRefused("signature_malformed", "only alg=ed25519 is accepted")
    for name, kind in (("created", int), ("expires", int), ("keyid", str), ("nonce", str), ("tag", str)):
        if name in params and (type(params[name]) is not kind):
            raise SignatureRefused("signature_malformed", f"signature parameter {name} has the wrong type")
    return components, dict(params)


def _check_coverage(components: Iterable[str], params: dict[str, Any]) -> None:
    covered = set(components)
    missing = [c for c in ALWAYS_COVERED if c not in covered]
    if not any(all(c in covered for c in choice) for choice in TARGET_CHOICES):
        missing.append("@target-uri (or @path and @authority)")
    missing_params = [p for p in REQUIRED_PARAMS if p not in params]
    if missing or missing_params:
        parts = []
        if missing:
            parts.append("components not covered: " + ", ".join(missing))
        if missing_params:
            parts.append("parameters missing: " + ", ".join(missing_params))
        raise SignatureRefused("signature_incomplete", "; ".join(parts))
    low, high = NONCE_LENGTH
    if not low <= len(params["nonce"]) <= high:
        raise SignatureRefused("signature_malformed", f"nonce must be {low}-{high} characters")


def _timestamp(value: int) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureRefused("signature_malformed", "a signature timestamp is out of range") from None


class RequestVerifier:
    """Checks a request's signature against the department keys and the nonce store."""

    def __init__(self, sessions: sessionmaker, nonces: NonceStore, window_seconds: int):
        self.sessions = sessions
        self.nonces = nonces
        self.window = dt.timedelta(seconds=window_seconds)

    def verify(self, message: SignedMessage, body: bytes, now: dt.datetime | None = None) -> VerifiedCaller:
        """The verified caller; SignatureRefused (401) with the first failing check's code otherwise."""
        now = now or dt.datetime.now(dt.UTC)
        components, params = _parse_signature(message.headers)
        kid = params.get("keyid")
        found = None
        if isinstance(kid, str):
            with self.sessions() as session:
                found = find_key(session, kid)
        claimant = Claimant(kid, found[0].department) if found else None
        try:
            return self._verify(message, body, now, components, params, found)
        except SignatureRefused as exc:
            exc.claimant = claimant
            raise

    def _verify(self, message: SignedMessage, body: bytes, now: dt.datetime, components: list[str],
                params: dict[str, Any], found: Any) -> VerifiedCaller:
        _check_coverage(components, params)
        created = _timestamp(params["created"])
        # The window applies both ways: old requests may be replays, future ones would outlive their nonce.
        if abs(now - created) > self.window:
            raise SignatureRefused("stale_request", "the signature's created time is outside the allowed window")
        if "expires" in params and _timestamp(params["expires"]) < now:
            raise SignatureRefused("stale_request", "the signature has expired")
        digest = _header(message.headers, "content-digest")
        if digest is None:
            raise SignatureRefused("digest_mismatch", "the request carries no Content-Digest")
        try:
            ContentDigest.verify(digest, body)
        except HTTPMessageSignaturesException:
            raise SignatureRefused("digest_mismatch", "Content-Digest does not match the body") from None
        if found is None:
            raise SignatureRefused("unknown_key", "the key id is not registered")
        key_row, department = found
        status = key_status(key_row, department, now)
        if not status.usable:
            raise SignatureRefused("unknown_key", f"the key cannot be used: {status.reason}")
        verifier = HTTPMessageVerifier(
            signature_algorithm=ED25519, key_resolver=_OneKey(key_row.kid, load_public_key(key_row.public_key_pem))
        )
        # Our own window check ran above; the library's future-skew check must not be stricter than it.
        verifier.max_clock_skew = self.window
        try:
            verifier.verify(message, max_age=None, body=body)
        except HTTPMessageSignaturesException:
            raise SignatureRefused("signature_invalid", "the signature does not verify") from None
        # Only a proven signature may consume a nonce, or anyone could burn a department's nonces.
        if not self.nonces.remember(key_row.kid, params["nonce"], created + self.window):
            raise SignatureRefused("replayed_nonce", "this nonce has already been used")
        return VerifiedCaller(
            department=key_row.department,
            kid=key_row.kid,
            nonce=params["nonce"],
            created=created,
            covered=tuple(components),
        )

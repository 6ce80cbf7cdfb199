"""Verification of RFC 9421 request signatures: shape, coverage, time window, digest, key, signature (nonce: audit writer).

A request must carry exactly one signature (any label) with ``alg`` absent or ``"ed25519"``,
the parameters ``created``, ``keyid`` and ``nonce``, and it must cover ``"@method"``,
``"content-digest"`` and either ``"@target-uri"`` or both ``"@path"`` and ``"@authority"``.
Covered components are derived components (``@method``, ``@target-uri``, ``@authority``, ``@scheme``,
``@path``, ``@query``, ``@request-target``) and header fields, without component parameters.
Each refusal is an :class:`AuthError` (401) with a stable code.

Departments sign with any RFC 9421 implementation (the bundled client uses ``http-message-signatures``).
The server rebuilds the signature base itself for exactly the component set above and verifies the
Ed25519 signature with ``cryptography``: the library's general resolver costs about twice the
verification itself, on every request. The tests check that this verifier and the library agree,
and that the RFC's own Ed25519 example (appendix B.2.6) verifies.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import http_sf
from cryptography.exceptions import InvalidSignature
from http_message_signatures import ContentDigest, HTTPMessageSignaturesException
from exchange_api.registry import KeyInfo, RegistryCache
from hub.errors import AuthError

ALLOWED_PARAMS = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
DERIVED_COMPONENTS = frozenset({"@method", "@target-uri", "@authority", "@scheme", "@path", "@query", "@request-target"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
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
    nonce_expires: dt.datetime  # the nonce must be remembered until then; after it the request is stale anyway


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


class FieldLines:
    """A request's header field lines by lower-cased name, read in one pass (the verifier asks for several)."""

    __slots__ = ("lines",)

    def __init__(self, headers: Any):
        lines: dict[str, list[str]] = {}
        for name, value in headers.items():
            lines.setdefault(name.lower(), []).append(value)
        self.lines = lines

    @classmethod
    def of(cls, headers: Any) -> FieldLines:
        return headers if isinstance(headers, FieldLines) else cls(headers)

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in self.lines.items() for value in values]

    def joined(self, name: str) -> str | None:
        """Every line of the field joined with ", ", or None if the request has none."""
        values = self.lines.get(name)
        return ", ".join(values) if values else None

    def value(self, name: str) -> str | None:
        """The field's value as a signature base holds it: each line stripped, then joined with ", "."""
        values = self.lines.get(name)
        return ", ".join(v.strip() for v in values) if values else None


def _header(headers: Any, name: str) -> str | None:
    return FieldLines.of(headers).joined(name)


@dataclass(frozen=True)
class ParsedSignature:
    """The one signature of a request: covered components, parameters, the signature-params line, the bytes."""

    components: list[str]
    params: dict[str, Any]
    signature_params: str  # the serialized inner list, as it goes into the signature base
    signature: bytes


def _parse_signature(headers: Any) -> tuple[list[str], dict[str, Any]]:
    """The covered component ids and parameters of the one signature; refuses missing or malformed ones."""
    parsed = parse_signature(headers)
    return parsed.components, parsed.params


# The shape every well-behaved client sends: one member, plain component strings, string/integer parameters.
# Matched by regular expression first; anything else goes through the general Structured Fields parser.
_FAST_INPUT = re.compile(r'([a-z*][a-z0-9_.*-]*)=\(((?:"[a-z0-9@_.-]+"(?: "[a-z0-9@_.-]+")*)?)\)'
                         r'((?:;[a-z*][a-z0-9_.*-]*=(?:"[\x20\x21\x23-\x5b\x5d-\x7e]*"|-?[0-9]{1,15}))*)')
FAST_PATH = True  # tests switch it off to compare with the general parser
_FAST_PARAM = re.compile(r';([a-z*][a-z0-9_.*-]*)=(?:"([^"]*)"|(-?[0-9]+))')
_FAST_SIGNATURE = re.compile(r"([a-z*][a-z0-9_.*-]*)=:([A-Za-z0-9+/]*={0,2}):")


def _fast_parse(sig_input: str, signature: str) -> ParsedSignature | None:
    inputs, sig = _FAST_INPUT.fullmatch(sig_input.strip()), _FAST_SIGNATURE.fullmatch(signature.strip())
    if inputs is None or sig is None or inputs.group(1) != sig.group(1):
        return None
    components = [c[1:-1] for c in inputs.group(2).split(" ")] if inputs.group(2) else []
    params: dict[str, Any] = {}
    for name, text, number in _FAST_PARAM.findall(inputs.group(3)):
        if name in params:
            return None  # duplicate parameters: let the general parser decide
        params[name] = int(number) if number else text
    try:
        value = base64.b64decode(sig.group(2), validate=True)
    except ValueError:
        return None
    serialized = "(" + " ".join(f'"{c}"' for c in components) + ")" + "".join(
        f";{k}={v}" if isinstance(v, int) else f';{k}="{v}"' for k, v in params.items())
    return ParsedSignature(components, params, serialized, value)


def parse_signature(headers: Any) -> ParsedSignature:
    """The request's one signature, parsed; refuses missing or malformed ones."""
    sig_input, signature = _header(headers, "signature-input"), _header(headers, "signature")
    if sig_input is None or signature is None:
        raise SignatureRefused("signature_missing", "the request carries no Signature and Signature-Input")
    fast = _fast_parse(sig_input, signature) if FAST_PATH else None
    if fast is not None:
        _check_params(fast.params)
        return fast
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
    _check_params(params)
    serialized = http_sf.ser({label: (members, params)})
    return ParsedSignature(components, dict(params), serialized[len(label) + 1:], sig_value)


def _check_params(params: Any) -> None:
    unknown = set(params) - ALLOWED_PARAMS
    if unknown:
        raise SignatureRefused("signature_malformed", f"unknown signature parameter(s): {', '.join(sorted(unknown))}")
    if params.get("alg", "ed25519") != "ed25519":
        raise SignatureRefused("signature_malformed", "only alg=ed25519 is accepted")
    for name, kind in (("alg", str), ("created", int), ("expires", int), ("keyid", str), ("nonce", str), ("tag", str)):
        if name in params and (type(params[name]) is not kind):
            raise SignatureRefused("signature_malformed", f"signature parameter {name} has the wrong type")


# A keyid parameter wherever it stands, read without parsing the whole field: a signature refused as
# malformed is still attributed to the registered key it names (and so audited).
_CLAIMED_KEYID = re.compile(r';\s*keyid\s*=\s*"([^"\\]{1,128})"')
MAX_CLAIMED_KEYIDS = 4  # registry lookups one refused request may cost


def claimed_keyids(headers: Any) -> list[str]:
    """The key ids a request's Signature-Input names, in order, however malformed the rest of it is."""
    sig_input = _header(headers, "signature-input")
    if not sig_input:
        return []
    return list(dict.fromkeys(_CLAIMED_KEYID.findall(sig_input)))[:MAX_CLAIMED_KEYIDS]


def _field_value(headers: Any, name: str) -> str | None:
    return FieldLines.of(headers).value(name)


def signature_base(message: SignedMessage, parsed: ParsedSignature) -> bytes:
    """The RFC 9421 signature base of ``message`` for the covered components (section 2.5)."""
    match = _URL.fullmatch(message.url)
    if match is None:
        raise SignatureRefused("signature_invalid", "the target URI cannot be reconstructed")
    scheme, host, port, path, query = match["scheme"].lower(), match["host"], match["port"], match["path"] or "/", match["query"]
    authority = host.lower() + (f":{port}" if port and port.lstrip("0") != DEFAULT_PORTS.get(scheme) else "")
    query_suffix = "" if query is None else "?" + query
    derived = {
        "@method": message.method,
        "@target-uri": f"{match['scheme']}://{match['authority']}{path}{query_suffix}",
        "@authority": authority,
        "@scheme": scheme,
        "@path": path,
        "@query": "?" + (query or ""),
        "@request-target": path + query_suffix,
    }
    fields = FieldLines.of(message.headers)
    lines = []
    for component in parsed.components:
        if component in derived:
            value = derived[component]
        elif component.startswith("@") or component != component.lower() or ";" in component:
            raise SignatureRefused("signature_malformed", "unsupported covered component or component parameter")
        else:
            value = fields.value(component)
            if value is None:
                raise SignatureRefused("signature_invalid", "a covered header field is missing")
        if "\r" in value or "\n" in value:
            raise SignatureRefused("signature_invalid", "a covered value contains a line break")
        lines.append(f'"{component}": {value}')
    lines.append(f'"@signature-params": {parsed.signature_params}')
    base = "\n".join(lines)
    if not base.isascii():
        raise SignatureRefused("signature_invalid", "the signature base is not ASCII")
    return base.encode("ascii")


_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>(?P<host>\[[^\]/]*\]|[^:/?#]*)(?::(?P<port>\d*))?)"
                  r"(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?")


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


# The one-digest shape clients send; anything else (several digests, parameters, ...) goes to the library.
_FAST_DIGEST = re.compile(r"(sha-256|sha-512)=:([A-Za-z0-9+/]+={0,2}):")
_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def _digest_matches(value: str, body: bytes) -> bool:
    """Whether Content-Digest ``value`` matches ``body`` (RFC 9530): every digest it carries must."""
    match = _FAST_DIGEST.fullmatch(value) if FAST_PATH else None
    if match is not None:
        hasher = _DIGESTS[match.group(1)]
        try:
            claimed = base64.b64decode(match.group(2), validate=True)
        except ValueError:
            claimed = b""
        if len(claimed) == hasher().digest_size:
            return hmac.compare_digest(claimed, hasher(body).digest())
    try:
        ContentDigest.verify(value, body)
    except HTTPMessageSignaturesException:
        return False
    return True


def _timestamp(value: int) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureRefused("signature_malformed", "a signature timestamp is out of range") from None


class RequestVerifier:
    """Checks a request's signature against the department keys; the nonce is then consumed by the audit writer.

    Verification and nonce consumption are split so that the nonce insert can be committed in the same
    transaction as the request's audit row (one group commit for many requests): the writer refuses a
    nonce already seen with ``replayed_nonce`` before any answer leaves.
    """

    def __init__(self, registry: RegistryCache, window_seconds: int):
        self.registry = registry
        self.window = dt.timedelta(seconds=window_seconds)

    def verify(self, message: SignedMessage, body: bytes, now: dt.datetime | None = None) -> VerifiedCaller:
        """The verified caller; SignatureRefused (401) with the first failing check's code otherwise."""
        now = now or dt.datetime.now(dt.UTC)
        if not isinstance(message.headers, FieldLines):
            message = SignedMessage(message.method, message.url, FieldLines(message.headers))
        try:
            parsed = parse_signature(message.headers)
        except SignatureRefused as exc:
            exc.claimant = self.claimant(message.headers)
            raise
        kid = parsed.params.get("keyid")
        key = self.registry.key(kid) if isinstance(kid, str) else None
        claimant = Claimant(kid, key.department) if key is not None else None  # type: ignore[arg-type]
        try:
            return self._verify(message, body, now, parsed, key)
        except SignatureRefused as exc:
            exc.claimant = claimant
            raise

    def claimant(self, headers: Any) -> Claimant | None:
        """The first registered key a request's Signature-Input names, before (or without) any check of it."""
        for kid in claimed_keyids(headers):
            key = self.registry.key(kid)
            if key is not None:
                return Claimant(kid, key.department)
        return None

    def _verify(self, message: SignedMessage, body: bytes, now: dt.datetime, parsed: ParsedSignature,
                key: KeyInfo | None) -> VerifiedCaller:
        components, params = parsed.components, parsed.params
        _check_coverage(components, params)
        if len(set(components)) != len(components):
            raise SignatureRefused("signature_malformed", "a component is covered twice")
        created = _timestamp(params["created"])
        # The window applies both ways: old requests may be replays, future ones would outlive their nonce.
        if abs(now - created) > self.window:
            raise SignatureRefused("stale_request", "the signature's created time is outside the allowed window")
        if "expires" in params and _timestamp(params["expires"]) < now:
            raise SignatureRefused("stale_request", "the signature has expired")
        digest = _header(message.headers, "content-digest")
        if digest is None:
            raise SignatureRefused("digest_mismatch", "the request carries no Content-Digest")
        if not _digest_matches(digest, body):
            raise SignatureRefused("digest_mismatch", "Content-Digest does not match the body")
        if key is None:
            raise SignatureRefused("unknown_key", "the key id is not registered")
        status = key.status(now)
        if not status.usable:
            raise SignatureRefused("unknown_key", f"the key cannot be used: {status.reason}")
        try:
            key.verify_signature(parsed.signature, signature_base(message, parsed))
        except InvalidSignature:
            raise SignatureRefused("signature_invalid", "the signature does not verify") from None
        return VerifiedCaller(
            department=key.department,
            kid=key.kid,
            nonce=params["nonce"],
            created=created,
            covered=tuple(components),
            nonce_expires=created + self.window,
        )

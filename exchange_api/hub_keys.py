"""The hub's own Ed25519 answer-signing keys, kept in ``keys_dir``: created on first use, rotated, published as a JWKS.

Layout::

    keys_dir/hub-signing/
        <kid>.pem     one private key per kid (PKCS#8, mode 0600); every one stays in the JWKS
        ACTIVE        the kid that signs new answers; replaced by atomic rename on rotation
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey

from exchange_api import ed25519
from exchange_api.jose import JWS_ALG

SUBDIR = "hub-signing"
ACTIVE = "ACTIVE"
_KID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # a JWK thumbprint is base64url


@dataclass(frozen=True)
class HubKey:
    """One hub signing key."""

    kid: str
    private_key: Ed25519PrivateKey

    @cached_property
    def jwk(self) -> OKPKey:
        """The private key as a joserfc JWK, for signing."""
        return OKPKey.import_key(self.private_key, {"kid": self.kid})

    @cached_property
    def sign(self) -> Callable[[bytes], bytes]:
        """``sign(message) -> signature`` through the fastest Ed25519 path installed."""
        return ed25519.signer(self.private_key)

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK, as published in the JWKS."""
        return {**self.jwk.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": JWS_ALG}


def _thumbprint(private_key: Ed25519PrivateKey) -> str:
    return OKPKey.import_key(private_key.public_key()).thumbprint()


class HubKeyring:
    """The hub's signing keys in one directory, shared by every API process that mounts it."""

    def __init__(self, keys_dir: Path):
        self.dir = Path(keys_dir) / SUBDIR
        self._lock = threading.Lock()
        self._cache: dict[str, HubKey] = {}
        self._active: tuple[tuple[int, int], HubKey] | None = None
        self._active_path = str(self.dir / ACTIVE)  # stat()ed on every answer: no Path arithmetic each time

    def _write_key(self) -> HubKey:
        private_key = Ed25519PrivateKey.generate()
        kid = _thumbprint(private_key)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{kid}.pem"
        # 0600 from the start: the key must never be readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return HubKey(kid, private_key)

    def _set_active(self, kid: str, *, only_if_absent: bool) -> bool:
        tmp = self.dir / f".{ACTIVE}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(kid + "\n")
        try:
            if only_if_absent:
                # link() fails if ACTIVE exists: two processes starting at once agree on one first key.
                try:
                    os.link(tmp, self.dir / ACTIVE)
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, self.dir / ACTIVE)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _load(self, kid: str) -> HubKey:
        key = self._cache.get(kid)
        if key is None:
            pem = (self.dir / f"{kid}.pem").read_bytes()
            private_key = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(private_key, Ed25519PrivateKey):
                raise ValueError(f"hub key {kid} is not Ed25519")
            key = self._cache[kid] = HubKey(kid, private_key)
        return key

    def active(self) -> HubKey:
        """The key that signs new answers, created on first use."""
        # ACTIVE is replaced by rename on rotation (by any process): re-read it only when its inode changes.
        try:
            st = os.stat(self._active_path)
            stamp = (st.st_ino, st.st_mtime_ns)
            cached = self._active
            if cached is not None and cached[0] == stamp:
                return cached[1]
        except FileNotFoundError:
            stamp = None
        with self._lock:
            try:
                kid = (self.dir / ACTIVE).read_text().strip()
            except FileNotFoundError:
                key = self._write_key()
                if not self._set_active(key.kid, only_if_absent=True):
                    # Another process created the first key meanwhile: use theirs, drop ours unpublished.
                    (self.dir / f"{key.kid}.pem").unlink(missing_ok=True)
                kid = (self.dir / ACTIVE).read_text().strip()
            key = self._load(kid)
            if stamp is not None:
                self._active = (stamp, key)
            return key

    def rotate(self) -> HubKey:
        """Make a new key active; older keys stay in the JWKS so answers they signed still verify."""
        with self._lock:
            key = self._write_key()
            self._set_active(key.kid, only_if_absent=False)
            self._cache[key.kid] = key
            return key

    def all_keys(self) -> list[HubKey]:
        """Every hub key, the active one first."""
        active = self.active()
        others = sorted(p.stem for p in self.dir.glob("*.pem") if p.stem != active.kid)
        with self._lock:
            return [active, *(self._load(kid) for kid in others)]

    def verify(self, kid: str, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` over ``message`` is by the hub key ``kid`` (any key ever made here, active or not)."""
        if not _KID.fullmatch(kid) or not (self.dir / f"{kid}.pem").is_file():
            return False  # a kid from outside never names a path of its own
        try:
            with self._lock:
                key = self._load(kid)
            key.private_key.public_key().verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set."""
        return {"keys": [key.public_jwk() for key in self.all_keys()]}

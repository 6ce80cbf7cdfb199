"""The department registry: register departments, add and retire their keys, record grants."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange_api import ed25519
from exchange_api.models import Department, DepartmentKey, DepartmentLimits, Grant, utcnow
from exchange_api.purposes import CODE_PATTERN, Purpose, PurposeInfo, ensure_table, libraries_of, read_catalogue_file
from hub.errors import HubError
from schemas import LIBRARIES, Sharing, library


class RegistryError(HubError):
    """A registry change was refused; ``problems`` lists every reason, not just the first."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; RegistryError for anything else."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise RegistryError("the public key is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise RegistryError("the public key must be Ed25519")
    return key


def key_thumbprint(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint of a key: the default ``kid``, stable and derived from the key itself."""
    return OKPKey.import_key(key).thumbprint()


def register_department(session: Session, code: str, name: str) -> Department:
    """Register a department (or reactivate and rename an existing one)."""
    if not code or not code.isascii() or not code.replace("_", "").isalnum() or len(code) > 64:
        raise RegistryError("department code must be 1-64 letters, digits or underscores")
    department = session.get(Department, code)
    if department is None:
        department = Department(code=code, name=name, active=True, registered_at=utcnow())
        session.add(department)
    else:
        department.name, department.active = name, True
    session.flush()
    return department


def add_key(
    session: Session,
    department: str,
    public_key_pem: str | bytes,
    *,
    kid: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> DepartmentKey:
    """Add a public key to a department; ``kid`` defaults to the key's JWK thumbprint."""
    if session.get(Department, department) is None:
        raise RegistryError(f"department {department!r} is not registered")
    key = load_public_key(public_key_pem)
    kid = kid or key_thumbprint(key)
    if session.get(DepartmentKey, kid) is not None:
        raise RegistryError(f"key id {kid!r} is already registered")
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    row = DepartmentKey(
        kid=kid,
        department=department,
        public_key_pem=pem,
        not_before=not_before or utcnow(),
        not_after=not_after,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def retire_key(session: Session, kid: str, at: dt.datetime | None = None) -> DepartmentKey:
    """Retire a key: requests signed with it are refused from ``at`` (default now) on."""
    row = session.get(DepartmentKey, kid)
    if row is None:
        raise RegistryError(f"no key {kid!r}")
    row.retired_at = at or utcnow()
    session.flush()
    return row


@dataclass(frozen=True)
class KeyStatus:
    """Whether a key may sign requests now, and why not."""

    usable: bool
    reason: str


def key_status(key: DepartmentKey, department: Department | None, now: dt.datetime) -> KeyStatus:
    """Decide whether ``key`` may sign a request at ``now``."""
    if department is None or not department.active:
        return KeyStatus(False, "department not registered or inactive")
    if key.retired_at is not None and key.retired_at <= now:
        return KeyStatus(False, "key retired")
    if key.not_before > now:
        return KeyStatus(False, "key not yet valid")
    if key.not_after is not None and key.not_after <= now:
        return KeyStatus(False, "key expired")
    return KeyStatus(True, "key valid")


def find_key(session: Session, kid: str) -> tuple[DepartmentKey, Department | None] | None:
    """The key called ``kid`` and its department, whatever its state; None if never registered."""
    row = session.get(DepartmentKey, kid)
    if row is None:
        return None
    return row, session.get(Department, row.department)


def add_grant(
    session: Session,
    department: str,
    library_name: str,
    fields: Iterable[str],
    purpose: str,
    expires_at: dt.datetime,
    approved_by: str,
) -> Grant:
    """Record an approved grant of conditional fields; every problem is reported at once."""
    problems: list[str] = []
    if session.get(Department, department) is None:
        problems.append(f"department {department!r} is not registered")
    names = sorted({f.strip() for f in fields if f.strip()})
    try:
        lib = library(library_name)
    except KeyError as exc:
        raise RegistryError([*problems, str(exc.args[0])]) from None
    if not names:
        problems.append("a grant needs at least one field")
    for name in names:
        try:
            field = lib.field(name)
        except KeyError:
            problems.append(f"{lib.name} has no field {name!r}")
            continue
        if field.sharing is Sharing.NOT_SHAREABLE:
            problems.append(f"{lib.name}.{name} is not shareable and cannot be granted")
        elif field.sharing is Sharing.UNCONDITIONAL:
            problems.append(f"{lib.name}.{name} is unconditional and needs no grant")
    ensure_table(session.get_bind())
    registered = session.get(Purpose, purpose) if purpose else None
    if registered is None or not registered.active:
        problems.append(f"purpose {purpose!r} is not in the purpose catalogue (hub purposes add)")
    elif lib.name not in PurposeInfo.of(registered).libraries:
        problems.append(f"purpose {purpose!r} is not registered for the {lib.name} library")
    if not approved_by:
        problems.append("approved_by is required")
    if expires_at.tzinfo is None:
        problems.append("expiry must carry a timezone")
    elif expires_at <= utcnow():
        problems.append("expiry is in the past")
    if problems:
        raise RegistryError(problems)
    grant = Grant(
        department=department,
        library=lib.name,
        fields=",".join(names),
        purpose=purpose,
        expires_at=expires_at,
        approved_by=approved_by,
        created_at=utcnow(),
    )
    session.add(grant)
    session.flush()
    return grant


def live_grants(session: Session, department: str, library_name: str, purpose: str, now: dt.datetime) -> list[Grant]:
    """The grants in force for (department, library, purpose) at ``now``."""
    rows = session.scalars(
        select(Grant).where(
            Grant.department == department,
            Grant.library == library_name,
            Grant.purpose == purpose,
            Grant.revoked_at.is_(None),
            Grant.expires_at > now,
        )
    )
    return list(rows)


def revoke_grant(session: Session, grant_id: int, at: dt.datetime | None = None) -> Grant:
    """Revoke a grant: its fields are withheld from ``at`` (default now) on."""
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise RegistryError(f"no grant {grant_id}")
    grant.revoked_at = at or utcnow()
    session.flush()
    return grant


def add_purpose(session: Session, code: str, name: str, legal_basis: str, libraries: str | Iterable[str]) -> Purpose:
    """Register a purpose in the catalogue (or update an existing one); every problem is reported at once."""
    ensure_table(session.get_bind())
    names = libraries_of(libraries)
    problems = []
    if not code or not CODE_PATTERN.match(code):
        problems.append("purpose code must be 1-64 letters, digits or _ . : - (starting with a letter or digit)")
    elif code.isdigit():
        problems.append("purpose code must not be all digits (it could be mistaken for an ID number)")
    if not name.strip():
        problems.append("a purpose needs a name")
    if not legal_basis.strip():
        problems.append("a purpose needs its legal basis")
    if not names:
        problems.append("a purpose needs at least one library")
    problems += [f"no library {n!r} (one of {', '.join(LIBRARIES)})" for n in names if n not in LIBRARIES]
    if problems:
        raise RegistryError(problems)
    row = session.get(Purpose, code)
    if row is None:
        row = Purpose(code=code, registered_at=utcnow())
        session.add(row)
    row.name, row.legal_basis, row.libraries, row.active = name.strip(), legal_basis.strip(), ",".join(names), True
    session.flush()
    return row


def retire_purpose(session: Session, code: str) -> Purpose:
    """Take a purpose out of use: requests naming it are refused, its grants release nothing more."""
    ensure_table(session.get_bind())
    row = session.get(Purpose, code)
    if row is None:
        raise RegistryError(f"no purpose {code!r}")
    row.active = False
    session.flush()
    return row


def list_purposes(session: Session) -> list[PurposeInfo]:
    """Every registered purpose, retired ones included, by code."""
    ensure_table(session.get_bind())
    return [PurposeInfo.of(row) for row in session.scalars(select(Purpose).order_by(Purpose.code))]


def load_purposes(session: Session, path: Any) -> list[Purpose]:
    """Register every purpose of a catalogue file; all problems of all entries are reported at once."""
    rows, problems = [], []
    for i, entry in enumerate(read_catalogue_file(path)):
        try:
            rows.append(add_purpose(session, str(entry.get("code", "")), str(entry.get("name", "")),
                                    str(entry.get("legal_basis", "")), entry.get("libraries") or []))
        except RegistryError as exc:
            problems += [f"purposes[{i}]: {p}" for p in exc.problems]
    if problems:
        raise RegistryError(problems)
    return rows


def set_limits(session: Session, department: str, *, rate_per_second: float | None = None, burst: int | None = None,
               daily_quota: int | None = None) -> DepartmentLimits:
    """Set a department's own rate limit and daily quota (None keeps the default)."""
    problems = []
    if session.get(Department, department) is None:
        problems.append(f"department {department!r} is not registered")
    if rate_per_second is not None and rate_per_second <= 0:
        problems.append("rate must be positive")
    if burst is not None and burst < 1:
        problems.append("burst must be at least 1")
    if daily_quota is not None and daily_quota < 0:
        problems.append("daily quota must not be negative")
    if problems:
        raise RegistryError(problems)
    row = session.get(DepartmentLimits, department) or DepartmentLimits(department=department)
    row.rate_per_second, row.burst, row.daily_quota = rate_per_second, burst, daily_quota
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class KeyInfo:
    """A department key as the request path needs it: the parsed public key and its validity, detached from the session."""

    kid: str
    department: str
    public_key: Ed25519PublicKey
    not_before: dt.datetime
    not_after: dt.datetime | None
    retired_at: dt.datetime | None
    department_active: bool

    def status(self, now: dt.datetime) -> KeyStatus:
        """Whether the key may sign a request at ``now``."""
        if not self.department_active:
            return KeyStatus(False, "department not registered or inactive")
        if self.retired_at is not None and self.retired_at <= now:
            return KeyStatus(False, "key retired")
        if self.not_before > now:
            return KeyStatus(False, "key not yet valid")
        if self.not_after is not None and self.not_after <= now:
            return KeyStatus(False, "key expired")
        return KeyStatus(True, "key valid")

    @cached_property
    def verify_signature(self) -> Callable[[bytes, bytes], None]:
        """``verify(signature, message)``, raising ``InvalidSignature``: the fastest Ed25519 path installed."""
        return ed25519.verifier(self.public_key)


@dataclass(frozen=True)
class GrantInfo:
    """A grant as decisions need it, detached from the session."""

    id: int
    department: str
    library: str
    fields: str
    purpose: str
    expires_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.fields.split(",") if name)

    def live(self, now: dt.datetime) -> bool:
        return self.expires_at > now and (self.revoked_at is None or self.revoked_at > now)


@dataclass(frozen=True)
class Limits:
    """A department's rate limit (per API process) and daily quota (across processes)."""

    rate_per_second: float
    burst: int
    daily_quota: int


class RegistryCache:
    """Keys, grants, limits and names read through a short-lived cache, so a request costs no registry query.

    Changes made by any process (a new key, a retirement, a grant, a revocation) apply everywhere within
    ``ttl`` seconds; validity times (not_before, not_after, expiry, a retirement dated ahead) apply exactly,
    since they are compared with the clock at each request. Unknown key ids are not cached, so a new key
    works at once.
    """

    def __init__(self, sessions: Any, ttl: float, default_limits: Limits):
        self.sessions = sessions
        self.ttl = ttl
        self.default_limits = default_limits
        self._entries: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, ...], load: Any, *, keep_none: bool = True) -> Any:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = load()
        if self.ttl > 0 and (keep_none or value is not None):
            with self._lock:
                if len(self._entries) > 100_000:  # bounded: a flood of distinct names cannot grow it forever
                    self._entries.clear()
                self._entries[key] = (now, value)
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._entries.clear()

    def key(self, kid: str) -> KeyInfo | None:
        """The key ``kid`` with its department's state; None if never registered."""

        def load() -> KeyInfo | None:
            with self.sessions() as session:
                found = find_key(session, kid)
                if found is None:
                    return None
                row, department = found
                return KeyInfo(row.kid, row.department, load_public_key(row.public_key_pem), row.not_before,
                               row.not_after, row.retired_at, department is not None and department.active)

        return self._cached(("key", kid), load, keep_none=False)

    def grants(self, department: str, library_name: str, purpose: str, now: dt.datetime) -> list[GrantInfo]:
        """The grants in force for (department, library, purpose) at ``now``."""

        def load() -> tuple[GrantInfo, ...]:
            with self.sessions() as session:
                rows = session.scalars(select(Grant).where(
                    Grant.department == department, Grant.library == library_name, Grant.purpose == purpose))
                return tuple(GrantInfo(g.id, g.department, g.library, g.fields, g.purpose, g.expires_at, g.revoked_at)
                             for g in rows)

        return [g for g in self._cached(("grants", department, library_name, purpose), load) if g.live(now)]

    def all_grants(self, department: str, now: dt.datetime) -> list[GrantInfo]:
        """Every grant in force for a department (for its catalogue)."""

        def load() -> tuple[GrantInfo, ...]:
            with self.sessions() as session:
                rows = session.scalars(select(Grant).where(Grant.department == department).order_by(Grant.id))
                return tuple(GrantInfo(g.id, g.department, g.library, g.fields, g.purpose, g.expires_at, g.revoked_at)
                             for g in rows)

        return [g for g in self._cached(("all_grants", department), load) if g.live(now)]

    def limits(self, department: str) -> Limits:
        """The department's limits, its own where set, the defaults otherwise."""

        def load() -> Limits:
            with self.sessions() as session:
                row = session.get(DepartmentLimits, department)
            d = self.default_limits
            if row is None:
                return d
            return Limits(row.rate_per_second if row.rate_per_second is not None else d.rate_per_second,
                          row.burst if row.burst is not None else d.burst,
                          row.daily_quota if row.daily_quota is not None else d.daily_quota)

        return self._cached(("limits", department), load)

    def purposes(self) -> dict[str, PurposeInfo]:
        """The purpose catalogue, code -> entry (retired ones included, marked inactive)."""

        def load() -> dict[str, PurposeInfo]:
            with self.sessions() as session:
                return {p.code: p for p in list_purposes(session)}

        return self._cached(("purposes",), load)

    def department_names(self) -> dict[str, str]:
        """Department code -> display name, for answers that show who looked."""

        def load() -> dict[str, str]:
            with self.sessions() as session:
                return {d.code: d.name for d in session.scalars(select(Department))}

        return self._cached(("department_names",), load)

"""The department registry: register departments, add and retire their keys, record grants."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange_api.models import Department, DepartmentKey, Grant, utcnow
from hub.errors import HubError
from schemas import Sharing, library


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
    if not purpose or len(purpose) > 64:
        problems.append("purpose must be 1-64 characters")
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

"""Real parts for exchange-API tests: a published snapshot on disk, a uvicorn server on a free port, registered departments."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from exchange_api.app import create_app
from exchange_api.client import HubClient, generate_department_key
from exchange_api.config import ApiSettings
from exchange_api.models import AuditEntry, exchange_sessions
from exchange_api.purposes import SAMPLE_PURPOSES
from exchange_api.registry import add_grant, add_key, load_purposes, register_department
from hub.settings import Settings
from schemas.ids import ric_check_char
from tests.exchange_api import snapshots as snapshot_files
from hub.serving import serving as running

UTC = dt.UTC


def resident_id(seq: int, region: str = "110105", birth: str = "19800101") -> str:
    """A valid 18-digit resident ID number."""
    body = f"{region}{birth}{seq % 1000:03d}"
    return body + ric_check_char(body)


PERSON_ID = resident_id(11)
OTHER_PERSON_ID = resident_id(12, birth="19920315")
ABSENT_ID = resident_id(99, birth="19700707")  # valid, but in no snapshot


def person(id_number: str, **overrides: Any) -> dict[str, Any]:
    """One population row with every column of schemas.POPULATION."""
    row: dict[str, Any] = {
        "id_number": id_number,
        "name": "张三",
        "gender": "1",
        "birth_date": dt.date(1980, 1, 1),
        "ethnicity": "01",
        "household_address": "北京市朝阳区建国路1号",
        "household_region": "110105",
        "residence_address": "北京市海淀区中关村大街1号",
        "marital_status": "20",
        "life_status": "living",
        "life_status_date": None,
        "phone": "13800000000",
        "source_department": "public_security",
        "source_record_id": "HJ-1",
        "source_updated_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "ingested_at": dt.datetime(2026, 1, 3, tzinfo=UTC),
        "run_id": "test-run",
    }
    row.update(overrides)
    return row


DEFAULT_PEOPLE = (person(PERSON_ID), person(OTHER_PERSON_ID, name="李四", gender="2", birth_date=dt.date(1992, 3, 15)))


def write_snapshot(snapshots_dir: Path, version: str, people: Sequence[dict[str, Any]] = DEFAULT_PEOPLE,
                   *, make_current: bool = True, **tables: Any) -> Path:
    """A published snapshot in exactly the layout warehouse.publish writes, optionally switched to."""
    return snapshot_files.write_snapshot(snapshots_dir, version, {"population": people, **tables},
                                         make_current=make_current)


def switch_current(snapshots_dir: Path, version: str) -> None:
    """Point CURRENT at ``version`` by atomic rename, as a publish does."""
    snapshot_files.switch_current(snapshots_dir, version)


@dataclass
class Department:
    """A registered department with its key and a client signing as it."""

    code: str
    kid: str
    private_key: Ed25519PrivateKey
    client: HubClient


@dataclass
class Hub:
    """A running hub: its settings, URL, app, and helpers to register departments and read the audit log."""

    settings: Settings
    url: str
    app: Any
    _clients: list[HubClient] = field(default_factory=list)
    _count: int = 0

    @property
    def sessions(self):  # type: ignore[no-untyped-def]
        return exchange_sessions(self.settings)

    def department(self, grants: Sequence[tuple[str, Sequence[str], str]] = (), *,
                   expires_at: dt.datetime | None = None) -> Department:
        """Register a new department with one key and the given (library, fields, purpose) grants."""
        self._count += 1
        code = f"dept_{self._count}_{os.urandom(3).hex()}"
        kid, private_key, public_pem = generate_department_key()
        with self.sessions.begin() as session:
            register_department(session, code, f"Department {self._count}")
            add_key(session, code, public_pem, kid=kid)
            for library, fields, purpose in grants:
                add_grant(session, code, library, fields, purpose,
                          expires_at or dt.datetime.now(UTC) + dt.timedelta(days=30), "owning department")
        client = HubClient(self.url, kid, private_key)
        self._clients.append(client)
        return Department(code, kid, private_key, client)

    def audit_row(self, request_id: str) -> AuditEntry | None:
        with self.sessions() as session:
            return session.scalars(select(AuditEntry).where(AuditEntry.request_id == request_id)).one_or_none()

    def audit_rows(self) -> list[AuditEntry]:
        with self.sessions() as session:
            return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))

    def close(self) -> None:
        for client in self._clients:
            client.close()


# Tests run with a short registry cache so that changes apply quickly, as they do (within 1 s) by default.
TEST_API = dict(registry_cache_seconds=0.2)


def seed_purposes(settings: Settings) -> None:
    """Register the sample purpose catalogue, as `hub demo` does: requests and grants name these codes."""
    with exchange_sessions(settings).begin() as session:
        load_purposes(session, SAMPLE_PURPOSES)


@contextmanager
def hub_at(data_dir: Path, *, api: dict[str, Any] | None = None, snapshot: bool = True, **settings: Any) -> Iterator[Hub]:
    """A hub serving a fresh default snapshot from ``data_dir``."""
    config = Settings(data_dir=data_dir, **settings)
    if snapshot:
        write_snapshot(config.snapshots_dir, "v000001")
    seed_purposes(config)
    app = create_app(config, ApiSettings(**{**TEST_API, **(api or {})}))
    with running(app) as url:
        hub = Hub(config, url, app)
        try:
            yield hub
        finally:
            hub.close()


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub shared by the tests that do not change its snapshot or keys."""
    with hub_at(tmp_path_factory.mktemp("hub") / "data", signature_window_seconds=120) as shared:
        yield shared


@pytest.fixture
def fresh_hub(tmp_path: Path) -> Iterator[Hub]:
    """A hub of one's own, for tests that switch snapshots or rotate keys."""
    with hub_at(tmp_path / "own-hub") as own:
        yield own


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def verify_with_cryptography(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify a compact JWS answer with the `cryptography` package alone; returns the payload."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "EdDSA"
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    public_key.verify(b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode())  # raises if bad
    return json.loads(b64url_decode(payload_b64))


def lookup_body(key: str = PERSON_ID, **overrides: Any) -> dict[str, Any]:
    body = {"library": "population", "key": key, "purpose": "social_assistance", "case_number": "CASE-2026-001"}
    body.update(overrides)
    return body


def json_request(url: str, body: dict[str, Any] | bytes) -> httpx.Request:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Request("POST", url + "/v1/lookup", content=content, headers={"Content-Type": "application/json"})

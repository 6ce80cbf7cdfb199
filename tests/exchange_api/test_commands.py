"""The operator commands: register a department with its key, grant it fields, and the registry's refusals."""

from __future__ import annotations

import datetime as dt

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from exchange_api.client import generate_department_key
from exchange_api.models import Department, DepartmentKey, Grant, exchange_sessions
from exchange_api.registry import RegistryError, add_grant, register_department
from hub.commands import api as api_commands
from hub.settings import get_settings


def cli(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    api_commands.register(app)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_register_department_and_grant(hub_env, tmp_path):
    kid, _, public_pem = generate_department_key()
    key_file = tmp_path / "civil_affairs.pem"
    key_file.write_text(public_pem)
    code, output = cli("departments", "register", "civil_affairs", "民政局", "--public-key-file", str(key_file))
    assert code == 0, output
    assert kid in output

    expiry = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    grant = ("grants", "add", "civil_affairs", "population", "name,marital_status", "marriage_registration", expiry,
             "--approved-by", "public_security")
    code, output = cli(*grant)
    assert code == 1 and "not in the purpose catalogue" in output  # grants name catalogue purposes only
    code, output = cli("purposes", "add", "marriage_registration", "婚姻登记", "--legal-basis", "《婚姻登记条例》第五条",
                       "--libraries", "population")
    assert code == 0, output
    code, output = cli(*grant)
    assert code == 0, output

    with exchange_sessions(get_settings())() as session:
        assert session.get(Department, "civil_affairs").name == "民政局"
        assert session.get(DepartmentKey, kid).department == "civil_affairs"
        (grant,) = session.scalars(select(Grant))
        assert (grant.fields, grant.purpose, grant.approved_by) == ("marital_status,name", "marriage_registration",
                                                                    "public_security")


def test_grant_refuses_every_problem_at_once(hub_env):
    code, output = cli("grants", "add", "nobody", "population", "phone,gender,nonsense", "p", "2000-01-01",
                       "--approved-by", "x")
    assert code == 1
    for problem in ("not registered", "phone is not shareable", "gender is unconditional", "no field 'nonsense'",
                    "in the past", "purpose 'p' is not in the purpose catalogue"):
        assert problem in output


def test_registry_rejects_non_ed25519_keys(hub_env):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    from exchange_api.registry import add_key

    with exchange_sessions(get_settings()).begin() as session:
        register_department(session, "tax", "税务局")
        with pytest.raises(RegistryError, match="Ed25519"):
            add_key(session, "tax", pem)
        with pytest.raises(RegistryError):
            add_grant(session, "tax", "population", ["name"], "p", dt.datetime.now(dt.UTC) - dt.timedelta(days=1), "x")

"""Commands that run the exchange API and manage who may call it: departments, keys, grants, the audit chain."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub.settings import get_settings

console = Console()


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings api_port).")] = None,
) -> None:
    """Run the exchange API with uvicorn."""
    import uvicorn

    from exchange_api.app import create_app

    settings = get_settings()
    uvicorn.run(create_app(settings), host=host or settings.api_host, port=port or settings.api_port)


def _sessions():  # type: ignore[no-untyped-def]
    from exchange_api.models import exchange_sessions

    return exchange_sessions(get_settings())


def _fail(exc: Exception) -> typer.Exit:
    problems = getattr(exc, "problems", None) or [str(exc)]
    for problem in problems:
        console.print(f"[red]error:[/] {problem}")
    return typer.Exit(1)


def register_department(
    code: Annotated[str, typer.Argument(help="Department code, e.g. civil_affairs.")],
    name: Annotated[str, typer.Argument(help="Display name, e.g. 民政局.")],
    public_key_file: Annotated[Path, typer.Option("--public-key-file", exists=True, dir_okay=False,
                                                  help="The department's Ed25519 public key (PEM).")],
    kid: Annotated[str | None, typer.Option(help="Key id (default: the key's JWK thumbprint).")] = None,
    not_after: Annotated[dt.datetime | None, typer.Option(help="Key valid until (UTC).")] = None,
) -> None:
    """Register a department and its first public key; prints the key id its requests must use."""
    from exchange_api.registry import RegistryError, add_key, register_department as register

    try:
        with _sessions().begin() as session:
            register(session, code, name)
            key = add_key(session, code, public_key_file.read_bytes(), kid=kid, not_after=_utc(not_after))
            kid = key.kid
    except RegistryError as exc:
        raise _fail(exc) from exc
    console.print(f"registered [bold]{code}[/] with key id [bold]{kid}[/]")


def add_key(
    department: Annotated[str, typer.Argument(help="Department code.")],
    public_key_file: Annotated[Path, typer.Option("--public-key-file", exists=True, dir_okay=False)],
    kid: Annotated[str | None, typer.Option(help="Key id (default: the key's JWK thumbprint).")] = None,
    not_after: Annotated[dt.datetime | None, typer.Option(help="Key valid until (UTC).")] = None,
) -> None:
    """Add another public key to a registered department (key rollover)."""
    from exchange_api.registry import RegistryError, add_key as add

    try:
        with _sessions().begin() as session:
            kid = add(session, department, public_key_file.read_bytes(), kid=kid, not_after=_utc(not_after)).kid
    except RegistryError as exc:
        raise _fail(exc) from exc
    console.print(f"added key [bold]{kid}[/] to {department}")


def retire_key(kid: Annotated[str, typer.Argument(help="Key id to retire now.")]) -> None:
    """Retire a department key: requests signed with it are refused from now on."""
    from exchange_api.registry import RegistryError, retire_key as retire

    try:
        with _sessions().begin() as session:
            retire(session, kid)
    except RegistryError as exc:
        raise _fail(exc) from exc
    console.print(f"retired key {kid}")


def grant(
    department: Annotated[str, typer.Argument(help="Department code.")],
    library: Annotated[str, typer.Argument(help="population, legal_person or licence.")],
    fields: Annotated[str, typer.Argument(help="Comma-separated conditional fields, e.g. name,birth_date.")],
    purpose: Annotated[str, typer.Argument(help="Purpose code the department will send with each lookup.")],
    expiry: Annotated[dt.datetime, typer.Argument(help="Grant valid until (UTC), e.g. 2026-12-31.")],
    approved_by: Annotated[str, typer.Option("--approved-by", help="Who approved it (owning department).")],
) -> None:
    """Record an approved conditional-sharing grant."""
    from exchange_api.registry import RegistryError, add_grant

    try:
        with _sessions().begin() as session:
            row = add_grant(session, department, library, fields.split(","), purpose, _utc(expiry), approved_by)
            grant_id, granted = row.id, row.fields
    except RegistryError as exc:
        raise _fail(exc) from exc
    console.print(f"grant {grant_id}: {department} may receive {library}.{{{granted}}} for {purpose} until {expiry:%Y-%m-%d}")


def rotate_hub_key() -> None:
    """Make a new hub answer-signing key active; old public keys stay in the JWKS."""
    from exchange_api.hub_keys import HubKeyring

    key = HubKeyring(get_settings().keys_dir).rotate()
    console.print(f"active hub key is now [bold]{key.kid}[/]")


def verify_audit() -> None:
    """Walk the audit log's hash chain; exit 1 at the first broken link."""
    from exchange_api.audit import AuditLog, audit_salt

    settings = get_settings()
    report = AuditLog(_sessions(), audit_salt(settings.keys_dir)).verify()
    if report.ok:
        console.print(f"audit chain intact: {report.rows:,} rows")
        return
    console.print(f"[red]audit chain broken at row {report.broken_seq}:[/] {report.problem} "
                  f"(intact before it: {report.rows:,} rows)")
    raise typer.Exit(1)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def register(app: typer.Typer) -> None:
    """Add the exchange API commands to the ``hub`` command line."""
    app.command("serve")(serve)
    app.command("register-department")(register_department)
    app.command("add-key")(add_key)
    app.command("retire-key")(retire_key)
    app.command("grant")(grant)
    app.command("rotate-hub-key")(rotate_hub_key)
    app.command("verify-audit")(verify_audit)

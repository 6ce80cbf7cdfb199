"""Commands that run the exchange API and manage who may call it: departments, keys, grants, the audit chain."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hub.commands.common import LibraryName, error, fail as _fail, get_settings

if TYPE_CHECKING:  # SQLAlchemy is imported by the commands that open the registry, not by `hub --help`
    from sqlalchemy.orm import Session

console = Console()


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings api_port).")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes (they share the metadata DB).")] = 1,
) -> None:
    """Run the exchange API with uvicorn."""
    import uvicorn

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    if workers > 1:
        # One process per worker, each with its own SO_REUSEPORT socket, all from the same HUB_* environment.
        from exchange_api.serve import serve as serve_processes

        serve_processes(host, port, workers)
        return
    from exchange_api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, access_log=False)


def _sessions():  # type: ignore[no-untyped-def]
    from exchange_api.models import exchange_sessions

    return exchange_sessions(get_settings())


@contextlib.contextmanager
def _registry() -> Iterator[Session]:
    """One metadata transaction for a registry command; its refusals print every problem and exit 1."""
    from exchange_api.registry import RegistryError

    try:
        with _sessions().begin() as session:
            yield session
    except RegistryError as exc:
        raise _fail(exc) from exc


def register_department(
    code: Annotated[str, typer.Argument(help="Department code, e.g. civil_affairs.")],
    name: Annotated[str, typer.Argument(help="Display name, e.g. 民政局.")],
    public_key_file: Annotated[Path, typer.Option("--public-key-file", exists=True, dir_okay=False,
                                                  help="The department's Ed25519 public key (PEM).")],
    kid: Annotated[str | None, typer.Option(help="Key id (default: the key's JWK thumbprint).")] = None,
    not_after: Annotated[dt.datetime | None, typer.Option(help="Key valid until (UTC).")] = None,
) -> None:
    """Register a department and its first public key; prints the key id its requests must use."""
    from exchange_api.registry import add_key, register_department as register

    with _registry() as session:
        register(session, code, name)
        key = add_key(session, code, public_key_file.read_bytes(), kid=kid, not_after=_utc(not_after))
        kid = key.kid
    console.print(f"registered [bold]{code}[/] with key id [bold]{kid}[/]")


def add_key(
    department: Annotated[str, typer.Argument(help="Department code.")],
    public_key_file: Annotated[Path, typer.Option("--public-key-file", exists=True, dir_okay=False)],
    kid: Annotated[str | None, typer.Option(help="Key id (default: the key's JWK thumbprint).")] = None,
    not_after: Annotated[dt.datetime | None, typer.Option(help="Key valid until (UTC).")] = None,
) -> None:
    """Add another public key to a registered department (key rollover)."""
    from exchange_api.registry import add_key as add

    with _registry() as session:
        kid = add(session, department, public_key_file.read_bytes(), kid=kid, not_after=_utc(not_after)).kid
    console.print(f"added key [bold]{kid}[/] to {department}")


def retire_key(kid: Annotated[str, typer.Argument(help="Key id to retire now.")]) -> None:
    """Retire a department key: requests signed with it are refused from now on."""
    from exchange_api.registry import retire_key as retire

    with _registry() as session:
        retire(session, kid)
    console.print(f"retired key {kid}")


def grant(
    department: Annotated[str, typer.Argument(help="Department code.")],
    library_name: Annotated[LibraryName, typer.Argument(metavar="LIBRARY", help="The library the fields are of.")],
    fields: Annotated[str, typer.Argument(help="Comma-separated conditional fields, e.g. name,birth_date.")],
    purpose: Annotated[str, typer.Argument(help="A purpose code of the catalogue (hub purposes list) the department will send.")],
    expiry: Annotated[dt.datetime, typer.Argument(help="Grant valid until (UTC), e.g. 2026-12-31.")],
    approved_by: Annotated[str, typer.Option("--approved-by", help="Who approved it (owning department).")],
) -> None:
    """Record an approved conditional-sharing grant."""
    from exchange_api.registry import add_grant

    library = library_name.value
    with _registry() as session:
        row = add_grant(session, department, library, fields.split(","), purpose, _utc(expiry), approved_by)
        grant_id, granted = row.id, row.fields
    console.print(f"grant {grant_id}: {department} may receive {library}.{{{granted}}} for {purpose} until {expiry:%Y-%m-%d}")


def rotate_hub_key() -> None:
    """Make a new hub answer-signing key active; old public keys stay in the JWKS."""
    from exchange_api.hub_keys import HubKeyring

    key = HubKeyring(get_settings().keys_dir).rotate()
    console.print(f"active hub key is now [bold]{key.kid}[/]")


def revoke_grant(grant_id: Annotated[int, typer.Argument(help="Grant number, as printed by `hub grants add`.")]) -> None:
    """Revoke a grant: its fields are withheld from now on (within the API's registry cache time)."""
    from exchange_api.registry import revoke_grant as revoke

    with _registry() as session:
        revoke(session, grant_id)
    console.print(f"revoked grant {grant_id}")


def set_limits(
    department: Annotated[str, typer.Argument(help="Department code.")],
    rate: Annotated[float | None, typer.Option(help="Requests per second per API process.")] = None,
    burst: Annotated[int | None, typer.Option(help="Requests allowed in a burst.")] = None,
    daily_quota: Annotated[int | None, typer.Option(help="Records per UTC day across all API processes.")] = None,
) -> None:
    """Set a department's rate limit and daily quota (options left out take the HUB_API_* defaults)."""
    from exchange_api.registry import set_limits as store

    with _registry() as session:
        store(session, department, rate_per_second=rate, burst=burst, daily_quota=daily_quota)
    console.print(f"limits of {department}: rate {rate or 'default'}/s, burst {burst or 'default'}, "
                  f"daily quota {daily_quota if daily_quota is not None else 'default'}")


def add_purpose(
    code: Annotated[str, typer.Argument(help="Purpose code requests and grants will name, e.g. social_assistance.")],
    name: Annotated[str, typer.Argument(help="Display name, e.g. 社会救助审核确认.")],
    legal_basis: Annotated[str, typer.Option("--legal-basis", help="The law or regulation the purpose rests on.")],
    libraries: Annotated[str, typer.Option("--libraries", help="Comma-separated libraries it may be asked of.")],
) -> None:
    """Register a purpose in the catalogue (or update one): requests naming anything else are refused."""
    from exchange_api.registry import add_purpose as store

    with _registry() as session:
        store(session, code, name, legal_basis, libraries)
    console.print(f"purpose [bold]{code}[/] registered for {libraries}")


def retire_purpose(code: Annotated[str, typer.Argument(help="Purpose code to take out of use.")]) -> None:
    """Retire a purpose: requests naming it are refused (within the API's registry cache time)."""
    from exchange_api.registry import retire_purpose as retire

    with _registry() as session:
        retire(session, code)
    console.print(f"retired purpose {code}")


def load_purposes(
    catalogue_file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False,
                                                          help="YAML catalogue (default: the sample one).")] = None,
) -> None:
    """Register every purpose of a catalogue file (``purposes: [{code, name, legal_basis, libraries}]``)."""
    from exchange_api.purposes import SAMPLE_PURPOSES
    from exchange_api.registry import load_purposes as load

    with _registry() as session:
        count = len(load(session, catalogue_file or SAMPLE_PURPOSES))
    console.print(f"{count} purposes registered from {catalogue_file or SAMPLE_PURPOSES}")


def purposes(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The purpose catalogue: code, name, legal basis, libraries, in use or retired."""
    import json

    from rich.table import Table

    from exchange_api.registry import list_purposes

    with _sessions()() as session:
        entries = [p.public() | {"active": p.active} for p in list_purposes(session)]
    if as_json:
        print(json.dumps(entries, ensure_ascii=False))
        return
    table = Table(title=f"Purpose catalogue ({len(entries)})")
    for col in ("code", "name", "legal basis", "libraries", "in use"):
        table.add_column(col)
    for e in entries:
        table.add_row(e["code"], e["name"], e["legal_basis"], ", ".join(e["libraries"]), "yes" if e["active"] else "retired")
    console.print(table)


def api_status(
    hours: Annotated[float, typer.Option(help="Look this many hours back.")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Alerts of the exchange API: departments found sweeping (enumerating keys), and whether they are throttled."""
    import json

    from rich.table import Table

    from exchange_api.config import ApiSettings
    from exchange_api.sweeps import sweep_report

    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    rows = sweep_report(_sessions(), since=since, throttle_seconds=ApiSettings().sweep_throttle_seconds)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    throttled = [r for r in rows if r["throttled_until"]]
    if not rows:
        console.print(f"no sweep detected in the last {hours:g} h")
        return
    if throttled:
        console.print(f"[bold red]ALERT:[/] {len(throttled)} department(s) throttled for a suspected sweep")
    table = Table(title=f"Suspected sweeps in the last {hours:g} h")
    for col in ("department", "detections", "last detection (UTC)", "why", "throttled requests", "throttled until"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["department"] or "", str(r["detections"]), (r["last_detection"] or "")[:19], r["last_reason"] or "",
                      str(r["throttled_requests"]), (r["throttled_until"] or "no")[:19])
    console.print(table)


def _audit_log():  # type: ignore[no-untyped-def]
    from exchange_api.audit import AuditLog, audit_salt

    return AuditLog(_sessions(), audit_salt(get_settings().keys_dir))


def access_log(
    id_number: Annotated[str, typer.Argument(help="The person's resident ID number ('-' reads standard input).")],
    since: Annotated[dt.datetime | None, typer.Option(help="Only accesses from this day on.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A person's access log: which department looked at which of their fields, when, and for what purpose."""
    import json
    import sys

    from rich.table import Table

    from exchange_api.lookup import normalise_key
    from exchange_api.models import Department
    from hub.errors import InvalidIdentifier
    from hub.masking import mask_id

    value = sys.stdin.readline().strip() if id_number == "-" else id_number
    try:
        key = normalise_key("population", value)
    except InvalidIdentifier as exc:
        raise _fail(exc) from exc
    rows = [r for r in _audit_log().access_log(key, since=_utc(since)) if r.operation != "access_log"]
    with _sessions()() as session:
        names = {d.code: d.name for d in session.query(Department)}
    entries = [{"at": r.at.isoformat(), "department": r.department, "department_name": names.get(r.department or ""),
                "purpose": r.purpose, "operation": r.operation, "library": r.library,
                "fields": [f for f in r.fields_released.split(",") if f]} for r in rows]
    if as_json:
        print(json.dumps({"person": mask_id(key), "entries": entries}, ensure_ascii=False))
        return
    table = Table(title=f"Who looked at {mask_id(key)} ({len(entries)} accesses)")
    for col in ("when (UTC)", "department", "purpose", "fields"):
        table.add_column(col)
    for e in entries:
        table.add_row(e["at"][:19], f"{e['department_name'] or ''} ({e['department']})", e["purpose"] or "",
                      ", ".join(e["fields"]))
    console.print(table)


def usage(
    since: Annotated[dt.datetime | None, typer.Option(help="From this day on (UTC).")] = None,
    until: Annotated[dt.datetime | None, typer.Option(help="Before this day (UTC).")] = None,
    department: Annotated[str | None, typer.Option(help="Only this department.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Usage per department and purpose: records released (paper proofs replaced), verifications, refusals."""
    import json

    from rich.table import Table

    rows = _audit_log().usage(department=department, since=_utc(since), until=_utc(until))
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(title="Exchange API usage")
    columns = ("department", "purpose", "requests", "records_released", "verifications", "not_found",
               "nothing_releasable", "refused")
    for col in columns:
        table.add_column(col.replace("_", " "))
    for row in rows:
        table.add_row(*(str(row[c] if row[c] is not None else "") for c in columns))
    total = sum(r["records_released"] + r["verifications"] for r in rows)
    console.print(table)
    console.print(f"paper proofs replaced (records released + verifications answered): [bold]{total:,}[/]")


def verify_audit(
    witness: Annotated[list[Path] | None, typer.Option(
        "--witness", help="A department's witness: its answers (compact JWS) or {seq, hash} heads, one a line. "
                          "Repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the audit chain against its hashes, the hub's signed checkpoints and any witness; exit 1 at the first bad row."""
    import json

    from exchange_api.audit import AuditLog, audit_salt
    from exchange_api.audit_checkpoints import checkpoint_dir, read_checkpoints
    from exchange_api.audit_witness import read_witness
    from exchange_api.hub_keys import HubKeyring

    settings = get_settings()
    missing = [str(path) for path in witness or () if not path.is_file()]
    if missing:
        for path in missing:
            error(f"witness file not found: {path}")
        raise typer.Exit(1)
    keyring = HubKeyring(settings.keys_dir)
    # Anchors first, rows after: a checkpoint or answer made meanwhile names rows the walk will then see.
    anchors, problems = read_checkpoints(checkpoint_dir(settings.data_dir), keyring)
    checkpoints, heads, skipped = len(anchors), 0, 0
    for path in witness or ():
        found, bad, without_head = read_witness(path, keyring)
        anchors, problems, heads, skipped = [*anchors, *found], [*problems, *bad], heads + len(found), skipped + without_head
    report = AuditLog(_sessions(), audit_salt(settings.keys_dir)).verify(anchors, problems)
    if as_json:
        print(json.dumps({"ok": report.ok, "rows": report.rows, "last_seq": report.last_seq, "checkpoints": checkpoints,
                          "witness_heads": heads, "witness_answers_without_head": skipped,
                          "first_bad_seq": report.broken_seq,
                          "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in report.problems]},
                         ensure_ascii=False))
    elif report.ok:
        console.print(f"audit chain intact: {report.rows:,} rows, agreeing with {checkpoints:,} checkpoint(s) "
                      f"and {heads:,} witness head(s)", soft_wrap=True)
    else:
        first = report.problems[0]
        headline = (f"audit chain broken at row {report.broken_seq}" if report.broken_seq is not None
                    else "audit chain anchors not trustworthy")
        console.print(f"[red]{headline}:[/] {first.message}", soft_wrap=True)
        for problem in report.problems[1:]:
            console.print(f"  also: {problem.message}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _group(name: str, help_: str, commands: dict[str, Callable[..., None]]) -> typer.Typer:
    """A noun of the command line (``hub keys …``) with its verbs."""
    group = typer.Typer(name=name, help=help_, no_args_is_help=True)
    for verb, command in commands.items():
        group.command(verb)(command)
    return group


def register(app: typer.Typer) -> None:
    """Add the exchange API commands to the ``hub`` command line, the registry's grouped by noun."""
    # Groups are made per call: a module-level Typer would collect each caller's commands twice.
    app.command("serve")(serve)
    app.add_typer(_group("departments", "Departments that call the exchange API: register one, set its limits.",
                         {"register": register_department, "set-limits": set_limits}))
    app.add_typer(_group("keys", "Department public keys (add, retire) and the hub's answer-signing key (rotate-hub).",
                         {"add": add_key, "retire": retire_key, "rotate-hub": rotate_hub_key}))
    app.add_typer(_group("grants", "Approved conditional-sharing grants: record one, revoke one.",
                         {"add": grant, "revoke": revoke_grant}))
    app.add_typer(_group("purposes", "The purpose catalogue requests and grants name.",
                         {"list": purposes, "add": add_purpose, "retire": retire_purpose, "load": load_purposes}))
    app.command("api-status")(api_status)
    app.command("verify-audit")(verify_audit)
    app.command("access-log")(access_log)
    app.command("usage")(usage)

"""The main job on embedded defaults, and a signed lookup from the command line.

``hub demo``: sample department systems → Airflow pipelines → published libraries → the exchange
API answering a signed lookup that the bundled client verifies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.masking import mask_id
from hub.commands.common import LibraryName, error, get_settings

if TYPE_CHECKING:
    from hub.settings import Settings

console = Console()

DEMO_DEPARTMENT = "hrss"
DEMO_PURPOSE = "social_insurance_enrolment"  # 社会保险参保登记: the paper proof this lookup replaces
DEMO_FIELDS = ["id_number", "name", "birth_date", "household_address", "marital_status", "life_status_date"]


def department_key_paths(settings: Settings, department: str) -> tuple[Path, Path]:
    """Where a department's demo private key and key id are kept."""
    folder = settings.keys_dir / "departments"
    return folder / f"{department}.pem", folder / f"{department}.kid"


def ensure_demo_department(settings: Settings) -> tuple[str, Path]:
    """Register the sample purposes, and the demo department with a key and a grant once; return its key id and key file."""
    from cryptography.hazmat.primitives import serialization

    from exchange_api.client import generate_department_key
    from exchange_api.models import exchange_sessions
    from exchange_api.purposes import SAMPLE_PURPOSES
    from exchange_api.registry import add_grant, add_key, load_purposes, register_department

    # The sample catalogue first and every time: a data directory from before the catalogue gets it too.
    with exchange_sessions(settings).begin() as session:
        load_purposes(session, SAMPLE_PURPOSES)
    key_file, kid_file = department_key_paths(settings, DEMO_DEPARTMENT)
    if key_file.exists() and kid_file.exists():
        return kid_file.read_text().strip(), key_file
    kid, private_key, public_pem = generate_department_key()
    with exchange_sessions(settings).begin() as session:
        register_department(session, DEMO_DEPARTMENT, "人力资源和社会保障局")
        add_key(session, DEMO_DEPARTMENT, public_pem, kid=kid)
        add_grant(session, DEMO_DEPARTMENT, "population", DEMO_FIELDS, DEMO_PURPOSE,
                  dt.datetime.now(dt.UTC) + dt.timedelta(days=365), approved_by="public_security")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    key_file.chmod(0o600)
    kid_file.write_text(kid + "\n")
    return kid, key_file


@contextlib.contextmanager
def sample_registry(settings: Settings) -> Iterator[None]:
    """Serve the sample business registry's REST API while the pipeline runs, with a fresh bearer token.

    The token reaches the connector the way a real one would: as the password of the Airflow
    Connection ``hub_business_registry`` (here an ``AIRFLOW_CONN_`` variable of this process).
    """
    from samples.business_registry import FOLDER, create_registry_app

    token = secrets.token_urlsafe(24)
    from hub.serving import serving  # uvicorn: imported by the commands that serve, not by `hub --help`

    with serving(create_registry_app(settings.samples_dir / FOLDER, token)) as url:
        variable = "AIRFLOW_CONN_HUB_BUSINESS_REGISTRY"
        previous = os.environ.get(variable)
        os.environ[variable] = url.replace("http://", f"http://:{token}@")
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = previous


def _sample_id(settings: Settings) -> str:
    import duckdb

    from warehouse.published import current_name

    parquet = settings.snapshots_dir / current_name(settings.snapshots_dir) / "population.parquet"
    (key,) = duckdb.connect().execute(
        f"SELECT id_number FROM '{parquet}' WHERE life_status = 'living' ORDER BY id_number LIMIT 1").fetchone()
    return key


def _print_answer(answer) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"Verified answer {answer.request_id} (snapshot {answer.snapshot_version}, signed with hub key {answer.kid})")
    for col in ("field", "value", "source", "updated"):
        table.add_column(col)
    for name, item in answer.record.items():
        value = item.get("value")
        shown = mask_id(value) if name.endswith("id_number") else value
        table.add_row(name, "" if shown is None else str(shown), item.get("source_department") or "",
                      str(item.get("updated_at") or ""))
    console.print(table)


def demo(
    people: Annotated[int, typer.Option(help="Size of the sample population.")] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the sample generator.")] = 42,
) -> None:
    """Run the main job on embedded defaults: samples → Airflow → snapshot → a signed, verified lookup."""
    from hub.commands.pipeline import run
    from hub.commands.samples import ensure_samples

    settings = get_settings()
    console.rule("1. Sample department systems")
    ensure_samples(settings, people=people, seed=seed)
    console.rule("2. Airflow pipelines (Airflow's own DAG runner)")
    with sample_registry(settings):
        run(source=None, direct=False, full=False)
    console.rule("3. The exchange API answers a signed lookup")
    kid, key_file = ensure_demo_department(settings)
    from exchange_api.client import HubClient

    from exchange_api.app import create_app
    from hub.serving import serving

    with serving(create_app(settings), settings.api_host) as url:
        with HubClient(url, kid, key_file.read_bytes()) as client:
            answer = client.lookup("population", _sample_id(settings), DEMO_PURPOSE, "DEMO-2026-0001")
    _print_answer(answer)
    console.print("[green]The answer's JWS signature was verified against the hub's JWKS.[/]\n")
    console.print("To make a signed lookup yourself:\n"
                  "  .venv/bin/hub serve &                # the exchange API on "
                  f"http://{settings.api_host}:{settings.api_port}\n"
                  f"  .venv/bin/hub lookup <ID number> --department {DEMO_DEPARTMENT} --purpose {DEMO_PURPOSE} "
                  "--case-number CASE-1\n"
                  f"(the demo department's key is {key_file}, key id {kid}; README → 'Signed lookups' "
                  "shows the same request from Python and documents the wire format)")


def lookup(
    key: Annotated[str, typer.Argument(help="ID number, credit code or licence number ('-' reads standard input).")],
    department: Annotated[str, typer.Option(help="Calling department; its key is read from the keys folder.")] = DEMO_DEPARTMENT,
    purpose: Annotated[str, typer.Option(help="Purpose code the grant was given for.")] = DEMO_PURPOSE,
    case_number: Annotated[str, typer.Option(help="The case this lookup serves.")] = "CASE-1",
    library: Annotated[LibraryName, typer.Option(help="The library to look in.")] = LibraryName.population,
    url: Annotated[str | None, typer.Option(help="Base URL of the exchange API.")] = None,
    key_file: Annotated[Path | None, typer.Option(help="The department's Ed25519 private key (PEM).")] = None,
    kid: Annotated[str | None, typer.Option(help="The key id registered for that key.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verified payload as JSON.")] = False,
) -> None:
    """Make one signed lookup and verify the hub's signed answer."""
    import sys

    from exchange_api.client import AnswerNotTrusted, HubClient, HubRequestError

    settings = get_settings()
    default_key, default_kid = department_key_paths(settings, department)
    key_file = key_file or default_key
    kid = kid or (default_kid.read_text().strip() if default_kid.exists() else None)
    if not key_file.exists() or not kid:
        error(f"no key for {department}: give --key-file and --kid (or run hub demo)")
        raise typer.Exit(2)
    value = sys.stdin.readline().strip() if key == "-" else key
    try:
        with HubClient(url or f"http://{settings.api_host}:{settings.api_port}", kid, key_file.read_bytes()) as client:
            answer = client.lookup(library.value, value, purpose, case_number)
    except HubRequestError as exc:
        error(f"refused ({exc.status} {exc.code}): {exc.message}")
        raise typer.Exit(1) from exc
    except AnswerNotTrusted as exc:
        error(f"answer not trusted: {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps({"request_id": answer.request_id, "snapshot_version": answer.snapshot_version,
                          "found": answer.found, "record": answer.record}, ensure_ascii=False))
    elif not answer.found:
        console.print("no record released (no such record, or none of its fields may be released to you)")
    else:
        _print_answer(answer)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("lookup")(lookup)

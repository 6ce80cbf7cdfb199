"""Commands that generate the sample department systems and serve the sample business registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hub.errors import HubError
from hub.commands.common import fail, get_settings

if TYPE_CHECKING:
    from hub.settings import Settings

console = Console()

_STAGE_LABELS = {
    "population": "true population",
    "household": "public security: HJ_RKXX",
    "civil_affairs": "civil affairs: GBK drop",
    "health": "health: deaths drop",
    "business_registry": "market regulation: registry",
    "licences": "licence issuers",
    "ground_truth": "ground truth",
}
RateOption = Annotated[float | None, typer.Option(min=0.0, max=1.0, show_default=False, help="This defect's rate (overrides --defect-rate).")]


def _rates(defect_rate: float | None, overrides: dict[str, float | None]):  # type: ignore[no-untyped-def]
    from samples import DefectRates

    base = DefectRates.uniform(defect_rate) if defect_rate is not None else DefectRates()
    values = base.as_dict() | {name: value for name, value in overrides.items() if value is not None}
    return DefectRates(**values)


def run_generation(settings: Settings, people: int, seed: int, out: Path | None = None,
                   household_url: str | None = None, rates=None):  # type: ignore[no-untyped-def]
    """Generate with a rich progress bar per system; returns the manifest."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from samples import generate_samples
    from samples.generate import STAGES

    columns = (TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        tasks = {stage: bar.add_task(_STAGE_LABELS[stage], total=None, start=False) for stage in STAGES}

        def progress(stage: str, done: int, total: int) -> None:
            task = tasks[stage]
            bar.start_task(task)
            bar.update(task, completed=done, total=max(total, 1))

        return generate_samples(out or settings.samples_dir, people, seed, rates, household_url, progress)


def generate_samples_command(
    people: Annotated[int, typer.Option(help="Size of the true population (100 to 10,000,000).")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed: same seed and size, same bytes.")] = 42,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: settings samples_dir).")] = None,
    household_url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL for HJ_RKXX (postgresql+psycopg://… or mysql+pymysql://…); default: household.sqlite.")] = None,
    defect_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="One rate for every defect (default 0.01 each).")] = None,
    bad_check_digit: RateOption = None,
    old_id_15: RateOption = None,
    full_width_id: RateOption = None,
    missing_id: RateOption = None,
    conflicting_value: RateOption = None,
    duplicate: RateOption = None,
    dangling_holder: RateOption = None,
    expired_still_valid: RateOption = None,
    undecodable_bytes: RateOption = None,
) -> None:
    """Generate the sample department systems, their defects and the ground truth."""
    overrides = {
        "bad_check_digit": bad_check_digit, "old_id_15": old_id_15, "full_width_id": full_width_id,
        "missing_id": missing_id, "conflicting_value": conflicting_value, "duplicate": duplicate,
        "dangling_holder": dangling_holder, "expired_still_valid": expired_still_valid,
        "undecodable_bytes": undecodable_bytes,
    }
    try:
        rates = _rates(defect_rate, overrides)
        manifest = run_generation(get_settings(), people, seed, out, household_url, rates)
    except (HubError, ValueError) as exc:
        raise fail(exc) from exc
    console.print(f"samples in [bold]{manifest.out_dir}[/] (household: {manifest.household})")
    for name, count in manifest.counts.items():
        console.print(f"  {name:<36}{count:>14,}")


def ensure_samples(settings: Settings, people: int, seed: int) -> None:
    """Generate the samples into settings.samples_dir unless the same seed and size are already there."""
    from samples import DefectRates, SampleManifest

    try:
        existing = SampleManifest.load(settings.samples_dir)
        same = (existing.people, existing.seed, existing.rates, existing.household) == (
            people, seed, DefectRates(), "household.sqlite")
        if same and (settings.samples_dir / "household.sqlite").exists():
            console.print(f"samples already in {settings.samples_dir} (people {people:,}, seed {seed})")
            return
    except (OSError, ValueError, KeyError, TypeError):
        pass
    run_generation(settings, people, seed)


def serve_registry_command(
    token: Annotated[str, typer.Option(envvar="HUB_REGISTRY_TOKEN", help="Bearer token callers must present.")],
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8760,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of enterprises.parquet (default: the samples').")] = None,
) -> None:
    """Serve the sample business registry's REST API (market regulation's system)."""
    from samples import serve_registry
    from samples.business_registry import FOLDER

    serve_registry(data_dir or get_settings().samples_dir / FOLDER, host, port, token)


def register(app: typer.Typer) -> None:
    """Add the sample-system commands to the ``hub`` command line."""
    app.command("generate-samples")(generate_samples_command)
    app.command("serve-registry")(serve_registry_command)

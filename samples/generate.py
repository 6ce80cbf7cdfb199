"""Generate every sample department system from one seed: the entry point of the sample generator."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from samples import business_registry, civil_affairs, health, household, licences
from samples.csvdrop import Written
from samples.defects import DefectRates
from samples.ground_truth import GroundTruth
from samples.household_db import BACKGROUND_ROWS, HouseholdWriter, sqlite_url
from samples.legal_persons import build_enterprises, build_social_orgs
from samples.people import build_population, with_foreign_residents
from samples.streams import AS_OF
from hub.errors import ConfigError

MIN_PEOPLE, MAX_PEOPLE = 100, 10_000_000
STAGES = ("population", "household", "civil_affairs", "health", "business_registry", "licences", "ground_truth")
HOUSEHOLD_FILE = "household.sqlite"
MANIFEST = "manifest.json"
GROUND_TRUTH = "ground_truth"
# Everything a run writes, removed first so that no file of an earlier, bigger run lingers.
OWNED = (HOUSEHOLD_FILE, MANIFEST, GROUND_TRUTH, civil_affairs.FOLDER, health.FOLDER, business_registry.FOLDER,
         licences.FOLDER, ".scratch")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class SampleManifest:
    """What was generated: seed, sizes, rates, row counts, defect tally and paths (relative to ``out_dir``)."""

    out_dir: Path
    seed: int
    people: int
    rates: DefectRates
    rows_per_file: int
    household: str  # "household.sqlite" or the database URL (password hidden)
    counts: dict[str, int] = field(default_factory=dict)
    defects: list[dict] = field(default_factory=list)
    paths: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The manifest as written to manifest.json."""
        # No clock time and no absolute path: the same seed and size give the same bytes.
        return {
            "generator": "samples", "format": 1, "seed": self.seed, "people": self.people,
            "as_of": AS_OF.isoformat(), "rates": self.rates.as_dict(), "rows_per_file": self.rows_per_file,
            "household": self.household, "counts": self.counts, "defects": self.defects, "paths": self.paths,
        }

    def write(self) -> Path:
        """Write ``manifest.json`` into the sample folder."""
        path = self.out_dir / MANIFEST
        path.write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, out_dir: Path) -> SampleManifest:
        """Read the manifest of the samples in ``out_dir``."""
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return cls(out_dir, data["seed"], data["people"], DefectRates(**data["rates"]), data["rows_per_file"],
                   data["household"], data["counts"], data["defects"], data["paths"])


def generate_samples(out_dir: Path, people: int, seed: int = 42, rates: DefectRates | None = None,
                     household_url: str | None = None, progress: Progress | None = None, *,
                     rows_per_file: int = 250_000) -> SampleManifest:
    """Write every sample department system under ``out_dir`` (the household table to ``household_url`` if given)."""
    if not MIN_PEOPLE <= people <= MAX_PEOPLE:
        raise ConfigError(f"people must be between {MIN_PEOPLE} and {MAX_PEOPLE}, got {people}")
    if rows_per_file < 1:
        raise ConfigError("rows_per_file must be at least 1")
    out_dir = Path(out_dir).resolve()
    _clean(out_dir)
    url = household_url or sqlite_url(out_dir / HOUSEHOLD_FILE)
    shown = HOUSEHOLD_FILE if household_url is None else sa.engine.make_url(url).render_as_string(hide_password=True)
    run = _Run(out_dir, seed, rates or DefectRates(), rows_per_file, GroundTruth(out_dir / GROUND_TRUTH),
               SampleManifest(out_dir, seed, people, rates or DefectRates(), rows_per_file, shown),
               progress or (lambda stage, done, total: None))
    # Started first: the loader's start-up overlaps with building the population.
    writer = HouseholdWriter(url, out_dir / ".scratch", background=people >= BACKGROUND_ROWS)
    watcher = threading.Event()
    try:
        run.generate(people, writer, watcher)
    except BaseException:
        writer.abort()
        raise
    finally:
        watcher.set()
        run.truth.close()
    shutil.rmtree(out_dir / ".scratch", ignore_errors=True)
    run.manifest.write()
    return run.manifest


@dataclass
class _Run:
    """One generation: the stages in order, each recording its files, counts and ground truth."""

    out_dir: Path
    seed: int
    rates: DefectRates
    rows_per_file: int
    truth: GroundTruth
    manifest: SampleManifest
    report: Progress

    def generate(self, people: int, writer: HouseholdWriter, watcher: threading.Event) -> None:
        """Every system, in an order that lets the household table load while the others are built."""
        self.report("population", 0, people)
        pop = build_population(people, self.seed)
        if self.rates.foreign_residents:
            pop = with_foreign_residents(pop, self.rates.foreign_residents, self.seed)
        self.report("population", people, people)
        self.household(pop, writer, watcher)
        ent = build_enterprises(pop, self.seed)
        orgs = build_social_orgs(pop, self.seed, serial0=ent.n)
        self.civil_affairs(pop, orgs)
        self.stage("health", health.DEATHS, lambda: health.write_deaths(
            pop, self.rates, self.seed, self.out_dir, self.rows_per_file, self.truth))
        self.stage("market_regulation", business_registry.DATASET, lambda: business_registry.write_registry(
            ent, pop, self.rates, self.seed, self.out_dir, self.truth), progress="business_registry")
        self.licences(pop, ent, serial0=ent.n + orgs.n)
        self.report("ground_truth", 0, 1)
        self.truth.close()
        self.manifest.counts["ground_truth/entities"] = self.truth.entity_rows
        self.manifest.counts["ground_truth/defects"] = sum(row["injected"] for row in self.truth.tally)
        self.manifest.defects = self.truth.tally
        self.manifest.paths["ground_truth"] = [f"{GROUND_TRUTH}/defects.parquet", f"{GROUND_TRUTH}/entities.parquet", MANIFEST]
        self.report("ground_truth", 1, 1)
        writer.wait()
        watcher.set()
        self.report("household", writer.rows, writer.rows)

    def household(self, pop, writer: HouseholdWriter, watcher: threading.Event) -> None:  # type: ignore[no-untyped-def]
        """Public security: build HJ_RKXX, hand it to the writer, record its ground truth meanwhile."""
        hh = household.build_household(pop, self.rates, self.seed)
        self.report("household", 0, hh.table.num_rows)
        writer.submit(hh.table)
        _watch(writer, self.report, watcher)
        hh.record(pop, self.truth)  # while the table loads
        self.manifest.counts[household.TABLE] = hh.table.num_rows
        self.manifest.paths["public_security"] = [self.manifest.household]

    def civil_affairs(self, pop, orgs) -> None:  # type: ignore[no-untyped-def]
        """Civil affairs: marriage registrations and social organisations (GBK)."""
        self.report("civil_affairs", 0, 2)
        marriages = civil_affairs.write_marriages(pop, self.rates, self.seed, self.out_dir, self.rows_per_file, self.truth)
        self.report("civil_affairs", 1, 2)
        social = civil_affairs.write_social_orgs(orgs, pop, self.rates, self.seed, self.out_dir, self.rows_per_file,
                                                 self.truth)
        self.report("civil_affairs", 2, 2)
        self.manifest.counts.update({civil_affairs.MARRIAGES: marriages.rows, civil_affairs.SOCIAL_ORGS: social.rows})
        self.manifest.paths["civil_affairs"] = marriages.files + social.files

    def stage(self, system: str, dataset: str, write: Callable[[], Written], progress: str | None = None) -> None:
        """One system with one dataset: write it, count it, report it."""
        self.report(progress or system, 0, 1)
        written = write()
        self.manifest.counts[dataset] = written.rows
        self.manifest.paths[system] = written.files
        self.report(progress or system, 1, 1)

    def licences(self, pop, ent, serial0: int) -> None:  # type: ignore[no-untyped-def]
        """The licence issuers: one drop per department."""
        self.report("licences", 0, len(licences.HEADERS))
        issued = licences.write_licences(pop, ent, self.rates, self.seed, self.out_dir, self.rows_per_file, self.truth,
                                         serial0=serial0)
        for dept, (lic, events) in issued.items():
            self.manifest.counts[f"licences/{dept}"] = lic.rows
            self.manifest.counts[f"licence_events/{dept}"] = events.rows
            self.manifest.paths.setdefault(dept, []).extend(lic.files + events.files)
        self.report("licences", len(licences.HEADERS), len(licences.HEADERS))


def _clean(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _watch(writer: HouseholdWriter, report: Progress, done: threading.Event) -> None:
    """Report the background household load every half second until ``done`` is set."""

    def loop() -> None:
        while not done.wait(0.5):
            report("household", writer.written, writer.rows)

    threading.Thread(target=loop, name="household-progress", daemon=True).start()

"""Landing: each extraction written as immutable Parquet under its run's own folder, with a manifest.

A retry of the same run replaces its own folder and nothing else, starting again from the watermark
that run started from; the source's watermark advances only once the folder is complete.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from connectors.base import Connector, Extraction
from warehouse.runs import get_watermark, record_run, set_watermark, utcnow
from hub.checksums import sha256_file

MANIFEST = "_manifest.json"
DATA_FILE = "part-0.parquet"


@dataclass(frozen=True)
class LandingManifest:
    """What one landing holds: source, run, watermark before and after, rows, checksum."""

    source: str
    run_id: str
    since: str | None
    watermark: str | None
    rows: int
    sha256: str
    file: str
    started_at: str
    finished_at: str
    quarantined: int = 0


def run_folder_name(run_id: str) -> str:
    """A file-system-safe folder name for an Airflow or CLI run id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


def read_manifest(run_dir: Path) -> LandingManifest | None:
    try:
        return LandingManifest(**json.loads((run_dir / MANIFEST).read_text()))
    except FileNotFoundError:
        return None


def landed_runs(landing_dir: Path, source: str) -> list[tuple[Path, LandingManifest]]:
    """The complete landings of ``source``, oldest first."""
    out = []
    for run_dir in (landing_dir / source).glob("*"):
        manifest = read_manifest(run_dir) if run_dir.is_dir() and not run_dir.name.endswith(".partial") else None
        if manifest:
            out.append((run_dir, manifest))
    return sorted(out, key=lambda item: item[1].finished_at)


def sweep_partials(landing_dir: Path, source: str) -> list[str]:
    """Remove the ``.partial`` folders killed extractions of ``source`` left; only under the source's run lock."""
    removed = []
    for partial in sorted((landing_dir / source).glob("*.partial")):
        shutil.rmtree(partial, ignore_errors=True)
        removed.append(partial.name)
    return removed


class _BackgroundWriter:
    """Writes Parquet in a second thread while the next batch is read: Arrow releases the GIL for both."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing-writer")
        self._pending: list[Future] = []

    def __enter__(self) -> "_BackgroundWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        # At most two batches in flight keeps memory flat however large the source.
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self, raise_errors: bool = True) -> None:
        while self._pending:
            future = self._pending.pop(0)
            if raise_errors:
                future.result()
            else:
                future.exception()


def _recover_watermark(engine: Engine, landing_dir: Path, source: str) -> str | None:
    # A crash between a complete landing and the watermark update leaves a landing that started
    # from the stored watermark: adopt its end, so those rows are not landed twice.
    current = get_watermark(engine, source)
    for _dir, manifest in reversed(landed_runs(landing_dir, source)):
        if manifest.since == current and manifest.watermark != current:
            set_watermark(engine, source, manifest.watermark, manifest.run_id)
            return manifest.watermark
    return current


def _write_batches(extraction: Extraction, connector: Connector, target: Path, progress) -> int:  # type: ignore[no-untyped-def]
    """Write the extraction's batches to ``target``; the row count."""
    rows, writer = 0, None
    with _BackgroundWriter() as background:
        try:
            for batch in extraction.batches:
                if writer is None:
                    # zstd level 1 without dictionaries: a third of the CPU of the defaults, same size here.
                    writer = pq.ParquetWriter(target, batch.schema, compression="zstd", compression_level=1,
                                              use_dictionary=False)
                background.submit(writer.write_batch, batch)
                rows += batch.num_rows
                if progress:
                    progress(batch.num_rows)
            background.drain()
        finally:
            background.drain(raise_errors=False)
            if writer is not None:
                writer.close()
            connector.close()
    if writer is None:  # nothing changed: an empty landing still records the run
        pq.write_table(pa.table({}), target)
    return rows


def land(source: str, connector: Connector, run_id: str, landing_dir: Path, engine: Engine, *, full: bool = False,
         progress=None) -> LandingManifest:
    """Extract ``source`` since its watermark into ``landing_dir/source/run``; then advance the watermark."""
    started = utcnow()
    run_dir = landing_dir / source / run_folder_name(run_id)
    previous = read_manifest(run_dir)
    # A retry of this run starts where this run first started, so it lands the same rows again.
    since = previous.since if previous else _recover_watermark(engine, landing_dir, source)
    partial = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        extraction = connector.extract(None if full else since, full=full)
        rows = _write_batches(extraction, connector, partial / DATA_FILE, progress)
        if extraction.quarantined:
            (partial / "_quarantine.json").write_text(json.dumps(extraction.quarantined, ensure_ascii=False,
                                                                 default=str))
        manifest = LandingManifest(source=source, run_id=run_id, since=extraction.since,
                                   watermark=extraction.watermark, rows=rows, sha256=sha256_file(partial / DATA_FILE),
                                   file=DATA_FILE, started_at=started.isoformat(), finished_at=utcnow().isoformat(),
                                   quarantined=len(extraction.quarantined))
        (partial / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
    except BaseException:
        # A failed extraction (a full disk included) leaves nothing half-written behind; a killed one leaves
        # only ".partial", which the next run of the source sweeps (sweep_partials).
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if run_dir.exists():
        shutil.rmtree(run_dir)
    partial.rename(run_dir)
    # A late retry of an older run must not move the watermark back past a newer run's.
    if get_watermark(engine, source) in (since, manifest.watermark):
        set_watermark(engine, source, manifest.watermark, run_id)
    record_run(engine, run_id, "land", source, "success", rows, started_at=started)
    return manifest

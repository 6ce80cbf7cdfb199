"""Every kind of defect the sample generator injects is caught by some rule (recall >= 99% per type, measured
against its ground truth), and no valid record is quarantined (clean samples: an empty quarantine)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import duckdb
import pyarrow.parquet as pq
import pytest

from samples import DefectRates, generate_samples
from tests.quality import samples


PEOPLE = 3_000
LIBRARIES = ["population", "legal_person", "licence"]
# The ID fields of the records that tell another department's side of a conflict, by ground-truth role.
EVIDENCE = {"HYZK": ("marriage_registrations", {"husband": "男方身份证号", "wife": "女方身份证号"}),
            "SWBZ": ("deaths", {"deceased": "身份证号"})}
UNUSABLE = {"bad_check_digit", "missing_id"}  # an ID value that links to nobody


@pytest.fixture
def sample_sources(monkeypatch, settings):
    monkeypatch.setenv("HUB_SOURCES_FILE", str(samples.SOURCES_FILE))
    from connectors.config import configured_sources
    from hub.settings import get_settings

    get_settings.cache_clear()
    configured_sources.cache_clear()
    return get_settings()


def _run(settings, rates: DefectRates, seed: int):  # type: ignore[no-untyped-def]
    from hub import jobs

    generate_samples(settings.samples_dir, PEOPLE, seed=seed, rates=rates, rows_per_file=1_000)
    with samples.registry(settings.samples_dir):
        staged = samples.stage_all(list(jobs.sources()), "run-1")
    tables = samples.reconcile_and_check(LIBRARIES, "run-1")
    return jobs.sources(), staged, tables


def _masked(settings, sources) -> dict[tuple[str, str], str]:  # type: ignore[no-untyped-def]
    """Defects that cannot be seen from the data alone, with why: (dataset, record id) -> reason."""
    truth = pq.read_table(settings.samples_dir / "ground_truth" / "defects.parquet").to_pylist()
    entities = pq.read_table(settings.samples_dir / "ground_truth" / "entities.parquet").to_pylist()
    defects_of: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for d in truth:
        defects_of[(d["dataset"], d["record_id"])].append(d)
    person_of = {(e["dataset"], e["record_id"], e["role"]): e["entity_key"] for e in entities}
    records_of: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)  # (dataset, person) -> (record, role)
    for e in entities:
        if e["entity_kind"] == "person" and e["entity_key"]:
            records_of[(e["dataset"], e["entity_key"])].append((e["record_id"], e["role"]))

    def usable(dataset: str, record: str, id_field: str | None) -> bool:
        return not any(d["defect"] == "undecodable_bytes" or (d["defect"] in UNUSABLE and d["field"] == id_field)
                       for d in defects_of[(dataset, record)])

    out = {}
    for d in truth:
        key = (d["dataset"], d["record_id"])
        others = [o["defect"] for o in defects_of[key] if o is not d and o["defect"] in UNUSABLE | {"expired_still_valid"}]
        if d["defect"] == "conflicting_value" and d["dataset"] == "HJ_RKXX":
            if others:
                out[key + (d["defect"],)] = f"the record itself fails on {others[0]}"
                continue
            dataset, roles = EVIDENCE[d["field"]]
            person = person_of[("HJ_RKXX", d["record_id"], "person")]
            if not any(usable(dataset, rec, roles.get(role)) for rec, role in records_of[(dataset, person)]):
                out[key + (d["defect"],)] = f"every {dataset} record of the person is unreadable or unlinkable"
        elif d["defect"] == "conflicting_value":  # the registry's legal representative against the population
            person = person_of[("enterprises", d["record_id"], "legal_rep")]
            if others:
                out[key + (d["defect"],)] = f"the record itself fails on {others[0]}"
            elif not any(usable("HJ_RKXX", rec, "SFZH") for rec, _role in records_of[("HJ_RKXX", person)]):
                out[key + (d["defect"],)] = "the representative's household record is unreadable"
        elif d["defect"] == "dangling_holder" and others:
            out[key + (d["defect"],)] = f"the licence itself fails on {others[0]}"
    return out


def test_every_injected_defect_is_caught(sample_sources):
    settings = sample_sources
    rates = dataclasses.replace(DefectRates.uniform(0.03), expired_still_valid=0.5)
    sources, staged, tables = _run(settings, rates, seed=11)
    work = settings.warehouse_dir / "work.duckdb"
    recall = samples.measure(work, settings.samples_dir, sources)
    masked = _masked(settings, sources)
    con = duckdb.connect(str(work), read_only=True)
    quarantined = {(s, r.split("#")[0]) for s, r in con.execute(
        "SELECT source, source_record_id FROM quarantine WHERE source_record_id IS NOT NULL").fetchall()}
    report = []
    for defect, injected in sorted(recall.injected.items()):
        excused = [m for m in recall.missed.get(defect, [])
                   if (_dataset(m[0]), m[1], defect) in masked]
        for name, record, _field in excused:
            # Not caught as itself, but never published unnoticed either: the record, or its counterpart, is quarantined.
            why = masked[(_dataset(name), record, defect)]
            assert (name, record) in quarantined or "unreadable" in why or "unlinkable" in why, (defect, record, why)
        detectable = injected - len(excused)
        rate = recall.caught.get(defect, 0) / detectable if detectable else 1.0
        report.append(f"{defect}: {recall.caught.get(defect, 0)}/{detectable} caught ({len(excused)} masked by another defect)")
        assert injected >= 5, f"too few {defect} injected to measure recall"
        assert rate >= 0.99, (defect, rate, [m for m in recall.missed.get(defect, []) if m not in excused][:10])
        assert len(excused) <= 0.25 * injected, (defect, len(excused))  # a sanity bound: masking stays the exception
    print("\n".join(report))
    assert set(recall.injected) == {"bad_check_digit", "old_id_15", "full_width_id", "missing_id", "conflicting_value",
                                    "duplicate", "dangling_holder", "expired_still_valid", "undecodable_bytes"}
    # Nothing silently dropped: every landed record is staged or quarantined.
    for name, result in staged.items():
        landed = con.execute("SELECT count(*) FROM quarantine WHERE source = ? AND stage = 'connector'", [name]).fetchone()[0]
        rows = con.execute("SELECT count(*) FROM quarantine WHERE source = ? AND stage = 'row'", [name]).fetchone()[0]
        assert result.quarantined == landed + rows, name
    assert tables.blocking == [] and tables.held_back["licence"] > 0


def _dataset(source: str) -> str:
    return {v: k[1] for k, v in samples.DATASETS.items()}.get(source, "licences")


def test_no_valid_record_is_quarantined(sample_sources):
    settings = sample_sources
    sources, staged, tables = _run(settings, DefectRates.none(), seed=5)
    con = duckdb.connect(str(settings.warehouse_dir / "work.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM quality_findings").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM quality_notes WHERE rule NOT LIKE '%+%'").fetchone()[0] == 0
    assert all(r.quarantined == 0 and r.staged > 0 for r in staged.values())
    assert tables.blocking == [] and tables.held_back == {"licence": 0}

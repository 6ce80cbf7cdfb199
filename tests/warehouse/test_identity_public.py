"""Identity resolution on public records nobody here generated: a 1,000-pair slice of FEBRL 4 through the configuration alone.

The same path as ``bench/bench_identity_public.py`` (shared code in ``bench/febrl.py``): two
department file drops (A with valid ID numbers, B without), a source configuration, the hub's own
ingest, stage and identity steps at the default identity configuration, pairwise scores against
FEBRL's true links.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench import febrl
from connectors.config import load_sources
from schemas.ids import is_valid_resident_id

PAIRS = 1_000


@pytest.fixture(scope="module")
def data() -> febrl.Febrl:
    return febrl.load(PAIRS)


def test_department_a_gets_valid_distinct_id_numbers_and_the_configuration_loads(data, tmp_path):
    prepared = febrl.prepare(tmp_path, data)
    ids = list(prepared.ids.values())
    assert len(ids) == len(set(ids)) == PAIRS
    assert all(is_valid_resident_id(i) for i in ids)
    loaded = load_sources(prepared.sources_file)
    assert loaded[febrl.A_SOURCE].role != "master"
    assert loaded[febrl.B_SOURCE].carries_key is False
    assert len(data.links) == PAIRS and len(data.a) == len(data.b) == PAIRS


def test_febrl_slice_is_linked_at_the_default_threshold(data, tmp_path, hub_env, monkeypatch):
    prepared = febrl.prepare(tmp_path / "febrl", data)
    for name, value in febrl.environment(prepared, hub_env).items():
        monkeypatch.setenv(name, value)
    run = febrl.run_hub(prepared, diagnose=True)
    scores = febrl.score(run.pairs, data.links)
    why = dict(Counter(r["why"] for r in run.diagnosis))
    assert scores.precision >= 0.99, f"precision {scores.precision:.4f} ({scores}); missed and wrong: {why}"
    assert scores.recall >= 0.95, f"recall {scores.recall:.4f} ({scores}); missed and wrong: {why}"

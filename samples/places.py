"""Region codes (GB/T 2260, weighted towards a few cities so households cluster) and street addresses."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from samples import vocab
from samples.text import join, pick
from schemas.regions import current_counties, full_name, regions, successors

FIRST_YEAR, LAST_YEAR = 1930, 2025
# Prefecture prefixes of the cities most people live in (Hangzhou, Shenzhen, Chengdu, Wuhan,
# Nanjing, Beijing, Shanghai, Xi'an), and the share of people living there.
HOT_CITIES = ("3301", "4403", "5101", "4201", "3201", "1101", "3101", "6101")
HOT_SHARE = 0.65


@dataclass(frozen=True)
class Places:
    """Current county-level regions as arrays: index i everywhere is the i-th county."""

    codes: tuple[str, ...]
    code_digits: np.ndarray  # (m, 6) ASCII
    full: pa.StringArray  # 浙江省杭州市西湖区
    local: pa.StringArray  # 杭州市西湖区 (no province, except for municipalities)
    city: pa.StringArray  # 杭州 (prefecture without 市; the municipality for 北京 etc.)
    county: pa.StringArray  # 西湖区
    urban: np.ndarray  # bool: a 区 (district) rather than a county or county-level city
    p: np.ndarray  # sampling probabilities
    hot: np.ndarray  # indices of the hot cities' counties
    cold: np.ndarray  # indices of the others
    id_ok: np.ndarray  # (m, years) bool: code valid in that birth year (as stdnum checks it)
    id_region: np.ndarray  # (m, years): the county itself if valid that year, else one of its prefecture (or province)


def _years_valid(code: str) -> np.ndarray:
    ok = np.zeros(LAST_YEAR - FIRST_YEAR + 1, dtype=bool)
    for r in regions()[code]:
        lo, hi = max(r.start, FIRST_YEAR), min(r.end, LAST_YEAR)
        if lo <= hi:
            ok[lo - FIRST_YEAR : hi - FIRST_YEAR + 1] = True
    return ok


def _id_regions(codes: tuple[str, ...], id_ok: np.ndarray) -> np.ndarray:
    """Per (county, birth year): a county code valid that year, as near as possible (same prefecture, then province)."""
    m, n_years = id_ok.shape
    out = np.empty((m, n_years), dtype=np.int32)
    groups = [np.unique([c[:k] for c in codes], return_inverse=True)[1] for k in (4, 2)]
    for y in range(n_years):
        valid = id_ok[:, y]
        choice = np.where(valid, np.arange(m), -1)
        for group in groups:
            first = np.full(group.max() + 1, m, dtype=np.int64)
            np.minimum.at(first, group[valid], np.flatnonzero(valid))
            choice = np.where((choice < 0) & (first[group] < m), first[group], choice)
        out[:, y] = np.where(choice < 0, np.flatnonzero(valid)[0], choice)
    return out


def _name(code: str) -> str:
    found = regions().get(code, ())
    return found[-1].name if found else ""


@lru_cache(maxsize=1)
def places() -> Places:
    """The county table, built once per process."""
    counties = current_counties()
    codes = tuple(r.code for r in counties)
    full, local, city = [], [], []
    for r in counties:
        name = full_name(r.code)
        prefecture = _name(r.code[:4] + "00")
        municipality = prefecture in {"", "市辖区", "县"}
        full.append(name)
        local.append(name if municipality else name.removeprefix(r.province))
        city.append((r.province if municipality else prefecture).removesuffix("市"))
    code_digits = np.frombuffer("".join(codes).encode(), dtype=np.uint8).reshape(-1, 6).copy()
    hot = np.array([c[:4] in HOT_CITIES for c in codes])
    p = np.where(hot, HOT_SHARE / hot.sum(), (1 - HOT_SHARE) / (~hot).sum())
    id_ok = np.stack([_years_valid(c) for c in codes])
    id_region = _id_regions(codes, id_ok)
    return Places(
        codes=codes, code_digits=code_digits, full=pa.array(full), local=pa.array(local), city=pa.array(city),
        county=pa.array([r.name for r in counties]), urban=np.array([r.name.endswith("区") for r in counties]),
        p=p / p.sum(), hot=np.flatnonzero(hot), cold=np.flatnonzero(~hot), id_ok=id_ok, id_region=id_region,
    )


@lru_cache(maxsize=1)
def retired_codes() -> dict[str, tuple[str, ...]]:
    """County code in use -> the retired GB/T 2260 codes it continues (大兴县 110224 -> 大兴区 110115).

    The inverse of ``schemas.regions.successors``: the generator writes the old codes the hub reads back.
    """
    out: dict[str, list[str]] = {}
    for old, current in sorted(successors().items()):
        out.setdefault(current, []).append(old)
    return {code: tuple(old) for code, old in out.items()}


def sample_regions(rng: np.random.Generator, n: int) -> np.ndarray:
    """County indices: HOT_SHARE of them spread evenly over the hot cities, the rest over all others."""
    pl = places()
    hot = pl.hot[rng.integers(0, len(pl.hot), n)]
    return np.where(rng.random(n) < HOT_SHARE, hot, pl.cold[rng.integers(0, len(pl.cold), n)]).astype(np.int32)


def addresses(rng: np.random.Generator, region: np.ndarray, urban_only: bool = False) -> pa.Array:
    """Street addresses in the given counties: 浙江省杭州市西湖区文三路123号5幢2单元301室, or a village address."""
    n = len(region)
    if urban_only:
        return _flats(rng, region)
    is_flat = rng.random(n) < np.where(places().urban[region], 0.92, 0.45)
    flats, villages = np.flatnonzero(is_flat), np.flatnonzero(~is_flat)
    # Each kind built for its own rows, then put back in order (cheaper than choosing row by row).
    position = np.empty(n, dtype=np.int64)
    position[flats], position[villages] = np.arange(len(flats)), len(flats) + np.arange(len(villages))
    both = pa.concat_arrays([_flats(rng, region[flats]), _villages(rng, region[villages])])
    return both.take(pa.array(position))


def _flats(rng: np.random.Generator, region: np.ndarray) -> pa.Array:
    n = len(region)
    return join(
        places().full.take(pa.array(region)), pick(vocab.STREETS, rng.integers(0, len(vocab.STREETS), n)),
        _num(np.minimum(rng.geometric(0.012, n), 999)), "号", _num(rng.integers(1, 31, n)), "幢",
        _num(rng.integers(1, 7, n)), "单元", _num(rng.integers(1, 34, n) * 100 + rng.integers(1, 5, n)), "室",
    )


def _villages(rng: np.random.Generator, region: np.ndarray) -> pa.Array:
    n = len(region)
    return join(
        places().full.take(pa.array(region)), pick(vocab.TOWNS, rng.integers(0, len(vocab.TOWNS), n)),
        pick(vocab.VILLAGES, rng.integers(0, len(vocab.VILLAGES), n)), "村",
        _num(rng.integers(1, 16, n)), "组", _num(np.minimum(rng.geometric(0.03, n), 300)), "号",
    )


def _num(values: np.ndarray) -> pa.Array:
    """Plain decimal numbers as text."""
    return pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string())


"""The true legal persons: enterprises (market regulation) and social organisations (civil affairs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samples import vocab
from samples.idnums import credit_codes
from samples.people import LIVING, Population
from samples.places import addresses, places, sample_regions
from samples.streams import AS_OF_DAY, UPDATES_FROM, UPDATES_TO, between, stream, years
from samples.text import from_fixed, join, pick

ACTIVE, REVOKED, DEREGISTERED = 0, 1, 2
ENTERPRISES_PER_PERSON = 0.2
SOCIAL_ORGS_PER_PERSON = 1 / 400


@dataclass
class LegalPersons:
    """One row per legal person, ordered by (updated, code): the order the registry serves them in."""

    codes: np.ndarray  # (k, 18) uint8
    kind: np.ndarray  # second character of the code: b'1', b'2', b'3' (as uint8)
    name: pa.Array
    rep: np.ndarray  # legal representative: person index
    region: np.ndarray  # index into places()
    address: pa.Array
    capital: np.ndarray  # registered capital, 10 000 yuan
    scope: pa.Array
    established: np.ndarray  # datetime64[D]
    status: np.ndarray  # ACTIVE / REVOKED / DEREGISTERED
    status_date: np.ndarray  # datetime64[D], NaT while active
    updated: np.ndarray  # datetime64[s]

    @property
    def n(self) -> int:
        return len(self.kind)

    def code_strings(self, rows: np.ndarray | None = None) -> pa.Array:
        """Credit codes as strings (all, or of ``rows``)."""
        return from_fixed(self.codes if rows is None else self.codes[rows])

    def end(self) -> np.ndarray:
        """The day the legal person stopped existing, or AS_OF while active."""
        return np.where(self.status == ACTIVE, AS_OF_DAY, self.status_date).astype("datetime64[D]")


def org_salt(seed: int) -> int:
    """One salt for every organisation code of a sample, so serials never collide across kinds."""
    return int(stream(seed, "org-codes").integers(0, 10**8))


def _common(rng: np.random.Generator, pop: Population, k: int, authority: str, kind: np.ndarray, serial0: int,
            seed: int, status_p: tuple[float, float, float], since: str) -> dict:
    adults = np.flatnonzero((pop.life == LIVING) & (pop.birth < AS_OF_DAY - years(20)))
    rep = adults[rng.integers(0, len(adults), k)] if len(adults) else rng.integers(0, pop.n, k)
    region = np.where(rng.random(k) < 0.7, pop.region[rep], sample_regions(rng, k)).astype(np.int32)
    earliest = np.maximum(pop.birth[rep] + years(18), np.datetime64(since))
    span = np.maximum((AS_OF_DAY - earliest).astype(np.int64), 1)
    established = earliest + (rng.random(k) ** 0.7 * span).astype(np.int64)  # more recent than old
    status = rng.choice(3, size=k, p=status_p).astype(np.uint8)
    closed = between(rng, established + 30, np.full(k, AS_OF_DAY))
    status[closed >= AS_OF_DAY] = ACTIVE  # founded too recently to have closed
    status_date = np.where(status == ACTIVE, np.datetime64("NaT"), closed).astype("datetime64[D]")
    updated = _updated(rng, np.where(status == ACTIVE, established, status_date))
    codes = credit_codes(np.full(k, ord(authority), dtype=np.uint8), kind, places().code_digits[region],
                         np.arange(serial0, serial0 + k), org_salt(seed))
    return dict(codes=codes, kind=kind, rep=rep, region=region, established=established.astype("datetime64[D]"),
                status=status, status_date=status_date, updated=updated)


def _updated(rng: np.random.Generator, last_event: np.ndarray) -> np.ndarray:
    """Update time in the last two years, never before the last registered event."""
    span = (UPDATES_TO - UPDATES_FROM).astype(np.int64)
    t = UPDATES_FROM + (rng.random(len(last_event)) * span).astype("timedelta64[s]")
    event = last_event.astype("datetime64[s]") + (rng.random(len(last_event)) * 86_400).astype("timedelta64[s]")
    return np.minimum(np.maximum(t, event), UPDATES_TO - np.timedelta64(1, "s"))


def _sorted(fields: dict) -> LegalPersons:
    """Rows in (updated, code) order."""
    keys = pa.table({"updated": pa.array(fields["updated"]), "code": from_fixed(fields["codes"])})
    order = pc.sort_indices(keys, [("updated", "ascending"), ("code", "ascending")]).to_numpy()
    out = {k: (v.take(pa.array(order)) if isinstance(v, pa.Array) else v[order]) for k, v in fields.items()}
    return LegalPersons(**out)


def build_enterprises(pop: Population, seed: int) -> LegalPersons:
    """About one enterprise per five people: companies (91), individual businesses (92), cooperatives (93)."""
    rng = stream(seed, "enterprises")
    k = max(1, round(pop.n * ENTERPRISES_PER_PERSON))
    kind = np.frombuffer(b"123", dtype=np.uint8)[rng.choice(3, size=k, p=[0.75, 0.22, 0.03])]
    f = _common(rng, pop, k, "9", kind, 0, seed, (0.85, 0.05, 0.10), "1992-01-01")
    pl = places()
    city, county = pl.city.take(pa.array(f["region"])), pl.county.take(pa.array(f["region"]))
    company = join(city, pick(vocab.COMPANY_WORDS, rng.integers(0, len(vocab.COMPANY_WORDS), k)),
                   pick(vocab.INDUSTRIES, rng.integers(0, len(vocab.INDUSTRIES), k)),
                   pick(vocab.COMPANY_SUFFIXES, rng.choice(3, size=k, p=vocab.COMPANY_SUFFIX_P)))
    shop = join(county, pop.name.take(pa.array(f["rep"])), pick(vocab.SHOPS, rng.integers(0, len(vocab.SHOPS), k)))
    coop = join(county, pick(vocab.VILLAGES, rng.integers(0, len(vocab.VILLAGES), k)),
                pick(vocab.COOPERATIVE_PRODUCTS, rng.integers(0, len(vocab.COOPERATIVE_PRODUCTS), k)), "专业合作社")
    name = pc.if_else(pa.array(kind == ord("1")), company, pc.if_else(pa.array(kind == ord("2")), shop, coop))
    capital = np.where(kind == ord("1"), np.maximum(1, np.round(rng.lognormal(np.log(100), 1.3, k))),
                       np.where(kind == ord("2"), rng.integers(1, 51, k), rng.integers(10, 501, k))).astype(np.float64)
    scopes = pa.array(vocab.BUSINESS_SCOPES)
    scope = join(*[x for i in range(3) for x in (pick(scopes, rng.integers(0, len(scopes), k)), "；")][:-1], vocab.SCOPE_TAIL)
    f.update(name=name, address=addresses(rng, f["region"], urban_only=True), capital=capital, scope=scope)
    return _sorted(f)


SOCIAL_KINDS = {ord("1"): "社会团体", ord("2"): "民办非企业单位", ord("3"): "基金会"}


def build_social_orgs(pop: Population, seed: int, serial0: int) -> LegalPersons:
    """About one social organisation per 400 people: associations (51), non-profits (52), foundations (53)."""
    rng = stream(seed, "social-orgs")
    k = max(1, round(pop.n * SOCIAL_ORGS_PER_PERSON))
    kind = np.frombuffer(b"123", dtype=np.uint8)[rng.choice(3, size=k, p=[0.5, 0.45, 0.05])]
    f = _common(rng, pop, k, "5", kind, serial0, seed, (0.90, 0.02, 0.08), "1995-01-01")
    pl = places()
    city, county = pl.city.take(pa.array(f["region"])), pl.county.take(pa.array(f["region"]))
    word = pick(vocab.COMPANY_WORDS, rng.integers(0, len(vocab.COMPANY_WORDS), k))
    society = join(city, pick(vocab.SOCIETY_TRADES, rng.integers(0, len(vocab.SOCIETY_TRADES), k)), "协会")
    nonprofit = join(county, word, pick(vocab.NONPROFIT_KINDS, rng.integers(0, len(vocab.NONPROFIT_KINDS), k)))
    foundation = join(city, word, pick(vocab.FOUNDATION_KINDS, rng.integers(0, len(vocab.FOUNDATION_KINDS), k)))
    name = pc.if_else(pa.array(kind == ord("1")), society, pc.if_else(pa.array(kind == ord("2")), nonprofit, foundation))
    scope = join(pick(vocab.SOCIETY_TRADES, rng.integers(0, len(vocab.SOCIETY_TRADES), k)), "交流、培训、咨询服务")
    f.update(name=name, address=addresses(rng, f["region"], urban_only=True),
             capital=rng.integers(3, 800, k).astype(np.float64), scope=scope)
    return _sorted(f)

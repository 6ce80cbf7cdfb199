"""The true population of the sample world: who exists, where they live, who married whom, who died."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samples import vocab
from samples.idnums import resident_ids
from samples.places import FIRST_YEAR, LAST_YEAR, addresses, places, sample_regions
from samples.streams import AS_OF_DAY, between, stream, years
from samples.text import digit_matrix, from_fixed, join, pick, replace_rows, ymd

UNMARRIED, MARRIED, DIVORCED, WIDOWED = 0, 1, 2, 3
LIVING, DECEASED, EMIGRATED = 0, 1, 2
MALE, FEMALE = 1, 2  # GB/T 2261.1
HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5, 6])
HOUSEHOLD_SIZE_P = np.array([0.25, 0.30, 0.22, 0.14, 0.07, 0.02])
DIGITAL_RECORDS_FROM = np.datetime64("2005-01-01")  # deaths and emigrations the sample world knows of

# Relative number of people per year of age 0..95: a rough Chinese population pyramid.
_AGE_WEIGHT = np.concatenate([
    np.full(10, 0.9), np.full(10, 1.0), np.full(10, 1.15), np.full(10, 1.25), np.full(10, 1.35),
    np.full(10, 1.4), np.full(10, 1.0), np.full(10, 0.55), np.full(10, 0.2), np.full(6, 0.04),
])
# Marital status by age bracket (lower bound, [unmarried, married, divorced, widowed]).
_MARITAL_BY_AGE = ((0, (0.55, 0.41, 0.04, 0.0)), (30, (0.08, 0.80, 0.10, 0.02)),
                   (60, (0.03, 0.78, 0.06, 0.13)), (75, (0.02, 0.55, 0.03, 0.40)))
# Probability of having died (2005 or later) by age bracket.
_DEATH_BY_AGE = ((0, 0.003), (40, 0.015), (60, 0.06), (75, 0.2), (85, 0.4))


@dataclass
class Marriages:
    """Couples, both in the population; ``divorced_on`` is NaT while still married."""

    husband: np.ndarray
    wife: np.ndarray
    married_on: np.ndarray  # datetime64[D]
    divorced_on: np.ndarray  # datetime64[D]


@dataclass
class Population:
    """One row per person (index = person number); addresses are per household."""

    ids: np.ndarray  # (n, 18) uint8: the true ID numbers
    name: pa.Array
    gender: np.ndarray  # uint8 MALE / FEMALE
    birth: np.ndarray  # datetime64[D]
    ethnicity: np.ndarray  # index into vocab.ethnicities()
    region: np.ndarray  # household region: index into places()
    household: np.ndarray  # index into ``addresses``
    residence: np.ndarray  # index into ``addresses``: where the person actually lives
    addresses: pa.Array
    phone: pa.Array
    marital: np.ndarray  # UNMARRIED .. WIDOWED
    life: np.ndarray  # LIVING / DECEASED / EMIGRATED
    life_date: np.ndarray  # datetime64[D], NaT while living
    marriages: Marriages

    @property
    def n(self) -> int:
        return len(self.gender)

    def id_strings(self, rows: np.ndarray | None = None) -> pa.Array:
        """True ID numbers as strings (all, or of ``rows``)."""
        return from_fixed(self.ids if rows is None else self.ids[rows])

    def names(self, rows: np.ndarray) -> pa.Array:
        """Names of ``rows``."""
        return self.name.take(pa.array(rows))

    def age_on(self, day: np.datetime64 = AS_OF_DAY) -> np.ndarray:
        """Whole years of age on ``day`` (approximate: 365.25-day years)."""
        return ((day - self.birth).astype(np.int64) / 365.25).astype(np.int64)

    @cached_property
    def name_info(self):  # type: ignore[no-untyped-def]
        """What each name allows in the way of typing errors (``typos.NameInfo``), worked out once."""
        from samples.typos import name_info

        return name_info(self.name)


def build_population(n: int, seed: int) -> Population:
    """``n`` people; the same ``n`` and ``seed`` always give the same people."""
    rng = stream(seed, "people")
    male = rng.random(n) < 0.512
    gender = np.where(male, MALE, FEMALE).astype(np.uint8)
    birth = _births(rng, n)

    sizes = rng.choice(HOUSEHOLD_SIZES, size=n // 2 + 2, p=HOUSEHOLD_SIZE_P)
    n_households = int(np.searchsorted(np.cumsum(sizes), n) + 1)
    household = np.repeat(np.arange(n_households), sizes[:n_households])[:n].astype(np.int64)
    household_region = sample_regions(rng, n_households)
    home = addresses(stream(seed, "addresses"), household_region)
    region = household_region[household]
    born_in = np.where(rng.random(n) < 0.85, region, sample_regions(rng, n))  # the ID's region: where they were registered first

    name = _names(rng, male, household, n_households)
    codes, _names_, p = vocab.ethnicities()
    ethnicity = rng.choice(len(codes), size=n, p=p).astype(np.uint8)
    age = ((AS_OF_DAY - birth).astype(np.int64) / 365.25).astype(np.int64)
    phone = phones(rng, n, valid=rng.random(n) >= np.where(age < 16, 0.7, 0.04))  # children rarely have one

    marital, marriages = _marry(rng, gender, birth, age)
    # Wives join their husband's household (and its region); divorced couples live apart again.
    still = np.isnat(marriages.divorced_on)
    household[marriages.wife[still]] = household[marriages.husband[still]]
    region[marriages.wife[still]] = region[marriages.husband[still]]
    residence = np.where(rng.random(n) < 0.78, household, rng.integers(0, n_households, n))
    life, life_date = _lives(rng, n, birth, age, marriages)

    ids = resident_ids(*_id_parts(rng, born_in, birth, male))
    return Population(ids, name, gender, birth, ethnicity, region.astype(np.int32), household, residence, home, phone,
                      marital, life, life_date, marriages)


def with_foreign_residents(pop: Population, share: float, seed: int) -> Population:
    """The same population with ``share`` of the people foreign residents: a Latin-script name written
    ``SURNAME GIVEN`` as on the residence permit (English names, or Russian ones romanised), of their sex."""
    rng = stream(seed, "foreign-residents")
    k = int(round(share * pop.n))
    if not k:
        return pop
    rows = np.sort(rng.choice(pop.n, size=k, replace=False))
    female = pop.gender[rows] == FEMALE
    russian = rng.random(k) < 0.4
    names = vocab.foreign_names()
    surname, given = pa.nulls(k, pa.string()), pa.nulls(k, pa.string())
    for origin, is_origin in (("en", ~russian), ("ru", russian)):
        for sex, is_sex in (("male", ~female), ("female", female)):
            mask = pa.array(is_origin & is_sex)
            for part, words in (("surname", names[origin][f"surname_{sex}"]), ("given", names[origin][f"given_{sex}"])):
                chosen = pick(words, rng.integers(0, len(words), k))
                if part == "surname":
                    surname = pc.if_else(mask, chosen, surname)
                else:
                    given = pc.if_else(mask, chosen, given)
    return replace(pop, name=replace_rows(pop.name, rows, join(surname, " ", given)))


def _births(rng: np.random.Generator, n: int) -> np.ndarray:
    """Birth dates from 1930 to 2025, following the age pyramid."""
    age = rng.choice(len(_AGE_WEIGHT), size=n, p=_AGE_WEIGHT / _AGE_WEIGHT.sum())
    year = (LAST_YEAR - age - 1970).astype("datetime64[Y]")
    start = year.astype("datetime64[D]")
    length = ((year + 1).astype("datetime64[D]") - start).astype(np.int64)
    return start + (rng.random(n) * length).astype(np.int64)


@lru_cache(maxsize=1)
def _given_names() -> tuple[pa.Array, tuple[int, ...]]:
    """Every given name: whole Faker names, then two-character combinations, men's and women's;
    with the start of each of the four blocks."""
    blocks = [vocab.GIVEN_MALE, vocab.GIVEN_FEMALE, [a + b for a in vocab.CHARS_MALE for b in vocab.CHARS_MALE],
              [a + b for a in vocab.CHARS_FEMALE for b in vocab.CHARS_FEMALE]]
    starts = tuple(np.cumsum([0] + [len(b) for b in blocks]))
    return pa.array([name for block in blocks for name in block]), starts


def _names(rng: np.random.Generator, male: np.ndarray, household: np.ndarray, n_households: int) -> pa.Array:
    """Surname (by frequency, mostly the household's) + a Faker given name or two characters of the same gender's names."""
    n = len(male)
    own = rng.choice(len(vocab.SURNAMES), size=n, p=vocab.SURNAME_P)
    shared = rng.choice(len(vocab.SURNAMES), size=n_households, p=vocab.SURNAME_P)[household]
    surname = pick(vocab.SURNAMES, np.where(rng.random(n) < 0.6, shared, own))
    table, start = _given_names()
    block = np.where(rng.random(n) < 0.45, 0, 2) + ~male  # whole names 0/1, pairs 2/3; men first
    size = np.diff(start)
    return join(surname, pick(table, np.asarray(start)[block] + (rng.random(n) * size[block]).astype(np.int64)))


def phones(rng: np.random.Generator, n: int, valid: np.ndarray | None = None) -> pa.Array:
    """Mobile numbers: a Faker prefix and eight digits."""
    prefix = vocab.PHONE_PREFIXES[rng.integers(0, len(vocab.PHONE_PREFIXES), n)]
    return from_fixed(np.hstack([digit_matrix(prefix, 3), digit_matrix(rng.integers(0, 10**8, n), 8)]), valid)


def _marry(rng: np.random.Generator, gender: np.ndarray, birth: np.ndarray, age: np.ndarray) -> tuple[np.ndarray, Marriages]:
    """Marital status by age, with every married or divorced person paired with someone of similar age."""
    n = len(gender)
    legal = age >= np.where(gender == MALE, 22, 20)
    status = np.full(n, UNMARRIED, dtype=np.uint8)
    u = rng.random(n)
    for i, (lower, p) in enumerate(_MARITAL_BY_AGE):
        upper = _MARITAL_BY_AGE[i + 1][0] if i + 1 < len(_MARITAL_BY_AGE) else 999
        rows = legal & (age >= lower) & (age < upper)
        status[rows] = np.searchsorted(np.cumsum(p), u[rows], side="right").clip(0, 3)
    husbands, wives, divorced = [], [], []
    for kind in (MARRIED, DIVORCED):
        # Rank-matching by birth date (wives two years younger on average) pairs people of similar age.
        men = np.flatnonzero((status == kind) & (gender == MALE))
        women = np.flatnonzero((status == kind) & (gender == FEMALE))
        men = men[np.argsort(birth[men].astype(np.int64) + rng.normal(0, 700, len(men)))]
        women = women[np.argsort(birth[women].astype(np.int64) - 730 + rng.normal(0, 700, len(women)))]
        k = min(len(men), len(women))
        status[men[k:]] = UNMARRIED
        status[women[k:]] = UNMARRIED
        husbands.append(men[:k])
        wives.append(women[:k])
        divorced.append(np.full(k, kind == DIVORCED))
    husband, wife, was_divorced = np.concatenate(husbands), np.concatenate(wives), np.concatenate(divorced)
    earliest = np.maximum(birth[husband] + years(22), birth[wife] + years(20))
    room = (AS_OF_DAY - earliest).astype(np.int64)
    gap = np.clip(rng.exponential(4 * 365, len(husband)).astype(np.int64), 0, np.maximum(room - 2, 0))
    married_on = np.minimum(earliest + gap, AS_OF_DAY - 2)
    divorced_on = between(rng, married_on + 1, np.full(len(husband), AS_OF_DAY))
    divorced_on = np.where(was_divorced, divorced_on, np.datetime64("NaT"))
    return status, Marriages(husband, wife, married_on.astype("datetime64[D]"), divorced_on.astype("datetime64[D]"))


def _lives(rng: np.random.Generator, n: int, birth: np.ndarray, age: np.ndarray, marriages: Marriages) -> tuple[np.ndarray, np.ndarray]:
    """Who died or emigrated since 2005, and when (never before their last marriage event)."""
    last_event = np.full(n, np.datetime64("1900-01-01"), dtype="datetime64[D]")
    for who in (marriages.husband, marriages.wife):
        last_event[who] = np.where(np.isnat(marriages.divorced_on), marriages.married_on, marriages.divorced_on)
    p_death = np.zeros(n)
    for lower, p in _DEATH_BY_AGE:
        p_death[age >= lower] = p
    life = np.full(n, LIVING, dtype=np.uint8)
    u = rng.random(n)
    life[u < p_death] = DECEASED
    life[(u >= p_death) & (u < p_death + 0.004) & (age >= 18)] = EMIGRATED
    earliest = np.maximum(np.maximum(last_event, birth), DIGITAL_RECORDS_FROM) + 1
    earliest = np.where(life == EMIGRATED, np.maximum(earliest, birth + years(18)), earliest)
    life[earliest >= AS_OF_DAY] = LIVING
    when = between(rng, earliest, np.full(n, AS_OF_DAY))
    return life, np.where(life == LIVING, np.datetime64("NaT"), when).astype("datetime64[D]")


def _id_parts(rng: np.random.Generator, born_in: np.ndarray, birth: np.ndarray, male: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region digits (a code in use in the birth year), birth dates and unique sequence numbers."""
    pl = places()
    year = ymd(birth)[0]
    region = pl.id_region[born_in, year - FIRST_YEAR]
    # Sequence numbers are unique per (region, birth date, sex): rank people within each group.
    day = (birth - np.datetime64(f"{FIRST_YEAR}-01-01")).astype(np.int64)
    key = (region.astype(np.int64) << 17 | day) << 1 | male
    order = np.argsort(key)
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(key)]))
    rank = np.arange(len(key)) - starts[group]
    if len(rank) and rank.max() >= 499:
        raise ValueError("more than 499 people of one sex born on one day in one county: use fewer people")
    half = np.empty(len(key), dtype=np.int64)
    half[order] = (rng.integers(0, 499, len(starts))[group] + rank) % 499 + 1
    return pl.code_digits[region], birth, half * 2 + male  # odd for men, even for women

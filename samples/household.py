"""The household registration (public security): table HJ_RKXX with its own column names and codes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samples import typos, vocab
from samples.defects import (ADDRESS_ERRORS, BIRTH_DATE_ERRORS, LATIN_NAME_ERRORS, NAME_ERRORS,
                             REGION_ERRORS, SEX_ERRORS, DefectRates, Hits, choose, id_values, some)
from samples.ground_truth import GroundTruth
from samples.household_db import TABLE
from samples.people import DECEASED, LIVING, MARRIED, UNMARRIED, Population, phones
from samples.places import places
from samples.streams import UPDATES_FROM, UPDATES_TO, stream
from samples.text import coded, dates, from_fixed

SYSTEM = "public_security"
GENDER_LABELS = ("男", "女")  # by GB/T 2261.1 code - 1
MARITAL_CODES = ("WH", "YH", "LH", "SO")  # by people.UNMARRIED .. WIDOWED: the department's own codes
LIFE_CODES = ("0", "1", "2")  # living, deceased, emigrated


@dataclass
class Household:
    """The HJ_RKXX rows, and what was done to them (recorded in the ground truth once the load has started)."""

    table: pa.Table
    person: np.ndarray  # the true person behind each row
    hits: dict[str, Hits]  # ID defects on SFZH
    marital_conflict: Hits
    death_conflict: Hits
    typing: list[tuple[str, str, Hits]] = field(default_factory=list)  # (error, column, rows) of typing errors

    def record(self, pop: Population, truth: GroundTruth) -> None:
        """Ground truth: every defect, and the person behind every row."""
        n = pop.n
        record = self.table["RKBH"].combine_chunks().cast(pa.string())
        for defect, hits in self.hits.items():
            truth.defects(SYSTEM, TABLE, defect, "SFZH", hits.eligible, TABLE, record.take(pa.array(hits.rows)))
        for field, hits in (("HYZK", self.marital_conflict), ("SWBZ", self.death_conflict)):
            truth.defects(SYSTEM, TABLE, "conflicting_value", field, hits.eligible, TABLE, record.take(pa.array(hits.rows)))
        truth.defects(SYSTEM, TABLE, "duplicate", None, n, TABLE, record.slice(n))
        for defect, column, hits in self.typing:
            truth.defects(SYSTEM, TABLE, defect, column, hits.eligible, TABLE, record.take(pa.array(hits.rows)))
        truth.entities(SYSTEM, TABLE, TABLE, record, "person", "person", from_fixed(pop.ids[self.person]))


def build_household(pop: Population, rates: DefectRates, seed: int) -> Household:
    """One row per person, plus duplicates, with the household registration's defects."""
    rng = stream(seed, "household")
    n = pop.n
    id_hits = choose(rng, n, [
        ("bad_check_digit", rates.bad_check_digit, None),
        ("old_id_15", rates.old_id_15, pop.birth < np.datetime64("2000-01-01")),
        ("full_width_id", rates.full_width_id, None),
        ("missing_id", rates.missing_id, None),
    ])
    # Conflicts with other departments: married per civil affairs, dead per health.
    marital_conflict = some(rng, np.flatnonzero(pop.marital == MARRIED), rates.conflicting_value)
    death_conflict = some(rng, np.flatnonzero(pop.life == DECEASED), rates.conflicting_value)
    marital = pop.marital.copy()
    marital[marital_conflict.rows] = UNMARRIED
    life = pop.life.copy()
    life[death_conflict.rows] = LIVING
    life_date = pop.life_date.copy()
    life_date[death_conflict.rows] = np.datetime64("NaT")

    dup = some(rng, np.arange(n), rates.duplicate).rows
    person = np.concatenate([np.arange(n), dup])  # the true person behind each row
    m = len(person)
    # A duplicate is the same person entered again later: address typed differently, another phone.
    dup_home = pc.replace_substring(pc.replace_substring_regex(
        pop.addresses.take(pa.array(pop.household[dup])), pattern="^.{2,8}?(省|自治区)", replacement=""), "幢", "栋")
    dup_phone = phones(rng, len(dup), valid=rng.random(len(dup)) >= 0.3)
    # Addresses as dictionary columns over the household addresses: people of one household share
    # one string (far less to copy here, and to bind row by row when loading the database).
    addresses = pa.concat_arrays([pop.addresses, dup_home])
    home = np.concatenate([pop.household, len(pop.addresses) + np.arange(len(dup))])
    table = pa.table({
        "RKBH": pa.array(np.arange(1, m + 1, dtype=np.int64)),
        "SFZH": pa.concat_arrays([id_values(pop.ids, id_hits, rng), from_fixed(pop.ids[dup])]),
        "XM": pop.name.take(pa.array(person)),
        "XB": coded(GENDER_LABELS, pop.gender[person] - 1),
        "CSRQ": dates(pop.birth[person], sep=""),
        "MZ": coded(vocab.ethnicities()[1], pop.ethnicity[person]),
        "HJDZ": coded(addresses, home),
        "HJQH": coded(places().codes, pop.region[person]),
        "XZZ": coded(addresses, pop.residence[person]),
        # A duplicate is a later entry: it carries the true status, not the original record's stale one.
        "HYZK": coded(MARITAL_CODES, np.concatenate([marital, pop.marital[dup]])),
        "SWBZ": coded(LIFE_CODES, np.concatenate([life, pop.life[dup]])),
        "ZXRQ": dates(np.concatenate([life_date, pop.life_date[dup]]), sep=""),
        "LXDH": pa.concat_arrays([pop.phone, dup_phone]),
        "GXSJ": pa.array(_update_times(rng, m)),
    })
    typing: list[tuple[str, str, Hits]] = []
    if rates.typing:
        table, typing = _typing_errors(table, pop, person, addresses, home, rates, seed)
    return Household(table, person, id_hits, marital_conflict, death_conflict, typing)


def _typing_errors(table: pa.Table, pop: Population, person: np.ndarray, addresses: pa.Array, home: np.ndarray,
                   rates: DefectRates, seed: int) -> tuple[pa.Table, list[tuple[str, str, Hits]]]:
    """Typing errors in XM, CSRQ, XB, HJDZ and HJQH, each field from its own random stream."""
    found: list[tuple[str, str, Hits]] = []
    columns = {}
    region = pop.region[person]
    if rates.active(NAME_ERRORS + LATIN_NAME_ERRORS):
        columns["XM"], hits = typos.name_errors(stream(seed, "household-typos-XM"), table["XM"].combine_chunks(),
                                                pop.name_info.take(person), rates)
        found += [(kind, "XM", h) for kind, h in hits.items()]
    if rates.active(BIRTH_DATE_ERRORS):
        columns["CSRQ"], hits = typos.birth_date_errors(stream(seed, "household-typos-CSRQ"),
                                                        table["CSRQ"].combine_chunks(), pop.birth[person], rates, sep="")
        found += [(kind, "CSRQ", h) for kind, h in hits.items()]
    if rates.active(SEX_ERRORS):
        columns["XB"], hits = typos.sex_errors(stream(seed, "household-typos-XB"), pop.gender[person] - 1,
                                               GENDER_LABELS, rates)
        found += [(kind, "XB", h) for kind, h in hits.items()]
    if rates.active(ADDRESS_ERRORS):
        columns["HJDZ"], hits = typos.address_errors(stream(seed, "household-typos-HJDZ"), addresses, home, region,
                                                     rates)
        found += [(kind, "HJDZ", h) for kind, h in hits.items()]
    if rates.active(REGION_ERRORS):
        columns["HJQH"], hits = typos.region_errors(stream(seed, "household-typos-HJQH"), region, rates)
        found += [(kind, "HJQH", h) for kind, h in hits.items()]
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table, found


def _update_times(rng: np.random.Generator, m: int) -> np.ndarray:
    """GXSJ: rising with RKBH over the last two years, with one record in twenty touched again later."""
    span = (UPDATES_TO - UPDATES_FROM).astype(np.int64)
    step = span / max(m, 1)
    seconds = ((np.arange(m) + rng.random(m)) * step).astype(np.int64)
    touched = rng.random(m) < 0.05
    later = seconds + (rng.random(m) * (span - seconds)).astype(np.int64)
    seconds = np.minimum(np.where(touched, later, seconds), span - 1)
    return UPDATES_FROM + seconds.astype("timedelta64[s]")

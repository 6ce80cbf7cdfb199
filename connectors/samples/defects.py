"""The defects injected into department data: their rates, which records they hit, how IDs get mangled."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import pyarrow as pa

from connectors.samples import idnums
from connectors.samples.text import from_fixed, replace_rows

# ID-field defects, in the order they claim records (one record gets at most one of them).
ID_DEFECTS = ("bad_check_digit", "old_id_15", "full_width_id", "missing_id")


@dataclass(frozen=True)
class DefectRates:
    """Share of eligible records hit by each defect (0..1). Eligible records, per defect:

    - ``bad_check_digit``: every ID-number or credit-code value a department typed (household SFZH,
      marriage and death IDs, legal representatives' IDs, licence holders' IDs and credit codes);
    - ``old_id_15``: ID values of people born before 2000 (marriages: registrations before 2000);
    - ``full_width_id``: ID values as for ``bad_check_digit`` (resident ID numbers only);
    - ``missing_id``: household records and death reports (SFZH NULL or empty);
    - ``conflicting_value``: per kind of conflict, the records that can carry it (married people for
      HYZK, deceased people for SWBZ, enterprises for the legal representative's name);
    - ``duplicate``: people in the household registration (a second record for the same person);
    - ``dangling_holder``: licences (holder ID or code that exists in no library);
    - ``expired_still_valid``: licences that expired (still marked issued/renewed);
    - ``undecodable_bytes``: rows of the GBK files (marriages, social organisations).
    """

    bad_check_digit: float = 0.01
    old_id_15: float = 0.01
    full_width_id: float = 0.01
    missing_id: float = 0.01
    conflicting_value: float = 0.01
    duplicate: float = 0.01
    dangling_holder: float = 0.01
    expired_still_valid: float = 0.01
    undecodable_bytes: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"defect rate {f.name} must be between 0 and 1, got {value}")
        if sum(getattr(self, name) for name in ID_DEFECTS) > 1.0:
            raise ValueError(f"the ID-field rates ({', '.join(ID_DEFECTS)}) must add up to at most 1")
        if self.bad_check_digit + self.dangling_holder > 1.0:
            raise ValueError("bad_check_digit + dangling_holder must be at most 1")

    @classmethod
    def uniform(cls, rate: float) -> DefectRates:
        """Every defect at the same rate."""
        return cls(**{f.name: rate for f in fields(cls)})

    @classmethod
    def none(cls) -> DefectRates:
        """Clean data."""
        return cls.uniform(0.0)

    def as_dict(self) -> dict[str, float]:
        """Rate per defect, for the manifest."""
        return asdict(self)


@dataclass(frozen=True)
class Hits:
    """The records one defect hit (ascending row numbers) out of how many were eligible."""

    rows: np.ndarray
    eligible: int


def choose(rng: np.random.Generator, n: int, plan: list[tuple[str, float, np.ndarray | None]]) -> dict[str, Hits]:
    """Disjoint sets of rows, ``round(rate * eligible)`` each, for ``(defect, rate, eligible mask or None)``."""
    taken = np.zeros(n, dtype=bool)
    out = {}
    for name, rate, mask in plan:
        eligible = n if mask is None else int(mask.sum())
        k = int(round(rate * eligible))
        rows = np.zeros(0, dtype=np.int64)
        if k:
            free = np.flatnonzero(~taken if mask is None else ~taken & mask)
            rows = np.sort(rng.choice(free, size=min(k, len(free)), replace=False))
        taken[rows] = True
        out[name] = Hits(rows, eligible)
    return out


def some(rng: np.random.Generator, eligible: np.ndarray, rate: float) -> Hits:
    """``round(rate * len(eligible))`` rows drawn from the row numbers ``eligible``."""
    k = int(round(rate * len(eligible)))
    return Hits(np.sort(rng.choice(eligible, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64), len(eligible))


def id_values(ids: np.ndarray, hits: dict[str, Hits], rng: np.random.Generator, credit: bool = False) -> pa.Array:
    """The ID column as a department holds it: true values, except where a defect hit."""
    values = from_fixed(ids)
    if "bad_check_digit" in hits:
        rows = hits["bad_check_digit"].rows
        wrong = idnums.wrong_uscc_check(ids[rows], rng) if credit else idnums.wrong_ric_check(ids[rows], rng)
        values = replace_rows(values, rows, from_fixed(wrong))
    if "old_id_15" in hits:
        rows = hits["old_id_15"].rows
        values = replace_rows(values, rows, from_fixed(idnums.old_15(ids[rows])))
    if "full_width_id" in hits:
        rows = hits["full_width_id"].rows
        values = replace_rows(values, rows, from_fixed(idnums.full_width(ids[rows])))
    if "missing_id" in hits:
        rows = hits["missing_id"].rows
        # Half NULL, half an empty string: both happen in real systems.
        empty = pa.array(np.where(rng.random(len(rows)) < 0.5, "", None).tolist(), pa.string())
        values = replace_rows(values, rows, empty)
    return values

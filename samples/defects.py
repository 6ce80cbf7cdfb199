"""The defects injected into department data: their rates, which records they hit, how IDs get mangled."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import pyarrow as pa

from samples import idnums
from samples.text import from_fixed, replace_rows

# ID-field defects, in the order they claim records (one record gets at most one of them).
ID_DEFECTS = ("bad_check_digit", "old_id_15", "full_width_id", "missing_id")
# The defects ``DefectRates.uniform`` sets (the key, conflict and file defects).
DEFECTS = ID_DEFECTS + ("conflicting_value", "duplicate", "dangling_holder", "expired_still_valid", "undecodable_bytes")

# Typing errors in the person fields departments write, per field, in the order they claim records (a
# field gets at most one of its errors; the fields of one record are drawn independently of each other).
NAME_ERRORS = ("name_homophone", "name_similar_char", "name_traditional", "name_dropped_char", "name_extra_char",
               "name_space", "name_middle_dot", "name_pinyin")
LATIN_NAME_ERRORS = ("name_latin_typo", "name_latin_given_first")  # names of foreign residents
BIRTH_DATE_ERRORS = ("birth_date_wrong_digit", "birth_date_day_month_swapped", "birth_date_year_month",
                     "birth_date_missing")
SEX_ERRORS = ("sex_missing",)
ADDRESS_ERRORS = ("address_abbreviated", "address_old", "address_moved", "address_missing")
REGION_ERRORS = ("region_old_code",)
ERROR_FIELDS = {"name": NAME_ERRORS, "latin_name": LATIN_NAME_ERRORS, "birth_date": BIRTH_DATE_ERRORS,
                "sex": SEX_ERRORS, "address": ADDRESS_ERRORS, "region": REGION_ERRORS}
TYPING_ERRORS = tuple(kind for kinds in ERROR_FIELDS.values() for kind in kinds)
# How ``with_typing_errors(rate)`` splits one field's rate between its errors (each field's shares add up to 1).
TYPING_SHARES = {
    "name_homophone": 0.30, "name_similar_char": 0.12, "name_traditional": 0.10, "name_dropped_char": 0.12,
    "name_extra_char": 0.10, "name_space": 0.10, "name_middle_dot": 0.06, "name_pinyin": 0.10,
    "name_latin_typo": 0.7, "name_latin_given_first": 0.3,
    "birth_date_wrong_digit": 0.4, "birth_date_day_month_swapped": 0.2, "birth_date_year_month": 0.25,
    "birth_date_missing": 0.15,
    "sex_missing": 1.0,
    "address_abbreviated": 0.4, "address_old": 0.2, "address_moved": 0.25, "address_missing": 0.15,
    "region_old_code": 1.0,
}


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

    Typing errors (all 0 unless asked for: ``with_typing_errors``) hit the person fields of the household
    register (HJ_RKXX: XM, CSRQ, XB, HJDZ, HJQH, duplicates included), the death reports (姓名, 出生日期,
    性别) and the marriage registrations (男方姓名, 女方姓名). Each is the share of the records that can
    carry it:

    - ``name_*`` (Chinese names): ``homophone`` one character replaced by another with the same toneless
      pinyin (同音字); ``similar_char`` by a look-alike (形近字); ``traditional`` the name in traditional
      characters; ``dropped_char`` a character of a two-character given name left out; ``extra_char`` a
      character of the given name doubled or another one inserted; ``space`` / ``middle_dot`` a space or
      a ``·`` inside the name; ``pinyin`` the name romanised (``Zhang Wei`` or ``ZHANG WEI``), only in the
      death reports (the one system that romanises names);
    - ``name_latin_typo`` / ``name_latin_given_first`` (names of foreign residents, ``SMITH JOHN``): one
      letter transposed, dropped, doubled or replaced; the name written ``John Smith``;
    - ``birth_date_*``: ``wrong_digit`` one digit of the date wrong (still a date); ``day_month_swapped``
      (dates with day and month both at most 12 and different); ``year_month`` the day left out, in the
      system's own style (``198503``, ``1985-03``); ``missing`` empty;
    - ``sex_missing``: empty;
    - ``address_*`` (HJDZ): ``abbreviated`` province or province and city left out, 幢 written 栋 or 号楼,
      室 left out, full-width digits (at least one of them); ``old`` an earlier address in another
      county; ``moved`` another address in the same city; ``missing`` NULL;
    - ``region_old_code`` (HJQH): a retired GB/T 2260 code the person's county succeeds (only counties
      that have one);
    - ``foreign_residents``: not an error, the share of the true population who are foreign residents
      with Latin-script names (English or romanised Russian, written ``SURNAME GIVEN``).
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
    name_homophone: float = 0.0
    name_similar_char: float = 0.0
    name_traditional: float = 0.0
    name_dropped_char: float = 0.0
    name_extra_char: float = 0.0
    name_space: float = 0.0
    name_middle_dot: float = 0.0
    name_pinyin: float = 0.0
    name_latin_typo: float = 0.0
    name_latin_given_first: float = 0.0
    birth_date_wrong_digit: float = 0.0
    birth_date_day_month_swapped: float = 0.0
    birth_date_year_month: float = 0.0
    birth_date_missing: float = 0.0
    sex_missing: float = 0.0
    address_abbreviated: float = 0.0
    address_old: float = 0.0
    address_moved: float = 0.0
    address_missing: float = 0.0
    region_old_code: float = 0.0
    foreign_residents: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"defect rate {f.name} must be between 0 and 1, got {value}")
        if sum(getattr(self, name) for name in ID_DEFECTS) > 1.0:
            raise ValueError(f"the ID-field rates ({', '.join(ID_DEFECTS)}) must add up to at most 1")
        if self.bad_check_digit + self.dangling_holder > 1.0:
            raise ValueError("bad_check_digit + dangling_holder must be at most 1")
        for field, kinds in ERROR_FIELDS.items():
            if sum(getattr(self, name) for name in kinds) > 1.0 + 1e-9:
                raise ValueError(f"the {field} error rates ({', '.join(kinds)}) must add up to at most 1")

    @classmethod
    def uniform(cls, rate: float) -> DefectRates:
        """Every key, conflict and file defect at the same rate (typing errors stay as they are: off)."""
        return cls(**{name: rate for name in DEFECTS})

    def with_typing_errors(self, rate: float, foreign_residents: float | None = None) -> DefectRates:
        """These rates with typing errors on: each person field (name, birth date, sex, address, region) of a
        record is wrong with probability ``rate``, split between the field's errors by ``TYPING_SHARES``;
        ``foreign_residents`` (default ``rate / 10``) is the share of people with Latin-script names."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"typing error rate must be between 0 and 1, got {rate}")
        foreign = rate / 10 if foreign_residents is None else foreign_residents
        return replace(self, **{kind: rate * TYPING_SHARES[kind] for kind in TYPING_ERRORS}, foreign_residents=foreign)

    @property
    def typing(self) -> bool:
        """Whether any typing error (or foreign resident) is asked for."""
        return any(getattr(self, name) for name in (*TYPING_ERRORS, "foreign_residents"))

    def active(self, kinds: tuple[str, ...]) -> list[tuple[str, float]]:
        """``(kind, rate)`` of those of ``kinds`` with a rate above 0."""
        return [(kind, getattr(self, kind)) for kind in kinds if getattr(self, kind) > 0]

    @classmethod
    def none(cls) -> DefectRates:
        """Clean data."""
        return cls.uniform(0.0)

    def as_dict(self) -> dict[str, float]:
        """Rate per defect, for the manifest; typing errors only when on (a manifest without them reads as 0)."""
        optional = {*TYPING_ERRORS, "foreign_residents"}
        return {name: rate for name, rate in asdict(self).items() if rate or name not in optional}


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

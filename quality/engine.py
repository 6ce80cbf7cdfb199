"""Row-level evaluation of a suite's rules, vectorised over Arrow columns (numpy and DuckDB, no Python loop per row).

Each expectation type the gate knows has one function here computing, for every row, whether the
row fails and why. The results follow Great Expectations' semantics (map expectations ignore
missing values; ``mostly`` does not excuse a row), so a suite evaluated here and by GX on the same
small batch gives the same unexpected rows: ``tests/quality`` holds them to that. An expectation
type without a function here is evaluated by GX itself (``quality.gx.unexpected_rows``), slower.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hub.masking import mask_id, mask_name
from quality.rules import Rule
from schemas import LIBRARIES
from schemas.events import record_type
from schemas.catalogue import PersonalData
from schemas.ids_batch import normalise_array, validate_credit_codes, validate_resident_ids
from schemas.licences import IN_FORCE_STATUSES
from schemas.regions import regions

PARTIAL = 20  # unexpected values kept per rule for the results (masked)


@dataclass
class Outcome:
    """What one rule found: the failing rows and the reason suffix of each."""

    fail: np.ndarray  # bool (n,)
    detail: pa.Array | str  # per-row text (read where ``fail``) or one text for all
    missing: int = 0  # rows the rule did not apply to (missing values)
    values: pa.Array | None = None  # what the failing rows hold, kept with them (a partial date, in ISO form)

    @property
    def count(self) -> int:
        return int(self.fail.sum())


@dataclass(frozen=True)
class Identifiers:
    """A column checked as identifiers: ``normalised`` (null where invalid) and ``error`` (the part, or null)."""

    columns: dict[str, pa.Array]

    def column(self, name: str) -> pa.Array:
        return self.columns[name]


class Batch:
    """The records under test, with their columns combined once and identifier checks shared between rules."""

    def __init__(self, records: pa.Table, raw: pa.Table | None = None, parts: int = 1):
        self.records = records
        self.raw = raw
        self.parts = parts
        self.n = records.num_rows
        self._columns: dict[str, pa.Array] = {}
        self._ids: dict[tuple[str, str], Identifiers] = {}

    def column(self, name: str) -> pa.Array:
        if name not in self._columns:
            self._columns[name] = _single(self.records.column(name))
        return self._columns[name]

    def raw_column(self, name: str) -> pa.Array:
        key = "\0raw:" + name
        if key not in self._columns:
            assert self.raw is not None
            self._columns[key] = _single(self.raw.column(name)).cast(pa.string())
        return self._columns[key]

    def identifiers(self, name: str, kind: str) -> Identifiers:
        """``normalised`` and ``error`` of the column's values as resident ID numbers or credit codes."""
        if (name, kind) not in self._ids:
            check = validate_resident_ids if kind == "resident_id" else validate_credit_codes
            table = check(self.column(name).cast(pa.string()))
            self._ids[(name, kind)] = Identifiers({c: table.column(c).combine_chunks() for c in table.column_names})
        return self._ids[(name, kind)]

    def has(self, *names: str) -> bool:
        return all(n in self.records.column_names for n in names)


def _single(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array for a column: its only chunk as it is (no copy), or the chunks combined."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _valid(values: pa.Array) -> np.ndarray:
    return _np(pc.is_valid(values))


def _none(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


# --- the expectation types ----------------------------------------------------------------------


def _not_null(b: Batch, r: Rule) -> Outcome:
    values = b.column(r.kwargs["column"])
    fail = ~_valid(values)
    return Outcome(fail, r.reason or r.name.rsplit(".", 1)[-1])


def _valid_identifier(kind: str) -> Callable[[Batch, Rule], Outcome]:
    def check(b: Batch, r: Rule) -> Outcome:
        values = b.column(r.kwargs["column"])
        error = b.identifiers(r.kwargs["column"], kind).column("error")
        present = _valid(values)
        return Outcome(present & _valid(error), error, int((~present).sum()))

    return check


def _canonical_identifier(kind: str) -> Callable[[Batch, Rule], Outcome]:
    def check(b: Batch, r: Rule) -> Outcome:
        values = b.column(r.kwargs["column"])
        normalised = b.identifiers(r.kwargs["column"], kind).column("normalised")
        changed = _np(pc.not_equal(values, normalised))  # null (invalid or missing) -> not this rule's business
        n = len(values)
        detail: pa.Array | str = "normalised from a non-canonical form"
        rows = np.flatnonzero(changed)
        if rows.size and kind == "resident_id":
            typed = normalise_array(values.take(pa.array(rows)))
            old = _np(pc.equal(pc.utf8_length(typed), 15))
            texts = np.where(old, "old 15-digit number upgraded", "normalised from a non-canonical form")
            full = np.full(n, None, dtype=object)
            full[rows] = texts
            detail = pa.array(full, pa.string())
        return Outcome(changed, detail, int((~_valid(values)).sum()))

    return check


@lru_cache(maxsize=1)
def region_codes() -> pa.Array:
    """Every GB/T 2260 code, of any year."""
    return pa.array(sorted(regions()), pa.string())


def _region(b: Batch, r: Rule) -> Outcome:
    values = b.column(r.kwargs["column"])
    present = _valid(values)
    fail = present & ~_np(pc.is_in(values, value_set=region_codes()))
    return Outcome(fail, "unknown region code", int((~present).sum()))


def _in_set(b: Batch, r: Rule) -> Outcome:
    values = b.column(r.kwargs["column"])
    present = _valid(values)
    allowed = pa.array([str(v) for v in r.kwargs["value_set"]], pa.string()).cast(values.type)
    fail = present & ~_np(pc.is_in(values, value_set=allowed))
    return Outcome(fail, "unknown code" if r.origin == "schema" else "not in the allowed set", int((~present).sum()))


def _not_in_set(b: Batch, r: Rule) -> Outcome:
    values = b.column(r.kwargs["column"])
    present = _valid(values)
    forbidden = pa.array([str(v) for v in r.kwargs["value_set"]], pa.string()).cast(values.type)
    return Outcome(present & _np(pc.is_in(values, value_set=forbidden)), "forbidden value", int((~present).sum()))


def _scalar(value: object, kind: pa.DataType) -> pa.Scalar:
    if pa.types.is_date(kind) and isinstance(value, str):
        return pa.scalar(dt.date.fromisoformat(value), kind)
    if pa.types.is_timestamp(kind) and isinstance(value, str):
        return pa.scalar(dt.datetime.fromisoformat(value), kind)
    return pa.scalar(value).cast(kind)


def _between(b: Batch, r: Rule) -> Outcome:
    values = b.column(r.kwargs["column"])
    present = _valid(values)
    fail = _none(len(values))
    lo, hi = r.kwargs.get("min_value"), r.kwargs.get("max_value")
    strict_lo, strict_hi = r.kwargs.get("strict_min", False), r.kwargs.get("strict_max", False)
    if lo is not None:
        fail |= _np((pc.less_equal if strict_lo else pc.less)(values, _scalar(lo, values.type)))
    if hi is not None:
        fail |= _np((pc.greater_equal if strict_hi else pc.greater)(values, _scalar(hi, values.type)))
    return Outcome(fail & present, "out of range", int((~present).sum()))


def _strftime(b: Batch, r: Rule) -> Outcome:
    """Raw text present but not a date in the format (as the mapping parses it): the mapping made it null."""
    raw = b.raw_column(r.kwargs["column"])
    text = pc.utf8_trim_whitespace(raw)
    present = _np(pc.and_(pc.is_valid(text), pc.not_equal(text, "")))
    parsed = pc.strptime(text, format=r.kwargs["strftime_format"], unit="s", error_is_null=True)
    fail_raw = present & ~_valid(parsed)
    return Outcome(_to_records(b, r, fail_raw), f"not a date written as {r.kwargs['strftime_format']}",
                   int((~present).sum()))


def _to_records(b: Batch, r: Rule, raw_mask: np.ndarray) -> np.ndarray:
    """A mask over raw rows -> over records (record part p of raw row i is record p * n_raw + i)."""
    if b.parts == 1:
        return raw_mask
    n_raw = len(raw_mask)
    out = _none(b.n)
    for p in r.parts or range(b.parts):
        out[p * n_raw:(p + 1) * n_raw] = raw_mask
    return out


def _regex(b: Batch, r: Rule) -> Outcome:
    values = b.raw_column(r.kwargs["column"]) if r.raw else b.column(r.kwargs["column"])
    present = _valid(values)
    match = _np(pc.match_substring_regex(values.cast(pa.string()), r.kwargs["regex"]))
    fail = present & ~match
    if r.raw:
        fail &= _np(pc.not_equal(pc.utf8_trim_whitespace(values.cast(pa.string())), ""))  # blank: absent, not wrong
        return Outcome(_to_records(b, r, fail), "not a number" if r.name.endswith(".number") else
                       "does not match the expected pattern", int((~present).sum()))
    return Outcome(fail, "does not match the expected pattern", int((~present).sum()))


def _not_regex_list(b: Batch, r: Rule) -> Outcome:
    """Values matching any of the regexes; for a ``.partial`` rule, the year-month or year each one holds."""
    values = (b.raw_column(r.kwargs["column"]) if r.raw else b.column(r.kwargs["column"])).cast(pa.string())
    present = _valid(values)
    patterns = list(r.kwargs["regex_list"])
    found = [pc.fill_null(pc.match_substring_regex(values, p), False) for p in patterns]
    fail = np.logical_or.reduce([_np(f) for f in found])  # GX: unexpected when any of them matches
    if r.raw:
        fail &= _np(pc.not_equal(pc.utf8_trim_whitespace(values), ""))
    if not r.name.endswith(".partial"):
        return Outcome(_to_records(b, r, fail) if r.raw else fail, r.reason or "matches a forbidden pattern",
                       int((~present).sum()))
    partial = _partial_dates(values, patterns)
    detail = pc.if_else(pc.match_substring(partial, "-"), "partial date (year and month only)",
                        "partial date (year only)")
    if r.raw:
        return Outcome(_to_records(b, r, fail), _values_to_records(b, r, detail), int((~present).sum()),
                       _values_to_records(b, r, partial))
    return Outcome(fail, detail, int((~present).sum()), partial)


def _partial_dates(values: pa.Array, patterns: list[str]) -> pa.Array:
    """"YYYY-MM" or "YYYY" from the first pattern each value matches (groups ``year`` and, if any, ``month``)."""
    out = pa.nulls(len(values), pa.string())
    for pattern in patterns:
        groups = pc.extract_regex(values, pattern)
        year = pc.struct_field(groups, "year")
        if "(?P<month>" in pattern:
            iso = pc.binary_join_element_wise(year, pc.utf8_lpad(pc.struct_field(groups, "month"), 2, "0"), "-")
        else:
            iso = year
        out = pc.coalesce(out, iso)  # extract_regex is null where the pattern does not match
    return out


def _values_to_records(b: Batch, r: Rule, values: pa.Array) -> pa.Array:
    """Per raw row -> per record (record part p of raw row i is record p * n_raw + i), null in parts not read."""
    if b.parts == 1:
        return values
    n_raw = len(values)
    taken = values.take(pa.array(np.arange(b.n) % n_raw))
    read = _to_records(b, r, np.ones(n_raw, dtype=bool))
    return pc.if_else(pa.array(read), taken, pa.scalar(None, values.type))


def _lengths_between(b: Batch, r: Rule) -> Outcome:
    values = b.column(r.kwargs["column"])
    present = _valid(values)
    length = pc.utf8_length(values.cast(pa.string()))
    fail = _none(len(values))
    if r.kwargs.get("min_value") is not None:
        fail |= _np(pc.less(length, r.kwargs["min_value"]))
    if r.kwargs.get("max_value") is not None:
        fail |= _np(pc.greater(length, r.kwargs["max_value"]))
    blank = r.kwargs.get("min_value") == 1 and r.kwargs.get("max_value") is None
    return Outcome(fail & present, "empty" if blank else "length out of range", int((~present).sum()))


def _duplicated(b: Batch, columns: list[str]) -> np.ndarray:
    """Rows whose values of ``columns`` (none null) occur more than once: all of them, as GX counts.

    Identifier columns are compared in canonical form (a number typed full-width is the same number).
    One 64-bit hash per row finds the candidates fast; the candidates are then compared exactly.
    """
    values = [_canonical_values(b, c) for c in columns]
    nonnull = np.logical_and.reduce([_valid(v) for v in values])
    rows = np.flatnonzero(nonnull)
    if rows.size < 2:
        return _none(b.n)
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        table = pa.table({f"c{i}": v for i, v in enumerate(values)})
        cols = ", ".join(f"c{i}" for i in range(len(values)))
        con.register("t", table)
        hashes = con.sql(f"SELECT hash({cols}) FROM t").to_arrow_table().column(0).to_numpy()
        candidates = rows[pd.Series(hashes[rows]).duplicated(keep=False).to_numpy()]
        out = _none(b.n)
        if not candidates.size:
            return out
        sub = table.take(pa.array(candidates)).append_column("i", pa.array(candidates))
        con.register("sub", sub)
        exact = con.sql(f"SELECT i FROM (SELECT i, count(*) OVER (PARTITION BY {cols}) AS n FROM sub) WHERE n > 1")
        out[exact.to_arrow_table().column(0).to_numpy()] = True
        return out
    finally:
        con.close()


def _canonical_values(b: Batch, column: str) -> pa.Array:
    values = b.column(column)
    kind = _validator(b, column)
    if kind:
        return pc.coalesce(b.identifiers(column, kind).column("normalised"), values.cast(pa.string()))
    return values


def _validator(b: Batch, column: str) -> str | None:
    for lib in LIBRARIES.values():
        if column in lib.field_names and lib.field(column).validator and lib.field(column).validator in ("resident_id", "credit_code"):
            if b.records.schema.field(column).type == pa.string():
                return lib.field(column).validator
    return None


def _unique(b: Batch, r: Rule) -> Outcome:
    values = b.column(r.kwargs["column"])
    return Outcome(_duplicated(b, [r.kwargs["column"]]), "entered more than once in this source",
                   int((~_valid(values)).sum()))


def _compound_unique(b: Batch, r: Rule) -> Outcome:
    cols = list(r.kwargs["column_list"])
    return Outcome(_duplicated(b, cols), f"({', '.join(cols)}) entered more than once in this source")


def _id_matrix(b: Batch, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The normalised resident ID numbers as an (n, 18) byte matrix, and where they are valid."""
    normalised = b.identifiers(column, "resident_id").column("normalised")
    valid = _valid(normalised)
    n = len(normalised)
    if n == 0:
        return np.zeros((0, 18), dtype=np.uint8), valid
    # The batch validator writes every value in 18 bytes (zeros where invalid): one reshape, no copy.
    offsets = np.frombuffer(normalised.buffers()[1], dtype=np.int32)[normalised.offset:normalised.offset + n + 1]
    if offsets[-1] - offsets[0] != 18 * n:
        raise AssertionError("normalised ID numbers are expected in fixed 18-byte slots")
    data = np.frombuffer(normalised.buffers()[2], dtype=np.uint8)
    return data[offsets[0]:offsets[-1]].reshape(-1, 18), valid


_DAY0, _DAY1 = -25567, 73048  # 1900-01-01 .. 2169-12-31 as days since 1970-01-01


@lru_cache(maxsize=1)
def _ymd_words() -> np.ndarray:
    """Day number (from _DAY0) -> its date as the 8 ASCII digits "YYYYMMDD" read as one little-endian uint64."""
    days = np.arange(_DAY0, _DAY1 + 1).astype("datetime64[D]")
    text = np.char.replace(np.datetime_as_string(days, unit="D"), "-", "").astype("S8")
    return np.frombuffer(text.tobytes(), dtype="<u8")


def _pair_birth(b: Batch, r: Rule) -> Outcome:
    a, col_b = r.kwargs["column_A"], r.kwargs["column_B"]
    m, valid = _id_matrix(b, a)
    born = b.column(col_b)
    present = valid & _valid(born)
    # Characters 7-14 of each number, as one uint64 per row straight from the 18-byte slots: no copy per digit.
    flat = m.reshape(-1)  # contiguous: a view of the 18-byte slots
    encoded = np.ndarray((len(m),), dtype="<u8", buffer=flat, offset=6, strides=(18,)) if len(m) else np.zeros(0, "<u8")
    days = pc.fill_null(born.cast(pa.int32()), _DAY0 - 1).to_numpy().astype(np.int64)
    inside = (days >= _DAY0) & (days <= _DAY1)
    expected = np.where(inside, _ymd_words()[np.clip(days - _DAY0, 0, _DAY1 - _DAY0)], 0)
    return Outcome(present & (encoded != expected), f"disagrees with the birth date in {a}", int((~present).sum()))


def _pair_gender(b: Batch, r: Rule) -> Outcome:
    a, col_b = r.kwargs["column_A"], r.kwargs["column_B"]
    m, valid = _id_matrix(b, a)
    gender = b.column(col_b).cast(pa.string())
    male = (m[:, 16] & 1).astype(bool)  # ASCII digits: odd code point, odd digit
    says_male, says_female = _np(pc.equal(gender, "1")), _np(pc.equal(gender, "2"))  # 0 and 9 contradict nothing
    present = valid & _valid(gender)
    return Outcome(present & ((male & says_female) | (~male & says_male)), f"disagrees with the sex in {a}",
                   int((~present).sum()))


def _holder_id(b: Batch, r: Rule) -> Outcome:
    kind_col, id_col = r.kwargs["column_A"], r.kwargs["column_B"]
    kind = b.column(kind_col).cast(pa.string())
    present = _valid(kind) & _valid(b.column(id_col))
    person = _np(pc.equal(kind, "person"))
    legal = _np(pc.equal(kind, "legal_person"))
    ric = b.identifiers(id_col, "resident_id").column("error")
    uscc = b.identifiers(id_col, "credit_code").column("error")
    error = pc.if_else(pa.array(person), ric, pc.if_else(pa.array(legal), uscc, pa.scalar(None, pa.string())))
    return Outcome(present & _valid(error), error, int((~present).sum()))


def _licence_validity(b: Batch, r: Rule) -> Outcome:
    status, valid_to = r.kwargs["column_list"]
    as_of = dt.date.fromisoformat(r.kwargs["as_of"])
    current = _np(pc.is_in(b.column(status).cast(pa.string()), value_set=pa.array(list(IN_FORCE_STATUSES))))
    ended = _np(pc.less(b.column(valid_to), pa.scalar(as_of, pa.date32())))
    return Outcome(current & ended, f"still issued although its validity ended before {as_of.isoformat()}")


def _a_greater_than_b(b: Batch, r: Rule) -> Outcome:
    a, col_b = b.column(r.kwargs["column_A"]), b.column(r.kwargs["column_B"])
    present = _valid(a) & _valid(col_b)
    ok = (pc.greater_equal if r.kwargs.get("or_equal") else pc.greater)(a, col_b)
    return Outcome(present & ~_np(ok), f"before {r.kwargs['column_B']}", int((~present).sum()))


IMPLEMENTATIONS: dict[str, Callable[[Batch, Rule], Outcome]] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_valid_resident_id": _valid_identifier("resident_id"),
    "expect_column_values_to_be_valid_credit_code": _valid_identifier("credit_code"),
    "expect_column_values_to_be_canonical_resident_id": _canonical_identifier("resident_id"),
    "expect_column_values_to_be_canonical_credit_code": _canonical_identifier("credit_code"),
    "expect_column_values_to_be_valid_region_code": _region,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_not_be_in_set": _not_in_set,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_match_strftime_format": _strftime,
    "expect_column_values_to_match_regex": _regex,
    "expect_column_values_to_not_match_regex_list": _not_regex_list,
    "expect_column_value_lengths_to_be_between": _lengths_between,
    "expect_column_values_to_be_unique": _unique,
    "expect_compound_columns_to_be_unique": _compound_unique,
    "expect_column_pair_values_to_match_id_birth_date": _pair_birth,
    "expect_column_pair_values_to_match_id_gender": _pair_gender,
    "expect_column_pair_values_to_be_valid_holder_id": _holder_id,
    "expect_column_pair_values_a_to_be_greater_than_b": _a_greater_than_b,
    "expect_multicolumn_licence_status_to_agree_with_validity": _licence_validity,
}


def evaluate(batch: Batch, rule: Rule) -> Outcome:
    """The rows ``rule`` fails on, vectorised; GX itself for expectation types the gate has no function for."""
    impl = IMPLEMENTATIONS.get(rule.expectation)
    if impl is None:
        from quality.gx import unexpected_rows  # GX is imported only when a suite needs it

        fail = unexpected_rows(rule, batch.records if not rule.raw else batch.raw)
        return Outcome(_to_records(batch, rule, fail) if rule.raw else fail, "fails " + rule.expectation)
    return impl(batch, rule)


# --- results ------------------------------------------------------------------------------------


_SAFE = re.compile(r"^[0-9A-Za-z_.:/ -]{0,40}$")


def masker(library: str, column: str) -> Callable[[object], object]:
    """How a value of ``column`` may appear in a report: ID numbers and personal fields masked."""
    lib = record_type(library)
    level = lib.field(column).personal if column in lib.field_names else PersonalData.PERSONAL
    if level is PersonalData.IDENTIFIER:
        return lambda v: None if v is None else mask_id(str(v))
    if level in (PersonalData.PERSONAL, PersonalData.SENSITIVE):
        return lambda v: None if v is None else mask_name(str(v))
    return lambda v: v if v is None or isinstance(v, (int, float)) or _SAFE.match(str(v)) else mask_name(str(v))


def statistics(batch: Batch, rule: Rule, outcome: Outcome, library: str) -> dict:
    """GX-shaped result of one map rule: counts, percentages and a few unexpected values, masked."""
    n = batch.n
    unexpected = outcome.count
    nonmissing = max(n - outcome.missing, 0)
    column = rule.kwargs.get("column") or rule.kwargs.get("column_B") or (rule.kwargs.get("column_list") or [None])[0]
    partial: list = []
    if unexpected and column is not None:
        rows = np.flatnonzero(outcome.fail)[:PARTIAL]
        source = batch.raw_column(column) if rule.raw else batch.column(column)
        if rule.raw:
            rows = rows % len(source)
        mask = masker(library, rule.field or column if rule.raw else column)
        partial = [mask(v) for v in source.take(pa.array(rows)).to_pylist()]
        partial = [v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v for v in partial]
    return {
        "element_count": n,
        "missing_count": outcome.missing,
        "missing_percent": 100.0 * outcome.missing / n if n else None,
        "unexpected_count": unexpected,
        "unexpected_percent": 100.0 * unexpected / nonmissing if nonmissing else None,
        "unexpected_percent_total": 100.0 * unexpected / n if n else None,
        "unexpected_percent_nonmissing": 100.0 * unexpected / nonmissing if nonmissing else None,
        "partial_unexpected_list": partial,
    }


def reasons_of(outcome: Outcome, rule: Rule, rows: np.ndarray) -> pa.Array:
    """The reason text of ``rule`` for each of ``rows`` (null where it passes)."""
    fail = pa.array(outcome.fail[rows])
    if isinstance(outcome.detail, str):
        text = pa.scalar(f"{rule.field}: {outcome.detail}", pa.string())
        return pc.if_else(fail, text, pa.scalar(None, pa.string()))
    details = outcome.detail.take(pa.array(rows)).cast(pa.string())
    joined = pc.binary_join_element_wise(pa.scalar(f"{rule.field}: "), details, "")
    return pc.if_else(fail, joined, pa.scalar(None, pa.string()))


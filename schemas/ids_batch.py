"""Resident ID numbers and credit codes over Arrow arrays: the vectorised twin of ``schemas.ids``.

Each chunk of about a million values is checked as a byte matrix with numpy, with one lookup
table per rule (dates, region codes by year, check characters). The first pass accepts only values
already in normal form (digits, upper-case letters); only those that fail on length or format are
normalised with Arrow compute (NFKC, separators, upper case) and checked again. Normalising a
value in normal form changes nothing, so clean data never pays for normalisation and the result
is exactly what ``schemas.ids`` gives value by value.
"""

from __future__ import annotations

import calendar
import datetime
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.codes import CREDIT_CODE_AUTHORITIES
from schemas.ids import (
    EARLIEST_BIRTH_YEAR,
    RIC_CHECK,
    RIC_PARTS,
    RIC_WEIGHTS,
    SEPARATORS,
    USCC_ALPHABET,
    USCC_PARTS,
    USCC_WEIGHTS,
)
from schemas.regions import OPEN_END, regions

CHUNK_ROWS = 1 << 20  # keeps a chunk's matrices at a few tens of MB, so memory stays flat
THREADS = 2  # numpy and Arrow compute release the GIL: chunks run side by side

# Error codes: index into RIC_PARTS / USCC_PARTS, shifted by one so that 0 means "valid".
EMPTY, LENGTH, FORMAT, PART4, REGION, CHECK = 1, 2, 3, 4, 5, 6  # PART4: date / authority
# Failed rules as bits (8 format, 4 date or authority, 2 region, 1 check) -> the first one's code.
_FIRST_FAILURE = np.array([0, CHECK, REGION, REGION] + [PART4] * 4 + [FORMAT] * 8, dtype=np.int8)

_SEPARATOR_RE = "[" + "".join(f"\\x{{{ord(c):X}}}" for c in SEPARATORS) + "]+"

_RIC_W = np.array(RIC_WEIGHTS, dtype=np.uint16)
_RIC_CHECK_BYTES = np.frombuffer(RIC_CHECK.encode(), dtype=np.uint8)
# Weighted sum of 17 digits -> check character as a "digit" (X is 88 - 48 = 40). Sums of
# non-digits wrap around in uint16, hence the full table; those rows fail on format first.
_RIC_CHECK_BY_SUM = _RIC_CHECK_BYTES[np.arange(1 << 16) % 11] - np.uint8(48)
_X_DIGIT = ord("X") - ord("0")

_USCC_W = np.array(USCC_WEIGHTS, dtype=np.uint16)
_USCC_BYTES = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
# Weighted sum of 17 values -> check value; valid sums are < 30 * 30 * 17, others wrap in uint16.
_USCC_CHECK_BY_SUM = ((31 - np.arange(1 << 16) % 31) % 31).astype(np.uint8)
_NOT_IN_ALPHABET = 255
# Byte -> MOD 31 value; only upper case: lower-case letters take the normalising second pass.
_USCC_VALUE = np.full(256, _NOT_IN_ALPHABET, dtype=np.uint8)
_USCC_VALUE[_USCC_BYTES] = np.arange(31)
_USCC_VALUE_ARROW = pa.array(_USCC_VALUE)  # Arrow's take is ~4x faster than numpy's on uint8 indices

_MIN_YEAR = EARLIEST_BIRTH_YEAR
_MAX_YEAR = 2200  # span of the region-by-year matrix; the date check stops at today anyway


@dataclass(frozen=True)
class _RegionTables:
    index: np.ndarray  # (10**6,) int32: 6-digit code -> row of ``years``; unknown -> the last row
    years: np.ndarray  # (codes + 1, years from _MIN_YEAR) bool: in use that year; last row all False
    known: np.ndarray  # (10**6,) bool: code known in any year


@lru_cache(maxsize=1)
def _region_tables() -> _RegionTables:
    """The GB/T 2260 table of schemas.regions as lookup arrays, built once."""
    table = regions()
    index = np.full(10**6, len(table), dtype=np.int32)
    years = np.zeros((len(table) + 1, _MAX_YEAR - _MIN_YEAR + 1), dtype=bool)
    for row, (code, periods) in enumerate(table.items()):
        index[int(code)] = row
        for r in periods:
            start, end = max(r.start, _MIN_YEAR), min(r.end if r.end != OPEN_END else _MAX_YEAR, _MAX_YEAR)
            if start <= end:
                years[row, start - _MIN_YEAR : end - _MIN_YEAR + 1] = True
    return _RegionTables(index, years, index < len(table))


@dataclass(frozen=True)
class _DateTables:
    """Lookups for birth dates up to ``today``; year index 0 is before 1900, the last after today."""

    years: int  # length of the year axis
    date_ok: np.ndarray  # flat (years, 14 months, 33 days) bool: a real date from 1900 to today
    region_ok: np.ndarray  # flat (region rows, years) bool: region code in use in that year


@lru_cache(maxsize=2)
def _date_tables(today: datetime.date) -> _DateTables:
    span = today.year - _MIN_YEAR + 1
    date_ok = np.zeros((span + 2, 14, 33), dtype=bool)  # month 13 and day 32 stand for "too big"
    for i, year in enumerate(range(_MIN_YEAR, today.year + 1), start=1):
        for month in range(1, 13):
            date_ok[i, month, 1 : calendar.monthrange(year, month)[1] + 1] = True
    date_ok[span, today.month, today.day + 1 :] = False  # not in the future
    date_ok[span, today.month + 1 :, :] = False
    by_year = _region_tables().years
    region_ok = np.zeros((len(by_year), span + 2), dtype=bool)
    region_ok[:, 1 : span + 1] = by_year[:, :span]
    return _DateTables(span + 2, date_ok.ravel(), region_ok.ravel())


@lru_cache(maxsize=1)
def _authority_ok() -> np.ndarray:
    """Flat (32, 32) bool over (value of 1st char, value of 2nd char), 31 = not in the alphabet."""
    ok = np.zeros((32, 32), dtype=bool)
    for authority, (_name, kinds) in CREDIT_CODE_AUTHORITIES.items():
        for kind in kinds:
            ok[USCC_ALPHABET.index(authority), USCC_ALPHABET.index(kind)] = True
    return ok.ravel()


def ric_check_chars(bodies: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters (ASCII bytes, (N,)) of an (N, 17) matrix of ASCII digits."""
    digits = np.ascontiguousarray(_as_body_matrix(bodies).T) - np.uint8(48)
    if digits.size and digits.max() > 9:
        raise ValueError("resident ID bodies must be ASCII digits")
    return _RIC_CHECK_BY_SUM[_weighted_sum(digits, _RIC_W)] + np.uint8(48)


def uscc_check_chars(bodies: np.ndarray) -> np.ndarray:
    """MOD 31 check characters (ASCII bytes, (N,)) of an (N, 17) matrix of GB 32100 characters."""
    values = np.ascontiguousarray(_USCC_VALUE[_as_body_matrix(bodies)].T)
    if values.size and values.max() == _NOT_IN_ALPHABET:
        raise ValueError("credit-code bodies must use the GB 32100 alphabet (upper case)")
    return _USCC_BYTES[_USCC_CHECK_BY_SUM[_weighted_sum(values, _USCC_W)]]


def _as_body_matrix(bodies: np.ndarray) -> np.ndarray:
    bodies = np.asarray(bodies)
    if bodies.dtype != np.uint8 or bodies.ndim != 2 or bodies.shape[1] != 17:
        raise ValueError(f"expected an (N, 17) uint8 matrix, got {bodies.dtype} {bodies.shape}")
    return bodies


def _weighted_sum(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum(weights[i] * rows[i])`` over the first len(weights) rows of a transposed matrix."""
    total = rows[0] * weights[0]
    for row, weight in zip(rows[1 : len(weights)], weights[1:]):
        total += row * weight
    return total


def _first_failure(fmt: np.ndarray, part4: np.ndarray, region: np.ndarray, check: np.ndarray) -> np.ndarray:
    """Error code of the first rule that fails (all arguments: True where the rule passes)."""
    bits = (~fmt).view(np.uint8) << 3
    bits |= (~part4).view(np.uint8) << 2
    bits |= (~region).view(np.uint8) << 1
    bits |= (~check).view(np.uint8)
    return _FIRST_FAILURE[bits]


def _ric_errors(m: np.ndarray, today: datetime.date) -> np.ndarray:
    """Error codes of an (N, 18) byte matrix of resident ID numbers in normal form."""
    # Transposed, each character position is one contiguous row: column arithmetic stays fast.
    d = m.T.copy()  # a copy always (ascontiguousarray would alias a single row)
    d -= np.uint8(48)  # digits; anything else wraps around to >= 10
    fmt = (d[:17].max(axis=0) < 10) & ((d[17] < 10) | (d[17] == _X_DIGIT))
    # Two-digit values in uint8 (non-digits wrap around harmlessly: those rows fail on format).
    pairs = d[0:14:2] * np.uint8(10) + d[1:14:2]
    code = pairs[0] * np.int32(10000) + pairs[1] * np.int32(100) + pairs[2]
    year = pairs[3] * np.int16(100) + pairs[4]
    month, day = pairs[5], pairs[6]
    tables = _date_tables(today)
    year_index = np.clip(year - np.int16(_MIN_YEAR - 1), 0, tables.years - 1).astype(np.int32)
    date_ok = tables.date_ok[(year_index * 14 + np.minimum(month, 13)) * 33 + np.minimum(day, 32)]
    region_row = _region_tables().index[np.minimum(code, 10**6 - 1)]
    region_ok = tables.region_ok[region_row * tables.years + year_index]
    check_ok = _RIC_CHECK_BY_SUM[_weighted_sum(d, _RIC_W)] == d[17]
    return _first_failure(fmt, date_ok, region_ok, check_ok)


def _ric_upgrade(m15: np.ndarray) -> np.ndarray:
    """Old 15-character numbers -> 18: century "19" inserted, check digit appended (digits or not)."""
    m = np.empty((len(m15), 18), dtype=np.uint8)
    m[:, :6] = m15[:, :6]
    m[:, 6:8] = np.frombuffer(b"19", dtype=np.uint8)
    m[:, 8:17] = m15[:, 6:]
    # A non-digit body gets a meaningless check digit here, but then it fails on format anyway.
    digits = np.ascontiguousarray(m[:, :17].T) - np.uint8(48)
    m[:, 17] = _RIC_CHECK_BY_SUM[_weighted_sum(digits, _RIC_W)] + np.uint8(48)
    return m


def _uscc_errors(m: np.ndarray, today: datetime.date) -> np.ndarray:
    """Error codes of an (N, 18) byte matrix of credit codes in normal form."""
    values = pc.take(_USCC_VALUE_ARROW, pa.array(m.reshape(-1))).to_numpy()
    v = np.ascontiguousarray(values.reshape(m.shape).T)
    fmt = (v.max(axis=0) < 31) & (v[2:8].max(axis=0) < 10)
    authority_ok = _authority_ok()[np.minimum(v[0], 31) * np.int16(32) + np.minimum(v[1], 31)]
    digits = np.minimum(v[2:8], 9)
    ten = np.int32(10)
    code = ((((digits[0] * ten + digits[1]) * ten + digits[2]) * ten + digits[3]) * ten + digits[4]) * ten + digits[5]
    region_ok = _region_tables().known[code]
    check_ok = _USCC_CHECK_BY_SUM[_weighted_sum(v, _USCC_W)] == v[17]
    return _first_failure(fmt, authority_ok, region_ok, check_ok)


@dataclass(frozen=True)
class _Kind:
    parts: tuple[str, ...]
    lengths: tuple[int, ...]  # lengths accepted as typed (15 is upgraded to 18)
    errors: Callable[[np.ndarray, datetime.date], np.ndarray]
    upgrade: Callable[[np.ndarray], np.ndarray] | None = None  # for values of the second length

    @property
    def names(self) -> pa.Array:
        return pa.array(("",) + self.parts, type=pa.string())

    @property
    def length_errors(self) -> np.ndarray:
        """Byte length (capped at 19) -> EMPTY, LENGTH or 0 (go on to the matrix checks)."""
        table = np.full(20, LENGTH, dtype=np.int8)
        table[0] = EMPTY
        table[list(self.lengths)] = 0
        return table


_RIC = _Kind(RIC_PARTS, (18, 15), _ric_errors, _ric_upgrade)
_USCC = _Kind(USCC_PARTS, (18,), _uscc_errors)


def normalise_array(values: pa.Array) -> pa.Array:
    """``schemas.ids.normalise`` over a ``pa.string()`` array (nulls stay null)."""
    non_ascii = _non_ascii(values)
    if non_ascii.any():
        # NFKC only where it can change something: ASCII text is already in NFKC.
        mask = pa.array(non_ascii)
        values = pc.replace_with_mask(values, mask, pc.utf8_normalize(values.filter(mask), "NFKC"))
    values = _drop_ascii_separators(values)
    non_ascii = _non_ascii(values)
    if non_ascii.any():
        # The other separators are several bytes long: RE2, only where some are possible.
        mask = pa.array(non_ascii)
        values = pc.replace_with_mask(values, mask, pc.replace_substring_regex(values.filter(mask), _SEPARATOR_RE, ""))
    return pc.ascii_upper(values)


def _non_ascii(values: pa.Array) -> np.ndarray:
    return ~pc.fill_null(pc.string_is_ascii(values), True).to_numpy(zero_copy_only=False)


_ASCII_SEPARATOR = np.zeros(256, dtype=bool)
_ASCII_SEPARATOR[[ord(c) for c in SEPARATORS if c.isascii()]] = True


def _drop_ascii_separators(values: pa.Array) -> pa.Array:
    """Remove the one-byte separators with numpy (ASCII bytes never occur inside UTF-8 sequences)."""
    offsets, data = _buffers(values)
    used = data[offsets[0] : offsets[-1]]
    keep = ~_ASCII_SEPARATOR[used]
    if keep.all():
        return values
    kept_before = np.zeros(len(used) + 1, dtype=np.int32)
    np.cumsum(keep, out=kept_before[1:])
    validity = _bitmap(values.is_valid().to_numpy(zero_copy_only=False)) if values.null_count else None
    return pa.StringArray.from_buffers(
        len(values), pa.py_buffer(kept_before[offsets - offsets[0]]), pa.py_buffer(used[keep]), validity
    )


def _buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (N+1,) and the whole data buffer of a string array, without copying."""
    _validity, offsets, data = values.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int32)[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _check(values: pa.Array, kind: _Kind, today: datetime.date, normalised: bool) -> tuple[np.ndarray, np.ndarray]:
    """Error codes (N,) and the normalised numbers ((N, 18) bytes, rows of valid values) of a chunk."""
    n = len(values)
    offsets, data = _buffers(values)
    length = np.diff(offsets)  # bytes: characters too, unless a normalised value kept non-ASCII
    err = kind.length_errors[np.minimum(length, 19)]
    if values.null_count:
        err[values.is_null().to_numpy(zero_copy_only=False)] = EMPTY
    if normalised:
        non_ascii = ~pc.fill_null(pc.string_is_ascii(values), True).to_numpy(zero_copy_only=False)
        if non_ascii.any():
            # Still not ASCII after normalising: wrong on length if the character count is, else on format.
            chars = pc.utf8_length(values.filter(pa.array(non_ascii))).to_numpy(zero_copy_only=False)
            err[non_ascii] = np.where(np.isin(chars, kind.lengths), FORMAT, LENGTH)
    out = np.zeros((n, 18), dtype=np.uint8)
    for width in kind.lengths:
        rows = np.flatnonzero((err == 0) & (length == width))
        if not rows.size:
            continue
        # Every ``width`` bytes starting at each byte, as one opaque item: gathering the values
        # is then one fancy index over 1-D items, much faster than over a 2-D window view.
        windows = np.ndarray((len(data) - width + 1,), dtype=f"V{width}", buffer=data, strides=(1,))
        m = windows[offsets[rows]].view(np.uint8).reshape(-1, width)
        if width != kind.lengths[0]:
            m = kind.upgrade(m)
        err[rows] = kind.errors(m, today)
        np.put(out.view("V18").reshape(n), rows, m.view("V18").reshape(-1))
    if not normalised:
        # Only values wrong on length or format as typed can change when normalised.
        retry = np.flatnonzero((err == LENGTH) | (err == FORMAT))
        if retry.size:
            again = normalise_array(values.take(pa.array(retry)))
            err[retry], out[retry] = _check(again, kind, today, normalised=True)
    return err, out


def _bitmap(mask: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(mask, bitorder="little"))


def _chunk_result(values: pa.Array, kind: _Kind, today: datetime.date) -> tuple[pa.Array, pa.Array]:
    err, out = _check(values, kind, today, normalised=False)
    n, valid = len(values), err == 0
    # Fixed-width layout: invalid rows are null with 18 zero bytes, so no compaction is needed, and
    # the buffer keeps no trace of invalid input (IPC files write null slots as they are).
    out[~valid] = 0
    offsets = np.arange(0, 18 * (n + 1), 18, dtype=np.int32)
    normalised = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out), _bitmap(valid))
    indices = pa.Array.from_buffers(pa.int8(), n, [_bitmap(~valid), pa.py_buffer(err)])
    return normalised, kind.names.take(indices)


def _pieces(values: pa.ChunkedArray) -> Iterator[pa.Array]:
    """The values in arrays of at most CHUNK_ROWS: big chunks sliced, small neighbours joined."""
    small: list[pa.Array] = []
    size = 0
    for chunk in values.chunks:
        for start in range(0, len(chunk), CHUNK_ROWS):
            piece = chunk.slice(start, CHUNK_ROWS)
            if piece.type != pa.string():  # large_string, string_view, dictionary, null: piece by piece
                piece = piece.cast(pa.string())
            if size + len(piece) > CHUNK_ROWS and small:
                yield pa.concat_arrays(small) if len(small) > 1 else small[0]
                small, size = [], 0
            small.append(piece)
            size += len(piece)
    if small:
        yield pa.concat_arrays(small) if len(small) > 1 else small[0]


def _validate(values: pa.Array | pa.ChunkedArray, kind: _Kind) -> pa.Table:
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    elif not isinstance(values, pa.ChunkedArray):
        values = pa.chunked_array([pa.array(values, type=pa.string())])
    today = datetime.date.today()
    pieces = list(_pieces(values))  # slices: no copies, except where small chunks are joined

    def run(piece: pa.Array) -> tuple[pa.Array, pa.Array]:
        return _chunk_result(piece, kind, today)

    if len(pieces) <= 1 or THREADS <= 1:
        results = [run(piece) for piece in pieces]
    else:
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(run, pieces))
    return pa.table(
        {
            "normalised": pa.chunked_array([r[0] for r in results], type=pa.string()),
            "error": pa.chunked_array([r[1] for r in results], type=pa.string()),
        }
    )


def validate_resident_ids(values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Columns ``normalised`` (18-character number, null if invalid) and ``error`` (part name or null)."""
    return _validate(values, _RIC)


def validate_credit_codes(values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Columns ``normalised`` (credit code, null if invalid) and ``error`` (part name or null)."""
    return _validate(values, _USCC)

"""Vectorised text building on Arrow: fixed-width byte matrices, digits, dates, picks and joins."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def from_fixed(mat: np.ndarray, valid: np.ndarray | None = None) -> pa.StringArray:
    """Each row of an (n, w) uint8 matrix of UTF-8 bytes as one string (null where ``valid`` is False)."""
    n, w = mat.shape
    if n * w >= 2**31:
        raise ValueError("fixed-width block too large for one string array; build it in slices")
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(mat)), bitmap)


# Two ASCII digits for 0..99, as one uint16 each: one division and one gather per two digits.
_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8)
_PAIRS16 = _PAIRS.view(np.uint16).ravel()


def digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """(n,) non-negative integers -> (n, width) zero-padded ASCII digits."""
    # 32-bit division is much faster than 64-bit; most of our numbers fit.
    values = np.asarray(values).astype(np.uint32 if width <= 9 else np.uint64, copy=False)
    n, odd = len(values), width % 2
    out = np.empty((n, width + odd), dtype=np.uint8)  # an odd width gets one leading pad byte
    pairs = out.view(np.uint16)
    for col in range((width + odd) // 2 - 1, -1, -1):
        values, rest = np.divmod(values, 100)
        pairs[:, col] = _PAIRS16[rest]
    return out[:, odd:] if odd else out


def digits(values: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.StringArray:
    """Zero-padded decimal strings of a fixed width (null where ``valid`` is False)."""
    return from_fixed(digit_matrix(values, width), valid)


# Calendar lookups: every day from 1900 to 2199 -> year, month, day and its 'YYYYMMDD' text.
_EPOCH = np.datetime64("1900-01-01", "D")
_DAYS = 300 * 366


@lru_cache(maxsize=1)
def _calendar() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    days = _EPOCH + np.arange(_DAYS)
    year = days.astype("datetime64[Y]")
    month = days.astype("datetime64[M]")
    y = (year.astype(np.int64) + 1970).astype(np.int16)
    m = (month - year.astype("datetime64[M]")).astype(np.int8) + 1
    d = (days - month.astype("datetime64[D]")).astype(np.int8) + 1
    text = np.hstack([_PAIRS[y // 100], _PAIRS[y % 100], _PAIRS[m], _PAIRS[d]])
    return y, m, d, text


def _offsets(days: np.ndarray) -> np.ndarray:
    offset = (np.asarray(days).astype("datetime64[D]") - _EPOCH).astype(np.int64)
    if offset.size and (offset.min() < 0 or offset.max() >= _DAYS):
        raise ValueError("dates must fall between 1900 and 2199")
    return offset


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day (int64) of datetime64[D] values, by table lookup."""
    y, m, d, _text = _calendar()
    offset = _offsets(days)
    return y[offset].astype(np.int64), m[offset].astype(np.int64), d[offset].astype(np.int64)


def date_matrix(days: np.ndarray, sep: str = "-") -> np.ndarray:
    """datetime64[D] -> (n, 8 or 10) ASCII 'YYYY-MM-DD' (or 'YYYYMMDD' when ``sep`` is empty)."""
    compact = _calendar()[3][_offsets(days)]
    if not sep:
        return compact
    out = np.empty((len(compact), 10), dtype=np.uint8)
    out[:, :4], out[:, 5:7], out[:, 8:] = compact[:, :4], compact[:, 4:6], compact[:, 6:]
    out[:, 4] = out[:, 7] = ord(sep)
    return out


def dates(days: np.ndarray, sep: str = "-") -> pa.StringArray:
    """datetime64[D] -> 'YYYY-MM-DD' strings, null where NaT."""
    days = np.asarray(days).astype("datetime64[D]")
    nat = np.isnat(days)
    safe = np.where(nat, np.datetime64("2000-01-01"), days)
    return from_fixed(date_matrix(safe, sep), None if not nat.any() else ~nat)


def timestamps(seconds: np.ndarray, sep: str = " ") -> pa.StringArray:
    """datetime64[s] -> 'YYYY-MM-DD HH:MM:SS' strings (``sep`` between date and time)."""
    s = np.asarray(seconds).astype("datetime64[s]")
    day = s.astype("datetime64[D]")
    secs = (s - day).astype(np.int32)
    out = np.empty((len(s), 19), dtype=np.uint8)
    out[:, :10] = date_matrix(day)
    out[:, 10] = ord(sep)
    out[:, 11:13], out[:, 14:16], out[:, 17:19] = _PAIRS[secs // 3600], _PAIRS[secs // 60 % 60], _PAIRS[secs % 60]
    out[:, 13] = out[:, 16] = ord(":")
    return from_fixed(out)


def hex_digits(rng: np.random.Generator, n: int, length: int) -> pa.StringArray:
    """Random lower-case hex strings (what a SHA-256 digest looks like, for files we do not have)."""
    return from_fixed(_HEX[rng.integers(0, 16, (n, length), dtype=np.uint8)])


def pick(words: Sequence[str] | pa.Array, index: np.ndarray) -> pa.Array:
    """``words[index]`` as a string array."""
    table = words if isinstance(words, pa.Array) else pa.array(list(words), pa.string())
    return table.take(pa.array(np.asarray(index, dtype=np.int64)))


def coded(words: Sequence[str] | pa.Array, index: np.ndarray) -> pa.DictionaryArray:
    """``words[index]`` as a dictionary array: no copy of the text, cheap to bind row by row later."""
    table = words if isinstance(words, pa.Array) else pa.array(list(words), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(index, dtype=np.int32)), table)


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and constants."""
    return pc.binary_join_element_wise(*parts, "")


def with_nulls(values: pa.Array, null: np.ndarray) -> pa.Array:
    """``values`` with nulls where ``null`` is True."""
    if not null.any():
        return values
    return pc.if_else(pa.array(null), pa.scalar(None, values.type), values)


def replace_rows(values: pa.Array, rows: np.ndarray, replacements: pa.Array) -> pa.Array:
    """``values`` with ``values[rows[i]] = replacements[i]`` (rows ascending not required)."""
    if len(rows) == 0:
        return values
    order = np.argsort(rows, kind="stable")
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(values, pa.array(mask), replacements.take(pa.array(order)))


def codepoints(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each string as a zero-padded row of Unicode code points (uint32), and its length in characters (null: empty)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.fill_null(values.cast(pa.string()), "")
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=n + 1, offset=values.offset * 4)
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]] if data is not None else np.zeros(0, np.uint8)
    lead = (raw & 0xC0) != 0x80
    starts = np.flatnonzero(lead)  # first byte of every character
    row = np.repeat(np.arange(n), np.diff(offsets))[starts]
    lengths = np.bincount(row, minlength=n).astype(np.int64)
    mat = np.zeros((n, max(int(lengths.max(initial=0)), 1)), dtype=np.uint32)
    if not len(starts):
        return mat, lengths
    first = raw[starts]
    size = 1 + (first >= 0xC0) + (first >= 0xE0) + (first >= 0xF0)
    char = np.cumsum(lead) - 1  # character of every byte
    k = np.arange(len(raw)) - starts[char]  # byte number within its character
    payload = np.where(lead, raw & np.array([0, 0x7F, 0x1F, 0x0F, 0x07], np.uint8)[size[char]], raw & 0x3F)
    bits = payload.astype(np.uint32) << (6 * (size[char] - 1 - k)).astype(np.uint32)
    pos = np.arange(len(starts)) - (np.cumsum(lengths) - lengths)[row]
    mat[row, pos] = np.add.reduceat(bits, starts)  # the bits of one character never overlap
    return mat, lengths


def from_codepoints(mat: np.ndarray, lengths: np.ndarray) -> pa.StringArray:
    """The inverse of ``codepoints``: row i is ``mat[i, :lengths[i]]`` encoded as UTF-8."""
    n, w = mat.shape
    cells = np.arange(w) < np.asarray(lengths)[:, None]
    cps = mat[cells].astype(np.uint32)
    size = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    per_row = np.bincount(np.nonzero(cells)[0], weights=size, minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
    out = np.zeros((len(cps), 4), dtype=np.uint8)
    cont = [(0x80 | (cps >> s) & 0x3F).astype(np.uint8) for s in (0, 6, 12)]  # continuation bytes, last first
    for width, lead_mark in ((1, 0), (2, 0xC0), (3, 0xE0), (4, 0xF0)):
        rows = size == width
        out[rows, 0] = (lead_mark | (cps[rows] >> (6 * (width - 1)))).astype(np.uint8)
        for b in range(1, width):
            out[rows, b] = cont[width - 1 - b][rows]
    data = out[np.arange(4) < size[:, None]]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data)))

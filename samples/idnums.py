"""Resident ID numbers and credit codes as byte matrices, and the ways departments get them wrong."""

from __future__ import annotations

import numpy as np

from samples.text import digit_matrix, ymd
from schemas.ids import RIC_CHECK, USCC_ALPHABET
from schemas.ids_batch import ric_check_chars, uscc_check_chars

_RIC_CHECK = np.frombuffer(RIC_CHECK.encode(), dtype=np.uint8)
_RIC_POS = np.zeros(256, dtype=np.int64)
_RIC_POS[_RIC_CHECK] = np.arange(len(_RIC_CHECK))
_USCC = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
_USCC_VALUE = np.full(256, 255, dtype=np.uint8)
_USCC_VALUE[_USCC] = np.arange(len(_USCC))
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2])  # GB 11714 organisation code check
# Organisation-code serials go through x -> (x * A + B) mod 10**8: a bijection (A is odd and not
# a multiple of 5), so distinct serials give distinct codes that still look random.
_ORG_A = 48_271_037
_ORG_SPACE = 10**8


def resident_ids(region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """(n, 18) ID numbers from (n, 6) region digits, birth dates and 3-digit sequence numbers."""
    y, m, d = ymd(birth)
    out = np.empty((len(seq), 18), dtype=np.uint8)
    out[:, :6] = region
    out[:, 6:14] = digit_matrix(y * 10000 + m * 100 + d, 8)
    out[:, 14:17] = digit_matrix(seq, 3)
    out[:, 17] = ric_check_chars(out[:, :17])
    return out


def credit_codes(authority: np.ndarray, kind: np.ndarray, region: np.ndarray, serial: np.ndarray, salt: int) -> np.ndarray:
    """(n, 18) credit codes: authority and type characters (ASCII), region digits, organisation code from ``serial``."""
    org = (np.asarray(serial, dtype=np.int64) * _ORG_A + salt) % _ORG_SPACE
    body = digit_matrix(org, 8)
    total = ((body.astype(np.int64) - 48) * _ORG_WEIGHTS).sum(axis=1)
    check = (11 - total % 11) % 11  # 10 is written X, 11 (i.e. 0 here) is 0
    out = np.empty((len(org), 18), dtype=np.uint8)
    out[:, 0], out[:, 1] = authority, kind
    out[:, 2:8] = region
    out[:, 8:16] = body
    out[:, 16] = np.where(check == 10, ord("X"), check + 48)
    out[:, 17] = uscc_check_chars(out[:, :17])
    return out


def wrong_ric_check(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies with a check character that is always wrong."""
    out = ids.copy()
    out[:, 17] = _RIC_CHECK[(_RIC_POS[ids[:, 17]] + rng.integers(1, 11, len(ids))) % 11]
    return out


def wrong_uscc_check(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies with a check character that is always wrong."""
    out = codes.copy()
    true = _USCC_VALUE[codes[:, 17]].astype(np.int64)
    out[:, 17] = _USCC[(true + rng.integers(1, 31, len(codes))) % 31]
    return out


def old_15(ids: np.ndarray) -> np.ndarray:
    """The pre-1999 15-digit form: no century, no check digit."""
    return np.hstack([ids[:, :6], ids[:, 8:17]])


def full_width(ascii_mat: np.ndarray) -> np.ndarray:
    """ASCII characters as their full-width forms (U+FF01..), typed with the IME in full-width mode."""
    n, w = ascii_mat.shape
    out = np.empty((n, w, 3), dtype=np.uint8)
    out[:, :, 0], out[:, :, 1] = 0xEF, 0xBC
    out[:, :, 2] = ascii_mat + (0x80 - 0x20)
    return out.reshape(n, 3 * w)


def body_key(ids: np.ndarray) -> np.ndarray:
    """The 17-digit body of each ID number as one int64, for membership tests."""
    key = np.zeros(len(ids), dtype=np.int64)
    for col in range(17):
        key = key * 10 + (ids[:, col] - 48)
    return key

"""Resident ID numbers (GB 11643) and unified social credit codes (GB 32100): one value at a time."""

from __future__ import annotations

# ISO 7064 MOD 11-2 weights of the first 17 digits of a resident ID number: 2**(17-i) mod 11.
RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RIC_CHECK = "10X98765432"  # check character for sum mod 11

# GB 32100 alphabet (no I, O, S, V, Z) and MOD 31 weights of the first 17 characters: 3**i mod 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def ric_check_char(body17: str) -> str:
    """The check character of a resident ID number from its first 17 digits."""
    return RIC_CHECK[sum(int(c) * w for c, w in zip(body17, RIC_WEIGHTS)) % 11]


def uscc_check_char(body17: str) -> str:
    """The check character of a unified social credit code from its first 17 characters."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body17, USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]

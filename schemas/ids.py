"""Resident ID numbers (GB 11643) and unified social credit codes (GB 32100): one value at a time.

Both validators normalise what people type (full-width characters, lower-case letters,
separators), then check the parts in a fixed order and raise ``InvalidIdentifier`` naming the
first wrong part. Error details never contain the number itself: it is personal data.
``schemas.ids_batch`` is the vectorised twin of this module and must agree with it exactly.
"""

from __future__ import annotations

import datetime
import string

from hub.errors import InvalidIdentifier
from schemas.codes import CREDIT_CODE_AUTHORITIES
from schemas.regions import is_known

# ISO 7064 MOD 11-2 weights of the first 17 digits of a resident ID number: 2**(17-i) mod 11.
RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RIC_CHECK = "10X98765432"  # check character for sum mod 11

# GB 32100 alphabet (no I, O, S, V, Z) and MOD 31 weights of the first 17 characters: 3**i mod 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

RIC_KIND = "resident ID number"
USCC_KIND = "unified social credit code"

# The parts a check can fail on, in the order they are checked (also the batch form's error names).
RIC_PARTS = ("empty", "length", "format", "date", "region", "check_digit")
USCC_PARTS = ("empty", "length", "format", "authority", "region", "check_digit")

# Characters removed by ``normalise`` (after NFKC): an explicit list rather than Unicode
# categories, so that the batch form can remove exactly the same set with one RE2 class. It
# covers every character python-stdnum's clean() turns into a space or hyphen.
SEPARATORS = (
    "".join(chr(c) for c in range(0x3001) if chr(c).isspace())  # all whitespace (the last is U+3000)
    + "-_.,/\\:;'"  # grouping separators, and the apostrophe spreadsheets prefix to keep text
    + "\u058a\u05be\u180a\u02d7\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212"  # hyphens, dashes
    + "\u23af\u23ba\u23bb\u23bc\u23bd\u23e4\u2e3a\u2e3b"  # and the lines that look like them
    + "\u00b7\u2027\u30fb\u3001\u3002"  # middle dots, ideographic comma and full stop
    + "\u180e\u200b\u200c\u200d\u2060\ufeff"  # zero-width characters and the byte-order mark
)
_NORMALISE_TABLE = {ord(c): None for c in SEPARATORS} | {
    ord(c): c.upper() for c in string.ascii_lowercase
}

EARLIEST_BIRTH_YEAR = 1900


def ric_check_char(body17: str) -> str:
    """The check character of a resident ID number from its first 17 digits."""
    return RIC_CHECK[sum(int(c) * w for c, w in zip(body17, RIC_WEIGHTS)) % 11]


def uscc_check_char(body17: str) -> str:
    """The check character of a unified social credit code from its first 17 characters."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body17, USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def _nfkc(text: str) -> str:
    # Arrow's utf8proc tables, not Python's unicodedata: they are newer (Unicode 16 against 14 on
    # Python 3.11), and using one implementation keeps this form and the batch form identical.
    import pyarrow.compute as pc

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (undecodable bytes kept by "surrogateescape") cannot be valid: make
        # them "?" so that the checks report them instead of Arrow refusing the string.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return pc.utf8_normalize(text, "NFKC").as_py()


def normalise(text: str | None) -> str:
    """What people type -> canonical form: NFKC, separators removed, ASCII letters upper-cased."""
    if not text:
        return ""
    if not text.isascii():
        text = _nfkc(text)
    return text.translate(_NORMALISE_TABLE)


def _is_digits(text: str) -> bool:
    # str.isdigit() accepts other scripts' digits; only ASCII ones are valid here.
    return text.isascii() and text.isdigit()


def _ric_error(part: str, detail: str) -> InvalidIdentifier:
    return InvalidIdentifier(RIC_KIND, part, detail)


def _ric_shape(text: str | None) -> str:
    """Normalise and check empty/length/format; returns the 15- or 18-character number."""
    number = normalise(text)
    if not number:
        raise _ric_error("empty", "no characters after removing separators")
    if len(number) not in (15, 18):
        raise _ric_error("length", f"expected 18 characters (or 15 for an old number), got {len(number)}")
    if len(number) == 15:
        if not _is_digits(number):
            raise _ric_error("format", "an old 15-character number must be all digits")
    elif not (_is_digits(number[:17]) and (number[17] == "X" or _is_digits(number[17]))):
        raise _ric_error("format", "expected 17 digits followed by a digit or X")
    return number


def upgrade_15(text: str) -> str:
    """Upgrade an old 15-digit number to 18: insert the century "19", append the check digit."""
    number = _ric_shape(text)
    if len(number) == 18:
        raise _ric_error("length", "expected an old 15-digit number, got 18 characters")
    body = number[:6] + "19" + number[6:]
    return body + ric_check_char(body)


def _birth_date(number: str, today: datetime.date) -> datetime.date:
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if not 1 <= month <= 12:
        raise _ric_error("date", f"month {month}")
    if year < EARLIEST_BIRTH_YEAR:
        raise _ric_error("date", f"birth year before {EARLIEST_BIRTH_YEAR}")
    try:
        born = datetime.date(year, month, day)
    except ValueError:
        raise _ric_error("date", f"day {day} does not exist in month {month} of that year") from None
    if born > today:
        raise _ric_error("date", "birth date is in the future")
    return born


def validate_resident_id(text: str | None) -> str:
    """The normalised 18-character resident ID number, or ``InvalidIdentifier`` naming the wrong part."""
    number = _ric_shape(text)
    if len(number) == 15:
        number = number[:6] + "19" + number[6:]
        number += ric_check_char(number)
    born = _birth_date(number, datetime.date.today())
    if not is_known(number[:6], born.year):
        raise _ric_error("region", "region code not in GB/T 2260 in the birth year")
    if number[17] != ric_check_char(number[:17]):
        raise _ric_error("check_digit", "ISO 7064 MOD 11-2 check digit does not match")
    return number


def _uscc_error(part: str, detail: str) -> InvalidIdentifier:
    return InvalidIdentifier(USCC_KIND, part, detail)


def validate_credit_code(text: str | None) -> str:
    """The normalised unified social credit code, or ``InvalidIdentifier`` naming the wrong part."""
    code = normalise(text)
    if not code:
        raise _uscc_error("empty", "no characters after removing separators")
    if len(code) != 18:
        raise _uscc_error("length", f"expected 18 characters, got {len(code)}")
    if any(c not in USCC_ALPHABET for c in code):
        raise _uscc_error("format", "characters outside 0-9 and A-Z without I, O, S, V, Z")
    if not _is_digits(code[2:8]):
        raise _uscc_error("format", "region code (characters 3-8) must be digits")
    authority = CREDIT_CODE_AUTHORITIES.get(code[0])
    if authority is None:
        raise _uscc_error("authority", f"unknown registering-authority code {code[0]}")
    if code[1] not in authority[1]:
        raise _uscc_error("authority", f"unknown entity-type code {code[1]} for authority {code[0]}")
    if not is_known(code[2:8]):
        raise _uscc_error("region", "region code not in GB/T 2260")
    if code[17] != uscc_check_char(code[:17]):
        raise _uscc_error("check_digit", "MOD 31 check character does not match")
    return code


def is_valid_resident_id(text: str | None) -> bool:
    """Whether ``text`` is a valid resident ID number (old 15-digit numbers included)."""
    try:
        validate_resident_id(text)
    except InvalidIdentifier:
        return False
    return True


def is_valid_credit_code(text: str | None) -> bool:
    """Whether ``text`` is a valid unified social credit code."""
    try:
        validate_credit_code(text)
    except InvalidIdentifier:
        return False
    return True


def birth_date_of(id18: str) -> datetime.date:
    """The birth date of a resident ID number (validated first)."""
    number = validate_resident_id(id18)
    return datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def gender_of(id18: str) -> str:
    """GB/T 2261.1 sex code of a resident ID number: "1" (odd sequence, male) or "2" (even, female)."""
    number = validate_resident_id(id18)
    return "1" if int(number[16]) % 2 else "2"

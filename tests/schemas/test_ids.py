"""Scalar validators of resident ID numbers (GB 11643) and credit codes (GB 32100): every rule, both ways."""

from __future__ import annotations

import datetime

import pytest

from hub.errors import InvalidIdentifier
from schemas.ids import (
    birth_date_of,
    gender_of,
    is_valid_credit_code,
    is_valid_resident_id,
    normalise,
    ric_check_char,
    upgrade_15,
    uscc_check_char,
    validate_credit_code,
    validate_resident_id,
)

TODAY = datetime.date.today()
FULL_WIDTH = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZx", "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺｘ")


def ric(region: str = "110105", born: str = "19900307", seq: str = "001") -> str:
    """A resident ID number with the right check digit."""
    body = region + born + seq
    return body + ric_check_char(body)


def with_check(number: str, check: str) -> str:
    return number[:17] + check


def wrong_check(number: str) -> str:
    return with_check(number, "0" if number[17] != "0" else "1")


def uscc(body: str = "91110000600037341") -> str:
    """A credit code with the right check character."""
    return body + uscc_check_char(body)


def ric_part(text: str | None) -> str:
    with pytest.raises(InvalidIdentifier) as info:
        validate_resident_id(text)
    assert info.value.kind == "resident ID number"
    return info.value.part


def uscc_part(text: str | None) -> str:
    with pytest.raises(InvalidIdentifier) as info:
        validate_credit_code(text)
    assert info.value.kind == "unified social credit code"
    return info.value.part


GOOD = ric()  # 110105199003070017: 北京市朝阳区, born 1990-03-07, sequence 001


# --- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("110105199003070017", "110105199003070017"),
        ("１１０１０５１９９００３０７００１７", "110105199003070017"),  # full-width digits (NFKC)
        ("11010519900307001x", "11010519900307001X"),
        ("110105 19900307 0017", "110105199003070017"),
        ("110105-19900307-0017", "110105199003070017"),
        ("110105\u201319900307\u20140017", "110105199003070017"),  # en and em dashes
        ("\ufeff110105199003070017\u200b", "110105199003070017"),  # byte-order mark, zero-width space
        ("\u3000110105199003070017\t\r\n", "110105199003070017"),  # ideographic space, line end
        ("'110105199003070017", "110105199003070017"),  # the apostrophe spreadsheets put in front
        ("9 1 110000 600037341l", "91110000600037341L"),
        ("ｆｏｏ·ｂａｒ", "FOOBAR"),
        ("", ""),
        (" - ", ""),
    ],
)
def test_normalise(typed: str, expected: str) -> None:
    assert normalise(typed) == expected


def test_undecodable_bytes_are_a_format_error() -> None:
    assert ric_part("\udcb1" + GOOD[1:]) == "format"  # a byte kept by errors="surrogateescape"


def test_normalise_none_is_empty() -> None:
    assert normalise(None) == ""


def test_normalise_keeps_other_characters_for_the_format_check() -> None:
    assert normalise("11010５*99é") == "110105*99é"


# --- resident ID: accepted ---------------------------------------------------------------------


def test_valid_number_is_returned_normalised() -> None:
    assert GOOD == "110105199003070017"
    assert validate_resident_id(GOOD) == GOOD
    assert is_valid_resident_id(GOOD)


@pytest.mark.parametrize(
    "typed",
    [
        GOOD.translate(FULL_WIDTH),
        " ".join([GOOD[:6], GOOD[6:14], GOOD[14:]]),
        "-".join([GOOD[:6], GOOD[6:14], GOOD[14:]]),
        f"  {GOOD}\n",
    ],
)
def test_typed_variants_are_accepted(typed: str) -> None:
    assert validate_resident_id(typed) == GOOD


def test_check_digit_x_upper_and_lower_case() -> None:
    number = next(ric(seq=f"{s:03d}") for s in range(1000) if ric(seq=f"{s:03d}").endswith("X"))
    assert validate_resident_id(number) == number
    assert validate_resident_id(number.lower()) == number
    assert validate_resident_id(number[:17] + "ｘ") == number


# --- resident ID: empty, length, format ---------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", "-", "\ufeff"])
def test_empty(text: str | None) -> None:
    assert ric_part(text) == "empty"


@pytest.mark.parametrize("text", [GOOD[:17], GOOD + "1", GOOD[:16], GOOD[:14], "1", GOOD * 2])
def test_length(text: str) -> None:
    assert ric_part(text) == "length"


def test_length_detail_says_how_long() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        validate_resident_id(GOOD[:17])
    assert "got 17" in info.value.detail


@pytest.mark.parametrize(
    "text",
    [
        GOOD[:6] + "A" + GOOD[7:],  # a letter in the body
        GOOD[:10] + "X" + GOOD[11:],  # X anywhere but last
        GOOD[:17] + "Y",  # a last character other than a digit or X
        GOOD[:17] + "*",
        GOOD[:9] + "é" + GOOD[10:],  # not ASCII
        "١١٠١٠٥١٩٩٠٠٣٠٧٠٠١٧",  # Arabic-Indic digits are digits, but not these
        "11010590030700X",  # an old 15-digit number has no check digit
        "1101059003070A1",
    ],
)
def test_format(text: str) -> None:
    assert ric_part(text) == "format"


# --- resident ID: date ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "born",
    [
        "19901307",  # month 13
        "19900007",  # month 0
        "19900300",  # day 0
        "19900332",  # day 32
        "19900431",  # 31 April
        "19000229",  # 1900 is not a leap year (divisible by 100)
        "20010229",  # 2001 is not a leap year
        "18991231",  # before 1900
        "00000101",
    ],
)
def test_date_rejected(born: str) -> None:
    assert ric_part(ric(born=born)) == "date"


@pytest.mark.parametrize("born", ["20000229", "20040229", "19600229", "19000101", "19901231", "19900331"])
def test_date_accepted(born: str) -> None:
    # 110101 东城区 has been in use without interruption, so only the date is under test here.
    assert validate_resident_id(ric(region="110101", born=born))


def test_month_detail() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        validate_resident_id(ric(born="19901307"))
    assert info.value.detail == "month 13"


def test_future_birth_date_rejected_today_accepted() -> None:
    tomorrow = TODAY + datetime.timedelta(days=1)
    assert ric_part(ric(region="110101", born=tomorrow.strftime("%Y%m%d"))) == "date"
    assert ric_part(ric(region="110101", born=f"{TODAY.year + 1}0101")) == "date"
    assert validate_resident_id(ric(region="110101", born=TODAY.strftime("%Y%m%d")))


# --- resident ID: region by birth year -----------------------------------------------------------


def test_region_valid_in_birth_year_only() -> None:
    # 110103 崇文区 was merged into 东城区 in 2010: fine for a 1990 birth, not for a 2015 one.
    assert validate_resident_id(ric(region="110103", born="19900101"))
    assert ric_part(ric(region="110103", born="20150101")) == "region"
    # 110118 密云区 exists from 2015 on.
    assert validate_resident_id(ric(region="110118", born="20160101"))
    assert ric_part(ric(region="110118", born="20100101")) == "region"


@pytest.mark.parametrize("region", ["999999", "000000", "110199", "119999"])
def test_unknown_region(region: str) -> None:
    assert ric_part(ric(region=region)) == "region"


# --- resident ID: check digit and the order of the checks ----------------------------------------


def test_check_digit() -> None:
    assert ric_part(wrong_check(GOOD)) == "check_digit"
    assert ric_part(GOOD[:11] + "4" + GOOD[12:]) == "check_digit"  # 1990-04-07: a real date


def test_parts_are_checked_in_order() -> None:
    assert ric_part(wrong_check(ric(born="19901307"))) == "date"  # date before check digit
    assert ric_part(wrong_check(ric(region="999999"))) == "region"  # region before check digit
    assert ric_part(ric(region="999999", born="19901307")) == "date"  # date before region
    assert ric_part("A" + GOOD[2:]) == "length"  # length before format


# --- resident ID: old 15-digit numbers -----------------------------------------------------------


def test_upgrade_15() -> None:
    assert upgrade_15("110105900307001") == GOOD
    assert upgrade_15("１１０１０５ ９００３０７ ００１") == GOOD


def test_15_digit_number_is_upgraded_then_validated() -> None:
    assert validate_resident_id("110105900307001") == GOOD
    assert validate_resident_id("110103900101001") == ric(region="110103", born="19900101")


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("110105901307001", "date"),  # month 13 of 1990
        ("110105000229001", "date"),  # 1900-02-29
        ("999999900307001", "region"),
        ("110118900307001", "region"),  # 密云区 did not exist in 1990
        ("11010590030700", "length"),
        ("11010590030700Z", "format"),
    ],
)
def test_15_digit_rejected(text: str, part: str) -> None:
    assert ric_part(text) == part


def test_upgrade_15_refuses_other_shapes() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        upgrade_15(GOOD)
    assert info.value.part == "length"
    with pytest.raises(InvalidIdentifier) as info:
        upgrade_15("11010590030700A")
    assert info.value.part == "format"


# --- resident ID: birth date and gender ----------------------------------------------------------


def test_birth_date_and_gender() -> None:
    assert birth_date_of(GOOD) == datetime.date(1990, 3, 7)
    assert birth_date_of("110105900307001") == datetime.date(1990, 3, 7)
    assert gender_of(GOOD) == "1"  # sequence 001: odd, male
    assert gender_of(ric(seq="002")) == "2"  # even, female
    assert gender_of("110105900307002") == "2"
    with pytest.raises(InvalidIdentifier):
        birth_date_of(wrong_check(GOOD))


# --- credit code ---------------------------------------------------------------------------------

CODE = "91110000600037341L"  # the example of python-stdnum's cn.uscc


def test_credit_code_accepted() -> None:
    assert uscc() == CODE
    assert validate_credit_code(CODE) == CODE
    assert is_valid_credit_code(CODE)


@pytest.mark.parametrize(
    "typed",
    [CODE.lower(), CODE.translate(FULL_WIDTH), "9 1 110000 600037341L", "91-110000-60003734-1L", f"\t{CODE} "],
)
def test_credit_code_typed_variants(typed: str) -> None:
    assert validate_credit_code(typed) == CODE


@pytest.mark.parametrize(
    "body",
    [
        "11110000000013127",  # 机构编制 · 机关
        "51110000500021676",  # 民政 · 社会团体
        "52110000MJ0000000",  # 民政 · 民办非企业单位, letters in the organisation code
        "92110105MA0000000",  # 工商 · 个体工商户
        "A1110000000000000",  # 中央军委改革和编制办公室: a letter authority
        "N2110105000000000",  # 农业 · 村级集体经济组织
        "Y1110000000000000",  # 其他
        "91110103000000000",  # 110103 崇文区: no year for credit codes, any GB/T 2260 code
    ],
)
def test_credit_code_authorities_accepted(body: str) -> None:
    assert validate_credit_code(uscc(body)) == uscc(body)


@pytest.mark.parametrize("text", [None, "", "  ", "-"])
def test_credit_code_empty(text: str | None) -> None:
    assert uscc_part(text) == "empty"


@pytest.mark.parametrize("text", [CODE[:17], CODE + "1", CODE[:15], "91"])
def test_credit_code_length(text: str) -> None:
    assert uscc_part(text) == "length"


@pytest.mark.parametrize(
    "text",
    [
        *(CODE[:10] + letter + CODE[11:] for letter in "IOSVZ"),  # letters GB 32100 leaves out
        "I" + CODE[1:],
        "91A10000600037341L",  # the region code must be digits
        "9111000060003734*L",
        "9111000060003734éL",
    ],
)
def test_credit_code_format(text: str) -> None:
    assert uscc_part(text) == "format"


@pytest.mark.parametrize(
    "body",
    [
        "B1110000600037341",  # B: in the alphabet, not a registering authority
        "01110000600037341",
        "94110000600037341",  # 工商 has entity types 1, 2, 3 only
        "Y2110000600037341",  # 其他 has entity type 1 only
        "5A110000600037341",
    ],
)
def test_credit_code_authority(body: str) -> None:
    assert uscc_part(uscc(body)) == "authority"


def test_credit_code_authority_detail_names_the_code_not_the_number() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        validate_credit_code(uscc("94110000600037341"))
    assert "entity-type code 4" in info.value.detail


@pytest.mark.parametrize("region", ["999999", "000000", "119999"])
def test_credit_code_region(region: str) -> None:
    assert uscc_part(uscc("91" + region + "600037341")) == "region"


def test_credit_code_check_character() -> None:
    assert uscc_part(CODE[:17] + "M") == "check_digit"
    assert uscc_part(CODE[:9] + "2" + CODE[10:]) == "check_digit"


def test_credit_code_parts_are_checked_in_order() -> None:
    assert uscc_part("9411000060003734XM") == "authority"  # authority before check character
    assert uscc_part("9199999960003734XM") == "region"  # region before check character
    assert uscc_part("9499999960003734XM") == "authority"  # authority before region
    assert uscc_part("Z4110000600037341") == "length"  # length before format


# --- nothing echoed ------------------------------------------------------------------------------

INVALID_RESIDENT_IDS = [
    wrong_check(GOOD),
    ric(born="19901307"),
    ric(born="19900230"),
    ric(born="18990101"),
    ric(region="110103", born="20150101"),
    ric(region="999999"),
    GOOD[:6] + "A" + GOOD[7:],
    GOOD[:17],
    GOOD + "7",
    "110105901307001",
]
INVALID_CREDIT_CODES = [CODE[:17] + "M", uscc("94110000600037341"), uscc("91999999600037341"), CODE[:17], "91A10000600037341L"]


@pytest.mark.parametrize("text", INVALID_RESIDENT_IDS + INVALID_CREDIT_CODES)
def test_errors_never_echo_the_number(text: str) -> None:
    validate = validate_credit_code if text in INVALID_CREDIT_CODES else validate_resident_id
    with pytest.raises(InvalidIdentifier) as info:
        validate(text)
    message = f"{info.value} {info.value.detail} {info.value.args}"
    number = normalise(text)
    for start in range(len(number) - 5):
        assert number[start : start + 6] not in message  # not even six characters of it in a row

"""The batch validators agree with the scalar ones on every input, and with python-stdnum where they should."""

from __future__ import annotations

import datetime
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import ValidationError

from hub.errors import InvalidIdentifier
from schemas import ids_batch
from schemas.codes import CREDIT_CODE_AUTHORITIES
from schemas.ids import (
    SEPARATORS,
    USCC_ALPHABET,
    normalise,
    ric_check_char,
    uscc_check_char,
    validate_credit_code,
    validate_resident_id,
)
from schemas.ids_batch import ric_check_chars, uscc_check_chars, validate_credit_codes, validate_resident_ids
from schemas.regions import OPEN_END, is_known, regions

TODAY = datetime.date.today()
FULL_WIDTH = str.maketrans(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ",
)
# (code, first year, last year) of every name a region code carried, clipped to [1900, today].
PERIODS = [
    (code, max(r.start, 1900), min(r.end if r.end != OPEN_END else TODAY.year, TODAY.year))
    for code, rs in sorted(regions().items())
    for r in rs
    if max(r.start, 1900) <= min(r.end, TODAY.year)
]
CODES = sorted(regions())
AUTHORITY_PAIRS = [a + t for a, (_name, kinds) in CREDIT_CODE_AUTHORITIES.items() for t in kinds]

SCALAR = {"ric": validate_resident_id, "uscc": validate_credit_code}
BATCH = {"ric": validate_resident_ids, "uscc": validate_credit_codes}


def scalar(kind: str, text: str | None) -> tuple[str | None, str | None]:
    try:
        return SCALAR[kind](text), None
    except InvalidIdentifier as exc:
        return None, exc.part


def batch(kind: str, values: list[str | None] | pa.Array | pa.ChunkedArray) -> list[tuple[str | None, str | None]]:
    if isinstance(values, list):
        values = pa.array(values, type=pa.string())
    table = BATCH[kind](values)
    assert table.column_names == ["normalised", "error"]
    assert table.schema.field("normalised").type == pa.string() == table.schema.field("error").type
    assert len(table) == len(values)
    return list(zip(table["normalised"].to_pylist(), table["error"].to_pylist()))


def assert_agree(kind: str, values: list[str | None]) -> list[tuple[str | None, str | None]]:
    """Batch == scalar, row by row; returns the results."""
    got = batch(kind, values)
    expected = [scalar(kind, v) for v in values]
    mismatches = [(v, g, e) for v, g, e in zip(values, got, expected) if g != e]
    assert not mismatches, f"{len(mismatches)} of {len(values)} disagree, e.g. {mismatches[:5]}"
    return got


# --- python-stdnum, and exactly how we differ from it ----------------------------------------------


def _stdnum_ric_valid(number: str) -> bool:
    try:
        stdnum_ric.validate(number)
    except ValidationError:
        return False
    except KeyError:
        # stdnum's get_birth_place() raises KeyError('county') for a known province with an
        # unknown county (e.g. 119999): an invalid number all the same.
        return False
    return True


def _stdnum_form(normalised: str) -> str:
    """What stdnum should be asked: it does not upgrade old 15-digit numbers, so we do it first."""
    if re.fullmatch(r"[0-9]{15}", normalised):
        body = normalised[:6] + "19" + normalised[6:]
        return body + ric_check_char(body)
    return normalised


def _birth_date_outside_our_range(number: str) -> bool:
    """A real date before 1900 or after today: stdnum accepts those, GB 11643 data cannot have them."""
    if not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return born.year < 1900 or born > TODAY


def assert_ric_relation(text: str | None, result: tuple[str | None, str | None]) -> None:
    """Ours valid => stdnum valid; stdnum invalid => ours invalid; equal unless the birth date is out of range."""
    ours_valid = result[1] is None
    number = _stdnum_form(normalise(text))
    theirs = _stdnum_ric_valid(number)
    if ours_valid:
        assert theirs and stdnum_ric.compact(number) == result[0], text
    if not theirs:
        assert not ours_valid, text
    if not _birth_date_outside_our_range(number):
        assert ours_valid == theirs, (text, result)


def _passes_our_extra_rules(code: str) -> bool:
    """GB 32100 rules stdnum does not check: a known authority + entity type and a known region."""
    if len(code) != 18 or code[0] not in CREDIT_CODE_AUTHORITIES:
        return False
    return code[1] in CREDIT_CODE_AUTHORITIES[code[0]][1] and code[2:8].isdigit() and is_known(code[2:8])


def assert_uscc_relation(text: str | None, result: tuple[str | None, str | None]) -> None:
    """stdnum requires digits in positions 1-2 (GB 32100 also has authorities A, N, Y) and checks no
    authority or region: ours valid => stdnum valid (or, with a letter authority, its check character
    agrees); stdnum valid => ours valid or wrong on authority/region; equal where our extra rules pass."""
    ours_valid, error = result[1] is None, result[1]
    code = normalise(text)
    theirs = stdnum_uscc.is_valid(code)
    letter_authority = len(code) == 18 and not code[:2].isdigit()
    if ours_valid and letter_authority:
        assert not theirs and stdnum_uscc.calc_check_digit(code[:17]) == code[17], text
    elif ours_valid:
        assert theirs and stdnum_uscc.compact(code) == result[0], text
    if theirs:
        assert ours_valid or error in {"authority", "region"}, (text, result)
    if _passes_our_extra_rules(code) and not letter_authority:
        assert ours_valid == theirs, (text, result)


# --- check characters --------------------------------------------------------------------------------


def test_ric_check_chars_match_scalar() -> None:
    rng = np.random.default_rng(7)
    bodies = rng.integers(48, 58, (5000, 17)).astype(np.uint8)
    got = ric_check_chars(bodies)
    assert got.dtype == np.uint8 and got.shape == (5000,)
    assert [chr(c) for c in got] == [ric_check_char(b.tobytes().decode()) for b in bodies]


def test_uscc_check_chars_match_scalar() -> None:
    rng = np.random.default_rng(8)
    alphabet = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
    bodies = alphabet[rng.integers(0, 31, (5000, 17))]
    got = uscc_check_chars(bodies)
    assert got.dtype == np.uint8 and got.shape == (5000,)
    assert [chr(c) for c in got] == [uscc_check_char(b.tobytes().decode()) for b in bodies]


@pytest.mark.parametrize(
    ("function", "bodies"),
    [
        (ric_check_chars, np.zeros((3, 18), dtype=np.uint8) + 48),  # wrong width
        (ric_check_chars, np.zeros((3, 17), dtype=np.int64) + 48),  # wrong dtype
        (ric_check_chars, np.frombuffer(b"1101051990030700A", dtype=np.uint8)[None, :]),
        (uscc_check_chars, np.frombuffer(b"9111000060003734I", dtype=np.uint8)[None, :]),
        (uscc_check_chars, np.frombuffer(b"9111000060003734a", dtype=np.uint8)[None, :]),
    ],
)
def test_check_chars_refuse_bad_bodies(function, bodies: np.ndarray) -> None:
    with pytest.raises(ValueError):
        function(bodies)


def test_check_chars_of_a_column_slice() -> None:
    # The sample generator passes matrix[:, :17] of an (N, 18) matrix: not contiguous.
    numbers = np.frombuffer(f"{GOOD}{X_CHECK}".encode(), dtype=np.uint8).reshape(2, 18).copy()
    assert ric_check_chars(numbers[:, :17]).tobytes() == f"{GOOD[-1]}X".encode()
    codes = np.frombuffer(b"91110000600037341L", dtype=np.uint8).reshape(1, 18)
    assert uscc_check_chars(codes[:, :17]).tobytes() == b"L"


def test_check_chars_of_nothing() -> None:
    assert ric_check_chars(np.zeros((0, 17), dtype=np.uint8)).shape == (0,)
    assert uscc_check_chars(np.zeros((0, 17), dtype=np.uint8)).shape == (0,)


# --- hand-picked inputs ------------------------------------------------------------------------------


def _ric(region: str, born: str, seq: str = "001") -> str:
    return region + born + seq + ric_check_char(region + born + seq)


def _uscc(body: str) -> str:
    return body + uscc_check_char(body)


GOOD = _ric("110105", "19900307")
X_CHECK = next(n for n in (_ric("110105", "19900307", f"{s:03d}") for s in range(1000)) if n.endswith("X"))
EDGE_RESIDENT_IDS = [
    GOOD, X_CHECK, X_CHECK.lower(), GOOD.translate(FULL_WIDTH), f" {GOOD[:6]}-{GOOD[6:14]} {GOOD[14:]}\n",
    "\ufeff" + GOOD, GOOD + "\u200b", "'" + GOOD, GOOD[:6] + "\u2013" + GOOD[6:],
    None, "", " ", "-\u3000-", GOOD[:17], GOOD + "0", "1", GOOD * 2,
    GOOD[:6] + "A" + GOOD[7:], GOOD[:10] + "X" + GOOD[11:], GOOD[:17] + "Y", GOOD[:9] + "é" + GOOD[10:],
    GOOD[:8] + "éé" + GOOD[10:], "١١٠١٠٥١٩٩٠٠٣٠٧٠٠١٧", GOOD[:16] + "ß",
    _ric("110105", "19901307"), _ric("110105", "19900230"), _ric("110101", "20000229"),
    _ric("110101", "19000229"), _ric("110101", "19000101"), _ric("110101", "18991231"),
    _ric("110101", "00000101"), _ric("110101", TODAY.strftime("%Y%m%d")),
    _ric("110101", (TODAY + datetime.timedelta(days=1)).strftime("%Y%m%d")),
    _ric("110101", f"{TODAY.year + 1}0101"), _ric("110101", f"{TODAY.year}1231"),
    _ric("110103", "19900101"), _ric("110103", "20150101"), _ric("110118", "20100101"), _ric("999999", "19900101"),
    _ric("119999", "19900101"), GOOD[:17] + "0",
    "110105900307001", "１１０１０５９００３０７００１", "110105901307001", "11010590030700X", "999999900307001",
    "11010590030700", "110105000229001",
]
EDGE_CREDIT_CODES = [
    "91110000600037341L", "91110000600037341l", "９１１１００００６０００３７３４１Ｌ", "91 110000 600037341-L",
    _uscc("A1110000000000000"), _uscc("N2110105000000000"), _uscc("Y1110000000000000"), _uscc("91110103000000000"),
    None, "", "  ", "91110000600037341", "91110000600037341L0",
    "91110000600O37341L", "91A10000600037341L", "9111000060003734*L", "9111000060003734éL",
    _uscc("B1110000600037341"), _uscc("94110000600037341"), _uscc("5A110000600037341"),
    _uscc("91999999600037341"), "91110000600037341M", "9411000060003734XM", "Z4110000600037341",
]


@pytest.mark.parametrize(("kind", "values"), [("ric", EDGE_RESIDENT_IDS), ("uscc", EDGE_CREDIT_CODES)])
def test_edge_cases_agree(kind: str, values: list[str | None]) -> None:
    results = assert_agree(kind, values)
    relation = assert_ric_relation if kind == "ric" else assert_uscc_relation
    for value, result in zip(values, results):
        relation(value, result)
    # Each of the parts shows up, so the cases above really cover every rule.
    parts = {"ric": ids_batch.RIC_PARTS, "uscc": ids_batch.USCC_PARTS}[kind]
    assert {error for _, error in results} == {None, *parts}


def test_row_order_nulls_and_output() -> None:
    table = validate_resident_ids(pa.array([None, GOOD.lower(), "x", "110105900307001"]))
    assert table.to_pylist() == [
        {"normalised": None, "error": "empty"},
        {"normalised": GOOD, "error": None},
        {"normalised": None, "error": "length"},
        {"normalised": GOOD, "error": None},
    ]
    table.validate(full=True)


def test_output_buffers_keep_no_trace_of_invalid_input() -> None:
    wrong = GOOD[:17] + "0"  # a wrong check digit: checked as a matrix row, then found invalid
    table = validate_resident_ids(pa.array([GOOD, wrong, "110105900307001"]))
    data = b"".join(bytes(b) for b in table["normalised"].chunk(0).buffers() if b is not None)
    assert GOOD.encode() in data and wrong.encode() not in data


@pytest.mark.parametrize(
    "values",
    [
        pa.array(EDGE_RESIDENT_IDS, type=pa.large_string()),
        pa.array(EDGE_RESIDENT_IDS, type=pa.string_view()),
        pa.array(EDGE_RESIDENT_IDS).dictionary_encode(),
        pa.array(EDGE_RESIDENT_IDS).slice(3, 30),  # an offset into shared buffers
        pa.chunked_array([EDGE_RESIDENT_IDS[:5], EDGE_RESIDENT_IDS[5:6], [], EDGE_RESIDENT_IDS[6:]]),
    ],
    ids=["large_string", "string_view", "dictionary", "slice", "chunked"],
)
def test_input_kinds(values: pa.Array | pa.ChunkedArray) -> None:
    plain = values.to_pylist() if isinstance(values, pa.Array) else values.to_pylist()
    assert batch("ric", values) == [scalar("ric", v) for v in plain]


def test_empty_and_all_null_inputs() -> None:
    assert len(validate_resident_ids(pa.array([], type=pa.string()))) == 0
    assert len(validate_credit_codes(pa.chunked_array([], type=pa.string()))) == 0
    assert batch("uscc", pa.nulls(3)) == [(None, "empty")] * 3
    assert batch("ric", pa.array(["", ""])) == [(None, "empty")] * 2


def test_many_small_pieces_on_two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks force slicing, joining of neighbours and several pieces in flight at once.
    monkeypatch.setattr(ids_batch, "CHUNK_ROWS", 7)
    monkeypatch.setattr(ids_batch, "THREADS", 2)
    values = EDGE_RESIDENT_IDS * 3
    chunked = pa.chunked_array([values[i : i + 5] for i in range(0, len(values), 5)] + [values[:40]], type=pa.string())
    assert batch("ric", chunked) == [scalar("ric", v) for v in chunked.to_pylist()]


# --- a large generated set ---------------------------------------------------------------------------


def _strings(matrix: np.ndarray) -> list[str]:
    width = matrix.shape[1]
    raw = matrix.tobytes().decode("ascii")
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def _retype(values: list[str], rng: np.random.Generator) -> list[str]:
    """How people type: full width, lower case, separators here and there."""
    out = []
    for v, how in zip(values, rng.integers(0, 4, len(values))):
        if how == 0:
            v = v.translate(FULL_WIDTH)
        elif how == 1:
            v = v.lower()
        elif how == 2:
            at = int(rng.integers(0, len(v) + 1))
            v = v[:at] + SEPARATORS[int(rng.integers(0, len(SEPARATORS)))] + v[at:]
        else:
            v = f" {v[:6]} {v[6:]} "
        out.append(v)
    return out


def _mutate(matrix: np.ndarray, rng: np.random.Generator, alphabet: bytes) -> np.ndarray:
    """Change one character of each row to a random one of ``alphabet``."""
    matrix = matrix.copy()
    rows = np.arange(len(matrix))
    matrix[rows, rng.integers(0, matrix.shape[1], len(matrix))] = np.frombuffer(alphabet, dtype=np.uint8)[
        rng.integers(0, len(alphabet), len(matrix))
    ]
    return matrix


def _swap(matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    matrix = matrix.copy()
    rows, at = np.arange(len(matrix)), rng.integers(0, matrix.shape[1] - 1, len(matrix))
    matrix[rows, at], matrix[rows, at + 1] = matrix[rows, at + 1], matrix[rows, at].copy()
    return matrix


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    return (values[:, None] // 10 ** np.arange(width - 1, -1, -1) % 10 + 48).astype(np.uint8)


def generated_resident_ids(n: int, seed: int) -> list[str | None]:
    """Valid numbers from real codes and dates in their years, then damaged in every way there is."""
    rng = np.random.default_rng(seed)
    periods = [PERIODS[i] for i in rng.integers(0, len(PERIODS), n)]
    codes = np.array([int(p[0]) for p in periods])
    years = np.array([p[1] + int(rng.integers(0, p[2] - p[1] + 1)) for p in periods])
    months, days = rng.integers(1, 13, n), rng.integers(1, 29, n)
    body = np.hstack([_digits(codes, 6), _digits(years * 10000 + months * 100 + days, 8), _digits(rng.integers(0, 1000, n), 3)])
    full = np.hstack([body, ric_check_chars(body)[:, None]])
    k = n // 10
    # Dates and regions anywhere, with a right check digit: only the date or region is wrong.
    odd = body[2 * k : 4 * k].copy()
    odd[:k, 6:14] = _digits(rng.integers(1890, TODAY.year + 3, k) * 10000 + rng.integers(0, 14, k) * 100 + rng.integers(0, 33, k), 8)
    odd[k:, :6] = _digits(np.where(rng.random(k) < 0.7, np.array([int(c) for c in CODES])[rng.integers(0, len(CODES), k)], rng.integers(0, 10**6, k)), 6)
    odd = np.hstack([odd, ric_check_chars(odd)[:, None]])
    old = full[6 * k : 7 * k]
    values: list[str | None] = [
        *_strings(full[:2 * k]),
        *_strings(odd),
        *_strings(_mutate(full[4 * k : 5 * k], rng, b"0123456789X")),  # mostly check-digit errors
        *_strings(_swap(full[5 * k : 6 * k], rng)),
        *_strings(np.hstack([old[:, :6], old[:, 8:17]])),  # 15-digit forms of all kinds of dates
        *_strings(_mutate(full[7 * k : 8 * k], rng, b"xXAZ -*")),
        *_retype(_strings(full[8 * k : 9 * k]), rng),
        *(v[: int(cut)] for v, cut in zip(_strings(full[9 * k :]), rng.integers(0, 18, n - 9 * k))),
        None,
    ]
    return values


def generated_credit_codes(n: int, seed: int) -> list[str | None]:
    """Valid codes from real authorities and regions, then damaged in every way there is."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
    pairs = np.frombuffer("".join(AUTHORITY_PAIRS).encode(), dtype=np.uint8).reshape(-1, 2)
    body = np.hstack([
        pairs[rng.integers(0, len(pairs), n)],
        _digits(np.array([int(c) for c in CODES])[rng.integers(0, len(CODES), n)], 6),
        alphabet[rng.integers(0, 31, (n, 9))],
    ])
    k = n // 10
    # Any authority and entity type, any region: with a right check character, only those are wrong.
    body[2 * k : 3 * k, :2] = alphabet[rng.integers(0, 31, (k, 2))]
    body[3 * k : 4 * k, 2:8] = _digits(rng.integers(0, 10**6, k), 6)
    body[4 * k : 5 * k, :2] = np.where(rng.random((k, 1)) < 0.5, pairs[rng.integers(0, len(pairs), k)], _digits(rng.integers(0, 100, k), 2))
    full = np.hstack([body, uscc_check_chars(body)[:, None]])
    return [
        *_strings(full[: 5 * k]),
        *_strings(_mutate(full[5 * k : 6 * k], rng, USCC_ALPHABET.encode())),
        *_strings(_swap(full[6 * k : 7 * k], rng)),
        *_strings(_mutate(full[7 * k : 8 * k], rng, b"IOSVZabc-*")),
        *_retype(_strings(full[8 * k : 9 * k]), rng),
        *(v[: int(cut)] for v, cut in zip(_strings(full[9 * k :]), rng.integers(0, 18, n - 9 * k))),
        None,
    ]


def test_generated_resident_ids_agree_with_scalar_and_stdnum() -> None:
    values = generated_resident_ids(150_000, seed=11)
    results = assert_agree("ric", values)
    for value, result in zip(values, results):
        assert_ric_relation(value, result)
    errors = {error for _, error in results}
    assert errors == {None, *ids_batch.RIC_PARTS}
    assert sum(error is None for _, error in results) > len(values) // 3


def test_generated_credit_codes_agree_with_scalar_and_stdnum() -> None:
    values = generated_credit_codes(60_000, seed=12)
    results = assert_agree("uscc", values)
    for value, result in zip(values, results):
        assert_uscc_relation(value, result)
    assert {error for _, error in results} == {None, *ids_batch.USCC_PARTS}
    assert sum(error is None for _, error in results) > len(values) // 3


# --- property-based ----------------------------------------------------------------------------------


@st.composite
def valid_resident_ids(draw: st.DrawFn) -> str:
    code, first, last = draw(st.sampled_from(PERIODS))
    born = draw(st.dates(datetime.date(first, 1, 1), min(datetime.date(last, 12, 31), TODAY)))
    body = f"{code}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return body + ric_check_char(body)


@st.composite
def valid_credit_codes(draw: st.DrawFn) -> str:
    pair = draw(st.sampled_from(AUTHORITY_PAIRS))
    code = draw(st.sampled_from(CODES))
    body = pair + code + "".join(draw(st.lists(st.sampled_from(USCC_ALPHABET), min_size=9, max_size=9)))
    return body + uscc_check_char(body)


@st.composite
def damaged(draw: st.DrawFn, valid: st.SearchStrategy[str], alphabet: str) -> str:
    """A valid value, then nothing, or one or two of the ways it gets damaged or retyped."""
    value = draw(valid)
    for _ in range(draw(st.integers(0, 2))):
        how = draw(st.sampled_from(["flip", "swap", "truncate", "insert", "full_width", "lower", "separator", "old", "junk"]))
        at = draw(st.integers(0, max(len(value) - 1, 0)))
        if how == "flip" and value:
            value = value[:at] + draw(st.sampled_from(alphabet)) + value[at + 1 :]
        elif how == "swap" and len(value) > 1:
            at = min(at, len(value) - 2)
            value = value[:at] + value[at + 1] + value[at] + value[at + 2 :]
        elif how == "truncate":
            value = value[:at]
        elif how == "insert":
            value = value[:at] + draw(st.sampled_from(alphabet + "é中*")) + value[at:]
        elif how == "full_width":
            value = value.translate(FULL_WIDTH)
        elif how == "lower":
            value = value.lower()
        elif how == "separator":
            value = value[:at] + draw(st.sampled_from(SEPARATORS)) + value[at:]
        elif how == "old" and len(value) == 18:
            value = value[:6] + value[8:17]
        elif how == "junk":
            value = value + draw(st.text(max_size=3))
    return value


# Arrow strings are UTF-8, so lone surrogates cannot occur; everything else can.
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
RIC_INPUTS = st.lists(st.one_of(damaged(valid_resident_ids(), "0123456789X"), ANY_TEXT, st.none()), max_size=12)
USCC_INPUTS = st.lists(st.one_of(damaged(valid_credit_codes(), USCC_ALPHABET + "IOSVZ"), ANY_TEXT, st.none()), max_size=12)
PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(RIC_INPUTS)
def test_resident_ids_property(values: list[str | None]) -> None:
    for value, result in zip(values, assert_agree("ric", values)):
        assert_ric_relation(value, result)


@PROPERTY
@given(USCC_INPUTS)
def test_credit_codes_property(values: list[str | None]) -> None:
    for value, result in zip(values, assert_agree("uscc", values)):
        assert_uscc_relation(value, result)


@PROPERTY
@given(valid_resident_ids())
def test_every_generated_valid_resident_id_is_valid(number: str) -> None:
    assert batch("ric", [number]) == [(number, None)]
    assert _stdnum_ric_valid(number)


@PROPERTY
@given(valid_credit_codes())
def test_every_generated_valid_credit_code_is_valid(code: str) -> None:
    assert batch("uscc", [code]) == [(code, None)]

"""Realistic typing errors in the person records departments write: names, birth dates, sex, addresses, regions.

Each function takes one column of a department's records (and the truth behind it), draws which records
get which of the field's errors (``DefectRates``: a share of the records that can carry each), and returns
the column as written plus the rows each error hit, for the ground truth. Everything works on whole
columns (numpy code-point matrices, Arrow compute); the character tables are built once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samples import vocab
from samples.defects import (ADDRESS_ERRORS, BIRTH_DATE_ERRORS, LATIN_NAME_ERRORS, NAME_ERRORS,
                             REGION_ERRORS, SEX_ERRORS, DefectRates, Hits, choose)
from samples.places import addresses, places, retired_codes, sample_regions
from samples.streams import AS_OF_DAY
from samples.text import codepoints, coded, date_matrix, from_codepoints, from_fixed, join, replace_rows, ymd
from warehouse.identity_features import SURNAME_READINGS  # the hub's reading of surnames, so romanised names agree

PLANE = 0x10000  # every name character is in the Basic Multilingual Plane
SPACE, MIDDLE_DOT = 0x20, 0xB7
UPPER_PINYIN = 0.4  # share of romanised names written ZHANG WEI rather than Zhang Wei
# 形近字: groups of characters that are taken for one another (handwriting, hurried reading, OCR of forms).
LOOK_ALIKES = (
    "王玉主", "李季", "杨扬汤场", "徐涂", "陈阵", "郑邓", "曹曾", "袁哀衷", "沈沉", "傅博", "田由甲申", "任仕", "姜娄",
    "范苑", "方万", "石右", "廖寥", "金全", "白自百", "崔催", "毛手", "秦泰奏", "史吏", "侯候", "邵绍", "孟盂", "龙尤",
    "黎犁", "武式", "龚袭", "文丈", "于干千", "梁粱", "宋宗", "董童", "薛薜", "余佘", "杜社", "戴载", "夏复", "谭潭",
    "阎闫", "贺贸", "魏巍", "孔札", "尹伊", "赖懒", "明朋", "宇字", "军车", "平乎", "霞暇", "娟捐", "凤风", "华毕",
    "春舂", "梅悔海", "萍苹", "辉晖", "峰锋", "建健键", "俊竣", "玲铃伶", "婷停", "晶品", "浩诰", "波坡破", "莉利",
    "芳芬", "桂挂", "辰晨", "雪雷", "琳淋", "倩情", "颖颍", "莹荧萤", "珍诊", "瑶摇遥", "璐路", "妍研", "晓烧",
    "婉碗", "欢劝", "住往佳", "嘉喜", "丹舟", "宏宠", "伟纬违", "天夫", "大太犬", "人入八", "己已巳", "未末", "土士",
    "日曰", "贝见", "清请情晴", "晴睛", "新亲", "正止", "永水", "林材", "戊戌戍成", "秋秒", "凯剀", "帆帜", "瑞端",
    "思恩", "怡恰", "悦说", "雨两", "珊栅", "慧彗", "玫枚", "冬各", "东车", "坤坪", "泽择", "超起", "刚钢", "云去",
)


# --- character tables ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Csr:
    """For each code point, a list of other code points: ``flat[start[c] : start[c] + count[c]]``."""

    start: np.ndarray
    count: np.ndarray
    flat: np.ndarray

    @classmethod
    def of(cls, table: dict[str, list[str]]) -> _Csr:
        start, count, flat = np.zeros(PLANE, np.int64), np.zeros(PLANE, np.int64), []
        for ch in sorted(table):
            start[ord(ch)], count[ord(ch)] = len(flat), len(table[ch])
            flat.extend(ord(c) for c in table[ch])
        return cls(start, count, np.array(flat or [0], dtype=np.uint32))

    def pick(self, rng: np.random.Generator, chars: np.ndarray) -> np.ndarray:
        """One of the listed code points of each of ``chars`` (each must have some)."""
        return self.flat[self.start[chars] + (rng.random(len(chars)) * self.count[chars]).astype(np.int64)]


@dataclass(frozen=True)
class _Tables:
    homophones: _Csr  # 同音字: same toneless pinyin
    look_alikes: _Csr  # 形近字
    traditional: np.ndarray  # (PLANE,) uint32: the traditional form of each character (itself if none)
    syllable: np.ndarray  # (PLANE,) int32: index into ``lower`` / ``capital`` of the character's pinyin, -1 none
    surname_syllable: np.ndarray  # the same, read as a surname
    lower: pa.Array  # zhang
    capital: pa.Array  # Zhang
    given_chars: np.ndarray  # characters of given names, for inserted ones
    compound_surnames: np.ndarray  # (cp0 << 16 | cp1) of two-character surnames


def _gb2312_level1() -> list[str]:
    """The 3,755 common characters of GB 2312 (level 1): what an input method offers first."""
    return [bytes([hi, lo]).decode("gb2312") for hi in range(0xB0, 0xD8) for lo in range(0xA1, 0xFF)
            if not (hi == 0xD7 and lo > 0xF9)]


@lru_cache(maxsize=1)
def tables() -> _Tables:
    """The character tables, from the generator's own name vocabulary and GB 2312's common characters."""
    import opencc
    from pypinyin import lazy_pinyin

    names = sorted(set("".join(vocab.SURNAMES) + "".join(vocab.GIVEN_MALE) + "".join(vocab.GIVEN_FEMALE)
                       + "".join(vocab.CHARS_MALE) + "".join(vocab.CHARS_FEMALE)))
    common = sorted(set(_gb2312_level1()) | set(names))
    reading = {ch: lazy_pinyin(ch)[0] for ch in common}
    by_reading: dict[str, list[str]] = {}
    for ch in common:
        by_reading.setdefault(reading[ch], []).append(ch)
    name_set = set(names)
    homophones = {}
    for ch in names:  # other name characters first: a typist picks a familiar candidate of the input method
        same = [c for c in by_reading[reading[ch]] if c != ch]
        preferred = [c for c in same if c in name_set]
        if same:
            homophones[ch] = preferred or same
    look_alikes: dict[str, list[str]] = {}
    for group in LOOK_ALIKES:
        for ch in group:
            if ch in name_set:
                look_alikes.setdefault(ch, []).extend(c for c in group if c != ch and c in reading)
    converter = opencc.OpenCC("s2t")
    traditional = np.arange(PLANE, dtype=np.uint32)
    for ch in names:
        t = converter.convert(ch)
        if len(t) == 1 and t != ch and ord(t) < PLANE:
            t.encode("gbk")  # every department can store it, the GBK drop included
            traditional[ord(ch)] = ord(t)
    syllables = sorted(set(reading.values()) | set(SURNAME_READINGS.values()))
    index = {s: i for i, s in enumerate(syllables)}
    syllable = np.full(PLANE, -1, dtype=np.int32)
    for ch in common:
        syllable[ord(ch)] = index[reading[ch]]
    surname_syllable = syllable.copy()
    for ch, s in SURNAME_READINGS.items():
        surname_syllable[ord(ch)] = index[s]
    given = sorted(set(vocab.CHARS_MALE) | set(vocab.CHARS_FEMALE))
    compound = [ord(s[0]) << 16 | ord(s[1]) for s in vocab.SURNAMES if len(s) == 2]
    return _Tables(
        homophones=_Csr.of(homophones), look_alikes=_Csr.of(look_alikes), traditional=traditional,
        syllable=syllable, surname_syllable=surname_syllable, lower=pa.array(syllables),
        capital=pa.array([s.capitalize() for s in syllables]), given_chars=np.array([ord(c) for c in given], np.uint32),
        compound_surnames=np.array(sorted(compound), dtype=np.uint64),
    )


# --- what a name allows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameInfo:
    """Per name: length in characters, surname length (Chinese names), Latin script, and which errors fit."""

    length: np.ndarray  # int16
    surname: np.ndarray  # int8: 1 or 2 (compound surnames); 0 for Latin-script names
    latin: np.ndarray  # bool
    homophone: np.ndarray  # bool: a character has a homophone
    look_alike: np.ndarray  # bool: a character has a look-alike
    traditional: np.ndarray  # bool: a character has another traditional form

    def take(self, rows: np.ndarray) -> NameInfo:
        return NameInfo(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


def _surname_length(mat: np.ndarray, latin: np.ndarray) -> np.ndarray:
    pair = mat[:, 0].astype(np.uint64) << 16 | (mat[:, 1] if mat.shape[1] > 1 else 0)
    return np.where(latin, 0, np.where(np.isin(pair, tables().compound_surnames), 2, 1)).astype(np.int8)


def name_info(names: pa.Array, chunk: int = 250_000) -> NameInfo:
    """What each of ``names`` allows (in slices: the code-point matrix of every name at once is large)."""
    t = tables()
    parts = []
    for start in range(0, len(names), chunk):
        mat, length = codepoints(names.slice(start, chunk))
        cells = np.arange(mat.shape[1]) < length[:, None]
        latin = mat[:, 0] < 0x80
        chars = np.where(cells, np.minimum(mat, PLANE - 1), 0)
        parts.append((length.astype(np.int16), _surname_length(mat, latin), latin,
                      (t.homophones.count[chars] > 0).any(axis=1), (t.look_alikes.count[chars] > 0).any(axis=1),
                      (t.traditional[chars] != chars).any(axis=1)))
    if not parts:
        return NameInfo(*(np.zeros(0, dtype) for dtype in (np.int16, np.int8, bool, bool, bool, bool)))
    return NameInfo(*(np.concatenate(column) for column in zip(*parts)))


# --- code-point matrix edits --------------------------------------------------------------------------------


def _pick_cell(rng: np.random.Generator, allowed: np.ndarray) -> np.ndarray:
    """A random allowed column per row (rows need at least one)."""
    return np.argmax(np.where(allowed, rng.random(allowed.shape), -1.0), axis=1)


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A random integer in [lo, hi) per row."""
    return lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)


def _delete(mat: np.ndarray, length: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    columns = np.arange(mat.shape[1])[None, :]
    source = np.minimum(columns + (columns >= at[:, None]), mat.shape[1] - 1)
    return np.take_along_axis(mat, source, axis=1), length - 1


def _insert(mat: np.ndarray, length: np.ndarray, at: np.ndarray, chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    padded = np.hstack([mat, np.zeros((len(mat), 1), mat.dtype)])
    columns = np.arange(padded.shape[1])[None, :]
    out = np.take_along_axis(padded, np.maximum(columns - (columns > at[:, None]), 0), axis=1)
    out[np.arange(len(mat)), at] = chars
    return out, length + 1


# --- name errors --------------------------------------------------------------------------------------------

Edit = Callable[[np.random.Generator, pa.Array, NameInfo], pa.Array]  # names in, names as written out


def _replace_one(rng: np.random.Generator, names: pa.Array, table: _Csr) -> pa.Array:
    mat, length = codepoints(names)
    cells = np.arange(mat.shape[1]) < length[:, None]
    at = _pick_cell(rng, cells & (table.count[np.minimum(mat, PLANE - 1)] > 0))
    rows = np.arange(len(mat))
    mat[rows, at] = table.pick(rng, mat[rows, at])
    return from_codepoints(mat, length)


def _homophone(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    return _replace_one(rng, names, tables().homophones)


def _look_alike(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    return _replace_one(rng, names, tables().look_alikes)


def _traditional(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    mat, length = codepoints(names)
    return from_codepoints(tables().traditional[np.minimum(mat, PLANE - 1)], length)


def _dropped(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    mat, length = codepoints(names)
    return from_codepoints(*_delete(mat, length, _between(rng, info.surname.astype(np.int64), length)))


def _extra(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    """Half the time a character of the given name doubled (张明明), else another name character inserted in it."""
    mat, length = codepoints(names)
    surname = info.surname.astype(np.int64)
    doubled = rng.random(len(mat)) < 0.5
    at = np.where(doubled, _between(rng, surname, length), _between(rng, surname, length + 1))
    other = tables().given_chars[rng.integers(0, len(tables().given_chars), len(mat))]
    chars = np.where(doubled, mat[np.arange(len(mat)), np.minimum(at, mat.shape[1] - 1)], other)
    return from_codepoints(*_insert(mat, length, at, chars))


def _inside(char: int) -> Edit:
    def insert(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
        """Mostly between surname and given name (张 伟), else between any two characters."""
        mat, length = codepoints(names)
        anywhere = _between(rng, np.ones_like(length), length)
        at = np.where(rng.random(len(mat)) < 0.7, info.surname.astype(np.int64), anywhere)
        return from_codepoints(*_insert(mat, length, at, np.full(len(mat), char, np.uint32)))
    return insert


def _pinyin(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    """Zhang Wei, Ouyang Xiaoming, or in capitals (ZHANG WEI)."""
    t = tables()
    mat, length = codepoints(names)
    surname = info.surname.astype(np.int64)
    parts: list[pa.Array | str] = []
    for j in range(mat.shape[1]):
        chars = np.minimum(mat[:, j], PLANE - 1)
        ids = (t.surname_syllable if j == 0 else t.syllable)[chars]
        present = (j < length) & (ids >= 0)
        index = pa.array(ids.astype(np.int64), mask=~present)
        capital = pa.array((j == 0) | (j == surname))
        if j:
            parts.append(pc.if_else(pa.array(j == surname), " ", ""))
        parts.append(pc.if_else(capital, t.capital.take(index), t.lower.take(index)))
    text = pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")
    return pc.if_else(pa.array(rng.random(len(mat)) < UPPER_PINYIN), pc.utf8_upper(text), text)


def _latin_typo(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    """One letter transposed with the next, dropped, doubled or replaced by another."""
    mat, length = codepoints(names)
    n, w = mat.shape
    cells = np.arange(w) < length[:, None]
    lower = mat | 0x20
    letter = cells & (lower >= ord("a")) & (lower <= ord("z"))
    swappable = np.zeros_like(letter)
    swappable[:, :-1] = letter[:, :-1] & letter[:, 1:] & (mat[:, :-1] != mat[:, 1:])
    droppable = letter & (np.pad(letter, ((0, 0), (1, 0)))[:, :-1] | np.pad(letter, ((0, 0), (0, 1)))[:, 1:])
    kind = rng.integers(0, 4, n)  # transposed, dropped, doubled, replaced
    kind[(kind == 0) & ~swappable.any(axis=1)] = 3
    kind[(kind == 1) & ~droppable.any(axis=1)] = 3
    pieces, order = [], []
    for k, allowed in enumerate((swappable, droppable, letter, letter)):
        rows = np.flatnonzero(kind == k)
        if not len(rows):
            continue
        m, ln = mat[rows].copy(), length[rows]
        at = _pick_cell(rng, allowed[rows])
        r = np.arange(len(rows))
        if k == 0:
            m[r, at], m[r, at + 1] = mat[rows, at + 1], mat[rows, at]
        elif k == 1:
            m, ln = _delete(m, ln, at)
        elif k == 2:
            m, ln = _insert(m, ln, at, m[r, at])
        else:
            base = np.where(m[r, at] >= ord("a"), ord("a"), ord("A"))
            m[r, at] = base + (m[r, at] - base + rng.integers(1, 26, len(rows))) % 26
        pieces.append(from_codepoints(m, ln))
        order.append(rows)
    position = np.empty(n, dtype=np.int64)
    position[np.concatenate(order)] = np.arange(n)
    return pa.concat_arrays(pieces).take(pa.array(position))


def _given_first(rng: np.random.Generator, names: pa.Array, info: NameInfo) -> pa.Array:
    """SMITH JOHN written John Smith."""
    parts = pc.split_pattern(names, " ", max_splits=1)
    surname, given = pc.list_element(parts, 0), pc.list_element(parts, 1)
    return join(pc.utf8_title(pc.utf8_lower(given)), " ", pc.utf8_title(pc.utf8_lower(surname)))


_NAME_EDITS: dict[str, Edit] = {
    "name_homophone": _homophone, "name_similar_char": _look_alike, "name_traditional": _traditional,
    "name_dropped_char": _dropped, "name_extra_char": _extra, "name_space": _inside(SPACE),
    "name_middle_dot": _inside(MIDDLE_DOT), "name_pinyin": _pinyin, "name_latin_typo": _latin_typo,
    "name_latin_given_first": _given_first,
}


def name_errors(rng: np.random.Generator, names: pa.Array, info: NameInfo, rates: DefectRates,
                pinyin: bool = False) -> tuple[pa.Array, dict[str, Hits]]:
    """The name column as written, and the rows each name error hit (``pinyin``: this system romanises)."""
    chinese = ~info.latin
    given = info.length - info.surname
    eligible = {
        "name_homophone": chinese & info.homophone, "name_similar_char": chinese & info.look_alike,
        "name_traditional": chinese & info.traditional, "name_dropped_char": chinese & (given >= 2),
        "name_extra_char": chinese, "name_space": chinese, "name_middle_dot": chinese, "name_pinyin": chinese,
        "name_latin_typo": info.latin, "name_latin_given_first": info.latin,
    }
    plan = [(kind, rate, eligible[kind]) for kind, rate in rates.active(NAME_ERRORS + LATIN_NAME_ERRORS)
            if pinyin or kind != "name_pinyin"]
    hits = choose(rng, len(names), plan)
    edited = [(h.rows, _NAME_EDITS[kind](rng, names.take(pa.array(h.rows)), info.take(h.rows)))
              for kind, h in hits.items() if len(h.rows)]
    return _replaced(names, edited), hits


def _replaced(column: pa.Array, edits: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """``column`` with every edit's rows replaced by its values, in one pass over the column."""
    if not edits:
        return column
    rows = np.concatenate([r for r, _v in edits])
    return replace_rows(column, rows, pa.concat_arrays([v.cast(pa.string()) for _r, v in edits]))


# --- birth dates --------------------------------------------------------------------------------------------


def _day(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    month = ((y - 1970) * 12 + m - 1).astype("datetime64[M]")
    return month.astype("datetime64[D]") + (d - 1)


def _valid(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Whether year, month and day make a date from 1900 up to the day before AS_OF."""
    month = np.clip(m, 1, 12)
    first = ((y - 1970) * 12 + month - 1).astype("datetime64[M]")
    days_in_month = ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(np.int64)
    ok = (y >= 1900) & (m == month) & (d >= 1) & (d <= days_in_month)
    return ok & (_day(y, month, np.clip(d, 1, days_in_month)) < AS_OF_DAY)


def _text(digits: np.ndarray, sep: str) -> pa.Array:
    """(n, 8) YYYYMMDD digit values as the system writes dates (with ``sep`` between the parts, if any)."""
    ascii_ = (digits + ord("0")).astype(np.uint8)
    if not sep:
        return from_fixed(ascii_)
    out = np.full((len(ascii_), 10), ord(sep), dtype=np.uint8)
    out[:, :4], out[:, 5:7], out[:, 8:] = ascii_[:, :4], ascii_[:, 4:6], ascii_[:, 6:]
    return from_fixed(out)


def _wrong_digit(rng: np.random.Generator, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One digit of the year's last two, the month or the day changed so that it is still a past date;
    returns the (n, 8) digits and which rows got one (all, barring a vanishing chance)."""
    digits = date_matrix(days, "").astype(np.int64) - ord("0")
    done = np.zeros(len(days), dtype=bool)
    todo = np.arange(len(days))
    for _ in range(64):
        if not len(todo):
            break
        at = rng.integers(2, 8, len(todo))
        r = np.arange(len(todo))
        candidate = digits[todo]
        candidate[r, at] = (candidate[r, at] + rng.integers(1, 10, len(todo))) % 10
        y = candidate[:, :4] @ np.array([1000, 100, 10, 1])
        ok = _valid(y, candidate[:, 4] * 10 + candidate[:, 5], candidate[:, 6] * 10 + candidate[:, 7])
        digits[todo[ok]] = candidate[ok]
        done[todo[ok]] = True
        todo = todo[~ok]
    return digits, done


def birth_date_errors(rng: np.random.Generator, column: pa.Array, birth: np.ndarray, rates: DefectRates,
                      sep: str) -> tuple[pa.Array, dict[str, Hits]]:
    """The birth-date column (written from ``birth`` with ``sep``) with its errors, and the rows each hit."""
    _y, m, d = ymd(birth)
    eligible = {"birth_date_wrong_digit": None, "birth_date_day_month_swapped": (d <= 12) & (d != m),
                "birth_date_year_month": None, "birth_date_missing": None}
    hits = choose(rng, len(birth), [(kind, rate, eligible[kind]) for kind, rate in rates.active(BIRTH_DATE_ERRORS)])
    edits = []
    for kind, h in hits.items():
        rows = h.rows
        if not len(rows):
            continue
        if kind == "birth_date_wrong_digit":
            digits, done = _wrong_digit(rng, birth[rows])
            rows = rows[done]
            hits[kind] = Hits(rows, h.eligible)
            written = _text(digits[done], sep)
        elif kind == "birth_date_day_month_swapped":
            y, m, d = ymd(birth[rows])
            written = _text(date_matrix(_day(y, d, m), "").astype(np.int64) - ord("0"), sep)
        elif kind == "birth_date_year_month":
            written = from_fixed(np.ascontiguousarray(date_matrix(birth[rows], sep)[:, : 7 if sep else 6]))
        else:
            written = pa.array([""] * len(rows), pa.string())
        edits.append((rows, written))
    return _replaced(column, edits), hits


# --- sex ----------------------------------------------------------------------------------------------------


def sex_errors(rng: np.random.Generator, index: np.ndarray, labels: tuple[str, ...],
               rates: DefectRates) -> tuple[pa.Array, dict[str, Hits]]:
    """The sex column (``labels[index]``) with some left empty."""
    hits = choose(rng, len(index), [(kind, rate, None) for kind, rate in rates.active(SEX_ERRORS)])
    index = np.array(index, dtype=np.int64)
    for h in hits.values():
        index[h.rows] = len(labels)
    return coded((*labels, ""), index), hits


# --- addresses ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _prefectures() -> _Csr:
    """County -> the counties of its prefecture (itself included), by index into ``places()``."""
    pl = places()
    groups: dict[str, list[int]] = {}
    for i, code in enumerate(pl.codes):
        groups.setdefault(code[:4], []).append(i)
    start, count, flat = np.zeros(len(pl.codes), np.int64), np.zeros(len(pl.codes), np.int64), []
    for members in groups.values():
        for i in members:
            start[i], count[i] = len(flat), len(members)
        flat.extend(members)
    return _Csr(start, count, np.array(flat, dtype=np.int64))


def _split_prefix(written: pa.Array, prefixes: list[pa.Array]) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Each address as (the first of ``prefixes`` it starts with, the rest); no prefix found: ("", address).
    Also whether one was found. Sliced per distinct prefix length: a handful of Arrow calls, no loop per row."""
    n = len(written)
    length = np.zeros(n, dtype=np.int64)
    for prefix in prefixes:
        lengths = pc.utf8_length(prefix).to_numpy()
        for size in np.unique(lengths[length == 0]):
            rows = pa.array(np.flatnonzero((lengths == size) & (length == 0)))
            same = pc.equal(pc.utf8_slice_codeunits(written.take(rows), 0, int(size)), prefix.take(rows))
            length[rows.to_numpy()[same.to_numpy(zero_copy_only=False)]] = size
    heads, rests, order = [], [], []
    for size in np.unique(length):
        rows = np.flatnonzero(length == size)
        part = written.take(pa.array(rows))
        heads.append(pc.utf8_slice_codeunits(part, 0, int(size)))
        rests.append(pc.utf8_slice_codeunits(part, int(size)))
        order.append(rows)
    position = np.empty(n, dtype=np.int64)
    position[np.concatenate(order)] = np.arange(n)
    back = pa.array(position)
    return pa.concat_arrays(heads).take(back), pa.concat_arrays(rests).take(back), length > 0


def _full_width(text: pa.Array) -> pa.Array:
    for digit in "0123456789":
        text = pc.replace_substring(text, digit, chr(ord(digit) - ord("0") + 0xFF10))
    return text


def _abbreviated(rng: np.random.Generator, written: pa.Array, region: np.ndarray) -> pa.Array:
    """Province (or province and city) left out, 幢 as 栋 or 号楼, 室 left out, full-width digits: at least one."""
    pl = places()
    n = len(written)
    take = pa.array(region)
    full, local, county = pl.full.take(take), pl.local.take(take), pl.county.take(take)
    kept, rest, found = _split_prefix(written, [full, local])
    u = rng.random(n)
    shorter = pc.if_else(pa.array(u < 0.3), county, pc.if_else(pc.equal(local, kept), county, local))
    head = pc.if_else(pa.array((u < 0.7) & found), shorter, kept)
    v = rng.random(n)
    rest = pc.if_else(pa.array(v < 0.35), pc.replace_substring(rest, "幢", "栋"),
                      pc.if_else(pa.array(v < 0.55), pc.replace_substring(rest, "幢", "号楼"), rest))
    rest = pc.if_else(pa.array(rng.random(n) < 0.2), pc.replace_substring_regex(rest, "室$", ""), rest)
    rest = pc.if_else(pa.array(rng.random(n) < 0.3), _full_width(rest), rest)
    out = join(head, rest)
    return pc.if_else(pc.equal(out, written), _full_width(out), out)  # nothing changed: the digits at least


def _elsewhere(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """A county other than each of ``region`` (drawn as people's counties are)."""
    out = sample_regions(rng, len(region))
    for _ in range(16):
        same = np.flatnonzero(out == region)
        if not len(same):
            break
        out[same] = sample_regions(rng, len(same))
    return out


def address_errors(rng: np.random.Generator, words: pa.Array, index: np.ndarray, region: np.ndarray,
                   rates: DefectRates) -> tuple[pa.Array, dict[str, Hits]]:
    """The address column (``words[index]``, in counties ``region``) with its errors, as a dictionary column."""
    hits = choose(rng, len(index), [(kind, rate, None) for kind, rate in rates.active(ADDRESS_ERRORS)])
    index = np.array(index, dtype=np.int64)
    missing = np.zeros(len(index), dtype=bool)
    extra, size = [], len(words)
    for kind, h in hits.items():
        rows = h.rows
        if not len(rows):
            continue
        if kind == "address_missing":
            missing[rows] = True
            continue
        if kind == "address_abbreviated":
            new = _abbreviated(rng, words.take(pa.array(index[rows])), region[rows])
        elif kind == "address_old":
            new = addresses(rng, _elsewhere(rng, region[rows]))
        else:  # moved within the city
            new = addresses(rng, _prefectures().pick(rng, region[rows]))
        index[rows] = size + np.arange(len(rows))
        extra.append(new)
        size += len(rows)
    dictionary = pa.concat_arrays([words.cast(pa.string()), *extra]) if extra else words
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32), mask=missing), dictionary), hits


# --- regions ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _old_codes() -> tuple[pa.Array, _Csr]:
    """Every county's code followed by the retired codes; per county, the retired codes it continues."""
    pl = places()
    position = {code: i for i, code in enumerate(pl.codes)}
    older = {position[code]: list(old) for code, old in retired_codes().items() if code in position}
    retired = sorted({c for codes in older.values() for c in codes})
    at = {code: len(pl.codes) + i for i, code in enumerate(retired)}
    start, count, flat = np.zeros(len(pl.codes), np.int64), np.zeros(len(pl.codes), np.int64), []
    for county in sorted(older):
        start[county], count[county] = len(flat), len(older[county])
        flat.extend(at[c] for c in older[county])
    return pa.array(list(pl.codes) + retired), _Csr(start, count, np.array(flat or [0], dtype=np.int64))


def region_errors(rng: np.random.Generator, region: np.ndarray, rates: DefectRates) -> tuple[pa.Array, dict[str, Hits]]:
    """The region-code column (counties ``region``) with retired codes where a county continues one."""
    codes, older = _old_codes()
    eligible = older.count[region] > 0
    hits = choose(rng, len(region), [(kind, rate, eligible) for kind, rate in rates.active(REGION_ERRORS)])
    index = np.array(region, dtype=np.int64)
    for h in hits.values():
        index[h.rows] = older.pick(rng, index[h.rows])
    return coded(codes, index), hits

"""The matching columns of identity resolution, derived from a record's name, birth date, region and address.

Departments type the same person differently: full-width letters, a space or a middle dot inside
the name, traditional characters, a homophone, the name romanised in pinyin or in Latin script
with the surname first or last; an address with or without its province and city. Comparisons and
blocking rules (``warehouse/config/identity.yaml``) work on these derived columns, so each level
says which of those variations it forgives:

- ``name_norm``: NFKC (full-width → ASCII), traditional → simplified (OpenCC), spaces and dots
  removed between Chinese characters; Latin-script names lower-cased, one space between words;
- ``name_pinyin``: the toneless pinyin (pypinyin) of a Chinese name as it is romanised, surname
  then given name (``王秀英`` and ``Wang Xiuying`` both give ``wang xiuying``; a surname is read as
  a surname: ``单`` is ``shan``), Latin words as they are: homophones agree;
- ``name_compact``: ``name_pinyin`` without spaces, for edit distances (DuckDB's count bytes,
  so Chinese characters are compared through their pinyin);
- ``name_key``: the words of ``name_pinyin`` sorted: a blocking key that survives swapped order;
- ``name_first`` / ``name_last``: first and last word, for "given name and surname swapped";
- ``surname``: the surname's characters (Chinese) or the last word (Latin script).

Names are converted once per distinct value (a few million at 10 M people), not per record.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

NAME_COLUMNS = ("name_norm", "name_pinyin", "name_compact", "name_key", "name_first", "name_last", "surname")
_CJK = re.compile(r"[\u3400-\u9fff\U00020000-\U0002ffff]")
# Separators typed inside names: spaces, middle dots of several code points, hyphens, commas.
_SEPARATORS = re.compile(r"[\s·•・‧∙.\-_,，、]+")
_NON_LETTER = re.compile(r"[^a-z\s]+")


class _Simplified(dict):
    """Code point -> its simplified character (OpenCC's t2s, one character at a time), for ``str.translate``.

    Converting each distinct character once and translating names with the table is two orders of
    magnitude faster than OpenCC per name, and names are compared character by character anyway.
    """

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if _CJK.match(char):
            converted = _t2s().convert(char)
            value = converted if len(converted) == 1 else char
        else:
            value = char
        self[code] = value
        return value


_SIMPLIFIED = _Simplified()


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=65536)
def _syllable(char: str) -> str:
    """Toneless pinyin of one character (its most common reading), or the character itself."""
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(char, style=Style.NORMAL, errors="default")[0].lower()


def normalise_name(name: str) -> str:
    """Full-width and compatibility forms folded, traditional → simplified, separators inside Chinese names dropped."""
    text = unicodedata.normalize("NFKC", name).strip()
    if _CJK.search(text):
        return _SEPARATORS.sub("", text.translate(_SIMPLIFIED))
    return " ".join(_NON_LETTER.sub(" ", _SEPARATORS.sub(" ", text.lower())).split())


# Surnames read otherwise than their character's most common reading (单 is shan as a surname, not dan).
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "区": "ou", "朴": "piao", "查": "zha", "乐": "yue",
    "覃": "qin", "缪": "miao", "盖": "ge", "种": "chong", "翟": "zhai", "召": "shao", "秘": "bi", "繁": "po",
    "尉": "yu", "长": "chang", "重": "chong", "柏": "bai", "薄": "bo", "员": "yun", "华": "hua", "任": "ren",
}
COMPOUND_SURNAMES = frozenset((
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "轩辕",
    "令狐", "钟离", "端木", "独孤", "南宫", "西门", "万俟", "闻人", "澹台", "公冶", "申屠", "太史", "呼延",
))


def _surname_length(part: str) -> int:
    return 2 if len(part) > 2 and part[:2] in COMPOUND_SURNAMES else 1


def pinyin_words(norm: str) -> list[str]:
    """The name as words: a Chinese name as it is romanised (surname, then the given name as one word), Latin words as they are.

    ``王秀英`` gives ``wang xiuying`` and ``司马相如`` ``sima xiangru``, as departments that write
    names in pinyin write them; the surname is read as a surname (``单`` is ``shan``).
    """
    words: list[str] = []
    for part in norm.split():
        if _CJK.search(part):
            n = _surname_length(part)
            surname = SURNAME_READINGS.get(part) or "".join(
                SURNAME_READINGS.get(c) or _syllable(c) if i == 0 else _syllable(c) for i, c in enumerate(part[:n]))
            given = "".join(_syllable(c) for c in part[n:])
            words.extend([surname, given] if given else [surname])
        else:
            words.append(part)
    return words


def name_features(name: str | None) -> tuple[str | None, ...]:
    """``NAME_COLUMNS`` for one name (all null for an empty one)."""
    if not name:
        return (None,) * len(NAME_COLUMNS)
    norm = normalise_name(name)
    words = pinyin_words(norm)
    if not norm or not words:
        return (None,) * len(NAME_COLUMNS)
    pinyin = " ".join(words)
    surname = norm[:_surname_length(norm)] if _CJK.match(norm) else words[-1]
    return (norm, pinyin, "".join(words), " ".join(sorted(words)), words[0], words[-1], surname)


def name_table(names: pa.Array) -> pa.Table:
    """One row per distinct non-empty name of ``names``: ``name`` and ``NAME_COLUMNS``."""
    distinct = pc.unique(pc.drop_null(names.cast(pa.string()))).to_pylist()
    rows = [name_features(n) for n in distinct]
    columns = {"name": pa.array(distinct, pa.string())}
    for i, column in enumerate(NAME_COLUMNS):
        columns[column] = pa.array([r[i] for r in rows], pa.string())
    return pa.table(columns)


# Address words dropped before comparing: the province and city part a department may or may not
# write (``北京市朝阳区…`` vs ``朝阳区…``), and the building words typed either way.
_PROVINCE_PREFIX = r"^(.{2,3}?(省|自治区|特别行政区)|(北京|天津|上海|重庆)市?|(内蒙古|广西|西藏|宁夏|新疆)(壮族|回族|维吾尔)?(自治区)?)"
_CITY_PREFIX = r"^.{2,4}?(市|地区|自治州|盟)"


def address_key_sql(expr: str) -> str:
    """SQL: the address with province and city prefixes removed, spaces dropped, 幢/号楼 written 栋, digits ASCII."""
    folded = f"translate(replace(replace({expr}, '号楼', '栋'), '幢', '栋'), '０１２３４５６７８９－　 ', '0123456789-')"
    return f"regexp_replace(regexp_replace({folded}, '{_PROVINCE_PREFIX}', ''), '{_CITY_PREFIX}', '')"


def address_tokens_sql(key_expr: str) -> str:
    """SQL: the address key cut into its parts (a name or number followed by its unit word: 路, 号, 栋, 室 …)."""
    return (f"regexp_extract_all({key_expr}, "
            "'[^区县市镇乡街道路巷弄里村组号栋单元室楼层]+(区|县|市|镇|乡|街道|路|巷|弄|里|村|组|号|栋|单元|室|楼|层)')")


def latin_words_sql(expr: str) -> str:
    """SQL: the words and numbers of an address written in Latin script (none for a Chinese address)."""
    return (f"CASE WHEN regexp_matches({expr}, '[一-龥]') THEN []::VARCHAR[] "
            f"ELSE regexp_extract_all(lower({expr}), '[a-z0-9]+') END")

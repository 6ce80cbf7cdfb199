"""Typing errors in the sample generator: each kind at its rate, recorded in the ground truth with its field,
really there in the value a department wrote, nothing else touched; same seed, same bytes; off by default."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import opencc
import pyarrow.parquet as pq
import pytest
from pypinyin import Style, lazy_pinyin, pinyin

from samples import DefectRates, SampleManifest, generate_samples
from samples.defects import DEFECTS, TYPING_ERRORS
from samples.places import places
from samples.typos import LOOK_ALIKES
from schemas.regions import OPEN_END, regions
from tests.samples.test_generate import csv_records, household_rows

PEOPLE = 4_000
SEED = 7
RATE = 0.1
FOREIGN = 0.05  # enough foreign residents for a few dozen Latin-name errors
ROWS_PER_FILE = 500
FILES = {"deaths": ("health/deaths", "utf-8", "报告卡编号"),
         "marriage_registrations": ("civil_affairs/marriage_registrations", "gbk", "登记编号")}
FIELDS = {"name": {"XM", "姓名", "男方姓名", "女方姓名"}, "birth": {"CSRQ", "出生日期"}, "sex": {"XB", "性别"},
          "address": {"HJDZ"}, "region": {"HJQH"}}
TO_TRADITIONAL = opencc.OpenCC("s2t")


@pytest.fixture(scope="module")
def typed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("typed")
    rates = DefectRates().with_typing_errors(RATE, foreign_residents=FOREIGN)
    generate_samples(path, PEOPLE, seed=SEED, rates=rates, rows_per_file=ROWS_PER_FILE)
    return path


@pytest.fixture(scope="module")
def untyped(tmp_path_factory) -> Path:
    """The same world without typing errors: what each department would have written."""
    path = tmp_path_factory.mktemp("untyped")
    generate_samples(path, PEOPLE, seed=SEED, rates=DefectRates(foreign_residents=FOREIGN), rows_per_file=ROWS_PER_FILE)
    return path


@pytest.fixture(scope="module")
def manifest(typed) -> SampleManifest:
    return SampleManifest.load(typed)


@pytest.fixture(scope="module")
def errors(typed) -> list[dict]:
    """The typing-error rows of the ground truth."""
    rows = pq.read_table(typed / "ground_truth" / "defects.parquet").to_pylist()
    return [d for d in rows if d["defect"] in TYPING_ERRORS]


def records(root: Path) -> dict[str, dict[str, dict]]:
    """dataset -> record id -> row, for the three datasets with typing errors."""
    out = {"HJ_RKXX": household_rows(root)}
    for dataset, (stem, encoding, key) in FILES.items():
        out[dataset] = {row[key]: row | {"_source": (source, line), "_ok": ok}
                        for source, line, row, ok in csv_records(root, stem, encoding)}
    return out


@pytest.fixture(scope="module")
def written(typed) -> dict[str, dict[str, dict]]:
    return records(typed)


@pytest.fixture(scope="module")
def original(untyped) -> dict[str, dict[str, dict]]:
    return records(untyped)


# --- what each error looks like ----------------------------------------------------------------------------


def one_apart(a: str, b: str) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def osa_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i, j in itertools.product(range(1, len(a) + 1), range(1, len(b) + 1)):
        d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
        if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
            d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def readings(ch: str) -> set[str]:
    return set(pinyin(ch, style=Style.NORMAL, heteronym=True)[0])


def check_name(kind: str, got: str, want: str) -> None:
    assert got != want
    latin = want.isascii()
    assert latin == kind.startswith("name_latin"), (kind, want)
    if kind == "name_homophone":
        (i,) = one_apart(got, want)
        assert lazy_pinyin(got[i]) == lazy_pinyin(want[i])
    elif kind == "name_similar_char":
        (i,) = one_apart(got, want)
        assert any(got[i] in group and want[i] in group for group in LOOK_ALIKES)
    elif kind == "name_traditional":
        assert len(got) == len(want) and all(TO_TRADITIONAL.convert(w) == g for g, w in zip(got, want))
        assert opencc.OpenCC("t2s").convert(got) == want
    elif kind == "name_dropped_char":
        assert len(got) == len(want) - 1 >= 2 and got[0] == want[0]
        assert any(want[:i] + want[i + 1:] == got for i in range(1, len(want)))
    elif kind == "name_extra_char":
        assert len(got) == len(want) + 1 and any(got[:i] + got[i + 1:] == want for i in range(1, len(got)))
    elif kind in ("name_space", "name_middle_dot"):
        mark = " " if kind == "name_space" else "·"
        assert got.count(mark) == 1 and got.replace(mark, "") == want and got[0] != mark != got[-1]
    elif kind == "name_pinyin":
        assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+|[A-Z]+ [A-Z]+", got), got
        surname, given = got.lower().split(" ")
        split = 2 if want[:2] == "欧阳" else 1
        for part, chars in ((surname, want[:split]), (given, want[split:])):
            assert part in {"".join(c) for c in itertools.product(*(readings(ch) for ch in chars))}, (got, want)
    elif kind == "name_latin_typo":
        assert osa_distance(got, want) == 1 and got.isupper()
    elif kind == "name_latin_given_first":
        surname, given = want.split(" ", 1)
        assert got == f"{given.title()} {surname.title()}"
    else:
        raise AssertionError(kind)


def parse(text: str) -> dt.date:
    return dt.datetime.strptime(text, "%Y-%m-%d" if "-" in text else "%Y%m%d").date()


def check_birth_date(kind: str, got: str | None, want: str) -> None:
    if kind == "birth_date_missing":
        assert got in ("", None)
        return
    assert got and got != want
    if kind == "birth_date_wrong_digit":
        (i,) = one_apart(got, want)
        assert got[i].isdigit() and dt.date(1900, 1, 1) <= parse(got) < dt.date(2026, 1, 1)
    elif kind == "birth_date_day_month_swapped":
        date, day = parse(want), parse(got)
        assert (day.year, day.month, day.day) == (date.year, date.day, date.month)
        assert len(got) == len(want) and ("-" in got) == ("-" in want)  # the system's own style
    elif kind == "birth_date_year_month":
        assert got == want[: 7 if "-" in want else 6]  # 198503 / 1985-03: the day left out
    else:
        raise AssertionError(kind)


def county_of(address: str) -> str:
    """The code of the county whose full name the address starts with."""
    pl = places()
    found = [(len(name), code) for name, code in zip(pl.full.to_pylist(), pl.codes) if address.startswith(name)]
    return max(found)[1]


def plain(address: str) -> str:
    text = unicodedata.normalize("NFKC", address).replace("号楼", "幢").replace("栋", "幢")
    return text.removesuffix("室")


def check_address(kind: str, got: str | None, want: str, code: str) -> None:
    if kind == "address_missing":
        assert got is None
        return
    assert got and got != want
    if kind == "address_abbreviated":
        assert plain(want).endswith(plain(got)) and len(got) <= len(want) + 2
    elif kind == "address_old":
        assert county_of(got) != code
    elif kind == "address_moved":
        assert county_of(got)[:4] == code[:4]
    else:
        raise AssertionError(kind)


def base_name(name: str) -> str:
    return re.sub(r"(自治县|自治旗|林区|特区|县|市|区|旗)$", "", name)


def names_of(code: str) -> set[str]:
    return {base_name(r.name) for r in regions()[code]}


def check_region(got: str, want: str) -> None:
    """A retired code of the same province, last named as the county in use today was at some time (less 县, 区 ...),
    or as a retired code that was."""
    assert got != want and regions()[want][-1].end == OPEN_END and regions()[got][-1].end < OPEN_END
    assert got[:2] == want[:2]
    last = base_name(regions()[got][-1].name)
    between = [c for c, items in regions().items() if c[:2] == want[:2] and items[-1].end < OPEN_END
               and base_name(items[-1].name) in names_of(want)]
    assert last in names_of(want) or any(last in names_of(c) for c in between)


# --- the tests ---------------------------------------------------------------------------------------------


def test_off_by_default_and_uniform_keeps_its_meaning():
    assert not DefectRates().typing and not DefectRates.uniform(0.2).typing and not DefectRates.none().typing
    assert DefectRates().with_typing_errors(0.0) == DefectRates()
    rates = DefectRates.uniform(0.02).with_typing_errors(0.1)
    assert all(getattr(rates, name) == 0.02 for name in DEFECTS)
    assert rates.typing and rates.foreign_residents == pytest.approx(0.01)
    for field in ("name_homophone", "birth_date_wrong_digit", "sex_missing", "address_moved", "region_old_code"):
        assert getattr(rates, field) > 0
    assert sum(getattr(rates, k) for k in TYPING_ERRORS if k.startswith("birth_date")) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        DefectRates(name_homophone=0.7, name_pinyin=0.7)
    with pytest.raises(ValueError):
        DefectRates().with_typing_errors(1.5)


def test_rates_of_zero_give_the_default_output(tmp_path):
    zeros = DefectRates(**{name: 0.0 for name in TYPING_ERRORS}, foreign_residents=0.0)
    for name, rates in (("default", None), ("zeros", zeros), ("typing_off", DefectRates().with_typing_errors(0.0))):
        generate_samples(tmp_path / name, 600, seed=11, rates=rates, rows_per_file=100)
    files = {name: {str(p.relative_to(tmp_path / name)): p.read_bytes() for p in sorted((tmp_path / name).rglob("*"))
                    if p.is_file() and p.name != "household.sqlite"} for name in ("default", "zeros", "typing_off")}
    assert len(files["default"]) > 30 and files["default"] == files["zeros"] == files["typing_off"]
    assert household_rows(tmp_path / "default") == household_rows(tmp_path / "zeros")
    defects = pq.read_table(tmp_path / "zeros" / "ground_truth" / "defects.parquet").column("defect").to_pylist()
    assert not set(defects) & set(TYPING_ERRORS)


def test_same_seed_same_bytes(tmp_path):
    rates = DefectRates().with_typing_errors(0.2, foreign_residents=0.05)
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_samples(tmp_path / name, 600, seed=seed, rates=rates, rows_per_file=100)
    a, b, c = ({str(p.relative_to(tmp_path / n)): p.read_bytes() for p in sorted((tmp_path / n).rglob("*"))
                if p.is_file() and p.name != "household.sqlite"} for n in "abc")
    assert a == b and a != c
    assert household_rows(tmp_path / "a") == household_rows(tmp_path / "b") != household_rows(tmp_path / "c")


def test_every_kind_at_its_rate_with_its_field(manifest, errors):
    rates = manifest.rates
    seen = Counter()
    for row in manifest.defects:
        if row["defect"] not in TYPING_ERRORS:
            continue
        kind, rate = row["defect"], getattr(rates, row["defect"])
        seen[kind] += row["injected"]
        group = next(g for g in FIELDS if kind.startswith(g))
        assert row["field"] in FIELDS[group], row
        if kind == "birth_date_wrong_digit":  # a date without a one-digit neighbour is vanishingly rare
            assert round(rate * row["eligible"]) - 1 <= row["injected"] <= round(rate * row["eligible"])
        else:
            assert row["injected"] == round(rate * row["eligible"]), row  # exact, up to rounding
        if row["eligible"] >= 500:
            assert abs(row["injected"] / row["eligible"] - rate) < 0.005, row
    assert set(seen) == set(TYPING_ERRORS) and all(seen.values())
    assert len(errors) == sum(seen.values())
    # One row per error: a field gets at most one of its errors.
    assert len({(d["dataset"], d["record_id"], d["field"]) for d in errors}) == len(errors)
    # The romanising system is the death register; the region codes and addresses are the household's.
    assert {d["dataset"] for d in errors if d["defect"] == "name_pinyin"} == {"deaths"}
    assert {d["dataset"] for d in errors if d["defect"].startswith(("address", "region"))} == {"HJ_RKXX"}


def test_records_with_several_errors(errors):
    per_person = Counter()
    for d in errors:  # a marriage registration names two people: count per person
        person = "wife" if d["field"] == "女方姓名" else "husband" if d["field"] == "男方姓名" else ""
        per_person[(d["dataset"], d["record_id"], person)] += 1
    how_many = Counter(per_person.values())
    assert how_many[1] > 500 and how_many[2] > 100 and how_many[3] > 5
    assert max(how_many) <= 5  # name, birth date, sex, address, region


def test_errors_are_really_there(errors, written, original):
    checked = Counter()
    for d in errors:
        dataset, kind, field = d["dataset"], d["defect"], d["field"]
        got, want = written[dataset][d["record_id"]], original[dataset][d["record_id"]]
        if dataset != "HJ_RKXX":
            assert (d["source"], d["line"]) == got["_source"]
            if not got["_ok"]:
                continue  # garbled bytes on top of the error
        if kind.startswith("name"):
            check_name(kind, got[field], want[field])
        elif kind.startswith("birth_date"):
            check_birth_date(kind, got[field], want[field])
        elif kind == "sex_missing":
            assert got[field] in ("", None) and want[field] in ("男", "女")
        elif kind.startswith("address"):
            check_address(kind, got[field], want[field], want["HJQH"])
        else:
            assert kind == "region_old_code"
            check_region(got[field], want[field])
        checked[kind] += 1
    assert set(checked) == set(TYPING_ERRORS)


def test_nothing_else_is_touched(typed, untyped, errors, written, original):
    hit = defaultdict(set)
    for d in errors:
        hit[(d["dataset"], d["record_id"])].add(d["field"])
    for dataset, rows in written.items():
        assert rows.keys() == original[dataset].keys()
        for key, row in rows.items():
            changed = {f for f in row if f not in ("_ok", "_source") and row[f] != original[dataset][key][f]}
            assert changed <= hit[(dataset, key)], (dataset, key, changed)
    # Every other system's files, and the entities, are the same bytes; the defects of the untyped run are kept.
    skip = {"household.sqlite", "manifest.json", "defects.parquet", *(s.split("/")[1] for s, _e, _k in FILES.values())}
    others = [p.relative_to(untyped) for p in sorted(untyped.rglob("*"))
              if p.is_file() and not any(p.name.startswith(s) for s in skip)]
    assert len(others) > 20
    assert all((typed / p).read_bytes() == (untyped / p).read_bytes() for p in others)
    before = pq.read_table(untyped / "ground_truth" / "defects.parquet").to_pylist()
    after = pq.read_table(typed / "ground_truth" / "defects.parquet").to_pylist()
    assert [d for d in after if d["defect"] not in TYPING_ERRORS] == before


def test_foreign_residents_and_gbk(typed, written):
    names = [r["XM"] for r in written["HJ_RKXX"].values()]
    latin = [n for n in names if n.isascii()]
    assert abs(len(latin) / len(names) - FOREIGN) < 0.015
    assert sum(bool(re.fullmatch(r"[A-Z]{2,} [A-Z]{2,}", n)) for n in latin) > 0.8 * len(latin)
    # The GBK drop holds every typed name: only the rows with injected undecodable bytes fail to decode.
    defects = pq.read_table(typed / "ground_truth" / "defects.parquet").to_pylist()
    garbled = {d["record_id"] for d in defects
               if d["defect"] == "undecodable_bytes" and d["dataset"] == "marriage_registrations"}
    assert garbled and {k for k, r in written["marriage_registrations"].items() if not r["_ok"]} == garbled


def test_romanised_surnames_read_as_the_hub_reads_them():
    # One table of surname readings (the hub's): a romanised 单 the generator writes is the shan identity reads.
    from samples import vocab
    from samples.typos import tables
    from warehouse.identity_features import SURNAME_READINGS, pinyin_words

    t = tables()
    surnames = {s for s in vocab.SURNAMES if len(s) == 1} | set(SURNAME_READINGS)
    assert {s: t.lower[int(t.surname_syllable[ord(s)])].as_py() for s in surnames} == {
        s: pinyin_words(s)[0] for s in surnames}


def test_retired_codes_are_the_hubs_successions():
    # One succession rule (schemas.regions): every retired code the generator writes is read back as its county.
    from samples.places import retired_codes
    from schemas.regions import current_code, successors

    written = {old: county for county, olds in retired_codes().items() for old in olds}
    assert written == successors() and all(current_code(old) == county for old, county in written.items())

"""The sample generator: determinism, sizes, valid identifiers, defects and their ground truth, the registry
API under a real uvicorn server, and the household table on the real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import unicodedata
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from stdnum.cn import ric, uscc

from samples import DefectRates, SampleManifest, create_registry_app, generate_samples
from samples.licences import HEADERS
from schemas.codes import LICENCE_TYPES
from schemas.ids import ric_check_char
from tests.conftest import MARIADB_URL, POSTGRES_URL
from hub.serving import serving

PEOPLE = 4_000
ROWS_PER_FILE = 500  # small files: every drop is split into several
RATE = 0.04  # high enough for a few dozen defects of each kind in every system
TOKEN = "registry-test-token"
AS_OF = dt.date(2026, 1, 1)
GBK_DROPS = ("civil_affairs/marriage_registrations", "civil_affairs/social_orgs")
# Departments whose licences are held by legal persons (credit codes) rather than people (ID numbers).
LEGAL = {dept: any(holder == "legal_person" for _n, issuer, holder in LICENCE_TYPES.values() if issuer == dept)
         for dept in HEADERS}
ADDRESS = re.compile(r"^.{2,8}?(省|自治区|市).+(号\d+幢\d+单元\d+室|村\d+组\d+号)$")


# --- generation (once per module: the systems are read, never changed) ------------------------------------


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("samples")
    generate_samples(path, PEOPLE, seed=7, rates=DefectRates.uniform(RATE), rows_per_file=ROWS_PER_FILE)
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clean")
    generate_samples(path, 1_500, seed=3, rates=DefectRates.none(), rows_per_file=ROWS_PER_FILE)
    return path


@pytest.fixture(scope="module")
def manifest(out) -> SampleManifest:
    return SampleManifest.load(out)


@pytest.fixture(scope="module")
def entities(out) -> list[dict]:
    return pq.read_table(out / "ground_truth" / "entities.parquet").to_pylist()


@pytest.fixture(scope="module")
def defects(out) -> list[dict]:
    return pq.read_table(out / "ground_truth" / "defects.parquet").to_pylist()


@pytest.fixture(scope="module")
def truth(entities) -> dict[tuple, str | None]:
    """(dataset, record id, role) -> the true key."""
    return {(e["dataset"], e["record_id"], e["role"]): e["entity_key"] for e in entities}


# --- reading the systems back ------------------------------------------------------------------------------


def household_rows(root: Path) -> dict[str, dict]:
    return household_rows_at(root / "household.sqlite")


def household_rows_at(path: Path) -> dict[str, dict]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return {str(r["RKBH"]): dict(r) for r in conn.execute('SELECT * FROM "HJ_RKXX" ORDER BY "RKBH"')}


def drop_files(root: Path, stem: str) -> list[Path]:
    """The data files of one drop (``<stem>_NNN.csv``), in order."""
    folder, name = stem.split("/")
    return sorted(p for p in (root / folder).glob(f"{name}_[0-9][0-9][0-9].csv"))


def csv_records(root: Path, stem: str, encoding: str = "utf-8") -> Iterator[tuple[str, int, dict, bool]]:
    """(file relative to root, line number, row as a dict, decodes strictly) for every data row of a drop."""
    for path in drop_files(root, stem):
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"", f"{path} does not end with a newline"
        header = lines[0].decode(encoding).split(",")
        for number, raw in enumerate(lines[1:-1], start=2):
            try:
                text, ok = raw.decode(encoding), True
            except UnicodeDecodeError:
                text, ok = raw.decode(encoding, errors="replace"), False
            yield str(path.relative_to(root)), number, dict(zip(header, text.split(","), strict=True)), ok


def registry_rows(root: Path) -> list[dict]:
    return pq.read_table(root / "business_registry" / "enterprises.parquet").to_pylist()


def upgraded(old: str) -> str:
    body = old[:6] + "19" + old[6:]
    return body + ric_check_char(body)


def check_id_defect(defect: str, value: str | None, true_id: str, kind: str = "ric") -> None:
    """``value`` (as the department holds it) really shows ``defect`` against the true number."""
    valid = ric.is_valid if kind == "ric" else uscc.is_valid
    if defect == "bad_check_digit":
        assert len(value) == 18 and value[:17] == true_id[:17] and value[17] != true_id[17] and not valid(value)
    elif defect == "old_id_15":
        assert len(value) == 15 and upgraded(value) == true_id
    elif defect == "full_width_id":
        assert value != true_id and value.isascii() is False and unicodedata.normalize("NFKC", value) == true_id
    elif defect == "missing_id":
        assert value in (None, "")
    else:
        raise AssertionError(f"not an ID defect: {defect}")


# --- determinism and sizes ---------------------------------------------------------------------------------


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "household.sqlite"}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        generate_samples(tmp_path / name, 600, seed=seed, rows_per_file=100)
    a, b, c = (_contents(tmp_path / n) for n in "abc")
    assert len(a) > 30 and a == b
    assert household_rows(tmp_path / "a") == household_rows(tmp_path / "b")
    differing = [name for name in a if a[name] != c.get(name)]
    assert "civil_affairs/marriage_registrations_001.csv" in differing
    assert "business_registry/enterprises.parquet" in differing
    assert household_rows(tmp_path / "a") != household_rows(tmp_path / "c")


def test_sizes_and_manifest(out, manifest):
    counts = manifest.counts
    duplicates = sum(r["injected"] for r in manifest.defects if r["defect"] == "duplicate")
    assert counts["HJ_RKXX"] == len(household_rows(out)) == PEOPLE + duplicates == PEOPLE + round(RATE * PEOPLE)
    assert counts["enterprises"] == len(registry_rows(out)) == PEOPLE // 5
    assert counts["social_orgs"] == PEOPLE // 400
    assert counts["marriage_registrations"] > PEOPLE // 5
    assert counts["deaths"] > 0
    for stem, key in (("civil_affairs/marriage_registrations", "marriage_registrations"),
                      ("civil_affairs/social_orgs", "social_orgs"), ("health/deaths", "deaths")):
        files = drop_files(out, stem)
        assert sum(1 for _ in csv_records(out, stem, "gbk" if stem in GBK_DROPS else "utf-8")) == counts[key]
        assert all(f.with_name(f.name + ".done").exists() for f in files)
        assert max(len(f.read_bytes().split(b"\n")) - 2 for f in files) <= ROWS_PER_FILE
    assert len(drop_files(out, "civil_affairs/marriage_registrations")) == -(-counts["marriage_registrations"] // ROWS_PER_FILE)
    for dept in HEADERS:
        assert sum(1 for _ in csv_records(out, f"licences/{dept}")) == counts[f"licences/{dept}"]
        assert sum(1 for _ in csv_records(out, f"licences/{dept}_events")) == counts[f"licence_events/{dept}"]
    assert manifest.seed == 7 and manifest.people == PEOPLE and manifest.rates == DefectRates.uniform(RATE)
    assert not list(out.rglob("*.part")) and not (out / ".scratch").exists()


def test_refuses_sizes_outside_the_range(tmp_path):
    from hub.errors import ConfigError

    with pytest.raises(ConfigError):
        generate_samples(tmp_path, 99)
    with pytest.raises(ConfigError):
        generate_samples(tmp_path, 10_000_001)
    with pytest.raises(ValueError):
        DefectRates(bad_check_digit=1.5)


def test_looks_real(out):
    rows = list(household_rows(out).values())
    assert sum(bool(ADDRESS.match(r["HJDZ"])) for r in rows) >= PEOPLE  # all but the duplicates' retyped ones
    assert all(ADDRESS.match(r["XZZ"]) for r in rows)
    assert all(r["XB"] in ("男", "女") and r["HYZK"] in ("WH", "YH", "LH", "SO") and r["SWBZ"] in "012" for r in rows)
    assert all(len(r["CSRQ"]) == 8 and "19300101" <= r["CSRQ"] <= "20251231" for r in rows)
    assert Counter(r["MZ"] for r in rows).most_common(1)[0][0] == "汉"
    assert all(not r["MZ"].endswith("族") for r in rows)
    assert all(2 <= len(r["XM"]) <= 4 for r in rows)
    # Households cluster: several people share an address; a handful of cities hold most people.
    assert Counter(r["HJDZ"] for r in rows).most_common(1)[0][1] >= 3
    assert sum(n for _, n in Counter(r["HJQH"][:4] for r in rows).most_common(8)) > 0.5 * len(rows)
    # GXSJ rises with RKBH, mostly.
    times = [r["GXSJ"] for r in rows]
    assert sum(a <= b for a, b in zip(times, times[1:])) > 0.8 * len(times)
    assert "2024-01-01" <= min(times) and max(times) < "2026-01-01"


# --- identifiers: valid unless a defect was injected -------------------------------------------------------


def test_clean_samples_have_no_defects(clean):
    assert pq.read_table(clean / "ground_truth" / "defects.parquet").num_rows == 0
    rows = household_rows(clean)
    assert len(rows) == 1_500
    assert all(ric.is_valid(r["SFZH"]) for r in rows.values())
    assert len({r["SFZH"] for r in rows.values()}) == len(rows)
    for stem in GBK_DROPS:
        assert all(ok for *_, ok in csv_records(clean, stem, "gbk"))
    for rec in registry_rows(clean):
        assert uscc.is_valid(rec["TYSHXYDM"]) and ric.is_valid(rec["FDDBRSFZH"])
    for _f, _l, row, _ok in csv_records(clean, "health/deaths"):
        assert ric.is_valid(row["身份证号"])
    for _f, _l, row, _ok in csv_records(clean, "civil_affairs/marriage_registrations", "gbk"):
        assert ric.is_valid(row["男方身份证号"]) and ric.is_valid(row["女方身份证号"])
    for _f, _l, row, _ok in csv_records(clean, "civil_affairs/social_orgs", "gbk"):
        assert uscc.is_valid(row["统一社会信用代码"]) and row["统一社会信用代码"][:2] in ("51", "52", "53")
    codes = {r["TYSHXYDM"] for r in registry_rows(clean)}
    people = {r["SFZH"] for r in rows.values()}
    for dept, h in HEADERS.items():
        for _f, _l, row, _ok in csv_records(clean, f"licences/{dept}"):
            holder = row[h[3]]
            assert holder in codes if row[h[2]] == "法人" else holder in people
            if row[h[7]]:
                assert row[h[7]] >= AS_OF.isoformat() or row[h[8]] in ("已过期", "已撤销", "暂停")


def test_ids_valid_except_injected(out, defects, truth):
    hit = {(d["dataset"], d["record_id"], d["field"]) for d in defects}
    for rkbh, row in household_rows(out).items():
        if ("HJ_RKXX", rkbh, "SFZH") not in hit:
            assert ric.is_valid(row["SFZH"]) and row["SFZH"] == truth[("HJ_RKXX", rkbh, "person")]
    for rec in registry_rows(out):
        assert uscc.is_valid(rec["TYSHXYDM"]) and rec["TYSHXYDM"][:2] in ("91", "92", "93")
        if ("enterprises", rec["TYSHXYDM"], "FDDBRSFZH") not in hit:
            assert ric.is_valid(rec["FDDBRSFZH"])
    for _f, _l, row, _ok in csv_records(out, "civil_affairs/marriage_registrations", "gbk"):
        for field in ("男方身份证号", "女方身份证号"):
            if ("marriage_registrations", row["登记编号"], field) not in hit:
                assert ric.is_valid(row[field])
    for _f, _l, row, _ok in csv_records(out, "health/deaths"):
        if ("deaths", row["报告卡编号"], "身份证号") not in hit:
            assert ric.is_valid(row["身份证号"])
    for dept, h in HEADERS.items():
        valid = uscc.is_valid if LEGAL[dept] else ric.is_valid
        for _f, _l, row, _ok in csv_records(out, f"licences/{dept}"):
            if ("licences", row[h[0]], h[3]) not in hit:
                assert valid(row[h[3]])



# --- defects: rates and presence ---------------------------------------------------------------------------


def test_defect_rates_match_the_configuration(manifest, defects):
    by_kind: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in manifest.defects:
        key = (row["dataset"], row["defect"])
        by_kind[key][0] += row["injected"]
        by_kind[key][1] += row["eligible"]
        by_kind[key][2] += 1
    for (dataset, defect), (injected, eligible, groups) in by_kind.items():
        assert abs(injected - RATE * eligible) <= groups, (dataset, defect)  # exact, up to rounding
    assert len(defects) == sum(r["injected"] for r in manifest.defects)
    kinds = {d for _, d in by_kind}
    assert kinds == {"bad_check_digit", "old_id_15", "full_width_id", "missing_id", "conflicting_value", "duplicate",
                     "dangling_holder", "expired_still_valid", "undecodable_bytes"}
    for (dataset, defect), (injected, eligible, _groups) in by_kind.items():
        if eligible >= 500:
            assert abs(injected / eligible - RATE) < 0.005, (dataset, defect)
    # One row per defect: no record gets the same defect twice.
    assert len({(d["dataset"], d["source"], d["record_id"], d["line"], d["defect"], d["field"]) for d in defects}) == len(defects)


def test_household_defects_are_really_there(out, defects, truth, entities):
    rows = household_rows(out)
    married = set()  # people with a marriage not (yet) dissolved, per civil affairs
    dissolved = set()
    for _f, _l, row, _ok in csv_records(out, "civil_affairs/marriage_registrations", "gbk"):
        number = row["登记编号"]
        pair = {truth[("marriage_registrations", number, "husband")], truth[("marriage_registrations", number, "wife")]}
        (married if row["业务类型"] == "结婚" else dissolved).update(pair)
    dead = {truth[("deaths", row["报告卡编号"], "deceased")] for *_x, row, _ok in csv_records(out, "health/deaths")}
    first_row_of = {}
    for rkbh in sorted(rows, key=int):
        first_row_of.setdefault(truth[("HJ_RKXX", rkbh, "person")], rkbh)
    seen = Counter()
    for d in (d for d in defects if d["dataset"] == "HJ_RKXX"):
        row, key = rows[d["record_id"]], truth[("HJ_RKXX", d["record_id"], "person")]
        seen[d["defect"]] += 1
        if d["field"] == "SFZH":
            check_id_defect(d["defect"], row["SFZH"], key)
        elif d["field"] == "HYZK":
            assert row["HYZK"] == "WH" and key in married and key not in dissolved
        elif d["field"] == "SWBZ":
            assert row["SWBZ"] == "0" and row["ZXRQ"] is None and key in dead
        else:
            assert d["defect"] == "duplicate" and first_row_of[key] != d["record_id"]
            original = rows[first_row_of[key]]
            assert (row["XM"], row["CSRQ"], row["XB"]) == (original["XM"], original["CSRQ"], original["XB"])
    assert set(seen) == {"bad_check_digit", "old_id_15", "full_width_id", "missing_id", "conflicting_value", "duplicate"}
    assert {rows[d["record_id"]]["SFZH"] for d in defects if d["defect"] == "missing_id" and d["dataset"] == "HJ_RKXX"} == {None, ""}
    # Every other household row states the truth about life status.
    living_conflicts = {d["record_id"] for d in defects if d["field"] == "SWBZ"}
    for rkbh, row in rows.items():
        if truth[("HJ_RKXX", rkbh, "person")] in dead and rkbh not in living_conflicts:
            assert row["SWBZ"] == "1" and row["ZXRQ"]


def test_file_and_registry_defects_are_really_there(out, defects, truth):
    by_record = defaultdict(list)
    for d in defects:
        by_record[(d["dataset"], d["record_id"])].append(d)
    checked = Counter()

    def check_file(dataset, stem, encoding, number_field, fields_roles, kind="ric"):
        for source, line, row, ok in csv_records(out, stem, encoding):
            for d in by_record.get((dataset, row[number_field]), ()):
                assert (d["source"], d["line"]) == (source, line)
                checked[(dataset, d["defect"])] += 1
                if d["defect"] == "undecodable_bytes":
                    assert not ok and "\ufffd" in row[d["field"]]
                else:
                    check_id_defect(d["defect"], row[d["field"]], truth[(dataset, row[number_field], fields_roles[d["field"]])], kind)

    check_file("marriage_registrations", "civil_affairs/marriage_registrations", "gbk", "登记编号",
               {"男方身份证号": "husband", "女方身份证号": "wife"})
    check_file("social_orgs", "civil_affairs/social_orgs", "gbk", "统一社会信用代码", {"法定代表人身份证号": "legal_rep"})
    check_file("deaths", "health/deaths", "utf-8", "报告卡编号", {"身份证号": "deceased"})

    names = {truth[("HJ_RKXX", rkbh, "person")]: r["XM"] for rkbh, r in household_rows(out).items()}
    for rec in registry_rows(out):
        for d in by_record.get(("enterprises", rec["TYSHXYDM"]), ()):
            rep = truth[("enterprises", rec["TYSHXYDM"], "legal_rep")]
            checked[("enterprises", d["defect"])] += 1
            if d["field"] == "FDDBR":
                assert rec["FDDBR"] != names[rep] and rec["FDDBR"][:-1] == names[rep][:-1]
            else:
                check_id_defect(d["defect"], rec["FDDBRSFZH"], rep)

    codes = {r["TYSHXYDM"] for r in registry_rows(out)}
    people = set(names)
    for dept, h in HEADERS.items():
        for source, line, row, _ok in csv_records(out, f"licences/{dept}"):
            for d in by_record.get(("licences", row[h[0]]), ()):
                assert (d["source"], d["line"]) == (source, line)
                checked[("licences", d["defect"])] += 1
                holder = row[h[3]]
                if d["defect"] == "dangling_holder":
                    assert truth[("licences", row[h[0]], "holder")] is None
                    assert (uscc.is_valid(holder) and holder not in codes) if LEGAL[dept] else \
                        (ric.is_valid(holder) and holder not in people)
                elif d["defect"] == "bad_check_digit":
                    check_id_defect("bad_check_digit", holder, truth[("licences", row[h[0]], "holder")],
                                    "uscc" if LEGAL[dept] else "ric")
                else:
                    assert d["defect"] == "expired_still_valid" and d["field"] == h[8]
                    assert row[h[7]] and row[h[7]] < AS_OF.isoformat() and row[h[8]] in ("已颁发", "已换发")
    expected = Counter((d["dataset"], d["defect"]) for d in defects if d["dataset"] != "HJ_RKXX")
    assert checked == expected


def test_gbk_files_decode_except_injected_rows(out, defects):
    injected = {(d["source"], d["line"]) for d in defects if d["defect"] == "undecodable_bytes"}
    assert injected
    for stem in GBK_DROPS:
        for source, line, _row, ok in csv_records(out, stem, "gbk"):
            assert ok == ((source, line) not in injected)
    for source, line in injected:  # not even the GBK superset reads them
        with pytest.raises(UnicodeDecodeError):
            (out / source).read_bytes().split(b"\n")[line - 1].decode("gb18030")


def test_entities_cover_every_record(out, entities):
    per_source = Counter((e["dataset"], e["source"], e["record_id"], e["line"]) for e in entities)
    roles = defaultdict(set)
    for e in entities:
        roles[e["dataset"]].add(e["role"])
    assert roles["HJ_RKXX"] == {"person"} and roles["marriage_registrations"] == {"husband", "wife"}
    assert roles["enterprises"] == {"enterprise", "legal_rep"} and roles["licences"] == {"holder"}
    expected = Counter()
    for rkbh in household_rows(out):
        expected[("HJ_RKXX", "HJ_RKXX", rkbh, None)] += 1
    for rec in registry_rows(out):
        expected[("enterprises", "business_registry/enterprises.parquet", rec["TYSHXYDM"], None)] += 2
    drops = [("marriage_registrations", "civil_affairs/marriage_registrations", "gbk", 2),
             ("social_orgs", "civil_affairs/social_orgs", "gbk", 2), ("deaths", "health/deaths", "utf-8", 1)]
    drops += [("licences", f"licences/{d}", "utf-8", 1) for d in HEADERS]
    drops += [("licence_events", f"licences/{d}_events", "utf-8", 1) for d in HEADERS]
    for dataset, stem, encoding, n_roles in drops:
        for source, line, row, _ok in csv_records(out, stem, encoding):
            expected[(dataset, source, next(iter(row.values())), line)] += n_roles
    assert per_source == expected
    keys = [e["entity_key"] for e in entities if e["entity_kind"] == "person" and e["entity_key"]]
    assert all(ric.is_valid(k) for k in keys[:: max(1, len(keys) // 5000)])


def test_household_loader_process(tmp_path):
    from samples.household import build_household
    from samples.household_db import HouseholdWriter, sqlite_url
    from samples.people import build_population
    from hub.errors import HubError

    table = build_household(build_population(300, 1), DefectRates(), 1).table
    writer = HouseholdWriter(sqlite_url(tmp_path / "h.sqlite"), tmp_path / "scratch", background=True)
    writer.submit(table)
    writer.wait()
    assert writer.written == table.num_rows == len(household_rows_at(tmp_path / "h.sqlite"))
    assert not list((tmp_path / "scratch").iterdir())  # the IPC hand-over file is gone
    broken = HouseholdWriter("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path / "scratch", background=True)
    broken.submit(table)
    with pytest.raises(HubError, match="household database load failed"):
        broken.wait()


def test_command_line(tmp_path):
    import typer
    from typer.testing import CliRunner

    from hub.commands import samples

    app = typer.Typer()
    samples.register(app)
    result = CliRunner().invoke(app, ["generate-samples", "--people", "300", "--seed", "9", "--out", str(tmp_path),
                                      "--defect-rate", "0", "--duplicate", "0.1"])
    assert result.exit_code == 0, result.output
    manifest = SampleManifest.load(tmp_path)
    assert manifest.rates == DefectRates(**(DefectRates.none().as_dict() | {"duplicate": 0.1}))
    assert manifest.counts["HJ_RKXX"] == 330 and "HJ_RKXX" in result.output
    assert CliRunner().invoke(app, ["generate-samples", "--people", "5", "--out", str(tmp_path)]).exit_code == 1


def test_ensure_samples_generates_once(settings):
    from hub.commands.samples import ensure_samples

    ensure_samples(settings, people=200, seed=4)
    manifest = settings.samples_dir / "manifest.json"
    first = manifest.stat().st_mtime_ns
    ensure_samples(settings, people=200, seed=4)
    assert manifest.stat().st_mtime_ns == first
    ensure_samples(settings, people=250, seed=4)
    assert SampleManifest.load(settings.samples_dir).people == 250


# --- the business registry's REST API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(out) -> Iterator[httpx.Client]:
    with serving(create_registry_app(out / "business_registry", TOKEN, page_size_max=200)) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            yield client


def test_registry_refuses_without_the_token(registry):
    url = "/api/v1/enterprises"
    assert httpx.get(str(registry.base_url) + url).status_code == 401
    wrong = httpx.get(str(registry.base_url) + url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(str(registry.base_url) + url + "/changes").status_code == 401
    assert registry.get(url, params={"size": 201}).status_code == 422
    assert registry.get(url + "/changes", params={"cursor": "garbage!"}).status_code == 400


def test_registry_pages(out, registry):
    rows = registry_rows(out)
    want = sorted(rows, key=lambda r: (r["GXSJ"], r["TYSHXYDM"]))
    got, page = [], 1
    while True:
        body = registry.get("/api/v1/enterprises", params={"page": page, "size": 37}).json()
        assert body["total"] == len(rows) and body["size"] == 37 and body["page"] == page
        if not body["items"]:
            break
        got += body["items"]
        page += 1
    assert page == -(-len(rows) // 37) + 1
    assert [g["TYSHXYDM"] for g in got] == [w["TYSHXYDM"] for w in want]
    first, sample = got[0], want[0]
    assert set(first) == {"TYSHXYDM", "QYMC", "QYLX", "FDDBR", "FDDBRSFZH", "ZCZB", "CLRQ", "DJJG", "XZQH", "ZS", "JYFW",
                          "DJZT", "ZTRQ", "GXSJ"}
    assert first["GXSJ"] == sample["GXSJ"].isoformat() and first["CLRQ"] == sample["CLRQ"].isoformat()
    assert first["QYMC"] == sample["QYMC"] and first["ZCZB"] == sample["ZCZB"]
    since = want[len(want) // 2]["GXSJ"]
    body = registry.get("/api/v1/enterprises", params={"size": 200, "updated_since": since.isoformat()}).json()
    assert body["total"] == sum(r["GXSJ"] >= since for r in rows)
    assert all(item["GXSJ"] >= since.isoformat() for item in body["items"])


def test_registry_changes_by_cursor(out, registry):
    rows = registry_rows(out)
    got, cursor, calls = [], None, 0
    while True:
        params = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        body = registry.get("/api/v1/enterprises/changes", params=params).json()
        got += body["items"]
        calls += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert calls == -(-len(rows) // 50)
    assert [g["TYSHXYDM"] for g in got] == [r["TYSHXYDM"] for r in sorted(rows, key=lambda r: (r["GXSJ"], r["TYSHXYDM"]))]
    since = sorted(r["GXSJ"] for r in rows)[-10]
    body = registry.get("/api/v1/enterprises/changes", params={"limit": 200, "updated_since": since.isoformat()}).json()
    assert len(body["items"]) == sum(r["GXSJ"] >= since for r in rows) and body["next_cursor"] is None


# --- the household table on PostgreSQL and MariaDB ---------------------------------------------------------


@contextmanager
def isolated(url: str) -> Iterator[str]:
    """A URL whose HJ_RKXX lives in a schema (PostgreSQL) or database (MariaDB) of its own, dropped afterwards."""
    name = f"samples_{uuid.uuid4().hex[:10]}"
    base = sa.engine.make_url(url)
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    postgres = base.get_backend_name() == "postgresql"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"' if postgres else f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        if postgres:
            yield base.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(hide_password=False)
        else:
            yield base.set(database=name).update_query_dict({"charset": "utf8mb4"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE' if postgres else f"DROP DATABASE `{name}`"))
        admin.dispose()


@pytest.mark.servers
@pytest.mark.parametrize("server_url", [POSTGRES_URL, MARIADB_URL], ids=["postgresql", "mariadb"])
def test_household_on_database_servers(tmp_path, server_url):
    generate_samples(tmp_path / "lite", 300, seed=5, rows_per_file=100)
    expected = household_rows(tmp_path / "lite")
    with isolated(server_url) as url:
        manifest = generate_samples(tmp_path / "server", 300, seed=5, household_url=url, rows_per_file=100)
        assert not (tmp_path / "server" / "household.sqlite").exists()
        assert manifest.household == sa.engine.make_url(url).render_as_string(hide_password=True)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            table = sa.Table("HJ_RKXX", sa.MetaData(), autoload_with=engine)
            assert [c.name for c in table.columns] == ["RKBH", "SFZH", "XM", "XB", "CSRQ", "MZ", "HJDZ", "HJQH", "XZZ",
                                                       "HYZK", "SWBZ", "ZXRQ", "LXDH", "GXSJ"]
            assert isinstance(table.c.GXSJ.type, sa.DateTime) and table.c.RKBH.primary_key
            assert any([c.name for c in ix.columns] == ["GXSJ"] for ix in table.indexes)
            with engine.connect() as conn:
                got = {str(r.RKBH): r._asdict() for r in conn.execute(sa.select(table).order_by(table.c.RKBH))}
        finally:
            engine.dispose()
    assert got.keys() == expected.keys()
    for rkbh, row in got.items():
        row["RKBH"], row["GXSJ"] = int(row["RKBH"]), row["GXSJ"].isoformat(sep=" ")
        assert row == expected[rkbh]  # NULL and '' kept apart, Chinese text intact

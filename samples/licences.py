"""Licence issuers: one UTF-8 CSV drop per department, its licences and their status events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from samples import idnums
from samples.csvdrop import Drop, Written
from samples.defects import DefectRates, Hits, choose, some
from samples.ground_truth import GroundTruth
from samples.legal_persons import LegalPersons, org_salt
from samples.people import LIVING, Population
from samples.places import FIRST_YEAR, places, sample_regions
from samples.streams import AS_OF_DAY, between, stream, years
from samples.text import coded, dates, digit_matrix, from_fixed, hex_digits, replace_rows, ymd
from schemas.codes import HOLDER_TYPE, LICENCE_STATUS, LICENCE_TYPES

FOLDER = "licences"
EVENTS = ("issued", "renewed", "suspended", "revoked", "expired")
ISSUED, RENEWED, SUSPENDED, REVOKED, EXPIRED = range(5)
# Each department's own column headers, in the order: number, type, holder type, holder ID, holder
# name, issued, valid from, valid to, status, file digest.
HEADERS: dict[str, tuple[str, ...]] = {
    "market_regulation": ("证照编号", "证照类型", "持证主体类型", "统一社会信用代码", "持证主体名称", "发证日期", "有效期起", "有效期止", "证照状态", "文件摘要"),
    "transport": ("许可证号", "证件类型", "持证类型", "经营者代码", "经营者名称", "核发日期", "有效期自", "有效期至", "状态", "电子证照SHA256"),
    "housing": ("证书编号", "证书名称", "主体类型", "企业统一社会信用代码", "企业名称", "发证日期", "有效起始日期", "有效截止日期", "证书状态", "摘要值"),
    "health": ("执业证书编码", "证书类型", "持证人类型", "身份证件号码", "姓名", "签发日期", "生效日期", "失效日期", "执业状态", "证照文件哈希"),
    "education": ("资格证书号码", "证书种类", "持有人类型", "身份证号码", "姓名", "发证时间", "有效期开始", "有效期结束", "证书状态", "文件SHA256"),
    "civil_affairs": ("证件编号", "证照名称", "持证人类别", "持证人身份证号", "持证人姓名", "登记日期", "有效期起", "有效期止", "状态", "文件摘要"),
    "hrss": ("证书编号", "证书类型", "持证人类型", "公民身份号码", "姓名", "发证日期", "有效期起始", "有效期终止", "证书状态", "文件摘要SHA256"),
}
EVENT_HEADERS = ("证照编号", "事件类型", "事件日期")
HOLDER_ID, STATUS = 3, 8  # positions in HEADERS
# Validity in years (None: long-term) and the yearly chance of a suspension, by licence type.
VALIDITY: dict[str, int | None] = {
    "business_licence": None, "food_business": 5, "road_transport": 4, "construction_qualification": 5,
    "medical_practitioner": None, "teacher_qualification": None, "marriage_certificate": None,
    "vocational_qualification": None,
}
MARRIAGE_CERTIFICATES_FROM = np.datetime64("2010-01-01")


@dataclass
class _Batch:
    """Licences of one type before their life cycle: holders, issue dates, numbers."""

    kind: str
    holder: np.ndarray  # person or legal-person index
    issued: np.ndarray
    end: np.ndarray  # when the holder (or the marriage) ended, else AS_OF
    number: pa.Array


def _serial_number(prefix: str, region: np.ndarray, issued: np.ndarray, serial: np.ndarray, width: int,
                   with_year: bool) -> pa.Array:
    parts = [np.full((len(serial), len(prefix)), np.frombuffer(prefix.encode(), dtype=np.uint8))] if prefix else []
    parts.append(places().code_digits[region])
    if with_year:
        parts.append(digit_matrix(ymd(issued)[0], 4))
    parts.append(digit_matrix(serial, width))
    return from_fixed(np.hstack(parts))


def _person_batch(rng: np.random.Generator, pop: Population, kind: str, share: float, min_age: int, since: str,
                  prefix: str, width: int, with_year: bool) -> _Batch:
    age_ok = np.flatnonzero(pop.birth < AS_OF_DAY - years(min_age + 1))
    holder = np.sort(rng.choice(age_ok, size=int(round(share * len(age_ok))), replace=False)) if len(age_ok) else age_ok
    end = np.where(pop.life[holder] == LIVING, AS_OF_DAY, pop.life_date[holder]).astype("datetime64[D]")
    lo = np.maximum(pop.birth[holder] + years(min_age), np.datetime64(since))
    keep = lo < end
    holder, end, lo = holder[keep], end[keep], lo[keep]
    issued = between(rng, lo, end)
    number = _serial_number(prefix, pop.region[holder], issued, np.arange(len(holder)), width, with_year)
    return _Batch(kind, holder, issued, end, number)


def _enterprise_batch(rng: np.random.Generator, ent: LegalPersons, kind: str, share: float, kinds: bytes,
                      prefix: str, width: int) -> _Batch:
    pool = np.flatnonzero(np.isin(ent.kind, np.frombuffer(kinds, dtype=np.uint8)))
    holder = np.sort(rng.choice(pool, size=int(round(share * len(pool))), replace=False)) if len(pool) else pool
    end = ent.end()[holder]
    issued = between(rng, ent.established[holder], end)
    keep = issued < end
    holder, issued, end = holder[keep], issued[keep], end[keep]
    number = _serial_number(prefix, ent.region[holder], issued, np.arange(len(holder)), width, False)
    return _Batch(kind, holder, issued, end, number)


def _batches(rng: np.random.Generator, pop: Population, ent: LegalPersons) -> dict[str, _Batch]:
    """Every licence type's holders and issue dates."""
    out = {
        "business_licence": _Batch("business_licence", np.arange(ent.n), ent.established, ent.end(), ent.code_strings()),
        "food_business": _enterprise_batch(rng, ent, "food_business", 0.15, b"12", "JY1", 8),
        "road_transport": _enterprise_batch(rng, ent, "road_transport", 0.05, b"1", "", 6),
        "construction_qualification": _enterprise_batch(rng, ent, "construction_qualification", 0.03, b"1", "D2", 6),
        "medical_practitioner": _person_batch(rng, pop, "medical_practitioner", 0.004, 24, "1990-01-01", "110", 6, False),
        "teacher_qualification": _person_batch(rng, pop, "teacher_qualification", 0.015, 21, "1995-01-01", "", 7, True),
        "vocational_qualification": _person_batch(rng, pop, "vocational_qualification", 0.03, 18, "1994-01-01", "S", 6, True),
    }
    m = pop.marriages
    recent = np.flatnonzero(m.married_on >= MARRIAGE_CERTIFICATES_FROM)
    both = np.repeat(recent, 2)
    role = np.tile(np.array([1, 2]), len(recent))
    holder = np.where(role == 1, m.husband[both], m.wife[both])
    issued = m.married_on[both]
    end = np.where(np.isnat(m.divorced_on[both]), AS_OF_DAY, m.divorced_on[both]).astype("datetime64[D]")
    region = pop.region[m.husband[both]]
    y = digit_matrix(ymd(issued)[0], 4)
    dash = np.full((len(both), 1), ord("-"), dtype=np.uint8)
    number = from_fixed(np.hstack([np.full((len(both), 1), ord("J"), dtype=np.uint8), places().code_digits[region], dash, y,
                                   dash, digit_matrix(np.arange(len(both)) // 2 + 1, 7), dash, digit_matrix(role, 1)]))
    out["marriage_certificate"] = _Batch("marriage_certificate", holder, issued, end, number)
    return out


@dataclass
class _Life:
    valid_from: np.ndarray
    valid_to: np.ndarray
    status: np.ndarray  # event code of the current status
    before_expiry: np.ndarray  # status the licence had before it expired
    events: tuple[np.ndarray, np.ndarray, np.ndarray]  # (row, event code, date)


def _life(rng: np.random.Generator, issued: np.ndarray, end: np.ndarray, validity: int | None, suspend: float) -> _Life:
    """Renewals, expiry, revocation when the holder ends, occasional suspension: all as events."""
    n = len(issued)
    renewals = np.zeros(n, dtype=np.int64)
    valid_to = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    expired = np.zeros(n, dtype=bool)
    if validity:
        period = int(years(validity))
        lapses = issued + period < end
        renew = lapses & (rng.random(n) < 0.6)
        renewals = np.where(renew, -(-(end - issued).astype(np.int64) // period) - 1, 0)
        valid_to = issued + (renewals + 1) * period
        expired = lapses & ~renew
    valid_from = issued + renewals * (int(years(validity)) if validity else 0)
    revoked = (end < AS_OF_DAY) & ~expired
    suspended = ~expired & ~revoked & (rng.random(n) < suspend)
    suspended_on = between(rng, valid_from + 1, np.full(n, AS_OF_DAY))
    status = np.where(renewals > 0, RENEWED, ISSUED)
    before_expiry = status.copy()
    status = np.select([expired, revoked, suspended], [EXPIRED, REVOKED, SUSPENDED], status)

    rows = [np.arange(n)]
    codes = [np.full(n, ISSUED)]
    when = [issued]
    if validity:
        r = np.repeat(np.arange(n), renewals)
        k = np.arange(len(r)) - np.repeat(np.cumsum(renewals) - renewals, renewals) + 1
        rows.append(r), codes.append(np.full(len(r), RENEWED)), when.append(issued[r] + k * int(years(validity)))
    for code, mask, day in ((EXPIRED, expired, valid_to), (REVOKED, revoked, end), (SUSPENDED, suspended, suspended_on)):
        rows.append(np.flatnonzero(mask)), codes.append(np.full(int(mask.sum()), code)), when.append(day[mask])
    events = (np.concatenate(rows), np.concatenate(codes), np.concatenate(when).astype("datetime64[D]"))
    return _Life(valid_from.astype("datetime64[D]"), valid_to, status, before_expiry, events)


def _dangling_people(rng: np.random.Generator, taken: np.ndarray, k: int) -> np.ndarray:
    """Valid-looking ID numbers of nobody in the population (``taken``: sorted body keys of everyone)."""
    pl = places()
    out = np.zeros((0, 18), dtype=np.uint8)
    while len(out) < k:
        m = k - len(out)
        birth = np.datetime64("1940-01-01") + rng.integers(0, 65 * 365, m)
        year = ymd(birth)[0]
        region = pl.id_region[sample_regions(rng, m), year - FIRST_YEAR]
        ids = idnums.resident_ids(pl.code_digits[region], birth, rng.integers(1, 1000, m))
        pos = np.searchsorted(taken, idnums.body_key(ids)).clip(0, len(taken) - 1)
        out = np.vstack([out, ids[taken[pos] != idnums.body_key(ids)]])
    return out


@dataclass
class _Register:
    """One department's licences in export (issue) order, with their status events."""

    kinds: list[str]
    legal: bool  # held by legal persons (credit codes) rather than people (ID numbers)
    kind: np.ndarray  # index into ``kinds``
    holder: np.ndarray
    number: pa.Array
    issued: np.ndarray
    valid_from: np.ndarray
    valid_to: np.ndarray
    status: np.ndarray
    before_expiry: np.ndarray
    ev_row: np.ndarray  # events: licence row, event code, date
    ev_code: np.ndarray
    ev_day: np.ndarray

    @property
    def n(self) -> int:
        return len(self.holder)


def _register(rng: np.random.Generator, batches: dict[str, _Batch], dept: str) -> _Register:
    kinds = [k for k, (_name, issuer, _holder) in LICENCE_TYPES.items() if issuer == dept]
    parts = [batches[k] for k in kinds]
    lives = [_life(rng, b.issued, b.end, VALIDITY[b.kind], 0.0 if b.kind == "marriage_certificate" else 0.01)
             for b in parts]
    offsets = np.cumsum([0] + [len(b.holder) for b in parts])
    issued = np.concatenate([b.issued for b in parts])
    order = np.lexsort((np.arange(len(issued)), issued))  # the department exports in issue order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ev_row = rank[np.concatenate([x.events[0] + offsets[i] for i, x in enumerate(lives)])]
    ev_code = np.concatenate([x.events[1] for x in lives])
    ev_day = np.concatenate([x.events[2] for x in lives])
    return _Register(
        kinds=kinds, legal=LICENCE_TYPES[kinds[0]][2] == "legal_person",
        kind=np.concatenate([np.full(len(b.holder), i) for i, b in enumerate(parts)])[order],
        holder=np.concatenate([b.holder for b in parts])[order],
        number=pa.concat_arrays([b.number for b in parts]).take(pa.array(order)),
        issued=issued[order],
        valid_from=np.concatenate([x.valid_from for x in lives])[order],
        valid_to=np.concatenate([x.valid_to for x in lives])[order],
        status=np.concatenate([x.status for x in lives])[order],
        before_expiry=np.concatenate([x.before_expiry for x in lives])[order],
        ev_row=ev_row, ev_code=ev_code, ev_day=ev_day,
    )


def _still_valid(rng: np.random.Generator, reg: _Register, rate: float) -> Hits:
    """Expired licences left marked as issued: status not updated, no 'expired' event."""
    hit = some(rng, np.flatnonzero(reg.status == EXPIRED), rate)
    reg.status[hit.rows] = reg.before_expiry[hit.rows]
    quiet = np.zeros(reg.n, dtype=bool)
    quiet[hit.rows] = True
    keep = ~(quiet[reg.ev_row] & (reg.ev_code == EXPIRED))
    order = np.lexsort((reg.ev_code[keep], reg.ev_day[keep], reg.ev_row[keep]))
    reg.ev_row, reg.ev_code, reg.ev_day = reg.ev_row[keep][order], reg.ev_code[keep][order], reg.ev_day[keep][order]
    return hit


def _holder_ids(rng: np.random.Generator, reg: _Register, true_ids: np.ndarray, hits: dict[str, Hits],
                fake_people: Callable[[int], np.ndarray], fake_serial: int, seed: int) -> pa.Array:
    """The holder column as the department holds it: dangling and mistyped IDs among the true ones."""
    dangling, mistyped = hits["dangling_holder"].rows, hits["bad_check_digit"].rows
    if reg.legal:
        k = len(dangling)
        fake = idnums.credit_codes(np.full(k, ord("9"), dtype=np.uint8), np.full(k, ord("1"), dtype=np.uint8),
                                   places().code_digits[sample_regions(rng, k)], fake_serial + np.arange(k), org_salt(seed))
        wrong = idnums.wrong_uscc_check(true_ids[mistyped], rng)
    else:
        fake = fake_people(len(dangling))
        wrong = idnums.wrong_ric_check(true_ids[mistyped], rng)
    values = replace_rows(from_fixed(true_ids), dangling, from_fixed(fake))
    return replace_rows(values, mistyped, from_fixed(wrong))


def write_licences(pop: Population, ent: LegalPersons, rates: DefectRates, seed: int, root: Path, rows_per_file: int,
                   truth: GroundTruth, serial0: int) -> dict[str, tuple[Written, Written]]:
    """``licences/<department>_NNN.csv`` and ``licences/<department>_events_NNN.csv`` per issuing department."""
    rng = stream(seed, "licences")
    batches = _batches(rng, pop, ent)
    taken: list[np.ndarray] = []

    def fake_people(k: int) -> np.ndarray:
        if not taken:
            taken.append(np.sort(idnums.body_key(pop.ids)))  # sorted once, for every department
        return _dangling_people(rng, taken[0], k)

    files: dict[str, tuple[Written, Written]] = {}
    for d, dept in enumerate(HEADERS):
        reg = _register(rng, batches, dept)
        true_ids = ent.codes[reg.holder] if reg.legal else pop.ids[reg.holder]
        hits = choose(rng, reg.n, [("dangling_holder", rates.dangling_holder, None),
                                   ("bad_check_digit", rates.bad_check_digit, None)])
        hits["expired_still_valid"] = _still_valid(rng, reg, rates.expired_still_valid)
        holder_id = _holder_ids(rng, reg, true_ids, hits, fake_people, serial0 + d * 10_000_000, seed)
        h = HEADERS[dept]
        table = pa.table({
            h[0]: reg.number,
            h[1]: coded([LICENCE_TYPES[k][0] for k in reg.kinds], reg.kind),
            h[2]: pa.repeat(pa.scalar(HOLDER_TYPE["legal_person" if reg.legal else "person"]), reg.n),
            h[3]: holder_id,
            h[4]: (ent.name if reg.legal else pop.name).take(pa.array(reg.holder)),
            h[5]: dates(reg.issued),
            h[6]: dates(reg.valid_from),
            h[7]: dates(reg.valid_to),
            h[8]: coded([LICENCE_STATUS[e] for e in EVENTS], reg.status),
            h[9]: hex_digits(rng, reg.n, 64),
        })
        event_number = reg.number.take(pa.array(reg.ev_row))
        events = pa.table({EVENT_HEADERS[0]: event_number, EVENT_HEADERS[1]: coded(EVENTS, reg.ev_code),
                           EVENT_HEADERS[2]: dates(reg.ev_day)})
        drop, ev_drop = Drop(root, FOLDER, dept, rows_per_file), Drop(root, FOLDER, f"{dept}_events", rows_per_file)
        files[dept] = (drop.write(table), ev_drop.write(events))

        source, line = drop.locate(np.arange(reg.n), reg.n)
        for defect, found in hits.items():
            field = h[STATUS] if defect == "expired_still_valid" else h[HOLDER_ID]
            truth.defects(dept, "licences", defect, field, found.eligible, source.take(pa.array(found.rows)),
                          reg.number.take(pa.array(found.rows)), line[found.rows])
        # A dangling holder names no entity of any library: its true key is null.
        key = replace_rows(from_fixed(true_ids), hits["dangling_holder"].rows,
                           pa.nulls(len(hits["dangling_holder"].rows), pa.string()))
        kind = "legal_person" if reg.legal else "person"
        truth.entities(dept, "licences", source, reg.number, "holder", kind, key, line)
        ev_source, ev_line = ev_drop.locate(np.arange(len(reg.ev_row)), len(reg.ev_row))
        truth.entities(dept, "licence_events", ev_source, event_number, "holder", kind, key.take(pa.array(reg.ev_row)),
                       ev_line)
    return files

"""Civil affairs file drop (GBK CSV): marriage registrations and social organisations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samples import typos
from samples.csvdrop import RAW_PLACEHOLDER, Drop, Written
from samples.defects import LATIN_NAME_ERRORS, NAME_ERRORS, DefectRates, Hits, choose, id_values, some
from samples.ground_truth import GroundTruth
from samples.legal_persons import SOCIAL_KINDS, LegalPersons
from samples.people import Population
from samples.places import places
from samples.streams import stream
from samples.text import coded, dates, digit_matrix, from_fixed, join, replace_rows, timestamps, ymd

SYSTEM = "civil_affairs"
FOLDER = "civil_affairs"
ENCODING = "gbk"
MARRIAGES, SOCIAL_ORGS = "marriage_registrations", "social_orgs"
ORG_STATUS = ("正常", "撤销", "注销")  # by legal_persons ACTIVE / REVOKED / DEREGISTERED


def _garbled(names: pa.Array) -> pa.Array:
    """Names with undecodable bytes after the first character (written raw by the drop)."""
    return join(pc.utf8_slice_codeunits(names, 0, 1), RAW_PLACEHOLDER, pc.utf8_slice_codeunits(names, 1))


def _undecodable(rng: np.random.Generator, columns: dict[str, pa.Array], fields: tuple[str, str], rate: float) -> tuple[Hits, np.ndarray]:
    """Garble one of two fields in some rows; returns the rows and which field (0/1) each got."""
    n = len(columns[fields[0]])
    hits = some(rng, np.arange(n), rate)
    which = rng.integers(0, 2, len(hits.rows))
    for i, name in enumerate(fields):
        rows = hits.rows[which == i]
        columns[name] = replace_rows(columns[name], rows, _garbled(columns[name].take(pa.array(rows))))
    return hits, which


def write_marriages(pop: Population, rates: DefectRates, seed: int, root: Path, rows_per_file: int,
                    truth: GroundTruth) -> Written:
    """One row per marriage or divorce registration, in date order, as civil affairs exports them."""
    rng = stream(seed, "marriages")
    m = pop.marriages
    divorced = np.flatnonzero(~np.isnat(m.divorced_on))
    pair = np.concatenate([np.arange(len(m.husband)), divorced])
    is_divorce = np.concatenate([np.zeros(len(m.husband), dtype=bool), np.ones(len(divorced), dtype=bool)])
    when = np.concatenate([m.married_on, m.divorced_on[divorced]])
    order = np.lexsort((is_divorce, pair, when))
    pair, is_divorce, when = pair[order], is_divorce[order], when[order]
    r = len(pair)
    husband, wife = m.husband[pair], m.wife[pair]
    region = pop.region[husband]
    pl = places()
    year = ymd(when)[0]
    number = from_fixed(np.hstack([
        np.where(is_divorce, ord("L"), ord("J")).astype(np.uint8)[:, None], pl.code_digits[region],
        digit_matrix(year, 4), digit_matrix(np.arange(1, r + 1), 7),
    ]))
    before_2000 = when < np.datetime64("2000-01-01")  # registered while the old 15-digit cards were in use
    cols = {
        "登记编号": number,
        "男方身份证号": None, "男方姓名": pop.names(husband),
        "女方身份证号": None, "女方姓名": pop.names(wife),
        "业务类型": coded(("结婚", "离婚"), is_divorce.astype(np.int64)),
        "登记日期": dates(when),
        "登记机关": join(pl.local.take(pa.array(region)), "民政局"),
    }
    hits = {}
    for field, who in (("男方身份证号", husband), ("女方身份证号", wife)):
        hits[field] = choose(rng, r, [("bad_check_digit", rates.bad_check_digit, None),
                                      ("old_id_15", rates.old_id_15, before_2000),
                                      ("full_width_id", rates.full_width_id, None)])
        cols[field] = id_values(pop.ids[who], hits[field], rng)
    typing = []
    if rates.active(NAME_ERRORS + LATIN_NAME_ERRORS):  # typed into the names, before any bytes got garbled
        for field, who in (("男方姓名", husband), ("女方姓名", wife)):
            cols[field], name_hits = typos.name_errors(stream(seed, f"marriages-typos-{field}"), cols[field],
                                                       pop.name_info.take(who), rates)
            typing += [(kind, field, h) for kind, h in name_hits.items()]
    garbled, which = _undecodable(rng, cols, ("男方姓名", "女方姓名"), rates.undecodable_bytes)
    table = pa.table(cols)
    drop = Drop(root, FOLDER, MARRIAGES, rows_per_file)
    files = drop.write(table, ENCODING)

    source, line = drop.locate(np.arange(r), r)
    for field, field_hits in hits.items():
        for defect, h in field_hits.items():
            truth.defects(SYSTEM, MARRIAGES, defect, field, h.eligible, source.take(pa.array(h.rows)),
                          number.take(pa.array(h.rows)), line[h.rows])
    for i, field in enumerate(("男方姓名", "女方姓名")):  # one draw over rows: eligible counted once
        rows = garbled.rows[which == i]
        truth.defects(SYSTEM, MARRIAGES, "undecodable_bytes", field, garbled.eligible if i == 0 else 0,
                      source.take(pa.array(rows)), number.take(pa.array(rows)), line[rows])
    for defect, field, h in typing:
        truth.defects(SYSTEM, MARRIAGES, defect, field, h.eligible, source.take(pa.array(h.rows)),
                      number.take(pa.array(h.rows)), line[h.rows])
    truth.entities(SYSTEM, MARRIAGES, source, number, "husband", "person", pop.id_strings(husband), line)
    truth.entities(SYSTEM, MARRIAGES, source, number, "wife", "person", pop.id_strings(wife), line)
    return files


def write_social_orgs(orgs: LegalPersons, pop: Population, rates: DefectRates, seed: int, root: Path,
                      rows_per_file: int, truth: GroundTruth) -> Written:
    """The social organisation register (credit codes 51/52/53), as civil affairs exports it."""
    rng = stream(seed, "social-orgs-file")
    k = orgs.n
    pl = places()
    code = orgs.code_strings()
    hits = choose(rng, k, [("bad_check_digit", rates.bad_check_digit, None), ("full_width_id", rates.full_width_id, None)])
    cols = {
        "统一社会信用代码": code,
        "社会组织名称": orgs.name,
        "社会组织类型": coded([SOCIAL_KINDS[c] for c in sorted(SOCIAL_KINDS)], orgs.kind - ord("1")),
        "法定代表人": pop.names(orgs.rep),
        "法定代表人身份证号": id_values(pop.ids[orgs.rep], hits, rng),
        "成立登记日期": dates(orgs.established),
        "登记管理机关": join(pl.local.take(pa.array(orgs.region)), "民政局"),
        "住所": orgs.address,
        "业务范围": orgs.scope,
        "注册资金（万元）": pa.array(orgs.capital.astype(np.int64)),
        "登记状态": coded(ORG_STATUS, orgs.status),
        "状态变更日期": dates(orgs.status_date),
        "更新时间": timestamps(orgs.updated),
    }
    garbled, which = _undecodable(rng, cols, ("社会组织名称", "住所"), rates.undecodable_bytes)
    drop = Drop(root, FOLDER, SOCIAL_ORGS, rows_per_file)
    files = drop.write(pa.table(cols), ENCODING)

    source, line = drop.locate(np.arange(k), k)
    for defect, h in hits.items():
        truth.defects(SYSTEM, SOCIAL_ORGS, defect, "法定代表人身份证号", h.eligible, source.take(pa.array(h.rows)),
                      code.take(pa.array(h.rows)), line[h.rows])
    for i, field in enumerate(("社会组织名称", "住所")):  # one draw over rows: eligible counted once
        rows = garbled.rows[which == i]
        truth.defects(SYSTEM, SOCIAL_ORGS, "undecodable_bytes", field, garbled.eligible if i == 0 else 0,
                      source.take(pa.array(rows)), code.take(pa.array(rows)), line[rows])
    truth.entities(SYSTEM, SOCIAL_ORGS, source, code, "organisation", "legal_person", code, line)
    truth.entities(SYSTEM, SOCIAL_ORGS, source, code, "legal_rep", "person", pop.id_strings(orgs.rep), line)
    return files

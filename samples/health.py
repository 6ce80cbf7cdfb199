"""Health commission file drop (UTF-8 CSV): the deaths register."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samples import typos, vocab
from samples.csvdrop import Drop, Written
from samples.defects import (BIRTH_DATE_ERRORS, LATIN_NAME_ERRORS, NAME_ERRORS, SEX_ERRORS, DefectRates,
                             Hits, choose, id_values)
from samples.ground_truth import GroundTruth
from samples.people import DECEASED, Population
from samples.places import places
from samples.streams import AS_OF_DAY, stream
from samples.text import coded, dates, digit_matrix, from_fixed, join, ymd

SYSTEM = "health"
FOLDER = "health"
DEATHS = "deaths"


def write_deaths(pop: Population, rates: DefectRates, seed: int, root: Path, rows_per_file: int,
                 truth: GroundTruth) -> Written:
    """One death report per deceased person, in date order (household registration may not know yet)."""
    rng = stream(seed, "deaths")
    dead = np.flatnonzero(pop.life == DECEASED)
    dead = dead[np.lexsort((dead, pop.life_date[dead]))]
    k = len(dead)
    died = pop.life_date[dead]
    reported = np.minimum(died + rng.integers(0, 11, k), AS_OF_DAY - 1)
    number = from_fixed(np.hstack([np.full((k, 2), np.frombuffer(b"SW", dtype=np.uint8)),
                                   digit_matrix(ymd(died)[0], 4), digit_matrix(np.arange(1, k + 1), 8)]))
    cause = rng.choice(len(vocab.DEATH_CAUSES), size=k, p=vocab.DEATH_CAUSE_P)
    place = rng.choice(len(vocab.DEATH_PLACES), size=k, p=vocab.DEATH_PLACE_P)
    hospital = rng.random(k) < 0.7
    pl = places()
    local = pl.local.take(pa.array(pop.region[dead]))
    hits = choose(rng, k, [
        ("bad_check_digit", rates.bad_check_digit, None),
        ("old_id_15", rates.old_id_15, pop.birth[dead] < np.datetime64("2000-01-01")),
        ("full_width_id", rates.full_width_id, None),
        ("missing_id", rates.missing_id, None),
    ])
    table = pa.table({
        "报告卡编号": number,
        "身份证号": id_values(pop.ids[dead], hits, rng),
        "姓名": pop.names(dead),
        "性别": coded(("男", "女"), pop.gender[dead] - 1),
        "出生日期": dates(pop.birth[dead]),
        "死亡日期": dates(died),
        "根本死因编码": coded([c for c, _ in vocab.DEATH_CAUSES], cause),
        "根本死因": coded([label for _, label in vocab.DEATH_CAUSES], cause),
        "死亡地点": coded(vocab.DEATH_PLACES, place),
        "报告单位": pc.if_else(pa.array(hospital), join(local, "人民医院"), join(local, "疾病预防控制中心")),
        "报告日期": dates(reported),
    })
    typing: list[tuple[str, str, Hits]] = []
    if rates.typing:
        table, typing = _typing_errors(table, pop, dead, rates, seed)
    drop = Drop(root, FOLDER, DEATHS, rows_per_file)
    files = drop.write(table)
    source, line = drop.locate(np.arange(k), k)
    for defect, h in hits.items():
        truth.defects(SYSTEM, DEATHS, defect, "身份证号", h.eligible, source.take(pa.array(h.rows)),
                      number.take(pa.array(h.rows)), line[h.rows])
    for defect, column, h in typing:
        truth.defects(SYSTEM, DEATHS, defect, column, h.eligible, source.take(pa.array(h.rows)),
                      number.take(pa.array(h.rows)), line[h.rows])
    truth.entities(SYSTEM, DEATHS, source, number, "deceased", "person", pop.id_strings(dead), line)
    return files


def _typing_errors(table: pa.Table, pop: Population, dead: np.ndarray, rates: DefectRates,
                   seed: int) -> tuple[pa.Table, list[tuple[str, str, Hits]]]:
    """Typing errors in 姓名 (the one system that romanises some names), 出生日期 and 性别."""
    found: list[tuple[str, str, Hits]] = []
    columns = {}
    if rates.active(NAME_ERRORS + LATIN_NAME_ERRORS):
        columns["姓名"], hits = typos.name_errors(stream(seed, "deaths-typos-name"), table["姓名"].combine_chunks(),
                                                pop.name_info.take(dead), rates, pinyin=True)
        found += [(kind, "姓名", h) for kind, h in hits.items()]
    if rates.active(BIRTH_DATE_ERRORS):
        columns["出生日期"], hits = typos.birth_date_errors(stream(seed, "deaths-typos-birth"),
                                                        table["出生日期"].combine_chunks(), pop.birth[dead], rates, sep="-")
        found += [(kind, "出生日期", h) for kind, h in hits.items()]
    if rates.active(SEX_ERRORS):
        columns["性别"], hits = typos.sex_errors(stream(seed, "deaths-typos-sex"), pop.gender[dead] - 1, ("男", "女"), rates)
        found += [(kind, "性别", h) for kind, h in hits.items()]
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table, found

"""The file-drop connector on real files in a temporary folder: encodings, workbooks, completion, once-only taking."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.config import SourceConfig
from connectors.file_drop import FileDropConnector, from_config
from hub.errors import ConfigError, SchemaDrift, SourceUnavailable

HEADER = "登记编号,姓名,住址,登记日期"
ROWS = [
    "J001,张伟,北京市东城区人民路12号,2015-03-01",
    "J002,欧阳娜娜,\"上海市浦东新区,世纪大道8号\",2016-07-15",
    "J003,李秀英,广州市天河区中山路3号,2017-01-09",
]
EXPECTED = {
    "登记编号": ["J001", "J002", "J003"],
    "姓名": ["张伟", "欧阳娜娜", "李秀英"],
    "住址": ["北京市东城区人民路12号", "上海市浦东新区,世纪大道8号", "广州市天河区中山路3号"],
    "登记日期": ["2015-03-01", "2016-07-15", "2017-01-09"],
    "_line": [2, 3, 4],
}


def _drop(folder: Path, name: str, data: bytes | str, *, marker: bool = True, encoding: str = "utf-8") -> Path:
    """A file as a department writes it: contents first, then the ``.done`` marker."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    if marker:
        path.with_name(name + ".done").write_bytes(b"")
    return path


def _connector(folder: Path, **options) -> FileDropConnector:
    options.setdefault("columns", ["姓名", "住址", "登记日期"])
    return FileDropConnector(folder, key="登记编号", **options)


def _drain(extraction) -> pa.Table:
    batches = list(extraction.batches)
    return pa.Table.from_batches(batches) if batches else pa.table({})


def _csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.parametrize("declared, encode", [
    ("utf-8", lambda text: text.encode("utf-8")),
    ("gbk", lambda text: text.encode("gbk")),
    ("gb18030", lambda text: text.encode("gb18030")),
    ("auto", lambda text: text.encode("utf-8")),
    ("auto", lambda text: codecs.BOM_UTF8 + text.encode("utf-8")),
    ("auto", lambda text: text.encode("gbk")),
    ("auto", lambda text: text.encode("gb18030")),
])
def test_every_encoding_lands_the_same_rows(tmp_path, declared, encode):
    _drop(tmp_path / "drop", "a.csv", encode(_csv(*ROWS)))
    extraction = _connector(tmp_path / "drop", encoding=declared).extract(None)
    table = _drain(extraction)
    assert table.drop_columns(["_file"]).to_pydict() == EXPECTED
    assert table.column("_file").to_pylist() == ["a.csv"] * 3
    assert all(t == pa.string() for t in table.schema.types[:-1]) and table.schema.field("_line").type == pa.int64()
    assert extraction.quarantined == []


def test_gb18030_characters_outside_gbk_are_read_in_gb18030_and_auto(tmp_path):
    text = _csv("J004,刘䶮,深圳市南山区科技园𠀀号,2018-02-02")  # 䶮 and 𠀀 have no GBK code
    for declared in ("gb18030", "auto"):
        _drop(tmp_path / declared, "a.csv", text.encode("gb18030"))
        table = _drain(_connector(tmp_path / declared, encoding=declared).extract(None))
        assert table.column("姓名").to_pylist() == ["刘䶮"]
        assert table.column("住址").to_pylist() == ["深圳市南山区科技园𠀀号"]
    # Declared GBK, the same bytes are not GBK: the row is quarantined, never landed as mojibake.
    _drop(tmp_path / "gbk", "a.csv", text.encode("gb18030"))
    extraction = _connector(tmp_path / "gbk", encoding="gbk").extract(None)
    assert _drain(extraction).num_rows == 0
    assert [(q["line"], q["reason"]) for q in extraction.quarantined] == [(2, "undecodable bytes for gbk")]


def test_auto_keeps_a_utf8_file_with_one_corrupted_byte_utf8(tmp_path):
    data = _csv(*ROWS).encode("utf-8").replace("李秀英".encode(), "李".encode() + b"\xff" + "英".encode())
    _drop(tmp_path / "drop", "a.csv", data)
    extraction = _connector(tmp_path / "drop", encoding="auto").extract(None)
    table = _drain(extraction)
    assert table.column("姓名").to_pylist() == ["张伟", "欧阳娜娜"]
    assert extraction.quarantined == [{"file": "a.csv", "line": 4, "reason": "undecodable bytes for utf-8",
                                       "raw": "J003,李\\xff英,广州市天河区中山路3号,2017-01-09"}]


def test_workbook_first_sheet_or_named_sheet_with_title_rows(tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["not this sheet"])
    sheet = book.create_sheet("登记")
    sheet.append(["婚姻登记导出（2024年）"])  # a title row above the header
    sheet.append(["登记编号", "姓名", "住址", "登记日期", None])
    sheet.append(["J001", "张伟", "北京市东城区人民路12号", dt.date(2015, 3, 1)])
    sheet.append([])  # an empty row holds no record
    sheet.append([1002, "欧阳娜娜", None, "2016-07-15"])
    sheet.append(["J003", "李秀英", "广州", "2017-01-09", "多余"])  # a field beyond the header
    sheet.append([12.5, "王芳", "成都", dt.datetime(2017, 1, 9, 8, 30)])
    folder = tmp_path / "drop"
    folder.mkdir()
    book.save(folder / "登记.xlsx")
    (folder / "登记.xlsx.done").write_bytes(b"")

    extraction = _connector(folder, pattern="*.xlsx", sheet="登记", header_row=2).extract(None)
    table = _drain(extraction)
    assert table.drop_columns(["_file"]).to_pydict() == {
        "登记编号": ["J001", "1002", "12.5"],
        "姓名": ["张伟", "欧阳娜娜", "王芳"],
        "住址": ["北京市东城区人民路12号", None, "成都"],
        "登记日期": ["2015-03-01 00:00:00", "2016-07-15", "2017-01-09 08:30:00"],
        "_line": [3, 5, 7],
    }
    assert table.column("_file").to_pylist() == ["登记.xlsx"] * 3
    assert extraction.quarantined == [{"file": "登记.xlsx", "line": 6, "raw": "J003,李秀英,广州,2017-01-09,多余",
                                       "reason": "wrong number of fields: expected 4, got 5"}]
    with pytest.raises(SchemaDrift, match="no sheet"):
        _drain(_connector(folder, pattern="*.xlsx", sheet="缺少").extract(None))


def test_a_file_without_its_marker_waits_then_is_taken_once(tmp_path):
    folder = tmp_path / "drop"
    path = _drop(folder, "a.csv", _csv(*ROWS), marker=False)
    first = _connector(folder).extract(None)
    assert _drain(first).num_rows == 0 and first.watermark is None

    path.with_name("a.csv.done").write_bytes(b"")
    second = _connector(folder).extract(first.watermark)
    assert _drain(second).num_rows == 3
    assert set(json.loads(second.watermark)["files"]) == {"a.csv"}

    third = _connector(folder).extract(second.watermark)
    assert _drain(third).num_rows == 0 and third.watermark == second.watermark and third.quarantined == []


def test_stable_completion_leaves_a_growing_file_for_later(tmp_path):
    folder = tmp_path / "drop"
    path = _drop(folder, "a.csv", _csv(), marker=False)
    stop = threading.Event()

    def department_still_writing() -> None:
        for i in range(100):
            if stop.is_set():
                return
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"J{i:03d},张伟,北京,2015-03-01\n")
            time.sleep(0.02)

    writer = threading.Thread(target=department_still_writing)
    writer.start()
    try:
        time.sleep(0.05)
        growing = _connector(folder, completion="stable", stable_seconds=0.3).extract(None)
        assert _drain(growing).num_rows == 0 and growing.watermark is None
    finally:
        stop.set()
        writer.join()
    lines = path.read_text(encoding="utf-8").count("\n") - 1
    settled = _connector(folder, completion="stable", stable_seconds=0.3).extract(growing.watermark)
    assert _drain(settled).num_rows == lines > 0


def test_taken_files_are_not_taken_again_new_ones_are(tmp_path):
    folder = tmp_path / "drop"
    _drop(folder, "a_001.csv", _csv(*ROWS[:2]))
    first = _connector(folder).extract(None)
    assert _drain(first).column("登记编号").to_pylist() == ["J001", "J002"]

    _drop(folder, "a_002.csv", _csv(ROWS[2]))
    second = _connector(folder).extract(first.watermark)
    new = _drain(second)
    assert new.column("登记编号").to_pylist() == ["J003"] and new.column("_file").to_pylist() == ["a_002.csv"]
    files = json.loads(second.watermark)["files"]
    assert set(files) == {"a_001.csv", "a_002.csv"}
    assert files["a_002.csv"]["size"] == (folder / "a_002.csv").stat().st_size
    assert len(files["a_002.csv"]["sha256"]) == 64

    again = _connector(folder).extract(second.watermark, full=True)  # a full re-extract takes every file again
    assert _drain(again).num_rows == 3 and again.since is None


def test_a_file_changed_after_it_was_taken_is_reported_once_not_retaken(tmp_path):
    folder = tmp_path / "drop"
    path = _drop(folder, "a.csv", _csv(*ROWS[:2]))
    first = _connector(folder).extract(None)
    _drain(first)

    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same bytes: nothing to report
    touched = _connector(folder).extract(first.watermark)
    assert _drain(touched).num_rows == 0 and touched.quarantined == []

    with path.open("a", encoding="utf-8") as fh:
        fh.write(ROWS[2] + "\n")
    changed = _connector(folder).extract(touched.watermark)
    assert _drain(changed).num_rows == 0
    [report] = changed.quarantined
    assert (report["file"], report["line"], report["reason"]) == ("a.csv", None, "file changed after it was taken")

    later = _connector(folder).extract(changed.watermark)
    assert _drain(later).num_rows == 0 and later.quarantined == []


def test_bad_rows_are_quarantined_and_the_good_rows_of_the_file_land(tmp_path):
    data = b"".join([
        _csv(ROWS[0]).encode("gbk"),
        "J002,李".encode("gbk") + b"\xff\xfe" + "四,上海,2016-07-15\n".encode("gbk"),  # undecodable
        "J003,王五,广州\n".encode("gbk"),  # a field short
        "J004,赵六,深圳,2017-01-09,多余\n".encode("gbk"),  # a field too many
        "J005,钱七,\"杭州市西湖区\n".encode("gbk"),  # a quote that never closes
        "J006,孙八,南京,2019-09-09\n".encode("gbk"),
        "J007,周九,武汉\r市,2020-01-01\n".encode("gbk"),  # a lone CR, which Arrow would take for a line end
        "J008,吴十,重庆,2021-01-01".encode("gbk"),  # the last line, without its line break
    ])
    _drop(tmp_path / "drop", "a.csv", data)
    extraction = _connector(tmp_path / "drop", encoding="gbk").extract(None)
    table = _drain(extraction)
    assert table.column("登记编号").to_pylist() == ["J001", "J006", "J008"]
    assert table.column("_line").to_pylist() == [2, 7, 9]
    assert extraction.quarantined == [
        {"file": "a.csv", "line": 3, "reason": "undecodable bytes for gbk", "raw": "J002,李\\xff\\xfe四,上海,2016-07-15"},
        {"file": "a.csv", "line": 4, "reason": "wrong number of fields: expected 4, got 3", "raw": "J003,王五,广州"},
        {"file": "a.csv", "line": 5, "reason": "wrong number of fields: expected 4, got 5",
         "raw": "J004,赵六,深圳,2017-01-09,多余"},
        {"file": "a.csv", "line": 6, "reason": "unterminated quote", "raw": "J005,钱七,\"杭州市西湖区"},
        {"file": "a.csv", "line": 8, "reason": "carriage return inside a line", "raw": "J007,周九,武汉\r市,2020-01-01"},
    ]


@pytest.mark.parametrize("chunk_bytes", [16, 64, 1 << 20])  # chunk edges inside quoted values, and none
def test_line_numbers_count_titles_blank_lines_quoted_line_breaks_and_crlf(tmp_path, chunk_bytes):
    text = "\r\n".join([
        "婚姻登记导出",  # title line 1
        "",  # line 2
        HEADER,  # header at line 3
        "J001,张伟,\"北京市东城区\r\n人民路12号\",2015-03-01",  # lines 4-5
        "",  # line 6: blank
        "J002,李四,上海",  # line 7: quarantined
        "J003,\"王\"\"五\",\"广州\r\n\r\n天河\",2017-01-09",  # lines 8-10
        "J004,赵六,\"深圳,南山\",2018-02-02",  # line 11
    ]) + "\r\n"
    _drop(tmp_path / "drop", "a.csv", text, encoding="gbk")
    extraction = _connector(tmp_path / "drop", header_row=3, chunk_bytes=chunk_bytes).extract(None)
    table = _drain(extraction)
    assert table.column("_line").to_pylist() == [4, 8, 11]
    assert table.column("姓名").to_pylist() == ["张伟", '王"五', "赵六"]
    assert table.column("住址").to_pylist() == ["北京市东城区\r\n人民路12号", "广州\r\n\r\n天河", "深圳,南山"]
    [entry] = extraction.quarantined
    assert (entry["line"], entry["reason"]) == (7, "wrong number of fields: expected 4, got 3")


@pytest.mark.parametrize("chunk_bytes", [32, 1 << 20])
@pytest.mark.parametrize("stray_close", [False, True])
def test_an_unterminated_quote_costs_one_line_and_reading_resumes(tmp_path, chunk_bytes, stray_close):
    rows = [f"J{i:03d},张伟,北京,2015-03-01" for i in range(1, 8)]
    rows[1] = "J002,李四,\"上海,2016-07-15"  # opens a quote on line 3 that never closes...
    if stray_close:
        rows[4] = "J005,王五,广州\"x,2017-01-09"  # ...or that a stray quote closes 3 lines later
    _drop(tmp_path / "drop", "a.csv", _csv(*rows))
    extraction = _connector(tmp_path / "drop", chunk_bytes=chunk_bytes, max_record_lines=2).extract(None)
    table = _drain(extraction)
    assert table.column("_line").to_pylist() == [2, 4, 5, 6, 7, 8]
    assert table.column("住址").to_pylist()[3] == ('广州"x' if stray_close else "北京")  # mid-value quotes are data
    assert extraction.quarantined == [{"file": "a.csv", "line": 3, "reason": "unterminated quote",
                                       "raw": "J002,李四,\"上海,2016-07-15"}]


_VALUES = st.lists(st.sampled_from(["a", "1", " ", ",", '"', "\n", "\r\n", "张", "欧阳", "伟"]), max_size=6).map("".join)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(_VALUES, min_size=3, max_size=3), max_size=25),
       newline=st.sampled_from(["\n", "\r\n"]), chunk_bytes=st.sampled_from([8, 32, 1 << 20]),
       encoding=st.sampled_from(["utf-8", "gbk", "gb18030"]))
def test_any_quoted_csv_lands_as_written_on_its_lines(rows, newline, chunk_bytes, encoding):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(HEADER.split(",")[:3])
    lines, line = [], 2
    for row in rows:
        before = out.getvalue().count("\n")
        writer.writerow(row)
        lines.append(line)
        line += out.getvalue().count("\n") - before
    with tempfile.TemporaryDirectory() as folder:
        _drop(Path(folder), "a.csv", out.getvalue(), encoding=encoding)
        extraction = _connector(Path(folder), columns=["姓名", "住址"], encoding=encoding, chunk_bytes=chunk_bytes,
                                batch_size=4).extract(None)
        table = _drain(extraction)
    assert extraction.quarantined == []
    if rows:
        landed = [table.column(c).to_pylist() for c in ("登记编号", "姓名", "住址")]
        assert [list(r) for r in zip(*landed)] == rows
        assert table.column("_line").to_pylist() == lines


def test_quoting_off_reads_quotes_as_data(tmp_path):
    _drop(tmp_path / "drop", "a.csv", _csv('J001,"张伟,北京,2015-03-01'))
    table = _drain(_connector(tmp_path / "drop", quote=None).extract(None))
    assert table.column("姓名").to_pylist() == ['"张伟']


def test_source_files_are_left_byte_identical(tmp_path):
    folder = tmp_path / "drop"
    paths = [_drop(folder, "a.csv", _csv(*ROWS), encoding="gbk"), _drop(folder, "b.csv", b"\xff\xfe\n")]
    before = [(p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in paths]
    listing = sorted(p.name for p in folder.iterdir())
    _drain(_connector(folder).extract(None))
    assert [(p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in paths] == before
    assert sorted(p.name for p in folder.iterdir()) == listing


def test_the_watermark_moves_only_past_files_whose_batches_were_pulled(tmp_path):
    folder = tmp_path / "drop"
    rows = [f"J{i:03d},张伟,北京,2015-03-01" for i in range(5)]
    _drop(folder, "a.csv", _csv(*rows, "J999,坏行"))
    _drop(folder, "b.csv", _csv(*rows))
    extraction = _connector(folder, batch_size=2).extract(None)
    batches = iter(extraction.batches)
    for _ in range(3):  # every batch of a.csv, not yet asked for more
        assert next(batches).column("_file").to_pylist()[0] == "a.csv"
        assert extraction.watermark is None and extraction.quarantined == []
    assert next(batches).column("_file").to_pylist()[0] == "b.csv"
    assert set(json.loads(extraction.watermark)["files"]) == {"a.csv"}
    assert [q["line"] for q in extraction.quarantined] == [7]
    assert sum(b.num_rows for b in batches) == 3
    assert set(json.loads(extraction.watermark)["files"]) == {"a.csv", "b.csv"}

    # A consumer that stopped inside a file gets all of it next time.
    stopped = _connector(folder, batch_size=2).extract(None)
    next(iter(stopped.batches))
    assert _drain(_connector(folder, batch_size=2).extract(stopped.watermark)).num_rows == 10


def test_a_big_file_streams_in_many_batches_with_flat_memory(tmp_path):
    row = "J{:07d},欧阳娜娜,上海市浦东新区世纪大道{}号,2016-07-15\n"
    data = (HEADER + "\n" + "".join(row.format(i, i % 997) for i in range(300_000))).encode("gbk")
    _drop(tmp_path / "drop", "big.csv", data)
    extraction = _connector(tmp_path / "drop", encoding="gbk", batch_size=10_000, chunk_bytes=1 << 20).extract(None)
    sizes, peak, last_line = [], 0, 1
    start = pa.total_allocated_bytes()
    for batch in extraction.batches:
        sizes.append(batch.num_rows)
        lines = batch.column("_line").to_pylist()
        assert lines[0] == last_line + 1 and lines == list(range(lines[0], lines[0] + batch.num_rows))
        last_line = lines[-1]
        peak = max(peak, pa.total_allocated_bytes() - start)
    assert sizes == [10_000] * 30
    assert peak < len(data) / 2  # never the whole file in memory


def test_a_missing_folder_is_source_unavailable(tmp_path):
    with pytest.raises(SourceUnavailable, match="does not exist"):
        _connector(tmp_path / "not-mounted").extract(None)


def test_a_missing_column_is_schema_drift_naming_the_file(tmp_path):
    _drop(tmp_path / "drop", "a.csv", _csv("J001,张伟,北京", header="登记编号,姓名,地址"))
    with pytest.raises(SchemaDrift, match=r"a\.csv.*住址"):
        _drain(_connector(tmp_path / "drop").extract(None))


def test_unreadable_files_are_reported_and_taken(tmp_path):
    folder = tmp_path / "drop"
    _drop(folder, "empty.csv", b"")
    _drop(folder, "utf16.csv", _csv(*ROWS).encode("utf-16"))
    _drop(folder, "broken.xlsx", b"PK\x03\x04 not really a workbook")
    extraction = _connector(folder, pattern="*.*").extract(None)
    assert _drain(extraction).num_rows == 0
    reasons = {q["file"]: q["reason"] for q in extraction.quarantined}
    assert reasons["empty.csv"].startswith("no header row")
    assert reasons["utf16.csv"].startswith("UTF-16 text")
    assert reasons["broken.xlsx"].startswith("not a readable .xlsx workbook")
    assert all(q["line"] is None for q in extraction.quarantined)
    assert set(json.loads(extraction.watermark)["files"]) == {"empty.csv", "utf16.csv", "broken.xlsx"}


def test_from_config_reads_url_options_and_mapped_columns(tmp_path):
    columns = [EXPECTED[c] for c in HEADER.split(",")]
    text = "".join("|".join(row) + "\n" for row in [HEADER.split(","), *zip(*columns)])
    _drop(tmp_path / "civil_affairs", "m.txt", text, encoding="gbk")
    source = SourceConfig(name="marriages", department="civil_affairs", kind="file_drop", library="population",
                          url="file://{samples_dir}/civil_affairs", key="登记编号", watermark="登记日期", batch_size=2,
                          fields={"name": "姓名", "household_address": "住址"},
                          options={"pattern": "*.txt", "encoding": "gbk", "delimiter": "|"})
    connector = from_config(source, tmp_path)
    batches = list(connector.extract(None).batches)
    assert [b.num_rows for b in batches] == [2, 1]
    assert batches[0].schema.names == ["登记编号", "登记日期", "姓名", "住址", "_file", "_line"]
    assert batches[0].column("住址").to_pylist() == ["北京市东城区人民路12号", "上海市浦东新区,世纪大道8号"]

    with pytest.raises(ConfigError, match="unknown file_drop options"):
        from_config(source.model_copy(update={"options": {"encodng": "gbk"}}), tmp_path)
    with pytest.raises(ConfigError) as bad:
        from_config(source.model_copy(update={"options": {"encoding": "klingon", "completion": "soon"}}), tmp_path)
    assert len(bad.value.problems) == 2


def test_a_header_with_a_byte_order_mark_or_undecodable_bytes_fails_only_its_file(tmp_path):
    folder = tmp_path / "drop"
    _drop(folder, "a.csv", _csv(*ROWS).encode("gbk"))
    _drop(folder, "b.csv", codecs.BOM_UTF8 + _csv(*ROWS).encode("gbk"))  # a BOM no GBK file starts with
    _drop(folder, "c.csv", _csv(*ROWS).encode("gbk").replace("住址".encode("gbk"), b"\xff\xfe"))
    extraction = _connector(folder, encoding="gbk").extract(None)
    table = _drain(extraction)
    assert table.column("_file").to_pylist() == ["a.csv"] * 3  # the other files of the drop still land
    reasons = {q["file"]: (q["line"], q["reason"]) for q in extraction.quarantined}
    assert set(reasons) == {"b.csv", "c.csv"}
    assert reasons["b.csv"][1].startswith("the file starts with a UTF-8 byte order mark, but options.encoding is gbk")
    assert reasons["c.csv"][1].startswith("header line 1 is not gbk text (undecodable bytes for gbk)")
    assert {line for line, _ in reasons.values()} == {None}  # a problem of the whole file
    assert "\\xff\\xfe" in next(q["raw"] for q in extraction.quarantined if q["file"] == "c.csv")
    assert set(json.loads(extraction.watermark)["files"]) == {"a.csv", "b.csv", "c.csv"}  # recorded, taken once


def test_a_byte_order_mark_inside_the_header_line_fails_only_its_file(tmp_path):
    folder = tmp_path / "drop"
    _drop(folder, "a.csv", "户籍导出\n" + _csv(*ROWS))
    _drop(folder, "b.csv", "户籍导出\n\ufeff" + _csv(*ROWS))  # two exports pasted together: the second's BOM
    extraction = _connector(folder, header_row=2).extract(None)
    assert _drain(extraction).column("_file").to_pylist() == ["a.csv"] * 3
    assert [(q["file"], q["reason"]) for q in extraction.quarantined] == [
        ("b.csv", "header line 2 holds a byte order mark (U+FEFF): the file is not read; export it again as one "
                  "file, without a byte order mark inside")]

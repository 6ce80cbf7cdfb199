"""Benchmark of the file-drop connector: ``python bench/bench_file_drop.py [--rows 10000000] [--encoding gbk]``.

Writes a GBK CSV of marriage registrations (Chinese names, addresses, resident ID numbers, a few undecodable and
malformed lines) into a temporary folder, then times one full extraction into Arrow batches and prints rows/s and
the peak RSS of the extracting process. The file is written by a child process, so its memory is not counted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

from connectors.file_drop import FileDropConnector  # noqa: E402

SURNAMES = [*"王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢",
            *"姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤", "欧阳", "司马", "诸葛"]
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉梅文辉鑫宇浩然子涵欣怡梓轩雨萱一诺嘉俊晨曦思远")
CITIES = [("110101", "北京市东城区"), ("310115", "上海市浦东新区"), ("440106", "广州市天河区"), ("510107", "成都市武侯区"),
          ("330106", "杭州市西湖区"), ("420103", "武汉市江汉区"), ("320106", "南京市鼓楼区"), ("610113", "西安市雁塔区"),
          ("370102", "济南市历下区"), ("500103", "重庆市渝中区")]
ROADS = ["人民路", "解放路", "中山路", "建设路", "和平街", "朝阳路", "长安街", "新华路", "青年路", "胜利街", "幸福里小区", "阳光花园"]
HEADER = ["登记编号", "男方身份证号", "男方姓名", "女方身份证号", "女方姓名", "业务类型", "登记日期", "登记机关", "住址"]
WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
UNDECODABLE = "\x07"  # written as 0xFF, which no GBK character starts with
EXTRA_FIELD = "\x08"  # written as a delimiter: the row gets one field too many
BLOCK = 500_000


def _pick(rng: np.random.Generator, values: list[str], n: int) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(rng.integers(0, len(values), n)))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((len(values), width), dtype=np.uint8)
    for col in range(width - 1, -1, -1):
        out[:, col], values = values % 10 + 48, values // 10
    return out


def _strings(matrix: np.ndarray) -> pa.Array:
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(matrix)))


def _id_numbers(rng: np.random.Generator, regions: np.ndarray, n: int) -> pa.Array:
    """Resident ID numbers with right check digits."""
    birth = np.datetime64("1950-01-01") + rng.integers(0, 365 * 50, n).astype("timedelta64[D]")
    ymd = birth.astype("datetime64[D]").astype(object)
    date = np.array([d.year * 10000 + d.month * 100 + d.day for d in ymd], dtype=np.int64)
    body = np.hstack([_digits(regions, 6), _digits(date, 8), _digits(rng.integers(0, 1000, n), 3)])
    check = CHECK[((body - 48).astype(np.int64) @ WEIGHTS) % 11]
    return _strings(np.hstack([body, check[:, None]]))


def _names(rng: np.random.Generator, n: int) -> pa.Array:
    second = pa.array(GIVEN + [""] * 20, pa.string()).take(pa.array(rng.integers(0, len(GIVEN) + 20, n)))
    return pc.binary_join_element_wise(_pick(rng, SURNAMES, n), _pick(rng, GIVEN, n), second, "")


def _block(rng: np.random.Generator, start: int, n: int) -> pa.Table:
    city = rng.integers(0, len(CITIES), n)
    regions = np.array([int(code) for code, _ in CITIES], dtype=np.int64)[city]
    city_names = pa.array([name for _, name in CITIES], pa.string()).take(pa.array(city))
    when = np.datetime64("2000-01-01") + rng.integers(0, 365 * 25, n).astype("timedelta64[D]")
    house = pc.cast(pa.array(rng.integers(1, 300, n)), pa.string())
    return pa.table({
        HEADER[0]: pc.binary_join_element_wise("J", pc.cast(pa.array(np.arange(start, start + n)), pa.string()), ""),
        HEADER[1]: _id_numbers(rng, regions, n), HEADER[2]: _names(rng, n),
        HEADER[3]: _id_numbers(rng, regions, n), HEADER[4]: _names(rng, n),
        HEADER[5]: _pick(rng, ["结婚", "结婚", "结婚", "离婚"], n),
        HEADER[6]: pc.strftime(pa.array(when), "%Y-%m-%d"),
        HEADER[7]: pc.binary_join_element_wise(city_names, "民政局", ""),
        HEADER[8]: pc.binary_join_element_wise(city_names, _pick(rng, ROADS, n), house, "号", ""),
    })


def generate(path: Path, rows: int, bad: int, seed: int = 7) -> None:
    """A GBK CSV of ``rows`` rows; ``bad`` of them undecodable and ``bad`` with one field too many."""
    rng = np.random.default_rng(seed)
    undecodable = set(np.linspace(rows * 0.05, rows * 0.95, bad, dtype=np.int64).tolist()) if bad else set()
    malformed = {r + 1 for r in undecodable}
    with open(path, "wb") as out:
        out.write((",".join(HEADER) + "\n").encode("gbk"))
        for start in range(0, rows, BLOCK):
            table = _block(rng, start, min(BLOCK, rows - start))
            hit = sorted(r - start for r in undecodable if start <= r < start + table.num_rows)
            extra = sorted(r - start for r in malformed if start <= r < start + table.num_rows)
            if hit or extra:
                names, address = table.column(2).to_pylist(), table.column(8).to_pylist()
                for r in hit:
                    names[r] = names[r][:1] + UNDECODABLE + names[r][1:]
                for r in extra:
                    address[r] = address[r] + EXTRA_FIELD + "多余字段"
                table = table.set_column(2, HEADER[2], pa.array(names)).set_column(8, HEADER[8], pa.array(address))
            buf = pa.BufferOutputStream()
            pcsv.write_csv(table, buf, pcsv.WriteOptions(include_header=False, quoting_style="none"))
            out.write(buf.getvalue().to_pybytes().decode("utf-8").encode("gbk")
                      .replace(UNDECODABLE.encode(), b"\xff").replace(EXTRA_FIELD.encode(), b","))
    path.with_name(path.name + ".done").write_bytes(b"")


def run(folder: Path, args: argparse.Namespace) -> None:
    """Write the file (unless reused), then time one extraction of it."""
    path = folder / "marriage_registrations_001.csv"
    started = time.perf_counter()
    if not (args.reuse and path.with_name(path.name + ".done").exists()):
        child = multiprocessing.get_context("fork").Process(target=generate, args=(path, args.rows, args.bad))
        child.start()
        child.join()
        if child.exitcode:
            sys.exit(f"generating {path} failed")
    size = path.stat().st_size
    print(f"{path}: {size / 2**20:,.0f} MiB of GBK CSV, ready in {time.perf_counter() - started:.1f} s")

    import pandas  # noqa: F401  pyarrow imports it at its first numpy conversion: a one-off start-up cost, not timed

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    connector = FileDropConnector(folder, key=HEADER[0], columns=HEADER[1:], encoding=args.encoding,
                                  batch_size=args.batch_size)
    started = time.perf_counter()
    extraction = connector.extract(None)
    rows = batches = 0
    for batch in extraction.batches:
        rows += batch.num_rows
        batches += 1
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    quarantined = len(extraction.quarantined)
    print(f"extracted {rows:,} rows in {batches} batches, {quarantined} quarantined, in {elapsed:.2f} s")
    print(f"{rows / elapsed:,.0f} rows/s, {size / 2**20 / elapsed:,.0f} MiB/s; "
          f"peak RSS {peak:,.0f} MiB (before extracting: {base:,.0f} MiB)")
    for entry in extraction.quarantined[:4]:
        print("  quarantined:", entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad", type=int, default=10, help="undecodable lines, and as many malformed ones")
    parser.add_argument("--encoding", default="gbk", help="as configured: gbk, gb18030 or auto")
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, help="folder to write into (default: a new temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="keep a file already in --dir instead of writing it")
    args = parser.parse_args()

    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-file-drop-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run(folder, args)
    finally:
        if args.dir is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()

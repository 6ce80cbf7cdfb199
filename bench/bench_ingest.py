"""Extraction throughput from PostgreSQL into landing Parquet, with peak memory.

    python bench/bench_ingest.py --rows 10000000 [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Fills ``HJ_RKXX`` (the household-registration layout) inside PostgreSQL with generate_series, then
lands it with the same ``warehouse.landing.land`` the DAGs call, in a fresh child process so its
peak RSS is the landing's own. Prints rows/s and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

FILL = """
CREATE SCHEMA IF NOT EXISTS hub_bench;
SET search_path TO hub_bench;
DROP TABLE IF EXISTS "HJ_RKXX";
CREATE TABLE "HJ_RKXX" (
  "RKBH" BIGINT PRIMARY KEY, "SFZH" VARCHAR(32), "XM" VARCHAR(64), "XB" VARCHAR(2), "CSRQ" VARCHAR(8),
  "MZ" VARCHAR(16), "HJDZ" VARCHAR(255), "HJQH" VARCHAR(6), "XZZ" VARCHAR(255), "HYZK" VARCHAR(2),
  "SWBZ" VARCHAR(1), "ZXRQ" VARCHAR(8), "LXDH" VARCHAR(20), "GXSJ" TIMESTAMP);
INSERT INTO "HJ_RKXX"
SELECT g, '110105' || to_char(date '1950-01-01' + (g % 25000), 'YYYYMMDD') || lpad((g % 1000)::text, 3, '0') || 'X',
       (ARRAY['王','李','张','刘','陈'])[1 + g % 5] || (ARRAY['伟','芳','娜','敏','静','磊'])[1 + g % 6],
       CASE WHEN g % 2 = 0 THEN '女' ELSE '男' END, to_char(date '1950-01-01' + (g % 25000), 'YYYYMMDD'), '汉',
       '北京市朝阳区建国路' || (g % 300) || '号' || (g % 20) || '幢' || (g % 6) || '单元' || (g % 3000) || '室', '110105',
       '北京市海淀区中关村大街' || (g % 200) || '号', 'YH', '0', NULL, '138' || lpad((g % 100000000)::text, 8, '0'),
       timestamp '2024-01-01' + make_interval(secs => g)
FROM generate_series(1, {rows}) AS g;
CREATE INDEX ON "HJ_RKXX" ("GXSJ");
ANALYZE "HJ_RKXX";
"""

CHILD = """
import json, resource, sys, time
from pathlib import Path
from connectors.sql import SqlConnector
from hub.db import engine_for, Base
from warehouse.landing import land
url, landing, meta = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
engine = engine_for(meta); Base.metadata.create_all(engine)
cols = ["SFZH","XM","XB","CSRQ","MZ","HJDZ","HJQH","XZZ","HYZK","SWBZ","ZXRQ","LXDH"]
start = time.perf_counter()
m = land("household", SqlConnector(url, "HJ_RKXX", "RKBH", "GXSJ", cols, batch_size=200_000), "bench", landing, engine)
wall = time.perf_counter() - start
print(json.dumps({"rows": m.rows, "seconds": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--url", default=os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--skip-fill", action="store_true", help="reuse the table from a previous run")
    args = parser.parse_args()
    # Its own schema, so tests sharing the database cannot touch the benchmark's table.
    source_url = args.url + ("&" if "?" in args.url else "?") + "options=-csearch_path%3Dhub_bench"
    if not args.skip_fill:
        start = time.perf_counter()
        with sa.create_engine(args.url).begin() as conn:
            for statement in FILL.format(rows=args.rows).split(";"):
                if statement.strip():  # no bound parameters: psycopg must not read % as a placeholder
                    conn.connection.dbapi_connection.execute(statement)
        print(f"filled {args.rows:,} rows in PostgreSQL in {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, source_url, f"{tmp}/landing", f"sqlite:///{tmp}/meta.db"],
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in Path(tmp, "landing").rglob("*.parquet"))
    print(f"landed {result['rows']:,} rows from PostgreSQL in {result['seconds']:.1f} s: "
          f"{result['rows'] / result['seconds']:,.0f} rows/s; peak RSS {result['peak_rss_mib']:.0f} MiB; "
          f"landing Parquet {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()

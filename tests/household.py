"""A small household-registration table in the department's own layout, for connector and pipeline tests."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from schemas.ids import ric_check_char

COLUMNS = ["RKBH", "SFZH", "XM", "XB", "CSRQ", "MZ", "HJDZ", "HJQH", "XZZ", "HYZK", "SWBZ", "ZXRQ", "LXDH", "GXSJ"]


def valid_id(i: int, region: str = "110105", birth: str = "19800101") -> str:
    """A valid 18-digit number with sequence ``i``."""
    body = f"{region}{birth}{i % 1000:03d}"
    return body + ric_check_char(body)


def person_row(i: int, *, sfzh: str | None = "valid", updated: dt.datetime | None = None) -> dict:
    """One household row; ``sfzh='valid'`` makes a valid number from ``i``."""
    birth = f"1980{1 + i % 12:02d}{1 + i % 28:02d}"
    return {
        "RKBH": i, "SFZH": valid_id(i, birth=birth) if sfzh == "valid" else sfzh, "XM": f"王{i}",
        "XB": "男" if (i % 1000) % 2 else "女", "CSRQ": birth, "MZ": "汉", "HJDZ": "北京市朝阳区建国路1号",
        "HJQH": "110105", "XZZ": "北京市朝阳区建国路1号", "HYZK": "WH", "SWBZ": "0", "ZXRQ": None,
        "LXDH": "13800000000", "GXSJ": updated or dt.datetime(2026, 1, 1) + dt.timedelta(seconds=i),
    }


def create_table(url: str) -> sa.Engine:
    """(Re)create ``HJ_RKXX`` at ``url``."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    sa.Table(
        "HJ_RKXX", meta,
        sa.Column("RKBH", sa.BigInteger, primary_key=True, autoincrement=False),
        *(sa.Column(c, sa.String(255)) for c in COLUMNS[1:-1]),
        sa.Column("GXSJ", sa.DateTime, index=True),
    )
    meta.drop_all(engine)
    meta.create_all(engine)
    return engine


def insert(engine: sa.Engine, rows: list[dict]) -> None:
    table = sa.Table("HJ_RKXX", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)

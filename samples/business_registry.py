"""The business registry (market regulation): enterprises as Parquet, served by a paginated JSON REST API."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from samples import vocab
from samples.csvdrop import Written
from samples.defects import DefectRates, choose, id_values, some
from samples.ground_truth import GroundTruth
from samples.legal_persons import LegalPersons
from samples.people import Population
from samples.places import places
from samples.streams import stream
from samples.text import dates, join, pick, replace_rows, timestamps

SYSTEM = "market_regulation"
DATASET = "enterprises"
FOLDER = "business_registry"
FILE = "enterprises.parquet"
STATUS_LABELS = ("存续", "吊销", "注销")  # the registry's own words for ACTIVE / REVOKED / DEREGISTERED
KIND_LABELS = {ord("2"): "个体工商户", ord("3"): "农民专业合作社"}
COMPANY_FORMS = ("有限责任公司(自然人投资或控股)", "有限责任公司(自然人独资)", "股份有限公司(非上市)", "其他有限责任公司")
SCHEMA = pa.schema([
    ("TYSHXYDM", pa.string()), ("QYMC", pa.string()), ("QYLX", pa.string()), ("FDDBR", pa.string()),
    ("FDDBRSFZH", pa.string()), ("ZCZB", pa.float64()), ("CLRQ", pa.date32()), ("DJJG", pa.string()),
    ("XZQH", pa.string()), ("ZS", pa.string()), ("JYFW", pa.string()), ("DJZT", pa.string()),
    ("ZTRQ", pa.date32()), ("GXSJ", pa.timestamp("s")),
])


def write_registry(ent: LegalPersons, pop: Population, rates: DefectRates, seed: int, root: Path,
                   truth: GroundTruth) -> Written:
    """``business_registry/enterprises.parquet`` with the registry's defects, recorded in ``truth``."""
    rng = stream(seed, "business-registry")
    k = ent.n
    rep_name = pop.name.take(pa.array(ent.rep))
    # Conflict: the registry spells the representative's name differently from the household record.
    conflict = some(rng, np.arange(k), rates.conflicting_value)
    rep_name = replace_rows(rep_name, conflict.rows, _misspelt(rng, rep_name.take(pa.array(conflict.rows))))
    id_hits = choose(rng, k, [("bad_check_digit", rates.bad_check_digit, None),
                              ("full_width_id", rates.full_width_id, None)])
    pl = places()
    qylx = pick(COMPANY_FORMS, rng.choice(4, size=k, p=[0.6, 0.2, 0.05, 0.15]))
    for kind, label in KIND_LABELS.items():
        qylx = pc.if_else(pa.array(ent.kind == kind), label, qylx)
    code = ent.code_strings()
    table = pa.table({
        "TYSHXYDM": code,
        "QYMC": ent.name,
        "QYLX": qylx,
        "FDDBR": rep_name,
        "FDDBRSFZH": id_values(pop.ids[ent.rep], id_hits, rng),
        "ZCZB": pa.array(ent.capital),
        "CLRQ": pa.array(ent.established),
        "DJJG": join(pl.local.take(pa.array(ent.region)), "市场监督管理局"),
        "XZQH": pick(pl.codes, ent.region),
        "ZS": ent.address,
        "JYFW": ent.scope,
        "DJZT": pick(STATUS_LABELS, ent.status),
        "ZTRQ": pa.array(ent.status_date),
        "GXSJ": pa.array(ent.updated),
    }, schema=SCHEMA)
    path = root / FOLDER / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=100_000, compression="zstd")

    source = f"{FOLDER}/{FILE}"
    truth.defects(SYSTEM, DATASET, "conflicting_value", "FDDBR", conflict.eligible, source, code.take(pa.array(conflict.rows)))
    for defect, hits in id_hits.items():
        truth.defects(SYSTEM, DATASET, defect, "FDDBRSFZH", hits.eligible, source, code.take(pa.array(hits.rows)))
    truth.entities(SYSTEM, DATASET, source, code, "enterprise", "legal_person", code)
    truth.entities(SYSTEM, DATASET, source, code, "legal_rep", "person", pop.id_strings(ent.rep))
    return Written([source], k)


def _misspelt(rng: np.random.Generator, names: pa.Array) -> pa.Array:
    """The same names with the last character replaced by another one."""
    chars = vocab.CHARS_MALE + vocab.CHARS_FEMALE
    last = pc.utf8_slice_codeunits(names, -1)
    first = pick(chars, rng.integers(0, len(chars), len(names)))
    second = pick(chars, rng.integers(0, len(chars), len(names)))
    other = pc.if_else(pc.equal(first, last), pc.if_else(pc.equal(second, last), "某", second), first)
    return join(pc.utf8_slice_codeunits(names, 0, -1), other)


# --- the REST API -------------------------------------------------------------------------------


class _Registry:
    """The registry table, loaded once, in (GXSJ, TYSHXYDM) order, with JSON-ready text columns."""

    def __init__(self, data_dir: Path):
        table = pq.read_table(Path(data_dir) / FILE).combine_chunks()
        order = pc.sort_indices(table, [("GXSJ", "ascending"), ("TYSHXYDM", "ascending")])
        table = table.take(order)
        # Parquet keeps no second unit: GXSJ comes back in milliseconds.
        self.ts = table["GXSJ"].combine_chunks().cast(pa.timestamp("s")).cast(pa.int64()).to_numpy()
        self.codes = np.array(table["TYSHXYDM"].to_pylist(), dtype=object)
        as_text = {
            "CLRQ": dates(table["CLRQ"].combine_chunks().to_numpy(zero_copy_only=False).astype("datetime64[D]")),
            "ZTRQ": dates(table["ZTRQ"].combine_chunks().to_numpy(zero_copy_only=False).astype("datetime64[D]")),
            "GXSJ": timestamps(self.ts.astype("datetime64[s]"), sep="T"),
        }
        for name, column in as_text.items():
            table = table.set_column(table.column_names.index(name), name, column)
        self.table = table
        self.n = table.num_rows

    def items(self, start: int, count: int) -> list[dict]:
        """``count`` rows from ``start`` as JSON-ready dicts (an Arrow slice: no copy of the table)."""
        return self.table.slice(start, max(0, count)).to_pylist()

    def since(self, updated_since: str | None) -> int:
        """First row updated at or after ``updated_since``."""
        if not updated_since:
            return 0
        try:
            when = dt.datetime.fromisoformat(updated_since)
        except ValueError:
            raise HTTPException(400, "updated_since must be an ISO 8601 date-time") from None
        if when.tzinfo is not None:  # the registry keeps local (UTC+8) times
            when = when.astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
        seconds = int((when - dt.datetime(1970, 1, 1)).total_seconds())
        return int(np.searchsorted(self.ts, seconds, side="left"))

    def after(self, cursor: str) -> int:
        """First row after the (GXSJ, TYSHXYDM) key a cursor carries."""
        try:
            key = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
            ts, code = int(key["t"]), str(key["c"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise HTTPException(400, "invalid cursor") from None
        lo, hi = np.searchsorted(self.ts, ts, side="left"), np.searchsorted(self.ts, ts, side="right")
        return int(lo + np.searchsorted(self.codes[lo:hi], code, side="right"))

    def cursor(self, row: int) -> str:
        """The opaque cursor continuing after ``row``: its (GXSJ, TYSHXYDM) key, base64url JSON."""
        key = json.dumps({"t": int(self.ts[row]), "c": self.codes[row]}, separators=(",", ":"))
        return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def create_registry_app(data_dir: Path, token: str, page_size_max: int = 1000) -> FastAPI:
    """The registry's REST API over ``data_dir/enterprises.parquet``; every /api call needs ``Bearer <token>``."""
    registry = _Registry(data_dir)
    app = FastAPI(title="市场监管 企业登记 API (sample)", docs_url=None, redoc_url=None)

    def authorised(request: Request) -> None:
        """401 unless the request carries ``Authorization: Bearer <token>``."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/healthz")
    def health() -> dict:
        """Liveness, without authentication."""
        return {"status": "ok", "rows": registry.n}

    @app.get("/api/v1/enterprises", dependencies=[Depends(authorised)])
    def enterprises(page: int = Query(1, ge=1), size: int = Query(100, ge=1, le=page_size_max),
                    updated_since: str | None = None) -> JSONResponse:
        """Page ``page`` (from 1) of ``size`` enterprises in (GXSJ, TYSHXYDM) order, optionally updated since."""
        start = registry.since(updated_since)
        total = registry.n - start
        offset = start + (page - 1) * size
        items = registry.items(offset, min(size, registry.n - offset))
        return JSONResponse({"total": total, "page": page, "size": size, "items": items})

    @app.get("/api/v1/enterprises/changes", dependencies=[Depends(authorised)])
    def changes(cursor: str | None = None, limit: int = Query(100, ge=1, le=page_size_max),
                updated_since: str | None = None) -> JSONResponse:
        """Up to ``limit`` enterprises after ``cursor`` (or from ``updated_since``); ``next_cursor`` null at the end."""
        start = registry.after(cursor) if cursor else registry.since(updated_since)
        items = registry.items(start, min(limit, registry.n - start))
        end = start + len(items)
        return JSONResponse({"items": items, "next_cursor": registry.cursor(end - 1) if items and end < registry.n else None})

    return app


def serve_registry(data_dir: Path, host: str = "127.0.0.1", port: int = 8760, token: str = "") -> None:
    """Run the registry API with uvicorn until interrupted."""
    import uvicorn

    if not token:
        raise ValueError("the registry API needs a bearer token")
    uvicorn.run(create_registry_app(data_dir, token), host=host, port=port, log_level="warning")

"""The hash chain's rules: which columns a row's hash covers and how it is computed, and what a verification reports.

Shared by the audit log that writes the chain (:mod:`exchange_api.audit`), the checkpoints that anchor it
(:mod:`exchange_api.audit_checkpoints`) and the witnesses departments keep (:mod:`exchange_api.audit_witness`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64
_ROW_HASH = re.compile(r"[0-9a-f]{64}")

# The columns covered by each row's hash, in a fixed order; adding a column means adding it here.
HASHED_COLUMNS = (
    "seq", "request_id", "at", "department", "kid", "authenticated", "library", "key_hash", "key_masked",
    "purpose", "case_number", "fields_requested", "fields_released", "outcome", "status", "code", "reason",
    "snapshot_version", "prev_hash",
)
# Columns added later: hashed only when set, so rows written before they existed still verify.
OPTIONAL_HASHED_COLUMNS = ("operation",)
STORED_COLUMNS = (*HASHED_COLUMNS, *OPTIONAL_HASHED_COLUMNS)


def is_row_hash(value: Any) -> bool:
    """Whether ``value`` looks like a row hash: 64 lower-case hexadecimal digits."""
    return isinstance(value, str) and _ROW_HASH.fullmatch(value) is not None


@dataclass(frozen=True)
class Anchor:
    """A head of the chain known outside the database: row ``seq`` had hash ``hash``, says ``source``."""

    seq: int
    hash: str
    source: str  # e.g. "checkpoint 2026-01-02.jsonl:7", "witness answers.txt:12"


@dataclass(frozen=True)
class ChainProblem:
    """One thing wrong with the chain or its anchors; ``seq`` is the first row it makes untrustworthy, if any."""

    seq: int | None
    kind: str  # missing, unlinked, edited, rewritten, truncated, bad_checkpoint, bad_witness
    message: str


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the chain against its anchors: how many rows, how many anchors, every problem."""

    rows: int
    last_seq: int = 0
    anchors: int = 0
    problems: tuple[ChainProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def broken_seq(self) -> int | None:
        """The first row that can no longer be trusted (None: intact, or only an anchor file is bad)."""
        return min((p.seq for p in self.problems if p.seq is not None), default=None)

    @property
    def problem(self) -> str | None:
        """The message of the first problem."""
        return self.problems[0].message if self.problems else None


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def row_hash(content: dict[str, Any]) -> str:
    """The hash of a row's content (which includes the previous row's hash)."""
    hashed = {c: _value(content[c]) for c in HASHED_COLUMNS}
    for c in OPTIONAL_HASHED_COLUMNS:
        if content.get(c) is not None:
            hashed[c] = content[c]
    return hashlib.sha256(canonical_json(hashed)).hexdigest()


# orjson with these options writes exactly the bytes of json.dumps(sort_keys=True, ensure_ascii=False, compact)
# for the str / int / bool / None values a row holds (checked for every code point in the tests), at a
# tenth of the cost; anything it would encode differently or refuse goes to the standard library instead.
_ORJSON_CANONICAL = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                     | orjson.OPT_PASSTHROUGH_SUBCLASS)


def canonical_json(hashed: dict[str, Any]) -> bytes:
    """The canonical form a row hash covers: compact JSON, sorted keys, UTF-8."""
    try:
        return orjson.dumps(hashed, option=_ORJSON_CANONICAL)
    except TypeError:  # orjson.JSONEncodeError: a type it does not pass through, a lone surrogate, a huge int
        return json.dumps(hashed, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

"""A department's witness of the audit chain: the heads its signed answers carried, read from the file it kept.

The file holds one item per line (blank lines and lines starting with ``#`` are skipped), or is one JSON
array of such items:

- an answer as the hub sent it: the compact JWS, bare or as a JSON string. Its signature is verified
  against the hub's keys and its payload's ``audit`` head is used (answers from before the head existed
  carry none and are counted as skipped);
- a head as the department noted it: a JSON object ``{"seq": 41, "hash": "<64 hex>"}`` (other members
  ignored), or an answer's decoded payload with its ``audit`` member. Unsigned: it is the department's word.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exchange_api.answers import ANSWER_TYP, SignatureRefused, verify_jws
from exchange_api.audit_chain import Anchor, ChainProblem, is_row_hash
from exchange_api.hub_keys import HubKeyring


class _NoHead(Exception):
    """A signed answer that carries no chain head (issued before heads were added)."""


def read_witness(path: Path, keyring: HubKeyring) -> tuple[list[Anchor], list[ChainProblem], int]:
    """The heads in a witness file, a problem for each item that is not one, and how many answers had no head."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        return [], [ChainProblem(None, "bad_witness", f"witness {path.name} cannot be read: {reason}")], 0
    items: list[tuple[int, Any]] = []
    if text.lstrip().startswith("["):
        try:
            array = json.loads(text)
        except ValueError:
            return [], [ChainProblem(None, "bad_witness", f"witness {path.name} is not a JSON array")], 0
        items = list(enumerate(array if isinstance(array, list) else [array], 1))
    else:
        items = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("#")]
    anchors: list[Anchor] = []
    problems: list[ChainProblem] = []
    skipped = 0
    for number, item in items:
        source = f"witness {path.name}:{number}"
        try:
            seq, row_hash = _head(item, keyring)
        except _NoHead:
            skipped += 1
        except SignatureRefused as exc:
            problems.append(ChainProblem(None, "bad_witness", f"{source} is not a head of the chain: {exc}"))
        else:
            anchors.append(Anchor(seq, row_hash, source))
    return anchors, problems, skipped


def _head(item: Any, keyring: HubKeyring) -> tuple[int, str]:
    if isinstance(item, str) and item[:1] in ("{", '"'):
        try:
            item = json.loads(item)
        except ValueError:
            raise SignatureRefused("not JSON") from None
    if isinstance(item, str):
        if item.count(".") != 2:
            raise SignatureRefused("neither a hub answer (compact JWS) nor a {seq, hash} head")
        payload = verify_jws(item, keyring, ANSWER_TYP)
        if "audit" not in payload:
            raise _NoHead
        return _seq_hash(payload["audit"])
    if isinstance(item, dict):
        return _seq_hash(item["audit"] if "audit" in item and "seq" not in item else item)
    raise SignatureRefused("neither a hub answer (compact JWS) nor a {seq, hash} head")


def _seq_hash(head: Any) -> tuple[int, str]:
    if not isinstance(head, dict):
        raise SignatureRefused("its head is not a {seq, hash} object")
    seq, row_hash = head.get("seq"), head.get("hash")
    if type(seq) is not int or seq < 1 or not is_row_hash(row_hash):
        raise SignatureRefused("its head needs seq (a whole number from 1) and hash (64 hexadecimal digits)")
    return seq, row_hash

"""File checksums for manifests: landings, snapshots and taken files are identified by SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks so memory stays flat."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def damaged_files(folder: Path, expected: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What is wrong with each file of ``folder`` that ``expected`` names ({file: {"sha256", "size"?}}); empty if intact."""
    problems = []
    for name, entry in sorted(expected.items()):
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append(f"{name}: missing")
            continue
        if "size" in entry and size != entry["size"]:
            problems.append(f"{name}: {size} bytes where {entry['size']} were written (truncated or overwritten)")
        elif "sha256" in entry and sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: its SHA-256 differs from the one written (garbled)")
    return problems

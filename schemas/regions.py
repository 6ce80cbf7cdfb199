"""GB/T 2260 administrative region codes, with the years each code was in use.

The table is python-stdnum's ``cn/loc.dat`` (a well-kept copy of the national list with the
validity years of every code), parsed once; we do not keep a second copy of 7,000 lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import stdnum

_LOC_FILE = Path(stdnum.__file__).parent / "cn" / "loc.dat"
_PERIOD = re.compile(r"^\[(\d*)-(\d*)\](.*)$")
OPEN_END = 9999


@dataclass(frozen=True)
class Region:
    """One name a 6-digit code carried, from ``start`` to ``end`` (years, inclusive)."""

    code: str
    name: str
    province: str
    start: int
    end: int

    def valid_in(self, year: int) -> bool:
        return self.start <= year <= self.end


def _periods(code: str, province: str, value: str) -> list[Region]:
    regions = []
    for part in value.split(","):
        match = _PERIOD.match(part)
        if match:
            start, end, name = match.groups()
            regions.append(Region(code, name, province, int(start or 0), int(end or OPEN_END)))
        else:
            regions.append(Region(code, part, province, 0, OPEN_END))
    return regions


@lru_cache(maxsize=1)
def regions() -> dict[str, tuple[Region, ...]]:
    """Every known 6-digit code -> the names it carried over the years."""
    table: dict[str, list[Region]] = {}
    province_code, province = "", ""
    for line in _LOC_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, rest = line.strip().partition(" ")
        value = rest.split("=", 1)[1].strip().strip('"')
        if not line.startswith(" "):
            province_code, province = key, value
            continue
        code = province_code + key
        table.setdefault(code, []).extend(_periods(code, province, value))
    return {code: tuple(items) for code, items in table.items()}


def is_known(code: str, year: int | None = None) -> bool:
    """Whether ``code`` is a GB/T 2260 code (in use in ``year``, when given)."""
    found = regions().get(code, ())
    if year is None:
        return bool(found)
    return any(r.valid_in(year) for r in found)


@lru_cache(maxsize=1)
def current_counties() -> tuple[Region, ...]:
    """County-level codes in use today (not the prefecture-level ``xxxx00`` codes)."""
    out = []
    for code, items in regions().items():
        if code.endswith("00") or code[:2] in {"71", "81", "82"}:
            continue
        for r in items:
            if r.end == OPEN_END and r.name not in {"市辖区", "县"}:
                out.append(r)
    return tuple(sorted(out, key=lambda r: r.code))


def full_name(code: str, year: int | None = None) -> str:
    """Province, prefecture and county names for ``code``, e.g. ``北京市市辖区朝阳区``."""
    def pick(c: str) -> str:
        found = [r for r in regions().get(c, ()) if year is None or r.valid_in(year)]
        return found[-1].name if found else ""

    province = next(iter(regions().get(code, ())), None)
    prefecture = pick(code[:4] + "00")
    parts = [province.province if province else "", "" if prefecture in {"市辖区", "县"} else prefecture, pick(code)]
    return "".join(dict.fromkeys(p for p in parts if p))


_SUFFIX = re.compile(r"(自治县|自治旗|林区|特区|县|市|区|旗)$")


def _base(name: str) -> str:
    return _SUFFIX.sub("", name)


@lru_cache(maxsize=1)
def successors() -> dict[str, str]:
    """Retired code -> the code in use today that continues it (a county renamed a district, 大兴县 → 大兴区).

    GB/T 2260 publishes codes and their years, not successions: a retired code's successor is the one
    code of the same province that started the year it ended (or the next) under the same name less
    its suffix. Merges into a differently named unit have no successor here (the city still agrees).
    """
    table = regions()
    started: dict[tuple[str, int, str], list[str]] = {}
    for code, items in table.items():
        for r in items:
            started.setdefault((code[:2], r.start, _base(r.name)), []).append(code)
    direct: dict[str, str] = {}
    for code, items in table.items():
        last = items[-1]
        if last.end == OPEN_END:
            continue
        found = {c for year in (last.end, last.end + 1)
                 for c in started.get((code[:2], year, _base(last.name)), ()) if c != code}
        if len(found) == 1:
            direct[code] = found.pop()
    out = {}
    for code in direct:
        seen, current = {code}, direct[code]
        while current in direct and direct[current] not in seen:  # follow renames to today's code
            seen.add(current)
            current = direct[current]
        if table[current][-1].end == OPEN_END:
            out[code] = current
    return out


def current_code(code: str) -> str:
    """Today's code for ``code``: itself when in use or unknown, else its successor when there is one."""
    return successors().get(code, code)

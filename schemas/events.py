"""Event records: partial records that change a library's records (a licence's status events), declared once.

They are staged beside the libraries (``staging_<name>``) and applied to the golden records after
reconciliation (``warehouse.life_events``); they never become golden records themselves.
"""

from __future__ import annotations

from schemas.catalogue import Field, Library, Sharing
from schemas.libraries import LIBRARIES, RECORD_METADATA

U = Sharing.UNCONDITIONAL

LICENCE_EVENTS = Library(
    name="licence_events",
    label="证照状态事件",
    key="licence_number",
    table="licence_events",
    description="Status events of electronic licences (issued, renewed, suspended, revoked, expired), as issuers report them.",
    fields=(
        Field("licence_number", "string", "证照编号", U, required=True),
        Field("event", "string", "事件类型", U, required=True, code_table="licence_status"),
        Field("event_date", "date", "事件日期", U, required=True),
        *RECORD_METADATA,
    ),
    # A licence has many events: one event is identified by all three fields together.
    extra={"identity": ("licence_number", "event", "event_date")},
)

# Library -> the record type of its events.
EVENTS: dict[str, Library] = {"licence": LICENCE_EVENTS}
EVENT_TYPES: dict[str, Library] = {e.name: e for e in EVENTS.values()}


def record_type(name: str) -> Library:
    """The library or event record type called ``name``; KeyError lists the known ones."""
    # Looked up at call time: the libraries are the declarations in force (tests may extend one).
    found = LIBRARIES.get(name) or EVENT_TYPES.get(name)
    if found is None:
        raise KeyError(f"unknown record type {name!r}; known: {', '.join([*LIBRARIES, *EVENT_TYPES])}")
    return found


def identity(rt: Library) -> tuple[str, ...]:
    """The fields that together identify one record of ``rt`` (its key, unless declared otherwise)."""
    return tuple(rt.extra.get("identity", (rt.key,)))

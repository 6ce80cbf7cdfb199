"""The request bodies departments send, and the normalisation of their keys."""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

import schemas.ids
from hub.errors import InvalidIdentifier
from schemas import LIBRARIES, library
from schemas.codes import LICENCE_TYPE

PURPOSE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class Purposed(BaseModel):
    """What every data request states: why (a code of the hub's purpose catalogue) and for which case."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    purpose: str = Field(min_length=1, max_length=64, description="a purpose code of the catalogue, registered for this library")
    case_number: str = Field(min_length=1, max_length=128, description="the department's case or file number")

    @field_validator("purpose")
    @classmethod
    def _purpose_code(cls, value: str) -> str:
        if not PURPOSE_PATTERN.match(value):
            raise ValueError("purpose must be a code of letters, digits and _ . : -")
        return value


def _known_library(value: str) -> str:
    if value not in LIBRARIES:
        raise ValueError(f"library must be one of {', '.join(LIBRARIES)}")
    return value


class LookupRequest(Purposed):
    """``POST /v1/lookup`` body. The key travels here, never in the URL."""

    library: str = Field(description="population, legal_person or licence")
    key: str = Field(min_length=1, max_length=64, description="ID number, credit code or licence number")
    fields: list[str] | None = Field(default=None, max_length=100, description="fields wanted; omitted = all allowed")
    as_of: dt.date | dt.datetime | None = Field(
        default=None, description="answer with the record as it was then (date = end of that day, hub time)")

    _library = field_validator("library")(_known_library)


class BatchLookupRequest(Purposed):
    """``POST /v1/lookup/batch`` body: many keys of one library, one purpose and case, one signed answer."""

    library: str = Field(description="population, legal_person or licence")
    keys: list[str] = Field(min_length=1, description="keys to look up, in order (at most the hub's batch bound)")
    fields: list[str] | None = Field(default=None, max_length=100, description="fields wanted; omitted = all allowed")
    as_of: dt.date | dt.datetime | None = Field(default=None, description="as in a single lookup")

    _library = field_validator("library")(_known_library)

    @field_validator("keys")
    @classmethod
    def _key_lengths(cls, value: list[str]) -> list[str]:
        if any(not 1 <= len(k) <= 64 for k in value):
            raise ValueError("every key must be 1-64 characters")
        return value


class LicenceCheck(Purposed):
    """``POST /v1/verify/licence``: is licence N valid for holder H today (or on date D)? Answered yes or no."""

    licence_number: str = Field(min_length=1, max_length=64)
    holder_id: str = Field(min_length=1, max_length=64, description="the holder's ID number or credit code")
    on: dt.date | None = Field(default=None, description="the day asked about; default today (hub time)")


class ExistenceCheck(Purposed):
    """``POST /v1/verify/existence``: does this person or company exist and is it active? Answered yes or no."""

    library: str = Field(description="population or legal_person")
    key: str = Field(min_length=1, max_length=64, description="ID number or credit code")
    on: dt.date | None = Field(default=None, description="the day asked about; default today (hub time)")

    @field_validator("library")
    @classmethod
    def _entity_library(cls, value: str) -> str:
        if value not in ("population", "legal_person"):
            raise ValueError("library must be population or legal_person")
        return value


class LicencesByHolderRequest(Purposed):
    """``POST /v1/licences/by-holder``: the holder's licences (optionally of these types) with their status on a day."""

    holder_id: str = Field(min_length=1, max_length=64, description="the holder's ID number or credit code")
    licence_types: list[str] | None = Field(default=None, min_length=1, max_length=50,
                                            description="licence_type codes wanted; omitted = every type")
    on: dt.date | None = Field(default=None, description="the day asked about; default today (hub time)")

    @field_validator("licence_types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            unknown = [t for t in value if t not in LICENCE_TYPE]
            if unknown:
                # Counted, not named: a made-up code could be anything, an ID number included.
                raise ValueError(f"{len(unknown)} licence type(s) are not in the licence_type code table")
        return value


class AccessLogRequest(Purposed):
    """``POST /v1/citizen/access-log`` (citizen portal only): who looked at this person's record."""

    id_number: str = Field(min_length=1, max_length=64)
    since: dt.date | None = Field(default=None, description="only accesses on or after this day")


@functools.lru_cache(maxsize=64)
def _key_validator(library_name: str) -> tuple[str | None, Any]:
    """The kind of a library's key and its validator (None: strip and upper-case only); looked up once per library."""
    lib = library(library_name)
    kind = lib.field(lib.key).validator
    # schemas.ids grows validate_resident_id / validate_credit_code; until they exist, strip and upper-case only.
    return kind, (getattr(schemas.ids, f"validate_{kind}", None) if kind else None)


def normalise_key(library_name: str, key: str) -> str:
    """The canonical form of a lookup key; InvalidIdentifier (naming the failing part, not the value) if invalid."""
    text = key.strip().upper()
    kind, validate = _key_validator(library_name)
    if validate is None:
        if not text.isprintable():
            raise InvalidIdentifier(kind or "key", "format")
        return text
    try:
        result = validate(text)
    except InvalidIdentifier:
        raise
    except ValueError:
        # A plain ValueError's message may quote the value; replace it with one that cannot.
        raise InvalidIdentifier(kind, "format") from None
    if result is False:
        raise InvalidIdentifier(kind, "format")
    return result if isinstance(result, str) else text

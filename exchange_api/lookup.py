"""The lookup request as departments send it, and the normalisation of its key."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

import schemas.ids
from hub.errors import InvalidIdentifier
from schemas import LIBRARIES, library

PURPOSE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class LookupRequest(BaseModel):
    """``POST /v1/lookup`` body. The key travels here, never in the URL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    library: str = Field(description="population, legal_person or licence")
    key: str = Field(min_length=1, max_length=64, description="ID number, credit code or licence number")
    purpose: str = Field(min_length=1, max_length=64, description="purpose code the grant was approved for")
    case_number: str = Field(min_length=1, max_length=128, description="the department's case or file number")
    fields: list[str] | None = Field(default=None, max_length=100, description="fields wanted; omitted = all allowed")

    @field_validator("library")
    @classmethod
    def _known_library(cls, value: str) -> str:
        if value not in LIBRARIES:
            raise ValueError(f"library must be one of {', '.join(LIBRARIES)}")
        return value

    @field_validator("purpose")
    @classmethod
    def _purpose_code(cls, value: str) -> str:
        if not PURPOSE_PATTERN.match(value):
            raise ValueError("purpose must be a code of letters, digits and _ . : -")
        return value


def normalise_key(library_name: str, key: str) -> str:
    """The canonical form of a lookup key; InvalidIdentifier (naming the failing part, not the value) if invalid."""
    text = key.strip().upper()
    lib = library(library_name)
    kind = lib.field(lib.key).validator
    # schemas.ids grows validate_resident_id / validate_credit_code; until they exist, strip and upper-case only.
    validate = getattr(schemas.ids, f"validate_{kind}", None) if kind else None
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

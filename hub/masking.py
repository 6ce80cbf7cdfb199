"""Masking of personal identifiers for logs, reports and error messages."""

from __future__ import annotations

import hashlib


def mask_id(value: str | None) -> str:
    """Keep the region prefix and the last character: ``110105********123X`` -> ``1101************X``."""
    if not value:
        return "<empty>"
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 5) + text[-1]


def mask_name(value: str | None) -> str:
    """Keep the surname only: ``张三丰`` -> ``张**``."""
    if not value:
        return "<empty>"
    return value[0] + "*" * (len(value) - 1)


def hash_id(value: str, salt: str = "hub") -> str:
    """A stable one-way hash of an identifier, for logs that must find a person again."""
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()

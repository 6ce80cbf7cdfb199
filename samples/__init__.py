"""A deterministic generator of realistic sample department systems, with defects and their ground truth."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imported on first use: the household loader process needs none of them, and they take seconds.
_EXPORTS = {
    "DefectRates": "samples.defects",
    "SampleManifest": "samples.generate",
    "generate_samples": "samples.generate",
    "create_registry_app": "samples.business_registry",
    "serve_registry": "samples.business_registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)

"""A deterministic generator of realistic sample department systems, with defects and their ground truth."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imported on first use: the household loader process needs none of them, and they take seconds.
_EXPORTS = {
    "DefectRates": "connectors.samples.defects",
    "SampleManifest": "connectors.samples.generate",
    "generate_samples": "connectors.samples.generate",
    "create_registry_app": "connectors.samples.business_registry",
    "serve_registry": "connectors.samples.business_registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)

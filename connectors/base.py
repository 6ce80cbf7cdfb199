"""The one small interface every kind of source implements: records changed since a watermark, as Arrow."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class Extraction:
    """Arrow batches changed since a watermark; ``watermark`` is final once ``batches`` is exhausted."""

    batches: Iterator[pa.RecordBatch]
    since: str | None
    watermark: str | None = None
    quarantined: list[dict] = field(default_factory=list)  # rows that could not be read, with reasons


class Connector(abc.ABC):
    """A department source system of one kind."""

    kind: str = ""

    @abc.abstractmethod
    def extract(self, since: str | None, *, full: bool = False) -> Extraction:
        """Records changed after ``since`` (all records when ``full``), streamed in batches."""

    def close(self) -> None:
        """Release connections; the default has none."""

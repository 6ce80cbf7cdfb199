"""The working database's tables: importing this gathers every feature's declaration (``warehouse.db.declare``).

A feature with tables of its own declares them beside its code; this list is the one place that
names which features make up the working database, in the order their tables are created.
"""

from __future__ import annotations

from quality import quarantine
from warehouse import conflicts, db, history, identity, replay, staging

FEATURES = (staging, quarantine, identity, conflicts, history)


def schema() -> list[str]:
    """Every statement that makes the working database: the features' tables, then the decisions' columns on them."""
    return [*db.declared(), *replay.SCHEMA]

"""Row-level rules derived from schemas/: required fields and identifier validity, vectorised.

Every failed rule of a row is kept (not only the first), so a steward sees all that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.catalogue import Library
from schemas.ids_batch import validate_credit_codes, validate_resident_ids

_VALIDATORS = {"resident_id": validate_resident_ids, "credit_code": validate_credit_codes}
REASONS = "reasons"


@dataclass(frozen=True)
class RowCheck:
    """Rows that passed (identifiers normalised) and rows that failed with a list of reasons each."""

    passed: pa.Table
    failed: pa.Table  # the record's columns plus ``reasons: list<string>``


def _append(reasons: list[pa.Array], failed: pa.Array, text: pa.Array | str) -> None:
    value = text if isinstance(text, pa.Array) else pa.array([text] * len(failed), pa.string())
    reasons.append(pc.if_else(failed, value, pa.scalar(None, pa.string())))


def check_rows(lib: Library, records: pa.Table) -> RowCheck:
    """Apply the library's row rules to ``records``."""
    reasons: list[pa.Array] = []
    columns = {name: records.column(name).combine_chunks() for name in records.column_names}
    for field in lib.fields:
        if field.metadata or field.name not in columns:
            continue
        values = columns[field.name]
        if field.validator:
            result = _VALIDATORS[field.validator](values)
            error = result.column("error").combine_chunks()
            bad = pc.is_valid(error)
            if not field.required:  # an optional identifier may be absent, but not wrong
                bad = pc.and_(bad, pc.not_equal(error, "empty"))
            _append(reasons, pc.fill_null(bad, False), pc.binary_join_element_wise(f"{field.name}: ", error, ""))
            columns[field.name] = pc.coalesce(result.column("normalised").combine_chunks(), values)
        elif field.required:
            _append(reasons, pc.is_null(values), f"{field.name}: required")
    table = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    if not reasons:
        return RowCheck(table, table.append_column(REASONS, pa.nulls(table.num_rows, pa.list_(pa.string()))).slice(0, 0))
    lists = _reason_lists(reasons, table.num_rows)
    failed_mask = pc.greater(pc.list_value_length(lists), 0)
    return RowCheck(
        passed=table.filter(pc.invert(failed_mask)),
        failed=table.append_column(REASONS, lists).filter(failed_mask),
    )


def _reason_lists(reasons: list[pa.Array], n_rows: int) -> pa.ListArray:
    """One list per row of the non-null reasons, in rule order."""
    present = np.stack([pc.is_valid(r).to_numpy(zero_copy_only=False) for r in reasons], axis=1)
    rows, rules = np.nonzero(present)  # row-major: each row's reasons in rule order
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    values = pc.take(pa.concat_arrays(reasons), pa.array(rules * n_rows + rows))
    return pa.ListArray.from_arrays(pa.array(offsets), values)

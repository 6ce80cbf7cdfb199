"""Map a department's raw columns and codes to the library's canonical fields and national codes."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from connectors.config import FieldMap, SourceConfig
from schemas.codes import table as code_table
from schemas.derive import arrow_schema
from schemas.events import identity, record_type


def _recode(values: pa.Array, mapping: dict[str, str]) -> pa.Array:
    # Unknown department codes are kept as they are, so the quality gate can name them.
    keys = pa.array(list(mapping), pa.string())
    codes = pa.array(list(mapping.values()), pa.string())
    idx = pc.index_in(values, value_set=keys)
    return pc.if_else(pc.is_null(idx), values, pc.take(codes, idx))


def _field(raw: pa.Table, spec: FieldMap, target: pa.DataType) -> pa.Array:
    if spec.value is not None:
        return pa.array([spec.value] * raw.num_rows, pa.string()).cast(target)
    values = pc.utf8_trim_whitespace(raw.column(spec.column).combine_chunks().cast(pa.string()))
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    if spec.codes:
        values = _recode(values, spec.codes)
    if spec.by_label:
        labels = code_table(spec.by_label)
        values = _recode(values, {label.removesuffix(spec.label_suffix) if spec.label_suffix else label: code
                                  for code, label in labels.items()})
    if pa.types.is_date(target) or pa.types.is_timestamp(target):
        parsed = pc.strptime(values, format=spec.date_format or "%Y-%m-%d", unit="s", error_is_null=True)
        return parsed.cast(pa.date32()) if pa.types.is_date(target) else pc.assume_timezone(parsed, "UTC").cast(target)
    if pa.types.is_decimal(target) or pa.types.is_integer(target):
        # Not a number: null here; the quality gate's rule on the landed text quarantines the row.
        numeric = pc.match_substring_regex(values, r"^\s*[-+]?[0-9]+(\.[0-9]*)?\s*$")
        values = pc.if_else(pc.fill_null(numeric, False), values, pa.scalar(None, pa.string()))
    return values.cast(target)


def to_canonical(raw: pa.Table, source: SourceConfig, run_id: str, ingested_at: dt.datetime) -> pa.Table:
    """The raw landing rows of ``source`` as records of its library (unmapped fields null)."""
    parts = source.record_fields()
    tables = [_records(raw, source, fields, f"#{i + 1}" if len(parts) > 1 else "", run_id, ingested_at)
              for i, fields in enumerate(parts)]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _records(raw: pa.Table, source: SourceConfig, fields: dict[str, FieldMap], suffix: str, run_id: str,
             ingested_at: dt.datetime) -> pa.Table:
    rt = record_type(source.delivers)
    schema = arrow_schema(rt)
    n = raw.num_rows
    columns = []
    for target in schema:
        if target.name in fields:
            columns.append(_field(raw, fields[target.name], target.type))
        elif target.name == "source_department":
            columns.append(pa.array([source.department] * n, pa.string()))
        elif target.name == "source_record_id":
            record_id = _record_id(raw, source, fields, identity(rt))
            columns.append(pc.binary_join_element_wise(record_id, pa.scalar(suffix), "") if suffix else record_id)
        elif target.name == "source_updated_at" and source.watermark:
            # Database timestamps land as ISO text; Arrow's cast reads both "T" and " " separators.
            ts = raw.column(source.watermark).combine_chunks().cast(pa.timestamp("us"))
            columns.append(pc.assume_timezone(ts, "UTC"))
        elif target.name == "ingested_at":
            columns.append(pa.array([ingested_at] * n, target.type))
        elif target.name == "run_id":
            columns.append(pa.array([run_id] * n, pa.string()))
        else:
            columns.append(pa.nulls(n, target.type))
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata())


def _record_id(raw: pa.Table, source: SourceConfig, fields: dict[str, FieldMap], ident: tuple[str, ...]) -> pa.Array:
    """The source's key; for records identified by several fields (an event), the key joined with their columns."""
    key = raw.column(source.key).combine_chunks().cast(pa.string())
    if len(ident) < 2:  # one field identifies a record: the department's key says which
        return key
    extra = [fields[f].column for f in ident if f in fields and fields[f].column and fields[f].column != source.key]
    if not extra:
        return key
    # An empty event field leaves the id (its own rule names it), a missing key does not.
    parts = [key, *(pc.fill_null(raw.column(c).combine_chunks().cast(pa.string()), "") for c in extra)]
    return pc.binary_join_element_wise(*parts, "/")

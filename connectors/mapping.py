"""Map a department's raw columns and codes to the library's canonical fields and national codes."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from connectors.config import FieldMap, SourceConfig, Template, TemplatePart, parse_template
from schemas.codes import table as code_table
from schemas.derive import arrow_schema
from schemas.events import identity, record_type


def _recode(values: pa.Array, mapping: dict[str, str]) -> pa.Array:
    # Unknown department codes are kept as they are, so the quality gate can name them.
    keys = pa.array(list(mapping), pa.string())
    codes = pa.array(list(mapping.values()), pa.string())
    idx = pc.index_in(values, value_set=keys)
    return pc.if_else(pc.is_null(idx), values, pc.take(codes, idx))


_NULL = pa.scalar(None, pa.string())


def _column_text(raw: pa.Table, name: str) -> pa.Array:
    """A raw column as trimmed text, null where empty."""
    values = pc.utf8_trim_whitespace(raw.column(name).combine_chunks().cast(pa.string()))
    return pc.if_else(pc.equal(values, ""), _NULL, values)


def _filled(raw: pa.Table, template: Template, *, collapse: bool) -> pa.Array:
    """The template filled in: an empty part drops with its own text, one separator stays between parts that remain.

    Between two non-empty parts the separator is the last one written between them, so
    "{STREET_NO} {ADDRESS_1}, {SUBURB}" gives "12, Kew" when ADDRESS_1 is empty. Null where every part is empty.
    """
    values = [_column_text(raw, p.column) for p in template.parts]
    present = [pc.is_valid(v) for v in values]
    pieces = []
    for i, (part, value) in enumerate(zip(template.parts, values)):
        if i:
            pieces.append(_joint(template.joints, present, i))
        pieces.append(pc.binary_join_element_wise(part.prefix, value, part.suffix, "") if part.prefix or part.suffix
                      else value)
    # Every piece filled: pyarrow 26 drops rows whose inputs are all null under null_handling="skip".
    text = pc.binary_join_element_wise(*(pc.fill_null(p, "") for p in pieces), "")
    if collapse:
        text = pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))
    return pc.if_else(_any(present, len(values)), text, _NULL)


def _any(flags: list[pa.Array], upto: int) -> pa.Array:
    """Row-wise: is any of ``flags[:upto]`` true."""
    out = flags[0]
    for flag in flags[1:upto]:
        out = pc.or_(out, flag)
    return out


def _joint(joints: tuple[str, ...], present: list[pa.Array], i: int) -> pa.Array:
    """The separator written before part ``i``: the last non-empty one since the previous non-empty part, if any."""
    out = pa.nulls(len(present[i]), pa.string())
    gap = None  # rows where parts c + 1 .. i - 1 are all empty (none yet: every row)
    for c in range(i - 1, -1, -1):
        if joints[c]:
            reached = _any(present, c + 1) if gap is None else pc.and_(gap, _any(present, c + 1))
            out = pc.if_else(pc.and_(pc.is_null(out), reached), joints[c], out)  # the latest separator wins
        gap = pc.invert(present[c]) if gap is None else pc.and_(gap, pc.invert(present[c]))
    return pc.if_else(present[i], pc.fill_null(out, ""), "")


def field_text(raw: pa.Table, spec: FieldMap) -> pa.Array:
    """The text a field is read from, before codes and date formats: one column, or several combined."""
    if spec.columns is not None:
        sep = spec.separator or ""
        joined = Template(tuple(TemplatePart(c) for c in spec.columns), (sep,) * (len(spec.columns) - 1))
        return _filled(raw, joined, collapse=False)
    if spec.template is not None:
        return _filled(raw, parse_template(spec.template), collapse=True)
    return _column_text(raw, spec.column)


def _field(raw: pa.Table, spec: FieldMap, target: pa.DataType) -> pa.Array:
    if spec.value is not None:
        return pa.array([spec.value] * raw.num_rows, pa.string()).cast(target)
    values = field_text(raw, spec)
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
    extra = [fields[f] for f in ident if f in fields and fields[f].value is None and fields[f].column != source.key]
    if not extra:
        return key
    # An empty event field leaves the id (its own rule names it), a missing key does not.
    parts = [key, *(pc.fill_null(_raw_text(raw, spec), "") for spec in extra)]
    return pc.binary_join_element_wise(*parts, "/")


def _raw_text(raw: pa.Table, spec: FieldMap) -> pa.Array:
    """A column as the department wrote it (untrimmed), or a combination's text."""
    if spec.column is not None:
        return raw.column(spec.column).combine_chunks().cast(pa.string())
    return field_text(raw, spec)

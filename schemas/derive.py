"""Everything derived from the declarations: Arrow schemas and DuckDB DDL (never written twice)."""

from __future__ import annotations

import pyarrow as pa

from schemas.catalogue import Library

_ARROW = {
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int": pa.int64(),
    "decimal": pa.decimal128(18, 4),
    "bool": pa.bool_(),
    "json": pa.string(),  # JSON text; DuckDB reads it with its JSON functions
}

_DUCKDB = {
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
    "int": "BIGINT",
    "decimal": "DECIMAL(18,4)",
    "bool": "BOOLEAN",
    "json": "VARCHAR",
}


def arrow_schema(lib: Library, *, include_metadata: bool = True) -> pa.Schema:
    """The Arrow schema of a library's records, with Chinese labels kept as field metadata."""
    return pa.schema(
        [
            # All nullable: staging holds rows the quality gate has yet to judge; DuckDB DDL enforces keys.
            pa.field(f.name, _ARROW[f.type], metadata={"label": f.label, "sharing": f.sharing.value})
            for f in lib.fields
            if include_metadata or not f.metadata
        ],
        metadata={"library": lib.name, "key": lib.key},
    )


def duckdb_type(logical: str) -> str:
    """The DuckDB column type of a logical field type."""
    return _DUCKDB[logical]


def duckdb_ddl(lib: Library, table: str | None = None) -> str:
    """``CREATE TABLE`` for a library, the key as primary key, labels as column comments."""
    name = table or lib.table
    columns = [
        f'    "{f.name}" {_DUCKDB[f.type]}' + (" PRIMARY KEY" if f.name == lib.key else "") + (" NOT NULL" if f.required and f.name != lib.key else "")
        for f in lib.fields
    ]
    return f'CREATE TABLE IF NOT EXISTS "{name}" (\n' + ",\n".join(columns) + "\n);"

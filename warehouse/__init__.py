"""The DuckDB/Parquet store: landing, staging, reconciliation, snapshot publication, analyst views."""

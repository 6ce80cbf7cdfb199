"""Airflow DAG files: wiring only; each task body is one call into a core package."""

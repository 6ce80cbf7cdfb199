"""Connectors to department source systems: one module per kind of source."""

"""The quality gate: rules derived from schemas/, quarantine decisions, and reports for data stewards."""

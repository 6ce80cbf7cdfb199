"""The quality gate: suites derived from schemas/ and department configuration, quarantine, and the stewards' reports.

::

    rules.py       Rule and Suite: base expectations derived from the declarations, hub rules across fields,
                   format rules on the landed text, department rules (config.py, config/*.yaml)
    engine.py      row-level evaluation of a suite, vectorised (Arrow, numpy, DuckDB); GX for unknown types
    gate.py        one source's gate: row rules, notes, whole-batch rules; what a landing leaves behind
    batch.py       whole-batch rules: row count, a column suddenly empty, never-seen codes at a high rate
    tables.py      shared-table suites after reconciliation: keys, references, agreement between departments
    quarantine.py  the quarantine and the stewards' decisions (release, reject, held batches)
    gx.py          Great Expectations: custom expectations, suites and results as GX objects, Data Docs
    report.py      the quality page (HTML and JSON) with trends over the last runs; site.py serves it
"""

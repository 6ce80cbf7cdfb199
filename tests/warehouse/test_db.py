"""The working database's one opener knows no feature: each declares its tables, and no import runs in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from warehouse import db

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ("warehouse.staging", "quality.quarantine", "warehouse.identity", "warehouse.conflicts", "warehouse.history")


def _imports(module: str) -> set[str]:
    """The modules ``module`` imports anywhere in its file, at the top or inside a function."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_the_opener_imports_no_feature_and_no_feature_imports_the_opener():
    assert not _imports("warehouse.work") & set(FEATURES)
    ours = {name for name in _imports("warehouse.db") if name.split(".")[0] in ("warehouse", "quality", "hub")}
    assert ours == {"warehouse.faults", "warehouse.faults.storage_fault"}  # the wrapper sits below every feature
    for feature in FEATURES:
        assert "warehouse.work" not in _imports(feature), feature


def test_each_feature_imports_alone_and_declares_its_tables():
    for feature in (*FEATURES, "warehouse.work"):
        code = f"import {feature}; from warehouse import db; print(db.features())"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]


def test_every_feature_declares_to_the_registry():
    import warehouse.tables  # noqa: F401  # gathers the declarations

    assert {"staging", "quality", "identity", "conflicts", "history"} <= set(db.features())
    assert any("CREATE TABLE IF NOT EXISTS quarantine" in ddl for ddl in db.declared())

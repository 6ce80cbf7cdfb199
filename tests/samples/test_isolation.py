"""The sample systems stay outside the production packages: none of them imports ``samples``."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What runs in production; only the command line's demo and sample commands, the tests and bench/ may use samples.
PRODUCTION = ("schemas", "connectors", "quality", "warehouse", "exchange_api", "dags")
SAMPLES = "samples"


def _is_samples(module: str | None) -> bool:
    return module is not None and (module == SAMPLES or module.startswith(SAMPLES + "."))


def sample_imports(path: Path) -> list[str]:
    """``file:line module`` for each import of the sample package in ``path`` (deferred ones and ``import_module`` too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        else:
            continue
        found.extend(f"{path.relative_to(path.parents[1])}:{node.lineno} {name}" for name in names if _is_samples(name))
    return found


def test_no_production_package_imports_the_samples():
    offenders = [hit for package in PRODUCTION for path in sorted((ROOT / package).rglob("*.py"))
                 for hit in sample_imports(path)]
    assert offenders == []


def test_the_walk_finds_every_form_of_import(tmp_path):
    module = tmp_path / "pkg" / "mod.py"
    module.parent.mkdir()
    module.write_text(
        "import samples\nimport samples.fake_rest as fr\nfrom samples.typos import LOOK_ALIKES\n"
        "def later():\n    from samples import generate_samples\n"
        "import importlib\nimportlib.import_module('samples.generate')\n"
        "import samplesmore\nfrom connectors import samples_like\nfrom . import samples as local\n", encoding="utf-8")
    assert sample_imports(module) == [
        "pkg/mod.py:1 samples", "pkg/mod.py:2 samples.fake_rest", "pkg/mod.py:3 samples.typos",
        "pkg/mod.py:5 samples", "pkg/mod.py:7 samples.generate"]


def test_the_fakes_left_connectors():
    assert not (ROOT / "connectors" / "samples").exists()
    assert not (ROOT / "connectors" / "fake_rest.py").exists()


def test_every_top_level_package_is_installed():
    # The editable install maps only the packages setup.cfg lists: one left out imports from the checkout only.
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    listed = set(config["options.packages.find"]["include"].split())
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "scripts"}
    assert SAMPLES in packages
    assert packages <= listed

"""The error tree drawn in ``hub/errors.py`` is the tree the production packages define, both ways."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import hub.errors
from hub.errors import HubError

ROOT = Path(__file__).resolve().parents[2]
# Folders with an __init__.py that are not production packages (ARCHITECTURE.md: samples live outside them).
NOT_PRODUCTION = {"tests", "bench", "samples", "scripts"}
# A drawn line: the tree's prefix ("│   ├── "), then the class name.
LINE = re.compile(r"^(?P<prefix>(?:│   |    )*)(?:├── |└── )(?P<name>[A-Za-z_]\w*)")


def production_modules() -> list[str]:
    """Every module of every production package, imported (a class is only a subclass once its module ran)."""
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_PRODUCTION)
    names = []
    for package in packages:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            importlib.import_module(info.name)
            names.append(info.name)
    return names


def drawn_edges() -> set[tuple[str, str]]:
    """(class, parent) pairs of the drawing in the module docstring, parsed by indentation."""
    text = hub.errors.__doc__ or ""
    lines = text[text.index("::"):].splitlines()
    root = next(line.split()[0] for line in lines[1:] if line.strip())
    stack, edges = [root], set()
    for line in lines:
        found = LINE.match(line.strip("\n")[4:])  # the drawing is indented by four spaces under "::"
        if not found:
            continue
        depth = len(found["prefix"]) // 4 + 1
        del stack[depth:]
        edges.add((found["name"], stack[-1]))
        stack.append(found["name"])
    return edges


def defined_edges() -> set[tuple[str, str]]:
    """(class, parent) pairs of HubError's subclasses, walked from the classes themselves."""
    edges, todo = set(), [HubError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            edges.add((sub.__name__, cls.__name__))
            todo.append(sub)
    return edges


def test_every_production_module_imports() -> None:
    assert "hub.errors" in production_modules()


def test_the_drawing_is_the_tree_both_ways() -> None:
    production_modules()
    drawn, defined = drawn_edges(), defined_edges()
    assert sorted(defined - drawn) == [], "defined but not drawn (or drawn under another parent)"
    assert sorted(drawn - defined) == [], "drawn but not defined (or defined under another parent)"


def test_names_are_unique() -> None:
    production_modules()
    names = [child for child, _ in defined_edges()]
    assert len(names) == len(set(names)), "two hub errors share a name: the drawing could not tell them apart"


def test_the_hub_raises_no_builtin_permission_error() -> None:
    """The raw role's refusal is a hub error (still a PermissionError for callers that catch that)."""
    from warehouse.analyst import analyst_role

    try:
        analyst_role(True, "  ")
    except HubError as exc:
        assert isinstance(exc, PermissionError)
    else:  # pragma: no cover
        raise AssertionError("the raw role without a reason was not refused")


def test_unreadable_text_is_a_source_error() -> None:
    from connectors.encodings import LineDecoder

    try:
        LineDecoder("auto").decode(b"\xff\xfeh\x00i\x00")
    except HubError as exc:
        assert isinstance(exc, hub.errors.SourceError)
    else:  # pragma: no cover
        raise AssertionError("UTF-16 text was read")

"""The project's layering, read from the source: the core imports no FiftyOne, the library never
imports the operators or the CLI, no module imports itself back, and the defaults are written once.

Imports inside functions count: a lazy import is still a dependency. The benchmarks
(`fiftyone_clipit.bench`) are commands, a layer with the CLI: they may compare against FiftyOne and
share the CLI's option parsing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "fiftyone_clipit"
DEFAULT_LITERALS = ("clipit_score", "clipit_summary", "clipit_eval", "clipit_frames", "clipit_matches",
                    "clipit_relevance", "clipit_captions", "zero-shot")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    files = list(PACKAGE.rglob("*.py")) + list((ROOT / "operators").glob("*.py"))
    return {module_name(path): ast.parse(path.read_text(), str(path)) for path in files}


def imported(name: str, tree: ast.Module) -> set[str]:
    """Every module `tree` imports, anywhere in it, as absolute names."""
    package = name if name in PACKAGES else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


TREES = modules()
PACKAGES = {name for name in TREES if (ROOT / name.replace(".", "/") / "__init__.py").exists()}
GRAPH = {name: {m for m in imported(name, tree) if m in TREES and m != name} for name, tree in TREES.items()}


COMMANDS = ("fiftyone_clipit.cli", "fiftyone_clipit.bench")


def is_core(name: str) -> bool:
    return name.startswith("fiftyone_clipit") and not name.startswith(("fiftyone_clipit.fo",) + COMMANDS)


def test_the_core_imports_no_fiftyone():
    offenders = {
        name: sorted(m for m in imported(name, tree) if m == "fiftyone" or m.startswith("fiftyone."))
        for name, tree in TREES.items() if is_core(name)
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_library_never_imports_the_operators_or_the_cli():
    for name, found in GRAPH.items():
        if name.startswith("fiftyone_clipit") and not name.startswith(COMMANDS):
            assert not {m for m in found if m.startswith(("operators", "fiftyone_clipit.cli"))}, name


def test_no_import_cycles():
    """Depth-first search over the package's import graph; a back edge is a cycle."""
    state: dict[str, str] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name] - PACKAGES):  # a package's __init__ re-exports lazily
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(set(GRAPH) - PACKAGES):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_cycle_check_finds_a_planted_cycle():
    global GRAPH
    saved = GRAPH
    GRAPH = {**saved, "fiftyone_clipit.summary": saved["fiftyone_clipit.summary"] | {"fiftyone_clipit.replan"}}
    try:
        with pytest.raises(AssertionError):
            test_no_import_cycles()
    finally:
        GRAPH = saved


def string_constants(tree: ast.Module) -> list[tuple[int, str]]:
    """String literals that are not docstrings, with their line."""
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_field_names_and_defaults_are_written_only_in_defaults():
    written = [
        f"{name}:{line} {value!r}"
        for name, tree in TREES.items() if name != "fiftyone_clipit.defaults"
        for line, value in string_constants(tree) if value in DEFAULT_LITERALS
    ]
    assert written == []

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


def test_the_core_imports_no_fiftyone_layer():
    """The core holds the algorithms the FiftyOne layer calls, never the other way round."""
    offenders = {name: sorted(m for m in GRAPH[name] if m.startswith("fiftyone_clipit.fo")) for name in TREES if is_core(name)}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_layer_check_finds_a_planted_core_to_fo_import():
    global GRAPH
    saved = GRAPH
    GRAPH = {**saved, "fiftyone_clipit.shots": saved["fiftyone_clipit.shots"] | {"fiftyone_clipit.fo.summaries"}}
    try:
        with pytest.raises(AssertionError):
            test_the_core_imports_no_fiftyone_layer()
    finally:
        GRAPH = saved


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
    GRAPH = {**saved, "fiftyone_clipit.summary": saved["fiftyone_clipit.summary"] | {"fiftyone_clipit.shots"}}
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


#: settings whose numeric default is written once, in `fiftyone_clipit.options` (or `defaults`)
NUMERIC_OPTIONS = {"max_segment", "segment_seconds", "smoothing_seconds", "fps", "budget", "proportion", "clip_seconds"}
OPTION_HOMES = ("fiftyone_clipit.options", "fiftyone_clipit.defaults")


def numeric_defaults(tree: ast.Module) -> list[tuple[int, str]]:
    """Where a number is written as the default of a setting in NUMERIC_OPTIONS: a parameter's
    default, a dataclass field, ``params.get("name", number)``, or a form's default beside the
    setting's name."""
    found = []

    def number(node) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args
            pairs = list(zip(args[len(args) - len(node.args.defaults):], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            found += [(d.lineno, a.arg) for a, d in pairs if a.arg in NUMERIC_OPTIONS and number(d)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            if node.target.id in NUMERIC_OPTIONS and number(node.value):
                found.append((node.lineno, node.target.id))
        elif isinstance(node, ast.Call):
            values = node.args + [k.value for k in node.keywords]
            for i, arg in enumerate(values):
                if isinstance(arg, ast.Constant) and arg.value in NUMERIC_OPTIONS:
                    if any(number(v) for v in values[i + 1 : i + 3]):
                        found.append((node.lineno, arg.value))
    return found


def test_numeric_defaults_are_written_only_in_the_options():
    written = [
        f"{name}:{line} {setting}"
        for name, tree in TREES.items() if name not in OPTION_HOMES
        for line, setting in numeric_defaults(tree)
    ]
    assert written == []


def test_the_numeric_default_check_finds_planted_defaults():
    planted = ast.parse(
        "def f(max_segment=60.0): pass\n"
        "class C:\n    fps: float = 2.0\n"
        "x = params.get('smoothing_seconds', 1.0)\n"
        "float_input(ctx, inputs, 'segment_seconds', 'Segment length', 2.0, 0.1, 60.0)\n"
    )
    assert [setting for _, setting in numeric_defaults(planted)] == ["max_segment", "fps", "smoothing_seconds", "segment_seconds"]

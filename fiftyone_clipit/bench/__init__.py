"""Benchmarks behind `fiftyone-clipit bench NAME`: each prints one JSON line of figures.

A benchmark module defines `DESCRIPTION`, `add_arguments(parser)` and `run(args) -> dict`; its
baseline is measured in the same process, on the same data, so the figures are ratios that
survive a noisy shared machine. Heavy imports belong inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import json
from types import ModuleType

from fiftyone_clipit.defaults import HelpWithDefaults

#: benchmark name -> module under fiftyone_clipit.bench
BENCHMARKS: dict[str, str] = {
    "summary": "summary",
    "learning": "learning",
    "scorer": "scorer",
    "embeddings": "embeddings",
    "search": "search",
    "fingerprint": "fingerprint",
    "highlights": "highlights",
    "qfvs": "qfvs",
    "pipeline": "pipeline",
}


def load(name: str) -> ModuleType:
    """The module of benchmark `name`."""
    return importlib.import_module(f"fiftyone_clipit.bench.{BENCHMARKS[name]}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Adds one sub-parser per benchmark under `bench`."""
    for name in BENCHMARKS:
        module = load(name)
        parser = sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION,
                                formatter_class=HelpWithDefaults)
        module.add_arguments(parser)
        parser.set_defaults(bench=name)


def run(args: argparse.Namespace) -> dict:
    """Runs the chosen benchmark and prints its JSON line."""
    figures = load(args.bench).run(args)
    print(json.dumps({"bench": args.bench, **figures}), flush=True)
    return figures

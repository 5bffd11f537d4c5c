"""Every command-line option says what it does and its default (issue 23), checked by walking
the real parser; no database."""

from __future__ import annotations

import argparse

import pytest

from fiftyone_clipit.cli import build_parser


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of the parser and every subcommand under it."""
    yield path, parser
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, (*path, name))


def test_every_option_has_help_and_shows_its_default():
    missing, silent = [], []
    for path, parser in subcommands(build_parser()):
        shown = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = " ".join(path) + " " + (action.option_strings[0] if action.option_strings else action.dest)
            if not action.help:
                missing.append(name)
            elif action.option_strings and action.default not in (None, False, []):
                if "default" not in " ".join(action.help.split()).lower() and f"(default: {action.default})" not in shown:
                    silent.append(name)
    assert not missing, f"options without help: {missing}"
    assert not silent, f"options whose default is not shown: {silent}"


def test_the_demo_says_which_model_it_tries_first():
    (demo,) = [p for path, p in subcommands(build_parser()) if path == ("demo",)]
    (model,) = [a for a in demo._actions if "--model" in a.option_strings]
    assert model.help.startswith("CLIP model (default: ViT-B-32, or the random 'tiny-random' with a banner")


@pytest.mark.slow
def test_bench_summary_on_a_clip_shorter_than_a_segment_says_so(tmp_path):
    """It ended in IndexError at bench/summary.py:139."""
    import subprocess
    import sys

    from conftest import write_video

    clip = write_video(tmp_path / "short.mp4", 60, fps=30)  # 2 s
    result = subprocess.run([sys.executable, "-m", "fiftyone_clipit.cli", "bench", "summary", "--video", str(clip)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "lasts 2.0 s, shorter than the planned summary's first segment" in result.stderr

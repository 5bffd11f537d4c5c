"""Takes the README's App pictures in headless Chromium, so the test runs never write them.

The pictures of the CLIP-It panel and of FiftyOne's Model Evaluation panel on the plugin's
evaluation (clipit_panel.png, clipit_panel_clips.png, model_evaluation_panel.png) are taken by
the browser journeys of tests/test_browser.py, which save them under $CLIPIT_README_IMAGES
(tests/artifacts/ unless set): this script runs those journeys with it set to OUT_DIR, in the
tests' own private database. The demo's clips view (clips_view.png) is taken from the demo
dataset when --demo names one; run the demo first in a throwaway database so yours is untouched:

    .venv/bin/python scripts/screenshots.py docs/images
    export FIFTYONE_DATABASE_DIR="$(mktemp -d)"
    .venv/bin/fiftyone-clipit demo --model tiny-random
    .venv/bin/python scripts/screenshots.py docs/images --demo clipit-demo
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: the browser journeys that take README pictures (pytest -k expressions of tests/test_browser.py)
JOURNEYS = (
    "test_panel_budget_writes_nothing_until_apply",
    "test_panel_draws_the_curve_in_the_clips_view",
    "test_model_evaluation_panel_opens_the_plugins_evaluations",
)


def run_journeys(out_dir: Path) -> int:
    """Runs the picture-taking browser tests with their pictures going to `out_dir`; returns
    pytest's exit status."""
    env = dict(os.environ, CLIPIT_README_IMAGES=str(out_dir.resolve()))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "tests/test_browser.py", "-q", "-p", "no:cacheprovider",
               "-k", " or ".join(JOURNEYS)]
    return subprocess.call(command, cwd=REPO, env=env)


def demo_pictures(out_dir: Path, dataset_name: str) -> None:
    """The demo dataset's summary clips view, as a newcomer first sees it."""
    import fiftyone as fo
    from playwright.sync_api import expect, sync_playwright

    dataset = fo.load_dataset(dataset_name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    session = fo.launch_app(dataset, port=port, remote=True, auto=False)
    url = f"http://127.0.0.1:{port}/datasets/{dataset.name}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(f"{url}?view=clipit-summary-clips")
        expect(page.get_by_text("support", exact=True).first).to_be_visible(timeout=60_000)
        expect(page.locator("[data-cy=looker]").first).to_be_visible(timeout=60_000)
        # the tiles' score labels drawn (not "networkidle": the App's offline font requests never settle)
        scores = page.get_by_text(re.compile(r"\[clipit_score\]$")).first
        expect(scores).to_be_visible(timeout=60_000)
        for notice in ("Dismiss", "Disable"):  # the Enterprise and the analytics notices
            button = page.get_by_text(notice, exact=True)
            if button.count():
                button.first.click()
                expect(button).to_have_count(0, timeout=30_000)
        expect(scores).to_be_visible(timeout=60_000)  # the grid drawn again after the notices
        page.screenshot(path=str(out_dir / "clips_view.png"))
        browser.close()
    session.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="where the pictures go (docs/images for the README)")
    parser.add_argument("--demo", metavar="DATASET", help="also the demo dataset's clips view (run the demo first)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    status = run_journeys(out_dir)
    if args.demo:
        demo_pictures(out_dir, args.demo)
    return status


if __name__ == "__main__":
    sys.exit(main())

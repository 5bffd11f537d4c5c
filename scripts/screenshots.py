"""Takes the README's App screenshots: the demo's clips view and the CLIP-It panel.

Run it after the demo, with the plugin installed (FIFTYONE_PLUGINS_DIR), Debian's chromium, and
a throwaway database so yours is untouched:
    export FIFTYONE_DATABASE_DIR="$(mktemp -d)"
    .venv/bin/fiftyone-clipit demo --model tiny-random
    .venv/bin/python scripts/screenshots.py docs/images

The pictures of the panel and the Model Evaluation panel (clipit_panel.png,
clipit_panel_clips.png, model_evaluation_panel.png) are taken by the browser tests, into
tests/artifacts/ unless told otherwise; to refresh the README's copies:
    CLIPIT_README_IMAGES=docs/images scripts/test.sh tests/test_browser.py -k "panel"
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import fiftyone as fo
from playwright.sync_api import sync_playwright


def main(out_dir: str, dataset_name: str = "clipit-demo") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
        page.get_by_text("filepath", exact=True).first.wait_for(timeout=60_000)
        time.sleep(6)
        page.screenshot(path=str(out / "clips_view.png"))
        page.goto(url)
        page.get_by_text("filepath", exact=True).first.wait_for(timeout=60_000)
        time.sleep(3)
        page.mouse.click(480, 250)
        time.sleep(5)
        page.get_by_text("CLIP-It", exact=True).first.click()
        time.sleep(8)
        page.screenshot(path=str(out / "clipit_panel.png"))
        browser.close()
    session.close()


if __name__ == "__main__":
    main(*sys.argv[1:])

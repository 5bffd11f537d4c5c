"""The App in a real browser: Debian's headless Chromium driven by Playwright.

Starts the FiftyOne App on a small dataset in this session's own database, opens the operator
browser, runs a CLIP-It operator from its form, and checks that the App shows the resulting
view. Screenshots are kept under $CLIPIT_TEST_ARTIFACTS (default: tests/artifacts/).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import fiftyone as fo
import pytest

from conftest import REPO
from fiftyone_clipit import add_videos, compute_frame_embeddings, score_frames

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("CLIPIT_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(video_dir, tiny_encoder):
    """The App serving a scored two-video dataset; yields (dataset, url)."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed; scripts/setup.sh installs Debian's chromium")
    dataset = fo.Dataset(f"clipit-browser-{uuid.uuid4().hex[:6]}")
    add_videos(dataset, [str(video_dir)])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    score_frames(dataset, "a person", model=tiny_encoder)
    app_port = free_port()
    session = fo.launch_app(dataset, port=app_port, remote=True, auto=False)
    yield dataset, f"http://127.0.0.1:{app_port}/datasets/{dataset.name}"
    session.close()


def test_operator_from_the_browser_sets_the_clips_view(app):
    from playwright.sync_api import expect, sync_playwright

    dataset, url = app
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        expect(page.get_by_text("filepath", exact=True).first).to_be_visible(timeout=60_000)
        dismiss = page.get_by_text("Dismiss")
        if dismiss.count():
            dismiss.first.click()
        page.keyboard.press("Backquote")
        page.keyboard.type("CLIP-It: create summary")
        page.get_by_text("CLIP-It: create summary").last.click()
        budget = page.get_by_text("Budget (fraction of each video)").locator("xpath=following::input[1]")
        expect(budget).to_be_visible(timeout=30_000)
        budget.fill("0.3")
        page.get_by_role("button", name="Execute").click()
        expect(page.get_by_text("CLIP-It: create summary: done")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("clipit_summary_clips")).to_be_visible()
        page.get_by_role("button", name="Close").click()
        expect(page.get_by_text("support", exact=True).first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "clips_view.png"))
        browser.close()
    dataset.reload()
    assert dataset.count("clipit_summary.detections") >= 2
    assert dataset.get_run_info("clipit_summary_clipit_summary").config.budget == pytest.approx(0.3)

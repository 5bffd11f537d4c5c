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
from playwright.sync_api import expect

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


def run_operator(page, label: str, fields: dict[str, str]) -> None:
    """Opens the operator browser, picks `label`, fills its form and executes it."""
    page.keyboard.press("Backquote")
    page.keyboard.type(label)
    page.get_by_text(label).last.click()
    for field_label, value in fields.items():
        box = page.get_by_text(field_label, exact=True).first.locator("xpath=following::input[1]")
        expect(box).to_be_visible(timeout=30_000)
        box.fill(value)
    page.get_by_role("button", name="Execute").click()
    done, failed = page.get_by_text(f"{label}: done"), page.get_by_text("Error occurred during operator execution")
    expect(done.or_(failed)).to_be_visible(timeout=180_000)
    if failed.count():
        failed.click()
        pytest.fail(f"{label} failed in the App:\n{page.inner_text('body')[-2000:]}")
    page.get_by_role("button", name="Close").click()


def test_search_from_the_browser_shows_the_matching_moments(app):
    from playwright.sync_api import sync_playwright

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
        run_operator(page, "CLIP-It: search frames", {"Text (or the path of an image file)": "a person"})
        expect(page.get_by_text("clipit_matches", exact=True).first).to_be_visible(timeout=60_000)
        expect(page.get_by_text("support", exact=True).first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "search_view.png"))
        run_operator(page, "CLIP-It: create summary", {"Budget (fraction of each video)": "0.3"})
        expect(page.get_by_text("clipit_summary", exact=True).first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "summary_view.png"))
        browser.close()
    dataset.reload()
    assert dataset.count("clipit_matches.detections") >= 1
    assert dataset.get_run_info("clipit_summary_clipit_summary").config.budget == pytest.approx(0.3)

"""Scores where a user looks for them, in a real browser (issue 24): the score form writes every
frame's label when asked, the result says how to draw the score, and the tiles and the modal then
show it. Fixtures and helpers are those of tests/test_browser.py."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_browser import (
    ARTIFACTS,
    CHROMIUM,
    app,  # noqa: F401 - the fixture, shared
    fill_operator,
    open_first_video,
    open_page,
)

pytestmark = [pytest.mark.slow, pytest.mark.db]  # the database: its fixtures import FiftyOne, this module does not

LABELS = "frames.every_score_label"


def test_scores_of_every_frame_from_the_app_show_on_tiles_and_in_the_modal(app):  # noqa: F811
    """The score form offers "Frames written": with "every", each frame carries the score label,
    so the modal counts one per frame (at the sampled steps: one per half second, and the video
    paused between two steps shows none). The result names the sidebar's eye that draws the
    confidence (FiftyOne 1.22 draws a label's text only until it is turned on, a choice the App
    keeps in the browser); turned on, the first tile shows its frame's score."""
    from playwright.sync_api import sync_playwright

    dataset, url = app
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        fill_operator(page, "CLIP-It: score frames for a query", {"Query": "a person", "Frame field to write": "every_score"})
        frames = page.get_by_text("Frames written", exact=True).first.locator("xpath=following::*[@role='combobox'][1]")
        frames.click()
        page.get_by_role("option", name="every", exact=True).click()
        page.get_by_role("button", name="Execute").click()
        dialog = page.locator("[role=dialog]")
        expect(dialog.get_by_text(f"click the eye beside 'confidence' under {LABELS}", exact=False)).to_be_visible(
            timeout=180_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "score_every_frame_done.png"))
        dialog.get_by_role("button", name="Done").or_(dialog.get_by_role("button", name="Close")).first.click()

        dataset.reload()
        first = dataset.first()
        n_frames = first.metadata.total_frame_count
        assert dataset.count(f"{LABELS}.classifications") == sum(dataset.values("metadata.total_frame_count"))
        score = first.frames[1]["every_score_label"].classifications[0].confidence

        page.locator(f"[data-cy='sidebar-entry-draggable-{LABELS}']").scroll_into_view_if_needed(timeout=60_000)
        page.locator(f"[data-cy='sidebar-field-arrow-enabled-{LABELS}']").click()
        page.locator(f"[data-cy='shown-attribute-{LABELS}.classifications.confidence']").click()
        tile = page.locator("[data-cy=looker]").first
        expect(tile.get_by_text(f"a person [every_score], {score:.3f}", exact=True)).to_be_visible(timeout=30_000)

        open_first_video(page)
        count = page.locator(f"#modal [data-cy='sidebar-field-container-{LABELS}'] [data-cy=entry-count-all]")
        expect(count).to_have_text(str(n_frames), timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "score_every_frame_modal.png"))
        browser.close()
    assert not errors, errors

"""The App's forms and results in a real browser (issue 24): field dropdowns that validate before
Execute, failures in one sentence, and an export's storyboards shown. Fixtures and helpers are
those of tests/test_browser.py."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from test_browser import (
    ARTIFACTS,
    CHROMIUM,
    fill_operator,
    open_page,
    run_operator,
    summarised_app,  # noqa: F401 - the fixture, shared
)

pytestmark = [pytest.mark.slow, pytest.mark.db]  # the database: its fixtures import FiftyOne, this module does not


def test_evaluate_summarys_form_offers_fields_and_fails_in_one_sentence(summarised_app):  # noqa: F811
    """Issue 24 (2): the ground-truth input is a dropdown of the dataset's TemporalDetections
    fields (not the predicted summary); a name that is not one of them keeps Execute disabled; a
    run that fails (qfvs without its concepts field) says why in one sentence, no traceback."""
    from playwright.sync_api import sync_playwright

    _, _, url = summarised_app
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        try:
            fill_operator(page, "CLIP-It: evaluate summary", {})
            truth = page.get_by_text("Ground-truth summary field", exact=True).first.locator("xpath=following::input[1]")
            expect(truth).to_be_visible(timeout=30_000)
            execute = page.get_by_role("button", name="Execute")
            truth.click()
            options = page.get_by_role("option")
            expect(options.first).to_be_visible(timeout=30_000)
            assert options.all_inner_texts() == ["gt"]
            truth.fill("nosuch")
            truth.press("Enter")
            expect(execute).to_be_disabled(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "evaluate_form_nosuch.png"))
            truth.fill("")
            truth.click()
            page.get_by_role("option", name="gt", exact=True).click()
            expect(execute).to_be_enabled(timeout=30_000)
            protocol = page.get_by_text("Protocol", exact=True).first.locator("xpath=following::*[@role='combobox'][1]")
            protocol.click()
            page.get_by_role("option", name="qfvs", exact=True).click()
            expect(execute).to_be_enabled(timeout=30_000)
            execute.click()
            failed = page.get_by_text("Error occurred during operator execution")
            expect(failed.first).to_be_visible(timeout=120_000)
            expect(page.get_by_text(re.compile(r"Field 'gt_shot_concepts' does not exist")).first).to_be_visible(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "evaluate_failure.png"))
            assert page.get_by_text(re.compile(r"Traceback|ClipItError")).count() == 0
        finally:
            (ARTIFACTS / "evaluate_form.txt").write_text(page.inner_text("body"))
        browser.close()


def test_an_export_from_the_app_shows_every_videos_storyboard_and_the_folder(summarised_app, tmp_path):  # noqa: F811
    """Issue 24 (5): after export_summary the dialog shows each video's storyboard as an image (it
    showed the first one's path as text) and names the folder the files went to."""
    from playwright.sync_api import sync_playwright

    dataset, _, url = summarised_app
    errors: list[str] = []
    out = tmp_path / "exported"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        run_operator(page, "CLIP-It: export summary clips", {"...or type one": str(out)}, close=False)
        images = page.locator("[role=dialog] img[src*='_storyboard.png']")
        expect(images).to_have_count(len(dataset), timeout=30_000)
        for i in range(len(dataset)):
            page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=images.nth(i).element_handle())
        expect(page.locator("[role=dialog]").get_by_text(str(out)).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "export_done.png"))
        browser.close()
    assert len(list(out.rglob("*_storyboard.png"))) == len(dataset)
    assert not errors, errors

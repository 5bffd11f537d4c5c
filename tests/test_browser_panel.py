"""The CLIP-It panel beside the grid in a real browser (issue 24): its runs table follows runs
that are queued or running without "Refresh", and its inputs and table stay inside the panel.
Fixtures and helpers are those of tests/test_browser.py."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_browser import (
    ARTIFACTS,
    CHROMIUM,
    open_page,
    open_panel,
    summarised_app,  # noqa: F401 - the fixture, shared
)

pytestmark = [pytest.mark.slow, pytest.mark.db]  # the database: its fixtures import FiftyOne, this module does not

SCORE_LABEL = "CLIP-It: score frames for a query"


def real_errors(errors: list[str]) -> list[str]:
    """The console errors but FiftyOne's router's "entry is loading": these tests reset the
    session's spaces just before the page opens, and the App, applying that state while its
    first route still loads, logs it (2 runs in ~9; the page is drawn right either way, which
    the tests check). The operators' own runs keep it an error (tests/test_browser.py)."""
    return [e for e in errors if "entry is loading" not in e]


def test_the_runs_table_follows_an_active_run_without_refresh(summarised_app):  # noqa: F811
    """A delegated run queued, then started, then finished while the panel is open shows each
    state in the table by itself (it stayed "queued" until "Refresh" was clicked)."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext
    from playwright.sync_api import sync_playwright

    dataset, session, url = summarised_app
    session.spaces = None  # the grid alone (the session keeps a panel an earlier test opened)
    service, errors = DelegatedOperationService(), []
    context = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {"query": "a cat"}})
    op = service.queue_operation("@clipit/video-summarization/score_frames", context=context)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = open_page(browser, url, errors)
            open_panel(page, "clipit_panel", "CLIP-It")
            row = page.get_by_role("row").filter(has_text=SCORE_LABEL)
            expect(row.get_by_role("cell", name="queued", exact=True)).to_be_visible(timeout=60_000)
            service.set_running(op.id)
            expect(row.get_by_role("cell", name="running", exact=True)).to_be_visible(timeout=30_000)
            service.set_completed(op.id)
            expect(row.get_by_role("cell", name="done", exact=True)).to_be_visible(timeout=30_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "panel_runs_followed.png"))
            browser.close()
    finally:  # no worker of a later test may pick it up
        service.delete_operation(op.id)
    assert not real_errors(errors), errors


def right_edge(locator) -> float:
    box = locator.bounding_box()
    return box["x"] + box["width"]


def test_the_panels_search_box_and_runs_table_fit_beside_the_grid(summarised_app):  # noqa: F811
    """Opened beside the grid (1500 x 900), the panel's search box and runs table end inside the
    panel with a margin (the box ran to the panel's edge and the table's last column past it)."""
    from playwright.sync_api import sync_playwright

    _, session, url = summarised_app
    session.spaces = None  # the grid alone (the session keeps a panel an earlier test opened)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        open_panel(page, "clipit_panel", "CLIP-It")
        expect(page.get_by_role("cell", name="clipit_summary (summary)", exact=True)).to_be_visible(timeout=60_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "panel_beside_grid.png"))
        panel = page.locator("[data-cy=panel-content-clipit_panel]")
        search = page.get_by_text("Search every video for...").first.locator("xpath=following::input[1]")
        edges = {name: right_edge(item) for name, item in
                 (("panel", panel), ("search", search), ("table", panel.locator("table").first))}
        browser.close()
    assert edges["search"] <= edges["panel"] - 8 and edges["table"] <= edges["panel"] - 8, edges
    assert not real_errors(errors), errors

"""The App in a real browser: Debian's headless Chromium driven by Playwright.

Starts the FiftyOne App on a small dataset in this session's own database, opens the operator
browser, runs a CLIP-It operator from its form, and checks that the App shows the resulting
view. Screenshots are kept under $CLIPIT_TEST_ARTIFACTS (default: tests/artifacts/).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
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


def scored_dataset(prefix: str, video_dir, tiny_encoder) -> fo.Dataset:
    """The two test videos, embedded and scored for "a person" by the tiny random model."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed; scripts/setup.sh installs Debian's chromium")
    dataset = fo.Dataset(f"{prefix}-{uuid.uuid4().hex[:6]}")
    add_videos(dataset, [str(video_dir)])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    score_frames(dataset, "a person", model=tiny_encoder)
    return dataset


@pytest.fixture
def legacy_orchestrators(monkeypatch):
    """Lets the App schedule operations (FiftyOne 1.22 offers "Schedule" only with this set)."""
    monkeypatch.setenv("FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS", "true")


@pytest.fixture
def app(video_dir, tiny_encoder):
    """The App serving a scored two-video dataset; yields (dataset, url)."""
    dataset = scored_dataset("clipit-browser", video_dir, tiny_encoder)
    app_port = free_port()
    session = fo.launch_app(dataset, port=app_port, remote=True, auto=False)
    yield dataset, f"http://127.0.0.1:{app_port}/datasets/{dataset.name}"
    session.close()


def fill_operator(page, label: str, fields: dict[str, str]) -> None:
    """Opens the operator browser, picks `label` and fills its form."""
    page.keyboard.press("Backquote")
    page.keyboard.type(label)
    page.get_by_text(label).last.click()
    for field_label, value in fields.items():
        box = page.get_by_text(field_label, exact=True).first.locator("xpath=following::input[1]")
        expect(box).to_be_visible(timeout=30_000)
        box.fill(value)


def run_operator(page, label: str, fields: dict[str, str], close: bool = True) -> None:
    """Fills `label`'s form and executes it (and closes the output unless `close` is False)."""
    fill_operator(page, label, fields)
    page.get_by_role("button", name="Execute").click()
    done, failed = page.get_by_text(f"{label}: done"), page.get_by_text("Error occurred during operator execution")
    expect(done.or_(failed)).to_be_visible(timeout=180_000)
    if failed.count():
        failed.click()
        pytest.fail(f"{label} failed in the App:\n{page.inner_text('body')[-2000:]}")
    if close:  # "Done" after a run that streamed its progress
        page.get_by_role("button", name=re.compile(r"^(Close|Done)$")).click()


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


# Records every text the page shows that ends in a percentage in brackets, however briefly.
RECORD_PROGRESS = """() => {
    const seen = window.__clipitProgress = [];
    const note = (text) => {
        const found = (text || "").match(/[^\\n]{0,80}\\(\\d+%\\)/);
        if (found && !seen.includes(found[0])) seen.push(found[0]);
    };
    new MutationObserver((records) => {
        for (const r of records) {
            if (r.type === "characterData") note(r.target.textContent);
            for (const n of r.addedNodes) note(n.textContent);
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_an_immediate_run_shows_its_progress_in_the_app(app):
    """Executed (not scheduled) from the App, a heavy operator streams its progress to the
    operator's dialog (not only to the browser console), then shows its output."""
    from playwright.sync_api import sync_playwright

    dataset, url = app
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        page.evaluate(RECORD_PROGRESS)
        run_operator(page, "CLIP-It: score frames for a query", {"Query": "a dog"}, close=False)
        shown = page.evaluate("window.__clipitProgress")
        expect(page.get_by_text("labelled for the app:", exact=True)).to_be_visible(timeout=30_000)
        output = page.locator("[role=dialog]").last.inner_text()
        page.screenshot(path=str(ARTIFACTS / "operator_progress_done.png"))
        browser.close()
    assert any(re.search(r"Scoring frames.*\((50|100)%\)", text) for text in shown), shown
    assert re.search(r"scored:\s*2", output), output
    assert "Scored 2 video(s). Each scored frame's label names the query" in output  # a sentence first
    dataset.reload()
    assert dataset.get_run_info("clipit_score_clipit_score").config.query == "a dog"
    assert not errors, errors


#: where the README's panel pictures are taken: the artifacts unless asked (scripts/screenshots.py
#: says how to refresh docs/images), so a test run leaves the repository as it was
IMAGES = Path(os.environ.get("CLIPIT_README_IMAGES", ARTIFACTS))
RUN_BUDGET = re.compile(r"^0\.2(0*)$")  # the run's budget, a share of the video


@pytest.fixture(scope="module")
def summarised_app(video_dir, tiny_encoder):
    """The App on a scored, summarised (budget 0.2, half-second shots) and evaluated two-video
    dataset; yields (dataset, session, url)."""
    import fiftyone.operators as foo

    from fiftyone_clipit import create_summary
    from fiftyone_clipit.fo.score_labels import label_scores

    dataset = scored_dataset("clipit-panel-app", video_dir, tiny_encoder)
    create_summary(dataset, budget=0.2, segmentation="uniform", segment_seconds=0.5)
    # each video's ground truth: its summary's first segment (matched, so every figure of the Model
    # Evaluation panel is non-zero: the panel draws 0 as "—") and frames 31-60
    dataset.set_values("gt", [
        fo.TemporalDetections(detections=[
            fo.TemporalDetection(label="a person", support=list(summary.detections[0].support)),
            fo.TemporalDetection(label="a person", support=[31, 60]),
        ])
        for summary in dataset.values("clipit_summary")
    ])
    foo.get_operator("@clipit/video-summarization/evaluate_summary")(dataset, gt_field="gt")
    label_scores(dataset)
    app_port = free_port()
    session = fo.launch_app(dataset, port=app_port, remote=True, auto=False)
    yield dataset, session, f"http://127.0.0.1:{app_port}/datasets/{dataset.name}"
    session.close()


#: console errors the App itself logs that say nothing about the plugin
APP_CONSOLE_NOISE = ("Failed to load resource", "Zero-sized element, this should not happen")


def open_page(browser, url: str, errors: list[str]):
    """A page on the App, its console errors collected in `errors`, except the App's own noise:
    offline font loads, and react-virtuoso's "Zero-sized element" while a split lays out a list."""
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not any(
        noise in m.text for noise in APP_CONSOLE_NOISE) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    expect(page.get_by_text("filepath", exact=True).first).to_be_visible(timeout=60_000)
    # the grid's first tile drawn: the App's route has loaded (interacting before that can hit its
    # "entry is loading" error)
    expect(page.locator("[data-cy=looker]").first).to_be_visible(timeout=60_000)
    if page.locator("#modal.modalon").count():  # the session remembers an open modal
        close_modal(page)
    dismiss = page.get_by_text("Dismiss")
    if dismiss.count():
        dismiss.first.click()
    return page


def close_modal(page) -> None:
    """Closes the sample modal by clicking beside it."""
    page.mouse.click(8, 450)
    expect(page.locator("#modal.modalon")).to_have_count(0, timeout=30_000)


def open_first_video(page) -> None:
    """Opens the first tile's sample modal, clicking again if a click on a grid still settling
    was lost (waits for the modal itself, not for time)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        page.locator("[data-cy=looker]").first.click()
        try:
            expect(page.locator("#modal.modalon")).to_have_count(1, timeout=30_000)
            return
        except (AssertionError, PlaywrightTimeout):
            if attempt == 2:
                raise


def open_panel(page, option: str, label: str, modal: bool = False) -> None:
    """Opens a panel: its tab in the modal, or by name from the grid's "New panel"."""
    if modal:  # the tab, clicked again if the click came before the modal's tabs were ready
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        for attempt in range(3):
            page.locator("#modal").get_by_text(label, exact=True).first.click()
            try:  # every CLIP-It panel shows its runs table, whatever else it shows
                expect(page.locator("#modal").get_by_text("Runs on this dataset").first).to_be_attached(timeout=40_000)
                return
            except (AssertionError, PlaywrightTimeout):
                if attempt == 2:
                    raise
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.locator(f"[data-cy=new-panel-option-{option}]").click()


@contextmanager
def panel_in_modal(url: str, errors: list[str]):
    """The App in Chromium with the first video's modal open on the CLIP-It panel; yields the page
    and closes the modal and the browser after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        open_first_video(page)
        open_panel(page, "clipit_panel", "CLIP-It", modal=True)
        yield page
        close_modal(page)
        browser.close()


def curve_drawn(page, timeout: int = 120_000) -> None:
    """Waits for the panel's relevance curve (long: a busy 2-core machine)."""
    expect(page.locator(".js-plotly-plot .scatterlayer path.js-line").first).to_be_visible(timeout=timeout)


def summaries(dataset) -> tuple[list, dict]:
    """Every video's summary and the summary run's recorded settings, to compare."""
    dataset.reload()
    config = dataset.get_run_info("clipit_summary_clipit_summary").config.serialize()
    return [s.to_dict() for s in dataset.values("clipit_summary")], config


ABOUT_30 = re.compile(r"^Preview at (29|30|31)%")


def pick_budget(page, share: float) -> None:
    """Clicks the budget slider's track at `share` of its length (the slider runs from 0 to 100%)."""
    box = page.locator("#modal .MuiSlider-root").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * share, box["y"] + box["height"] / 2)


def test_panel_budget_writes_nothing_until_apply(summarised_app):
    dataset, _, url = summarised_app
    before, errors = summaries(dataset), []
    with panel_in_modal(url, errors) as page:
        curve_drawn(page)
        expect(page.get_by_role("slider")).to_have_attribute("aria-valuenow", RUN_BUDGET, timeout=30_000)
        expect(page.locator(".MuiSlider-valueLabel").first).to_have_text(re.compile(r"^\s*20\s*%\s*$"))  # not "0.200000"
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / "clipit_panel.png"))
        pick_budget(page, 0.3)
        expect(page.get_by_text(ABOUT_30)).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "panel_preview.png"))
        assert summaries(dataset) == before
        close_modal(page)
        open_first_video(page)
        open_panel(page, "clipit_panel", "CLIP-It", modal=True)
        expect(page.get_by_role("slider")).to_have_attribute("aria-valuenow", RUN_BUDGET, timeout=60_000)
        page.wait_for_timeout(3000)  # what a re-planning panel would have done on opening
        assert summaries(dataset) == before
        pick_budget(page, 0.3)
        expect(page.get_by_text(ABOUT_30)).to_be_visible(timeout=60_000)
        page.get_by_role("button", name="Apply to this video").click()
        expect(page.get_by_text(re.compile(r"re-planned with a budget of (29|30|31)%"))).to_be_visible(timeout=60_000)
    (after, config), (old, _) = summaries(dataset), before
    assert after[0] != old[0] and after[1:] == old[1:]
    (budget, unit), = config["video_budgets"].values()
    assert config["budget"] == pytest.approx(0.2) and list(config["video_budgets"]) == [dataset.first().id]
    assert budget == pytest.approx(0.3, abs=0.011) and unit == "fraction"
    assert not errors, errors


def test_panel_draws_the_curve_in_the_clips_view(summarised_app):
    from playwright.sync_api import sync_playwright

    dataset, session, url = summarised_app
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        session.view = dataset.to_clips("clipit_summary")
        expect(page.get_by_text("support", exact=True).first).to_be_visible(timeout=60_000)
        open_first_video(page)
        open_panel(page, "clipit_panel", "CLIP-It", modal=True)
        expect(page.locator(".js-plotly-plot .scatterlayer path.js-line").first).to_be_visible(timeout=120_000)  # a busy 2-core machine
        expect(page.locator(".js-plotly-plot .shapelayer path").first).to_be_attached()
        assert page.get_by_text("is not in").count() == 0
        page.screenshot(path=str(IMAGES / "clipit_panel_clips.png"))
        browser.close()
    session.view = None
    assert not errors, errors


def test_scores_show_in_the_modal(summarised_app):
    """The video's best score and its frames' score label (the query) show in the modal's sidebar."""
    from playwright.sync_api import sync_playwright

    dataset, _, url = summarised_app
    best = dataset.first().clipit_score_max
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        # issue 24: the tiles' frame label names the query and the score field it came from
        expect(page.get_by_text("a person [clipit_score]", exact=True).first).to_be_visible(timeout=60_000)
        open_first_video(page)
        modal = page.locator("#modal")
        try:
            shown = modal.locator("[data-cy='sidebar-entry-clipit_score_max']")
            expect(shown).to_be_visible(timeout=60_000)
            assert float(shown.inner_text()) == pytest.approx(best, abs=1e-3)
            expect(modal.get_by_text("frames.clipit_score_label").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "scores_in_modal.png"))
        finally:
            (ARTIFACTS / "scores_in_modal.txt").write_text(page.inner_text("body"))
        close_modal(page)
        browser.close()
    assert not errors, errors


# Reads the Model Evaluation panel's summary table: {metric: the value cell's text}.
READ_SUMMARY_TABLE = """() => Object.fromEntries([...document.querySelectorAll("tr")]
    .map((row) => [...row.querySelectorAll("th, td")].map((cell) => cell.innerText.trim()))
    .filter((cells) => cells.length >= 2).map((cells) => [cells[0], cells[1]]))"""

#: the summary table's figures of the plugin's segment evaluation, and what each reads
PANEL_FIGURES = {
    "Precision": lambda r: r.metrics()["precision"], "Recall": lambda r: r.metrics()["recall"],
    "F1-Score": lambda r: r.metrics()["fscore"], "mAP": lambda r: r.mAP(), "mAR": lambda r: r.mAR(),
    "Frame-overlap F1": lambda r: r.metrics()["fscore"],
}


def test_model_evaluation_panel_opens_the_plugins_evaluations(summarised_app):
    """FiftyOne's Model Evaluation panel opens every evaluation it lists, the plugin's included
    (evaluate_summary from the App: `<key>_segments`), with no error; its summary table shows the
    summary protocol's precision, recall and F1 (the frame-overlap figures), mAP and mAR, and no
    "—" (the panel's mark of a figure the evaluation lacks); the summary protocol run (a custom
    run) is not among them. Each step waits for the panel's content, not for time."""
    from playwright.sync_api import sync_playwright

    dataset, _, url = summarised_app
    evaluations = dataset.list_evaluations()
    assert "clipit_eval_segments" in evaluations
    results = dataset.load_evaluation_results("clipit_eval_segments")
    expected = {name: read(results) for name, read in PANEL_FIGURES.items()}
    assert all(value > 0 for value in expected.values()), expected  # the fixture's ground truth sees to it
    errors, shown = [], {}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        try:
            open_panel(page, "model_evaluation_panel_builtin", "Model Evaluation")
            expect(page.get_by_text(f"{len(evaluations)} Model Evaluations")).to_be_visible(timeout=60_000)
            for key in evaluations:
                page.get_by_role("button", name=re.compile(rf"^Evaluation type: .* {key} ")).click()
                opened, failed = page.locator("#evaluation-header").get_by_text(key), page.get_by_text("Operator Error")
                expect(opened.or_(failed).first).to_be_visible(timeout=60_000)
                precision_row = page.locator("tr", has=page.get_by_text("Precision", exact=True))
                expect(precision_row.first.or_(failed).first).to_be_visible(timeout=60_000)
                assert not failed.count(), f"the panel failed on '{key}': {errors}"
                if key == "clipit_eval_segments":
                    expect(page.locator("tr", has=page.get_by_text("Frame-overlap F1", exact=True))).to_be_visible(timeout=30_000)
                    shown = page.evaluate(READ_SUMMARY_TABLE)
                    page.screenshot(path=str(IMAGES / "model_evaluation_panel.png"))
                page.locator("#evaluation-header [data-testid=ArrowBackIcon]").click()
                expect(page.get_by_text("Evaluate Model")).to_be_visible(timeout=30_000)
            assert page.get_by_role("button", name=re.compile(r"^Evaluation type: .* clipit_eval ")).count() == 0
        finally:
            (ARTIFACTS / "model_evaluation.txt").write_text(page.inner_text("body"))
        browser.close()
    assert [name for name, value in shown.items() if value.startswith("—")] == [], shown
    for name, value in expected.items():
        assert float(shown[name]) == pytest.approx(value, abs=0.006), (name, shown)
    assert not errors, errors


def test_operator_browser_does_not_offer_the_custom_metric(summarised_app):
    """The frame-overlap F1 custom metric runs inside evaluate_detections; the operator browser
    (the backtick key) lists the plugin's frame operators but not the metric, which fails alone."""
    from playwright.sync_api import sync_playwright

    _, _, url = summarised_app
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        page.keyboard.press("Backquote")
        page.keyboard.type("frame")
        expect(page.get_by_text("CLIP-It: compute frame embeddings")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("CLIP-It: search frames")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "operator_browser_frame.png"))
        assert page.get_by_text("Frame-overlap F1").count() == 0
        # issue 24: the plugin's own icon, loaded from its folder (not the generic puzzle piece)
        icons = page.locator("img[src$='/assets/icon.svg']")
        expect(icons.first).to_be_visible(timeout=30_000)
        assert icons.count() >= 2
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=icons.first.element_handle())
        page.keyboard.press("Escape")
        browser.close()
    assert not errors, errors





def test_a_score_filter_in_the_sidebar_narrows_the_frames(summarised_app):
    """A minimum score typed into the sidebar filter of the frame score label keeps only the frames
    scoring that much: the sidebar's frame-label count and the grid's video count are what
    FiftyOne's filter_labels gives in Python (with a single Classification per frame the count
    stayed at every frame of the matching videos)."""
    from fiftyone import ViewField as F
    from playwright.sync_api import sync_playwright

    dataset, _, url = summarised_app
    best = sorted(dataset.values("clipit_score_max"), reverse=True)
    threshold = round((best[0] + best[1]) / 2, 4)  # between the two videos' best frames
    kept = dataset.filter_labels("frames.clipit_score_label", F("confidence") >= threshold)
    n_kept = sum(score >= threshold for scores in dataset.values("frames.clipit_score") for score in scores if score is not None)
    assert kept.count() == 1 and 0 < n_kept < len(kept.first().frames)
    assert kept.count("frames.clipit_score_label.classifications") == n_kept
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        try:
            page.locator("[data-cy='sidebar-entry-draggable-frames.clipit_score_label']").scroll_into_view_if_needed()
            page.locator("[data-cy='sidebar-field-arrow-enabled-frames.clipit_score_label']").click()
            low = page.locator("[data-cy^='numeric-slider-container-frames-clipit_score_label'][data-cy$='-confidence'] input[placeholder=min]")
            expect(low).to_be_visible(timeout=30_000)
            low.fill(str(threshold))
            low.press("Enter")
            shown = page.locator("[data-cy='sidebar-field-container-frames.clipit_score_label'] [data-cy=entry-count-part]")
            expect(shown).to_have_text(str(n_kept), timeout=60_000)
            expect(page.locator("[data-cy=entry-counts] [data-cy=entry-count-part]")).to_have_text("1", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "score_filter.png"))
        finally:
            (ARTIFACTS / "score_filter.txt").write_text(page.inner_text("body"))
        browser.close()
    assert not errors, errors




def test_a_click_above_a_moment_of_the_curve_picks_it(summarised_app):
    """A click anywhere above a moment of the curve (not only on the line) gives its time and
    frame number."""
    _, _, url = summarised_app
    errors = []
    with panel_in_modal(url, errors) as page:
        curve_drawn(page)
        box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        x, y = box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.1  # high above the line there
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        expect(page.get_by_text(re.compile(r"^2\.\d\d s = frame \d+$"))).to_be_visible(timeout=60_000)
        # issue 24: a panel cannot seek the modal's video; it says so and shows the clicked frame
        expect(page.get_by_text(re.compile(r"a panel cannot move the video")).first).to_be_visible(timeout=60_000)
        frame = page.locator("#modal img[src*='clipit-panel-frames']").first
        expect(frame).to_be_visible(timeout=60_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=frame.element_handle())
        page.screenshot(path=str(ARTIFACTS / "panel_clicked_frame.png"))
    assert not errors, errors


def test_splitting_the_modal_keeps_the_videos_budget(summarised_app):
    """Splitting the modal's panel space reopens the CLIP-It panel: its slider starts again from
    the video's own budget (not the 15% default), previews nothing and writes nothing."""
    from fiftyone_clipit.fo.summaries import video_budget

    dataset, _, url = summarised_app
    before, errors = summaries(dataset), []
    own = video_budget(dataset, dataset.first().id).fraction
    assert own is not None and round(own, 2) != 0.15
    share = re.compile(rf"^{round(own, 2)}0*$")
    with panel_in_modal(url, errors) as page:
        curve_drawn(page)
        expect(page.get_by_role("slider")).to_have_attribute("aria-valuenow", share, timeout=30_000)
        page.locator("#modal [title='Split horizontally']").first.click()
        page.wait_for_timeout(1000)
        open_panel(page, "clipit_panel", "CLIP-It", modal=True)  # its tab, wherever the split put it
        curve_drawn(page)
        page.wait_for_timeout(3000)  # what a panel previewing on opening would have done
        page.screenshot(path=str(ARTIFACTS / "panel_split.png"))
        sliders = page.get_by_role("slider")
        for i in range(sliders.count()):
            expect(sliders.nth(i)).to_have_attribute("aria-valuenow", share, timeout=30_000)
        assert page.get_by_text(re.compile(r"^Preview at")).count() == 0
    assert summaries(dataset) == before
    assert not errors, errors


def test_the_panel_lists_the_datasets_runs(summarised_app):
    """The CLIP-It panel's table shows this dataset's runs (here the recorded ones: embeddings,
    scores, summary)."""
    _, _, url = summarised_app
    errors = []
    with panel_in_modal(url, errors) as page:
        row = page.locator("#modal").get_by_text("clipit_summary (summary)", exact=True).first
        row.scroll_into_view_if_needed(timeout=120_000)
        expect(row).to_be_visible(timeout=30_000)
        expect(page.locator("#modal").get_by_text("Runs on this dataset").first).to_be_visible()
        expect(page.locator("#modal").get_by_role("button", name="Refresh")).to_be_visible()
        row.locator("xpath=ancestor::table[1]").screenshot(path=str(ARTIFACTS / "panel_runs.png"))
    assert not errors, errors


def test_a_failing_immediate_run_shows_its_error(app):
    """An immediate run that fails while it streams its progress still ends in the App's error
    dialog with the library's message."""
    from playwright.sync_api import sync_playwright

    _, url = app
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        fill_operator(page, "CLIP-It: score frames for a query",
                      {"Query": "a dog", "Scorer: zero-shot or a checkpoint folder": "/no/such/scorer"})
        page.get_by_role("button", name="Execute").click()
        failed = page.get_by_text("Error occurred during operator execution")
        expect(failed).to_be_visible(timeout=120_000)
        expect(page.get_by_text(re.compile(r"/no/such/scorer")).first).to_be_visible(timeout=30_000)
        assert page.get_by_text(re.compile(r"Traceback|ClipItError")).count() == 0
        page.screenshot(path=str(ARTIFACTS / "operator_error.png"))
        assert page.get_by_text(re.compile(r": starting$")).count() == 0  # not left at the progress
        browser.close()


def test_a_scheduled_run_is_queued_from_the_app(legacy_orchestrators, app):
    """'Schedule' on a heavy operator (whose immediate runs stream their progress) still queues
    a delegated operation for a worker, with the form's parameters."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from playwright.sync_api import sync_playwright

    dataset, url = app
    service, errors = DelegatedOperationService(), []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = open_page(browser, url, errors)
            fill_operator(page, "CLIP-It: score frames for a query", {"Query": "a cat"})
            page.get_by_role("button", name="Schedule").click()
            expect(page.get_by_text("Operation successfully scheduled")).to_be_visible(timeout=60_000)
            for _ in range(60):
                queued = service.list_operations(dataset_name=dataset.name)
                if queued:
                    break
                page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "operator_scheduled.png"))
            browser.close()
        op, = queued
        assert op.operator == "@clipit/video-summarization/score_frames" and op.run_state == "queued"
        assert op.context.params["query"] == "a cat"
    finally:  # no worker of a later test may pick it up
        for op in service.list_operations(dataset_name=dataset.name):
            service.delete_operation(op.id)
    assert not errors, errors


def test_a_highlight_reel_from_the_app_opens_its_moments_and_shows_its_storyboard(app):
    """Issue 27: the operator from the App, the clips view of the moments and the storyboard."""
    from playwright.sync_api import sync_playwright

    dataset, url = app
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = open_page(browser, url, errors)
        run_operator(page, "CLIP-It: highlight reel", {
            "What to find (text, or the path of an image file)": "a person",
            "Reel length at most (seconds)": "2",
        }, close=False)
        storyboard = page.locator("[role=dialog] img[src*='highlights_storyboard.png']").last
        expect(storyboard).to_be_visible(timeout=30_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=storyboard.element_handle())
        page.screenshot(path=str(ARTIFACTS / "highlight_reel_done.png"))
        page.get_by_role("button", name=re.compile(r"^(Close|Done)$")).click()
        expect(page.get_by_text("clipit_highlights", exact=True).first).to_be_visible(timeout=60_000)
        expect(page.get_by_text("support", exact=True).first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "highlight_reel_clips.png"))
        browser.close()
    dataset.reload()
    run = dataset.get_run_info("clipit_highlights_clipit_highlights").config
    assert run.query == "a person" and os.path.isfile(run.reel) and run.n_moments >= 1
    assert len(dataset.load_saved_view("clipit_highlights_clips")) == run.n_moments
    assert not errors, errors

"""The CLIP-It panel: its curve data, and its events executed the way the App executes them."""

from __future__ import annotations

import uuid

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest

from fiftyone_clipit import Budget, add_videos, create_summary
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.curves import curve_traces, sample_curves

PANEL = "@clipit/video-summarization/clipit_panel"


@pytest.fixture
def planted(video_dir):
    """One 90-frame 30 fps video with planted scores (frames 31-45 high) and a user summary (per test:
    the panel writes its summary)."""
    dataset = fo.Dataset(f"clipit-panel-{uuid.uuid4().hex[:6]}")
    add_videos(dataset, [str(video_dir / "colors_a.mp4")])
    scores = np.full(90, 0.2)
    scores[30:45] = 0.9
    dataset.set_values("frames.clipit_score", [{i + 1: float(s) for i, s in enumerate(scores)}])
    create_summary(dataset, budget=0.2, segmentation="uniform", segment_seconds=0.5)
    truth = fo.TemporalDetections(detections=[fo.TemporalDetection(label="gt", support=[31, 60])])
    dataset.set_values("user_summary", [truth])
    return dataset


def test_sample_curves_place_scores_segments_and_truth_in_time(planted):
    curves = sample_curves(planted, planted.first().id, gt_field="user_summary")
    assert curves.times.shape == (90,) and curves.times[30] == pytest.approx(1.0)
    assert curves.pred_scores[30] == pytest.approx(0.9) and curves.pred_scores[0] == pytest.approx(0.2)
    assert curves.pred_segments == [pytest.approx((1.0, 1.5))]
    assert curves.gt_segments == [pytest.approx((1.0, 2.0))]
    traces, layout = curve_traces(curves)
    assert [t["name"] for t in traces] == [
        "relevance (per frame)", "user_summary: share of users", "summary", "user_summary: users' summaries",
    ]  # the segments (shapes) named in the legend by a marker each
    assert len(traces[0]["y"]) == 90 and len(layout["shapes"]) == 2
    # issue 24: axes fit the data (the whole video; the scores 0.2-0.9 with a margin), both labelled
    assert layout["xaxis"]["range"] == pytest.approx([0.0, 3.0])
    low, high = layout["yaxis"]["range"]
    assert 0.1 < low < 0.2 and 0.9 < high < 1.0 and layout["showlegend"]
    assert layout["yaxis2"]["title"]["text"] and layout["xaxis"]["title"]["text"] == "time (s)"


def test_an_unscored_video_says_so_and_disables_apply(planted):
    """Issue 24: a video without scores gets a message naming the remedy, no empty axes, and
    Apply disabled; a scored one has the query in the curve's title."""
    unscored = planted.clone()
    try:
        unscored.clear_frame_field("clipit_score")
        with pytest.raises(ClipItError, match="has no scores in 'clipit_score': run 'CLIP-It: score frames"):
            sample_curves(unscored, unscored.first().id)
        requests = run_panel(unscored, "on_load", {})
        assert "has no scores" in sent(requests, "patch_panel_state", "message")[-1]
        assert sent(requests, "patch_panel_state", "drawn")[-1] is False
        rendered = [r for r in requests if r["operator_uri"] == "show_panel_output"][-1]["params"]
        buttons = [p for p in _walk(rendered) if isinstance(p, dict) and str(p.get("label")).startswith("Apply")]
        assert buttons and all(b.get("disabled") for b in buttons), buttons
    finally:
        unscored.delete()
    from fiftyone_clipit.fo.common import record_run

    record_run(planted, "clipit_score_clipit_score", query="a red door")
    assert sample_curves(planted, planted.first().id).title == "colors_a.mp4: “a red door” (clipit_score)"


def _walk(node):
    """Every dict and list inside a JSON value."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from _walk(child)


def run_panel(dataset, method: str, state: dict, view=None, sample_id: str | None = None, event: dict | None = None):
    """Executes a panel event as the App does; returns the requests it sent back to the App."""
    result = foo.execute_operator(
        PANEL,
        ctx={
            "dataset": dataset,
            "view": view if view is not None else dataset.view(),
            "current_sample": sample_id or dataset.first().id,
            "params": {"__method__": method, "panel_id": "test-panel", "panel_state": state, **(event or {})},
        },
    )
    result.raise_exceptions()
    return result.to_json()["executor"]["requests"]


def sent(requests, operator: str, key: str) -> list:
    """The values of `key` the panel sent with `operator` (patch_panel_state / patch_panel_data)."""
    field = "state" if operator == "patch_panel_state" else "data"
    return [r["params"][field][key] for r in requests if r["operator_uri"] == operator and key in r["params"][field]]


def summary_frames(dataset) -> int:
    dataset.reload()
    return sum(d.support[1] - d.support[0] + 1 for d in dataset.first().clipit_summary.detections)


def test_panel_draws_the_curve_of_the_current_video(planted):
    requests = run_panel(planted, "on_load", {})
    assert len(sent(requests, "patch_panel_data", "curve")[0][0]["y"]) == 90
    assert sent(requests, "patch_panel_state", "budget")[-1] == pytest.approx(0.2)  # the run's budget
    outputs = [r for r in requests if r["operator_uri"] == "show_panel_output"]
    rendered = str(outputs[-1]["params"])
    for shown in ("curve", "budget", "Search", "Apply to this video", "Apply to all"):
        assert shown in rendered


def test_panel_budget_previews_without_writing_and_apply_writes(planted):
    state = {"score_field": "clipit_score", "summary_field": "clipit_summary", "budget": 0.5}
    before, run_before = planted.first().clipit_summary, planted.get_run_info("clipit_summary_clipit_summary").config
    requests = run_panel(planted, "on_budget", state)
    shapes = sent(requests, "patch_panel_state", "layout")[-1]["shapes"]
    preview = [s for s in shapes if s.get("name") == "preview"]
    assert sum(s["x1"] - s["x0"] for s in preview) == pytest.approx(1.5)  # 45 of 90 frames at 30 fps
    assert any("Preview at 50%" in (m or "") for m in sent(requests, "patch_panel_state", "message"))
    planted.reload()
    assert planted.first().clipit_summary == before
    assert planted.get_run_info("clipit_summary_clipit_summary").config.serialize() == run_before.serialize()
    assert sent(run_panel(planted, "on_load", {}), "patch_panel_state", "budget")[-1] == pytest.approx(0.2)

    run_panel(planted, "on_apply_video", state)
    assert summary_frames(planted) == 45
    config = planted.get_run_info("clipit_summary_clipit_summary").config
    assert config.budget == pytest.approx(0.2) and config.video_budgets == {planted.first().id: [0.5, "fraction"]}
    assert sent(run_panel(planted, "on_load", {}), "patch_panel_state", "budget")[-1] == pytest.approx(0.5)


def test_panel_budget_of_zero_is_refused_with_a_message(planted):
    """The slider runs from 0% (so the App shows its value as the share of the video); 0% plans nothing."""
    state = {"score_field": "clipit_score", "summary_field": "clipit_summary", "budget": 0.0}
    before = planted.first().clipit_summary
    for method in ("on_budget", "on_apply_video", "on_apply_all"):
        messages = sent(run_panel(planted, method, state), "patch_panel_state", "message")
        assert messages == ["A budget of 0% chooses nothing; move the slider to 1% or more"], (method, messages)
    planted.reload()
    assert planted.first().clipit_summary == before


def test_panel_apply_to_all_replans_every_video_with_the_run_settings(planted):
    state = {"score_field": "clipit_score", "summary_field": "clipit_summary", "budget": 0.4}
    run_panel(planted, "on_apply_all", state)
    assert summary_frames(planted) == 30  # two 15-frame shots fit 36 frames (0.2 kept one)
    config = planted.get_run_info("clipit_summary_clipit_summary").config
    assert config.budget == pytest.approx(0.4) and config.segmentation == "uniform"
    assert config.segment_seconds == pytest.approx(0.5)


def test_panel_slider_shows_a_budget_in_seconds_as_the_share_of_the_video(planted):
    create_summary(planted, budget=Budget(seconds=0.75), segmentation="uniform", segment_seconds=0.5)
    assert summary_frames(planted) == 15  # 0.75 s of 30 fps = 22 frames: one 15-frame shot fits
    # 0.75 s of the 3 s video is a quarter of it
    assert sent(run_panel(planted, "on_load", {}), "patch_panel_state", "budget")[-1] == pytest.approx(0.25)
    assert planted.get_run_info("clipit_summary_clipit_summary").config.budget_unit == "seconds"


def test_panel_in_the_clips_view_draws_the_source_video_and_outlines_the_clip(planted):
    clips = planted.to_clips("clipit_summary")
    clip = clips.first()
    requests = run_panel(planted, "on_load", {}, view=clips, sample_id=clip.id)
    assert len(sent(requests, "patch_panel_data", "curve")[0][0]["y"]) == 90
    outline = [s for s in sent(requests, "patch_panel_state", "layout")[-1]["shapes"] if s.get("name") == "current clip"]
    first, last = clip.support
    assert [(s["x0"], s["x1"]) for s in outline] == [pytest.approx(((first - 1) / 30, last / 30))]
    frames = planted.to_frames()  # the storyboard's keyframes, which have images
    frame = frames.first()
    requests = run_panel(planted, "on_load", {}, view=frames, sample_id=frame.id)
    assert len(sent(requests, "patch_panel_data", "curve")[0][0]["y"]) == 90
    outline = [s for s in sent(requests, "patch_panel_state", "layout")[-1]["shapes"] if s.get("name") == "current clip"]
    assert outline[0]["x0"] == pytest.approx((frame.frame_number - 1) / 30)


@pytest.fixture
def indexed(video_dir, tiny_encoder):
    """The two test videos embedded by the tiny model, with the frame index and its Brain run."""
    from fiftyone_clipit import build_frame_index, compute_frame_embeddings

    dataset = fo.Dataset(f"clipit-panel-search-{uuid.uuid4().hex[:6]}")
    add_videos(dataset, [str(video_dir)])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    build_frame_index(dataset)
    return dataset


def test_panel_search_sorts_by_the_frame_index_and_writes_nothing(indexed):
    fields = set(indexed.get_field_schema()) | set(indexed.get_frame_field_schema())
    requests = run_panel(indexed, "on_search", {"query": "a red square", "k": 2})
    views = [r["params"]["view"] for r in requests if r["operator_uri"] == "set_view"]
    assert len(views) == 1 and [stage["_cls"] for stage in views[0]] == ["fiftyone.core.stages.SortBySimilarity"]
    kwargs = dict(views[0][0]["kwargs"])
    assert (kwargs["query"], kwargs["k"], kwargs["brain_key"]) == ("a red square", 2, "clipit_frames")
    assert any("best match for 'a red square'" in (m or "") for m in sent(requests, "patch_panel_state", "message"))
    indexed.reload()
    assert set(indexed.get_field_schema()) | set(indexed.get_frame_field_schema()) == fields


def test_panel_search_without_a_frame_index_says_how_to_build_one(planted):
    requests = run_panel(planted, "on_search", {"query": "a red square"})
    assert not [r for r in requests if r["operator_uri"] == "set_view"]
    assert any("build frame index" in (m or "") for m in sent(requests, "patch_panel_state", "message"))


def test_panel_opens_at_the_videos_budget_without_the_default_in_between(planted):
    """Each (re)opening (a new modal, a split of the modal's panels) sets the slider once, to the
    video's own budget: no 15% default first, which the App's slider could preview."""
    for state in ({}, {"budget": 0.15}, {"budget": 0.5}):
        requests = run_panel(planted, "on_load", state)
        assert sent(requests, "patch_panel_state", "budget") == [pytest.approx(0.2)], state
        assert not any((m or "").startswith("Preview") for m in sent(requests, "patch_panel_state", "message"))


def test_panel_lists_the_datasets_queued_running_and_finished_runs(planted):
    """The panel's table: this dataset's delegated CLIP-It operations as FiftyOne's service
    records them (queued, then running with its progress, then completed), not another
    dataset's, and the runs CLIP-It recorded."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionProgress

    other = fo.Dataset(f"clipit-panel-other-{uuid.uuid4().hex[:6]}")
    add_videos(other, [planted.first().filepath])
    service, queued = DelegatedOperationService(), []
    try:
        for dataset in (planted, other):
            result = foo.execute_operator(
                "@clipit/video-summarization/compute_frame_embeddings",
                ctx={"dataset": dataset, "params": {"model": "tiny-random", "fps": 15.0}, "request_delegation": True},
            )
            queued.append(result.result["id"])

        def rows():
            return sent(run_panel(planted, "on_load", {}), "patch_panel_data", "runs")[-1]

        first = rows()
        ours = [r for r in first if r["run"] == "CLIP-It: compute frame embeddings"]
        assert [r["state"] for r in ours] == ["queued"], first  # not the other dataset's operation
        recorded = {r["run"]: r for r in first if r["run"].startswith("clipit_")}
        assert recorded["clipit_summary (summary)"]["state"] == "done"  # issue 24: one name, not the doubled key
        assert recorded["clipit_summary (summary)"]["details"].startswith("score_field 'clipit_score'")  # no "run, "
        assert "budget 20%" in recorded["clipit_summary (summary)"]["details"]

        service.set_running(queued[0])
        service.set_progress(queued[0], ExecutionProgress(progress=0.5, label="Embedding frames"))
        running, = [r for r in rows() if r["run"] == "CLIP-It: compute frame embeddings"]
        assert running["state"] == "running" and running["details"] == "Embedding frames 50%"

        service.set_completed(queued[0])
        done, = [r for r in rows() if r["run"] == "CLIP-It: compute frame embeddings"]
        assert done["state"] == "done"  # one vocabulary: FiftyOne's "completed" reads as the runs' "done"
        rendered = str([r for r in run_panel(planted, "on_load", {}) if r["operator_uri"] == "show_panel_output"][-1])
        assert "Runs on this dataset" in rendered and "Refresh" in rendered
    finally:  # no worker of a later test may pick these up
        for op_id in queued:
            service.delete_operation(op_id)
        other.delete()


def test_a_click_names_the_moment_and_shows_its_frame(planted):
    """Issue 24: FiftyOne's panel API cannot move the modal's video, so a click on the curve gives
    the time and frame number, says so, and shows that frame (decoded from the video)."""
    from PIL import Image

    from fiftyone_clipit.reels import read_frames

    requests = run_panel(planted, "on_click_curve", {"frame_rate": 30.0}, event={"x": 1.0})
    assert sent(requests, "patch_panel_state", "message")[-1] == "1.00 s = frame 31"
    clicked = sent(requests, "patch_panel_state", "clicked_frame")[-1]
    assert clicked["seconds"] == 1.0 and clicked["path"].endswith("-31.png")
    assert sent(requests, "patch_panel_state", "clicked_image")[-1].startswith("/media?filepath=")
    shown = np.asarray(Image.open(clicked["path"]))
    (expected,) = read_frames(planted.first().filepath, [31], width=480)
    assert shown.shape == expected.shape and np.array_equal(shown, expected)


def test_apply_refreshes_the_summarys_saved_clips_view(planted):
    """Issue 24: after Apply the saved clips view of the summary shows the new segments (it kept
    the old ones until FiftyOne's "Reload saved view")."""
    assert "clipit_summary_clips" in planted.list_saved_views()  # as create_summary saves it
    before = planted.load_saved_view("clipit_summary_clips").values("support")
    state = {"score_field": "clipit_score", "summary_field": "clipit_summary", "budget": 0.5}
    run_panel(planted, "on_apply_video", state)
    planted.reload()
    after = planted.load_saved_view("clipit_summary_clips").values("support")
    assert after != before
    assert after == [list(d.support) for d in planted.first().clipit_summary.detections]

"""The CLIP-It panel: its curve data, and its events executed the way the App executes them."""

from __future__ import annotations

import uuid

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest

from fiftyone_clipit import add_videos, create_summary
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
    assert [t["name"] for t in traces] == ["relevance", "user_summary: share of users"]
    assert len(traces[0]["y"]) == 90 and len(layout["shapes"]) == 2


def run_panel(dataset, method: str, state: dict):
    result = foo.execute_operator(
        PANEL,
        ctx={
            "dataset": dataset,
            "current_sample": dataset.first().id,
            "params": {"__method__": method, "panel_id": "test-panel", "panel_state": state},
        },
    )
    result.raise_exceptions()
    return result.to_json()["executor"]["requests"]


def test_panel_draws_the_curve_of_the_current_video(planted):
    requests = run_panel(planted, "on_load", {})
    data = [r["params"]["data"] for r in requests if r["operator_uri"] == "patch_panel_data"]
    assert len(data[0]["curve"][0]["y"]) == 90
    outputs = [r for r in requests if r["operator_uri"] == "show_panel_output"]
    rendered = str(outputs[-1]["params"])
    assert "curve" in rendered and "budget" in rendered and "Search" in rendered


def test_panel_budget_replans_the_summary(planted):
    state = {"score_field": "clipit_score", "summary_field": "clipit_summary", "budget": 0.5}
    requests = run_panel(planted, "on_budget", state)
    planted.reload()
    selected = sum(d.support[1] - d.support[0] + 1 for d in planted.first().clipit_summary.detections)
    assert 18 < selected <= 45
    messages = [r["params"]["state"].get("message") for r in requests if r["operator_uri"] == "patch_panel_state"]
    assert any(m and "50%" in m for m in messages)

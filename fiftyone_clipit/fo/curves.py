"""One video's relevance curve with its summary and ground truth, as the CLIP-It panel draws it."""

from __future__ import annotations

import os

import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import dataset_name
from fiftyone_clipit.fo.evaluation_plots import VideoCurves, mask_segments
from fiftyone_clipit.fo.protocols import summary_mask, user_masks


def sample_curves(
    samples: foc.SampleCollection,
    sample_id: str,
    score_field: str = "clipit_score",
    summary_field: str = "clipit_summary",
    gt_field: str | None = None,
) -> VideoCurves:
    """The frame scores of one video over time, its summary segments and its ground truth.

    Scores are drawn as stored (no rescaling), so a curve means the same in every video. Frames
    without a score are left out of the curve. The ground truth is the share of users whose
    summary holds each frame; its segments are the frames at least half of them chose.

    Raises:
        ClipItError: the sample is not in the collection or has no metadata.
    """
    view = samples.select(sample_id)
    if len(view) == 0:
        raise ClipItError(f"Sample '{sample_id}' is not in '{dataset_name(samples)}'")
    filepath, meta, numbers = view.values(["filepath", "metadata", "frames.frame_number"])
    filepath, meta, numbers = filepath[0], meta[0], numbers[0]
    if meta is None or not meta.total_frame_count:
        raise ClipItError(f"Video '{filepath}' has no metadata; add it with add_videos")
    n_frames, rate = meta.total_frame_count, meta.frame_rate or 30.0
    scores = np.full(n_frames, np.nan)
    if view.get_field(f"frames.{score_field}") is not None:
        for number, score in zip(numbers, view.values(f"frames.{score_field}")[0]):
            if score is not None and 1 <= number <= n_frames:
                scores[number - 1] = score
    summary = view.values(summary_field)[0] if view.get_field(summary_field) is not None else None
    gt_curve, gt_segments = None, []
    if gt_field and view.get_field(gt_field) is not None:
        users = user_masks([view.values(gt_field)[0]], n_frames)
        if len(users):
            gt_curve = users.mean(axis=0)
            gt_segments = mask_segments(gt_curve >= 0.5, rate)
    return VideoCurves(
        title=f"{os.path.basename(filepath)}: {score_field}",
        times=np.arange(n_frames) / rate,
        pred_scores=scores,
        gt_curve=gt_curve,
        gt_label=f"{gt_field}: share of users",
        pred_segments=mask_segments(summary_mask(summary, n_frames), rate),
        gt_segments=gt_segments,
    )


def curve_traces(curves: VideoCurves) -> tuple[list[dict], dict]:
    """Plotly traces and layout (plain JSON) for a panel plot: scores, ground truth, segments."""
    finite = np.isfinite(curves.pred_scores)
    traces = [
        {
            "type": "scatter", "mode": "lines", "name": "relevance",
            "x": curves.times[finite].round(3).tolist(), "y": curves.pred_scores[finite].round(4).tolist(),
        }
    ]
    if curves.gt_curve is not None:
        traces.append(
            {
                "type": "scatter", "mode": "lines", "name": curves.gt_label, "yaxis": "y2",
                "x": curves.times.round(3).tolist(), "y": curves.gt_curve.round(4).tolist(),
            }
        )
    shapes = [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0.5, "y1": 1.0,
         "fillcolor": "#1f77b4", "opacity": 0.25, "line": {"width": 0}}
        for a, b in curves.pred_segments
    ] + [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0.0, "y1": 0.5,
         "fillcolor": "#ff7f0e", "opacity": 0.25, "line": {"width": 0}}
        for a, b in curves.gt_segments
    ]
    layout = {
        "title": {"text": curves.title}, "shapes": shapes,
        "xaxis": {"title": {"text": "time (s)"}},
        "yaxis": {"title": {"text": "relevance"}},
        "yaxis2": {"overlaying": "y", "side": "right", "range": [0, 1], "showgrid": False},
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"l": 50, "r": 40, "t": 40, "b": 40},
        "width": 880, "height": 360,
    }
    return traces, layout

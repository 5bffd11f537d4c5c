"""One video's relevance curve with its summary and ground truth, as the CLIP-It panel draws it."""

from __future__ import annotations

import os

import fiftyone.core.clips as focl
import fiftyone.core.collections as foc
import fiftyone.core.video as fov
import numpy as np

from fiftyone_clipit.defaults import DEFAULT_SCORE_FIELD, DEFAULT_SUMMARY_FIELD, FALLBACK_FRAME_RATE
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import dataset_name
from fiftyone_clipit.fo.scoring import scored_at_steps
from fiftyone_clipit.plots import VideoCurves, mask_segments
from fiftyone_clipit.shots import frame_scores_array
from fiftyone_clipit.fo.protocols import summary_mask, user_masks

PREVIEW_COLOR = "#2ca02c"


def source_video(view: foc.SampleCollection, sample_id: str) -> tuple[str, tuple[int, int] | None]:
    """The video a sample of `view` comes from, and the frames it covers (None: the whole video).

    A clip of a clips view covers its support; a frame of a frames view covers itself; a sample
    of any other view is a video of the dataset.
    """
    if isinstance(view, (focl.ClipsView, fov.FramesView)):
        one = view.select(sample_id)
        if len(one) == 0:
            raise ClipItError(f"Sample '{sample_id}' is not in this view of '{dataset_name(view)}'")
        if isinstance(view, focl.ClipsView):
            video_id, (first, last) = one.values("sample_id")[0], one.values("support")[0]
        else:
            video_id, first = one.values("sample_id")[0], one.values("frame_number")[0]
            last = first
        return str(video_id), (int(first), int(last))
    return sample_id, None


def sample_curves(
    samples: foc.SampleCollection,
    sample_id: str,
    score_field: str = DEFAULT_SCORE_FIELD,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    gt_field: str | None = None,
) -> VideoCurves:
    """The frame scores of one video over time, its summary segments and its ground truth.

    Scores are drawn as stored (no rescaling), so a curve means the same in every video; scores
    written at the sampled steps only hold until the next step, as every frame's would. Frames
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
    n_frames, rate = meta.total_frame_count, meta.frame_rate or FALLBACK_FRAME_RATE
    scores = np.full(n_frames, np.nan)
    if view.get_field(f"frames.{score_field}") is not None:
        stored = view.values(f"frames.{score_field}")[0]
        if scored_at_steps(view, score_field) and any(score is not None for score in stored):
            scores = frame_scores_array(numbers, stored, n_frames, score_field, steps=True)
        else:
            for number, score in zip(numbers, stored):
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


def curve_traces(
    curves: VideoCurves,
    span: tuple[int, int] | None = None,
    preview: list[tuple[float, float]] | None = None,
) -> tuple[list[dict], dict]:
    """Plotly traces and layout (plain JSON) for a panel plot: scores, ground truth, segments.

    Args:
        curves: what `sample_curves` read.
        span (None): [first, last] frame numbers to outline (the clip or frame being viewed).
        preview (None): segments (start, end seconds) of a summary planned but not written,
            shaded in green over the stored one, which is then only outlined.
    """
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
    stored = (
        {"fillcolor": "#1f77b4", "opacity": 0.25, "line": {"width": 0}} if preview is None
        else {"fillcolor": "rgba(0,0,0,0)", "line": {"width": 1, "color": "#1f77b4", "dash": "dot"}}
    )
    shapes = [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0.5, "y1": 1.0, **stored}
        for a, b in curves.pred_segments
    ] + [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0.5, "y1": 1.0,
         "fillcolor": PREVIEW_COLOR, "opacity": 0.35, "line": {"width": 0}, "name": "preview"}
        for a, b in preview or []
    ] + [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0.0, "y1": 0.5,
         "fillcolor": "#ff7f0e", "opacity": 0.25, "line": {"width": 0}}
        for a, b in curves.gt_segments
    ]
    if span is not None:
        rate = 1 / curves.times[1] if len(curves.times) > 1 else 30.0
        shapes.append(
            {"type": "rect", "xref": "x", "yref": "paper", "x0": (span[0] - 1) / rate, "x1": span[1] / rate,
             "y0": 0.0, "y1": 1.0, "fillcolor": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#d62728"},
             "name": "current clip"}
        )
    layout = {
        "title": {"text": curves.title}, "shapes": shapes,
        "xaxis": {"title": {"text": "time (s)"}},
        "yaxis": {"title": {"text": "relevance"}},
        "yaxis2": {"overlaying": "y", "side": "right", "range": [0, 1], "showgrid": False},
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"l": 50, "r": 40, "t": 40, "b": 40},
        "autosize": True, "height": 360,
        "hovermode": "x",  # a click anywhere above a moment picks it (the panel seeks the video there)
    }
    return traces, layout

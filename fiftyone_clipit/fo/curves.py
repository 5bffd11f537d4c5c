"""One video's relevance curve with its summary and ground truth, as the CLIP-It panel draws it."""

from __future__ import annotations

import os

import fiftyone.core.clips as focl
import fiftyone.core.collections as foc
import fiftyone.core.video as fov
import numpy as np

from fiftyone_clipit.defaults import DEFAULT_SCORE_FIELD, DEFAULT_SUMMARY_FIELD, FALLBACK_FRAME_RATE
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import dataset_name, root_dataset
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

    The title names the video and the query the scores are for (the score run's record).

    Raises:
        ClipItError: the sample is not in the collection, has no metadata, or has no score in
            ``score_field`` (nothing to draw or re-plan: the message says how to score it).
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
    if not np.isfinite(scores).any():
        raise ClipItError(
            f"'{os.path.basename(filepath)}' has no scores in '{score_field}': run 'CLIP-It: score frames "
            "for a query' on it first (or choose another score field)"
        )
    summary = view.values(summary_field)[0] if view.get_field(summary_field) is not None else None
    gt_curve, gt_segments = None, []
    if gt_field and view.get_field(gt_field) is not None:
        users = user_masks([view.values(gt_field)[0]], n_frames)
        if len(users):
            gt_curve = users.mean(axis=0)
            gt_segments = mask_segments(gt_curve >= 0.5, rate)
    return VideoCurves(
        title=f"{os.path.basename(filepath)}: {_score_text(samples, score_field)}",
        times=np.arange(n_frames) / rate,
        pred_scores=scores,
        gt_curve=gt_curve,
        gt_label=f"{gt_field}: share of users",
        pred_segments=mask_segments(summary_mask(summary, n_frames), rate),
        gt_segments=gt_segments,
    )


def _score_text(samples: foc.SampleCollection, score_field: str) -> str:
    """What the scores in `score_field` are for: '"the query"' from the score run, else the field."""
    from fiftyone_clipit.fo.scoring import score_run_key

    dataset = root_dataset(samples)
    key = score_run_key(score_field)
    if key not in dataset.list_runs():
        return score_field
    config = dataset.get_run_info(key).config
    text = getattr(config, "query", None) or getattr(config, "text", None)
    return f"“{text}” ({score_field})" if text else score_field


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
            "type": "scatter", "mode": "lines", "name": "relevance (per frame)",
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
    # the segments are shapes, which a legend does not list: one marker each names them
    legend = [("summary", "#1f77b4")] + ([("preview (not saved)", PREVIEW_COLOR)] if preview else [])
    legend += [(f"{curves.gt_label.split(':')[0]}: users' summaries", "#ff7f0e")] if curves.gt_segments else []
    traces += [
        {"type": "scatter", "mode": "markers", "name": name, "x": [None], "y": [None], "hoverinfo": "skip",
         "marker": {"symbol": "square", "size": 12, "color": color, "opacity": 0.5}}
        for name, color in legend
    ]
    shapes = _segment_shapes(curves, span, preview)
    scores = curves.pred_scores[finite]
    low, high = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 1.0)
    pad = max(high - low, 1e-3) * 0.08
    duration = float(curves.times[-1] + (curves.times[1] if len(curves.times) > 1 else 0.0)) if len(curves.times) else 1.0
    layout = {
        "title": {"text": curves.title}, "shapes": shapes,
        # axes fit the data: the whole video in time, the scores with a margin (an overlay's
        # shapes and its 0-1 share must not crop or stretch them)
        "xaxis": {"title": {"text": "time (s)"}, "range": [0.0, round(duration, 3)]},
        "yaxis": {"title": {"text": "relevance"}, "range": [round(low - pad, 4), round(high + pad, 4)]},
        "yaxis2": {
            "overlaying": "y", "side": "right", "range": [0, 1.05], "showgrid": False,
            "title": {"text": "share of users"},
        },
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"l": 50, "r": 40, "t": 40, "b": 40},
        "autosize": True, "height": 360,
        "hovermode": "x",  # a click anywhere above a moment picks it (the panel seeks the video there)
    }
    return traces, layout


def _segment_shapes(
    curves: VideoCurves, span: tuple[int, int] | None, preview: list[tuple[float, float]] | None
) -> list[dict]:
    """The plot's rectangles: the stored summary (outlined when a preview is shown), the
    preview, the users' summaries below, and the clip or frame being viewed."""
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
    return shapes


def frame_picture(samples: foc.SampleCollection, video_id: str, seconds: float, width: int = 480) -> tuple[int, str]:
    """The frame of a video at `seconds`, as a PNG the App can show (its /media route), since a
    panel cannot move the modal's video there (FiftyOne 1.22's panel API has no such call).

    Returns:
        ``(frame_number, path)``: the 1-based frame number and the PNG, in a temporary folder.

    Raises:
        ClipItError: the video is not in `samples` or has no metadata; VideoError: it cannot be read.
    """
    import tempfile

    from PIL import Image

    from fiftyone_clipit.reels import read_frames

    view = samples.select(video_id)
    if len(view) == 0:
        raise ClipItError(f"Sample '{video_id}' is not in '{dataset_name(samples)}'")
    filepath, meta = view.values("filepath")[0], view.values("metadata")[0]
    if meta is None or not meta.total_frame_count:
        raise ClipItError(f"Video '{filepath}' has no metadata; add it with add_videos")
    rate = meta.frame_rate or FALLBACK_FRAME_RATE
    number = min(max(int(seconds * rate) + 1, 1), meta.total_frame_count)
    folder = os.path.join(tempfile.gettempdir(), "clipit-panel-frames")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{video_id}-{number}.png")
    if not os.path.exists(path):
        (image,) = read_frames(filepath, [number], width=width)
        Image.fromarray(image).save(path)
    return number, path

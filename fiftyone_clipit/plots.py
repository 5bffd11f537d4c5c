"""Figures of one video: its predicted scores against a ground-truth curve over time, with the
predicted summary's segments and the ground-truth summary shaded.

plotly draws the interactive figure (the App, notebooks); matplotlib (Agg) writes the PNG, because
plotly's own image export needs kaleido and a Chrome browser, which offline machines do not have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

PRED_COLOR = "#1f77b4"
GT_COLOR = "#ff7f0e"


@dataclass
class VideoCurves:
    """What one video's figure shows; times in seconds, curves rescaled to [0, 1]."""

    title: str
    times: np.ndarray
    pred_scores: np.ndarray | None
    gt_curve: np.ndarray | None
    gt_label: str
    pred_segments: list[tuple[float, float]]
    gt_segments: list[tuple[float, float]]


def plotly_figure(curves: VideoCurves):
    """An interactive plotly figure of :class:`VideoCurves`."""
    import plotly.graph_objects as go

    figure = go.Figure()
    if curves.pred_scores is not None:
        figure.add_trace(go.Scatter(x=curves.times, y=curves.pred_scores, name="predicted score", line={"color": PRED_COLOR}))
    if curves.gt_curve is not None:
        figure.add_trace(go.Scatter(x=curves.times, y=curves.gt_curve, name=curves.gt_label, line={"color": GT_COLOR}))
    for start, end in curves.pred_segments:
        figure.add_vrect(x0=start, x1=end, y0=0.5, y1=1.0, fillcolor=PRED_COLOR, opacity=0.2, line_width=0)
    for start, end in curves.gt_segments:
        figure.add_vrect(x0=start, x1=end, y0=0.0, y1=0.5, fillcolor=GT_COLOR, opacity=0.2, line_width=0)
    figure.update_layout(
        title=curves.title, xaxis_title="time (s)", yaxis_title="score (rescaled to [0, 1])",
        yaxis_range=[0, 1.02], legend={"orientation": "h", "y": -0.2},
    )
    return figure


def save_png(curves: VideoCurves, path: str) -> str:
    """Writes :class:`VideoCurves` as a PNG with matplotlib (no browser needed); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 3.5))
    try:
        for start, end in curves.pred_segments:
            axes.axvspan(start, end, ymin=0.5, ymax=1.0, color=PRED_COLOR, alpha=0.2, lw=0)
        for start, end in curves.gt_segments:
            axes.axvspan(start, end, ymin=0.0, ymax=0.5, color=GT_COLOR, alpha=0.2, lw=0)
        if curves.pred_scores is not None:
            axes.plot(curves.times, curves.pred_scores, color=PRED_COLOR, label="predicted score")
        if curves.gt_curve is not None:
            axes.plot(curves.times, curves.gt_curve, color=GT_COLOR, label=curves.gt_label)
        axes.set(title=curves.title, xlabel="time (s)  [shaded: summary above, ground truth below]",
                 ylabel="score (rescaled)", ylim=(0, 1.02))
        axes.legend(loc="upper right", fontsize="small")
        figure.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


def rescale(values: np.ndarray) -> np.ndarray:
    """Min-max rescaling to [0, 1] (all zeros when constant); rows are averaged first."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        values = values.mean(axis=1)
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def mask_segments(mask: np.ndarray | None, rate: float) -> list[tuple[float, float]]:
    """The runs of True in a frame mask as (start, end) seconds."""
    if mask is None:
        return []
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return [(start / rate, stop / rate) for start, stop in zip(edges[::2], edges[1::2])]

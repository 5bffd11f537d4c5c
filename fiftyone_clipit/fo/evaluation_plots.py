"""What a summary evaluation's figure of one video shows, read from the dataset.

`video_curves` reads one video's scores and summaries from an evaluation's samples; the core
(`fiftyone_clipit.plots`) draws them.
"""

from __future__ import annotations

import os

import numpy as np

from fiftyone_clipit.defaults import FALLBACK_FRAME_RATE
from fiftyone_clipit.fo.protocols import summary_mask, user_masks
from fiftyone_clipit.plots import VideoCurves, mask_segments, rescale
from fiftyone_clipit.fo.scoring import scored_at_steps
from fiftyone_clipit.shots import frame_scores_array


def video_curves(results, sample_id: str) -> VideoCurves:
    """Reads one video's scores and summaries for the figure of ``results`` (an evaluation)."""
    config = results.config
    view = results.samples.select(sample_id)
    sample = view.first()
    n_frames, rate = sample.metadata.total_frame_count, sample.metadata.frame_rate or FALLBACK_FRAME_RATE
    numbers = view.values("frames.frame_number")[0]

    def frame_field(name: str | None) -> np.ndarray | None:
        if name is None or view.get_field(f"frames.{name}") is None:
            return None
        values = [np.mean(v) if isinstance(v, list) else v for v in view.values(f"frames.{name}")[0]]
        return frame_scores_array(numbers, values, n_frames, name, scored_at_steps(view, name))

    pred_scores = frame_field(config.score_field)
    pred_mask = summary_mask(sample[config.pred_field], n_frames) if config.pred_field else None
    if config.protocol == "qvhighlights":
        saliency = np.asarray(sample[config.gt_fields[0]] or [[0]], dtype=np.float64).mean(axis=1) / 4
        clip_of_frame = np.minimum((np.arange(n_frames) / rate // config.clip_seconds).astype(int), saliency.size - 1)
        gt_curve, gt_label, gt_mask = saliency[clip_of_frame], "mean saliency / 4", None
    else:
        users = user_masks([sample[name] for name in config.gt_fields], n_frames)
        user_scores = frame_field(config.gt_score_field)
        if user_scores is not None:
            gt_curve, gt_label = rescale(user_scores), "mean user score (rescaled)"
        else:
            gt_curve, gt_label = users.mean(axis=0), "share of users who chose the frame"
        gt_mask = users.mean(axis=0) >= 0.5
    figures = results.per_sample[sample_id]
    headline = ", ".join(f"{name} {figures[name]:.3f}" for name in config.metric_names[:3])
    return VideoCurves(
        title=f"{os.path.basename(sample.filepath)} ({config.protocol}): {headline}",
        times=np.arange(n_frames) / rate,
        pred_scores=None if pred_scores is None else rescale(pred_scores),
        gt_curve=gt_curve,
        gt_label=gt_label,
        pred_segments=mask_segments(pred_mask, rate),
        gt_segments=mask_segments(gt_mask, rate),
    )

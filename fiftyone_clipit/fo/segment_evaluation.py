"""Summaries through FiftyOne's temporal (ActivityNet) evaluation, with frame-overlap F1 added.

FiftyOne evaluates TemporalDetections like detections in time: segments match at a temporal IoU,
giving TP / FP / FN per segment and mAP, and the run shows in the App's Model Evaluation panel.
Summary protocols score frame overlap instead; the plugin's ``frame_overlap_f1`` operator (a
FiftyOne custom evaluation metric) adds that F1 to the same run, per video and as a mean.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.operators as foo
import numpy as np

from fiftyone_clipit import protocols
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.protocols import summary_mask, user_masks
from fiftyone_clipit.fo.common import Progress, check_field_type, fiftyone_progress, video_collection, write_in_chunks
from fiftyone_clipit.fo.evaluation import require_field
from fiftyone_clipit.fo.summaries import DEFAULT_SUMMARY_FIELD
from fiftyone_clipit.metrics import F1_MODES

FRAME_F1_METRIC = "@clipit/video-summarization/frame_overlap_f1"


def evaluate_summary_segments(
    samples: foc.SampleCollection,
    gt_field: str,
    pred_field: str = DEFAULT_SUMMARY_FIELD,
    eval_key: str = "clipit_segments",
    iou: float = 0.5,
    mode: str = "avg",
    progress: Progress = None,
):
    """Evaluates summary segments with FiftyOne's temporal (ActivityNet) detection evaluation.

    The run is an ordinary FiftyOne detection evaluation (segment-level TP/FP/FN at ``iou``, mAP
    over IoU 0.5:0.95), so it appears in the App's Model Evaluation panel; the frame-overlap F1 of
    the summary protocols is added as the custom metric ``frame_overlap_f1`` (mean in
    ``results.metrics()["frame_f1"]``, per video in ``<eval_key>_frame_f1``).

    Args:
        samples: a video dataset or view.
        gt_field: ground-truth summary field (TemporalDetections; users told apart by ``user``).
        pred_field ("clipit_summary"): the summary to evaluate.
        eval_key ("clipit_segments"): the evaluation key.
        iou (0.5): the IoU at which a segment matches.
        mode ("avg"): how the frame F1 combines users.
        progress (None): True for a progress bar, or a callback.

    Returns:
        FiftyOne's ``DetectionResults`` (ActivityNet).

    Raises:
        ClipItError: a field is missing or not TemporalDetections, an unknown mode, or the plugin
            (which provides the custom metric) is not installed.
    """
    samples = video_collection(samples)
    if mode not in F1_MODES:
        raise ClipItError(f"Unknown mode '{mode}'. Valid modes are {list(F1_MODES)}")
    for name in (pred_field, gt_field):
        require_field(samples, name, "summary field")
        check_field_type(samples, name, fo.EmbeddedDocumentField, fo.TemporalDetections)
    try:
        foo.get_operator(FRAME_F1_METRIC)
    except ValueError as e:
        raise ClipItError(
            f"The custom metric {FRAME_F1_METRIC} is not available ({e}); install the plugin: "
            "link this repository into FIFTYONE_PLUGINS_DIR (see the README)"
        ) from e
    return samples.evaluate_detections(
        pred_field, gt_field=gt_field, eval_key=eval_key, method="activitynet", iou=iou,
        classwise=False, compute_mAP=True, custom_metrics={FRAME_F1_METRIC: {"mode": mode}},
        progress=fiftyone_progress(progress, "Evaluating segments"),
    )


def frame_f1_metric(samples: foc.SampleCollection, results, mode: str = "avg") -> float:
    """The body of the ``frame_overlap_f1`` custom metric: per-video F1 into ``<key>_frame_f1``.

    Args:
        samples: the evaluated collection.
        results: the detection evaluation's results (its config names the fields).
        mode ("avg"): ``"avg"`` or ``"max"`` over users.

    Returns:
        The mean frame-overlap F1 over the videos with ground truth (NaN when none has).
    """
    pred_field, gt_field = results.config.pred_field, results.config.gt_field
    ids, metadata, preds, gts = samples.values(["id", "metadata", pred_field, gt_field])
    values = {}
    for sample_id, meta, pred, gt in zip(ids, metadata, preds, gts):
        if meta is None or not meta.total_frame_count or gt is None:
            continue
        n_frames = meta.total_frame_count
        users = user_masks([gt], n_frames)
        values[sample_id] = protocols.keyshot_figures(summary_mask(pred, n_frames), users, mode)["f1"]
    field_name = f"{results.key}_frame_f1"
    check_field_type(samples, field_name, fo.FloatField)
    if values:
        write_in_chunks(samples, field_name, values)
    return float(np.mean(list(values.values()))) if values else float("nan")

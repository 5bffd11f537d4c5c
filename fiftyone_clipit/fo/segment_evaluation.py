"""Summaries through FiftyOne's temporal (ActivityNet) evaluation, with the protocol's figures.

FiftyOne evaluates TemporalDetections like detections in time: segments match at a temporal IoU,
giving TP / FP / FN per segment and mAP, and the run shows in the App's Model Evaluation panel.
Summary protocols score frame overlap instead. FiftyOne 1.22's panel shows only the evaluation
types it knows (classification, detection, segmentation) and fills its summary table from
``results.metrics()`` (precision, recall, fscore, accuracy, support), ``mAP()`` and ``mAR()``; so
the run is a ``detection`` evaluation of a subclass of FiftyOne's ActivityNet method whose
``metrics()`` gives the summary protocol's frame-overlap precision, recall and F1 (the segment-level
ones stay under ``segment_*``), and whose ``mAR()`` FiftyOne's ActivityNet results lack. The
plugin's ``frame_overlap_f1`` operator (a FiftyOne custom evaluation metric) adds the F1 per video.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.operators as foo
import fiftyone.utils.eval.activitynet as foua
import numpy as np

from fiftyone_clipit import protocols
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_type,
    fiftyone_progress,
    video_collection,
    write_in_chunks,
)
from fiftyone_clipit.fo.evaluation import require_field
from fiftyone_clipit.fo.protocols import summary_mask, user_masks
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
        ``SummarySegmentsResults``: FiftyOne's ActivityNet ``DetectionResults`` whose ``metrics()``
        holds the protocol's frame-overlap precision, recall and fscore.

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
        pred_field, gt_field=gt_field, eval_key=eval_key, iou=iou,
        classwise=False, compute_mAP=True, custom_metrics={FRAME_F1_METRIC: {"mode": mode}},
        method=SummarySegmentsEvaluationConfig, mode=mode,
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
    figures = video_figures(samples, results.config.pred_field, results.config.gt_field, mode)
    values = {sample_id: video["f1"] for sample_id, video in figures.items()}
    field_name = f"{results.key}_frame_f1"
    check_field_type(samples, field_name, fo.FloatField)
    if values:
        write_in_chunks(samples, field_name, values)
    return float(np.mean(list(values.values()))) if values else float("nan")


def video_figures(samples: foc.SampleCollection, pred_field: str, gt_field: str, mode: str) -> dict[str, dict[str, float]]:
    """The frame-overlap precision, recall and F1 of each video with ground truth, by sample id."""
    ids, metadata, preds, gts = samples.values(["id", "metadata", pred_field, gt_field])
    figures = {}
    for sample_id, meta, pred, gt in zip(ids, metadata, preds, gts):
        if meta is None or not meta.total_frame_count or gt is None:
            continue
        n_frames = meta.total_frame_count
        figures[sample_id] = protocols.keyshot_figures(summary_mask(pred, n_frames), user_masks([gt], n_frames), mode)
    return figures


class SummarySegmentsEvaluationConfig(foua.ActivityNetEvaluationConfig):
    """FiftyOne's ActivityNet evaluation of summary segments that also keeps the protocol's figures.

    Args:
        pred_field: the predicted summary (TemporalDetections).
        gt_field: the ground-truth summaries (TemporalDetections).
        mode ("avg"): how the frame-overlap figures combine users (avg: TVSum, max: SumMe).
        **kwargs: FiftyOne's ActivityNet options (iou, classwise, compute_mAP, custom_metrics).
    """

    def __init__(self, pred_field: str, gt_field: str, mode: str = "avg", **kwargs):
        super().__init__(pred_field, gt_field, **kwargs)
        self.mode = mode


class SummarySegmentsEvaluation(foua.ActivityNetEvaluation):
    """ActivityNet segment matching, then the frame-overlap figures of every video."""

    def generate_results(self, samples, matches, eval_key=None, classes=None, missing=None, progress=None):
        """FiftyOne's ActivityNet results with the mean frame-overlap figures over the videos."""
        base = super().generate_results(
            samples, matches, eval_key=eval_key, classes=classes, missing=missing, progress=progress
        )
        figures = list(video_figures(samples, self.config.pred_field, self.config.gt_field, self.config.mode).values())
        frame_figures = {name: float(np.mean([f[name] for f in figures])) for name in ("precision", "recall", "f1")} if figures else {}
        frame_figures["videos"] = len(figures)
        return SummarySegmentsResults(
            samples, self.config, eval_key, matches, base.precision, base.recall, base.classwise_AP,
            base.iou_threshs, base.classes, thresholds=base.thresholds, missing=base.missing, backend=self,
            frame_figures=frame_figures,
        )


class SummarySegmentsResults(foua.ActivityNetDetectionResults):
    """ActivityNet results whose ``metrics()`` are the summary protocol's frame-overlap figures.

    ``frame_figures``: the mean frame-overlap ``precision``, ``recall``, ``f1`` over the ``videos``
    with ground truth, as the summary protocol (TVSum avg / SumMe max over users) defines them.
    """

    def __init__(self, *args, frame_figures: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.frame_figures = dict(frame_figures or {})

    def metrics(self, classes=None, average: str = "micro", beta: float = 1.0) -> dict[str, float]:
        """The protocol's frame-overlap ``precision``, ``recall``, ``fscore`` (what the Model Evaluation
        panel's summary table shows), with FiftyOne's segment-level figures as ``segment_precision``,
        ``segment_recall``, ``segment_fscore`` and its ``accuracy`` and ``support``."""
        segment = super().metrics(classes=classes, average=average, beta=beta)
        figures = dict(segment)
        for name in ("precision", "recall", "fscore"):
            figures[f"segment_{name}"] = segment[name]
        if self.frame_figures.get("videos"):
            figures.update(
                precision=self.frame_figures["precision"], recall=self.frame_figures["recall"],
                fscore=self.frame_figures["f1"],
            )
        return figures

    def mAR(self, classes=None) -> float | None:
        """Mean average recall as COCO defines it: the highest recall reached at each IoU threshold,
        averaged over thresholds and classes; read from ActivityNet's 101-point precision-recall
        curves (so to 0.01, rounded down). None without curves (``compute_mAP=False``)."""
        if self.classwise_AP is None:
            return None
        class_inds = np.arange(len(self.classes)) if classes is None else np.array([self._get_class_index(c) for c in classes])
        reached = []
        for t in range(len(self.iou_threshs)):
            for c in class_inds:
                if self.classwise_AP[t, c] > -1:  # a class with ground truth at this threshold
                    hit = self.precision[t, c] > 0
                    reached.append(float(self.recall[hit].max()) if hit.any() else 0.0)
        return float(np.mean(reached)) if reached else -1

    @classmethod
    def _from_dict(cls, d, samples, config, eval_key, **kwargs):
        return super()._from_dict(d, samples, config, eval_key, frame_figures=d.get("frame_figures"), **kwargs)

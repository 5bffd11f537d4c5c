"""F1 of summaries against ground-truth summaries, per video and overall (frame overlap)."""

from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.errors import ClipItError, ItemFailure
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    dataset_name,
    check_field_type,
    ensure_iterable,
    finish,
    iterate,
    record_run,
    root_dataset,
    video_collection,
    write_in_chunks,
)
from fiftyone_clipit.fo.summaries import DEFAULT_SUMMARY_FIELD
from fiftyone_clipit.metrics import summary_f1, summary_precision_recall_f1


@dataclass
class EvaluationReport:
    """Mean and per-video figures of `evaluate_summary`."""

    eval_key: str
    mode: str
    f1: float = float("nan")
    per_video: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[ItemFailure] = field(default_factory=list)


def summary_mask(detections: fo.TemporalDetections | None, n_frames: int) -> np.ndarray:
    """The frames a TemporalDetections summary selects, as a bool array (n_frames,)."""
    mask = np.zeros(n_frames, dtype=bool)
    for detection in detections.detections if detections is not None else []:
        first, last = detection.support
        mask[max(first, 1) - 1 : min(last, n_frames)] = True
    return mask


def evaluate_summary(
    samples: foc.SampleCollection,
    gt_field: str | list[str],
    pred_field: str = DEFAULT_SUMMARY_FIELD,
    eval_key: str = "clipit_eval",
    mode: str = "avg",
    skip_failures: bool = False,
    progress: Progress = None,
) -> EvaluationReport:
    """Frame-overlap precision, recall and F1 of a summary against users' summaries.

    Each ground-truth field is one user's summary (TemporalDetections); with several users the
    F1 is their average (`mode="avg"`, TVSum) or best (`mode="max"`, SumMe). Per-video figures
    go to `<eval_key>_precision`, `<eval_key>_recall` and `<eval_key>_f1`; the run `eval_key`
    records the fields and mode. Samples without ground truth are skipped and named.

    Raises:
        ClipItError: a field is missing or not TemporalDetections, or an unknown mode.
        BatchError: some videos could not be evaluated (the others were written).
    """
    video_collection(samples)
    gt_fields = ensure_iterable(gt_field)
    if mode not in ("avg", "max"):
        raise ClipItError(f"Unknown mode '{mode}'; the available modes are 'avg' and 'max'")
    check_field_name(eval_key, "eval key")
    for name in [pred_field, *gt_fields]:
        check_field_name(name, "summary field")
        if samples.get_field(name) is None:
            raise ClipItError(f"Field '{name}' does not exist on '{dataset_name(samples)}'")
        check_field_type(samples, name, fo.EmbeddedDocumentField, fo.TemporalDetections)
    ids, paths, metadata, preds, *gts = samples.values(["id", "filepath", "metadata", pred_field, *gt_fields])
    report = EvaluationReport(eval_key=eval_key, mode=mode)
    figures: dict[str, dict[str, float]] = {}
    rows = list(zip(ids, paths, metadata, preds, zip(*gts)))
    for sample_id, path, meta, pred, users in iterate(rows, progress, "Evaluating"):
        if meta is None or not meta.total_frame_count:
            report.failures.append(ItemFailure(path, "no video metadata; add it with add_videos"))
            continue
        users = [u for u in users if u is not None]
        if not users:
            report.failures.append(ItemFailure(path, f"no ground truth in {gt_fields}"))
            continue
        n = meta.total_frame_count
        machine = summary_mask(pred, n)
        user_masks = np.stack([summary_mask(u, n) for u in users])
        per_user = np.array([summary_precision_recall_f1(machine, u) for u in user_masks])
        best = int(per_user[:, 2].argmax())
        precision, recall = per_user[:, :2].mean(axis=0) if mode == "avg" else per_user[best, :2]
        f1 = summary_f1(machine, user_masks, mode=mode)
        figures[sample_id] = {"precision": float(precision), "recall": float(recall), "f1": f1}
        report.per_video[path] = figures[sample_id]
    for metric in ("precision", "recall", "f1"):
        check_field_type(samples, f"{eval_key}_{metric}", fo.FloatField)
        if figures:
            write_in_chunks(samples, f"{eval_key}_{metric}", {i: f[metric] for i, f in figures.items()})
    if figures:
        report.f1 = float(np.mean([f["f1"] for f in figures.values()]))
    record_run(
        root_dataset(samples),
        eval_key,
        pred_field=pred_field,
        gt_fields=gt_fields,
        mode=mode,
        mean_f1=report.f1,
        n_videos=len(figures),
    )
    finish("Evaluating", report.failures, len(figures), skip_failures)
    return report

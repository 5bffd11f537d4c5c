"""Summaries: the best segments under a budget, as TemporalDetections and a clips view."""

from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.errors import ItemFailure
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    check_field_type,
    finish,
    iterate,
    record_run,
    root_dataset,
    video_collection,
    write_in_chunks,
)
from fiftyone_clipit.fo.scoring import DEFAULT_SCORE_FIELD, score_run_key
from fiftyone_clipit.summary import select_segments, summary_capacity, uniform_change_points

DEFAULT_SUMMARY_FIELD = "clipit_summary"


@dataclass
class SummaryReport:
    """What `create_summary` did: per-video segments and the clips view to browse."""

    view_name: str | None = None
    n_summarized: int = 0
    n_segments: int = 0
    failures: list[ItemFailure] = field(default_factory=list)


def frame_scores_array(frame_numbers: list[int], scores: list, n_frames: int, field_name: str) -> np.ndarray:
    """One score per frame 1..n_frames from a frame field's values; raises when any is missing."""
    array = np.full(n_frames, np.nan)
    for number, score in zip(frame_numbers, scores):
        if score is not None and 1 <= number <= n_frames:
            array[number - 1] = score
    missing = int(np.isnan(array).sum())
    if missing:
        raise ValueError(
            f"{missing} of {n_frames} frames have no finite 'frames.{field_name}'; run score_frames"
        )
    return array


def create_summary(
    samples: foc.SampleCollection,
    score_field: str = DEFAULT_SCORE_FIELD,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    budget: float = 0.15,
    segment_seconds: float = 2.0,
    label: str | None = None,
    skip_failures: bool = False,
    progress: Progress = None,
) -> SummaryReport:
    """Summarises every video: fixed-length shots, shot score = mean frame score, 0/1 knapsack.

    Shots are `segment_seconds` long, shortened to the budget for videos so short that no
    shot would fit. Adjacent chosen shots are joined into one segment. Each video's segments are written to
    `<summary_field>` as TemporalDetections (label = the query, confidence = the segment's mean
    score, support = [first, last] frame numbers), and the clips view is saved on the dataset
    as `<summary_field>_clips`.

    Args:
        samples: a video dataset or view whose frames carry `score_field`.
        score_field ("clipit_score"): the frame field with relevance scores.
        summary_field ("clipit_summary"): the sample field to write.
        budget (0.15): the summary's length as a fraction of each video, in (0, 1].
        segment_seconds (2.0): length of the shots the summary is made of.
        label (None): the detections' label; None takes the query recorded by score_frames.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Raises:
        ClipItError: not videos, or a field of another type is in the way.
        ValueError: budget or segment_seconds out of range.
        BatchError: some videos could not be summarised (the others were written).
    """
    video_collection(samples)
    check_field_name(score_field, "score field")
    check_field_name(summary_field, "summary field")
    check_field_type(samples, summary_field, fo.EmbeddedDocumentField, fo.TemporalDetections)
    if not 0 < budget <= 1:
        raise ValueError(f"budget must be a fraction in (0, 1], got {budget!r}")
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be > 0, got {segment_seconds!r}")
    dataset = root_dataset(samples)
    if label is None:
        key = score_run_key(score_field)
        label = str(dataset.get_run_info(key).config.query) if dataset.has_run(key) else score_field
    ids, paths, metadata, numbers, scores = samples.values(
        ["id", "filepath", "metadata", "frames.frame_number", f"frames.{score_field}"]
    )
    report, values = SummaryReport(), {}
    rows = list(zip(ids, paths, metadata, numbers, scores))
    for sample_id, path, meta, frame_numbers, frame_values in iterate(rows, progress, "Summarising"):
        if meta is None or not meta.total_frame_count:
            report.failures.append(ItemFailure(path, "no video metadata; add it with add_videos"))
            continue
        try:
            frame_scores = frame_scores_array(frame_numbers, frame_values, meta.total_frame_count, score_field)
            capacity = summary_capacity(meta.total_frame_count, budget)
            shot_frames = max(1, min(round(segment_seconds * (meta.frame_rate or 30.0)), capacity))
            change_points = uniform_change_points(meta.total_frame_count, shot_frames)
            segments = select_segments(frame_scores, change_points, budget)
        except ValueError as e:
            report.failures.append(ItemFailure(path, str(e)))
            continue
        values[sample_id] = fo.TemporalDetections(
            detections=[
                fo.TemporalDetection(label=label, support=[first + 1, last + 1], confidence=score)
                for first, last, score in segments
            ]
        )
        report.n_summarized += 1
        report.n_segments += len(segments)
    if values:
        write_in_chunks(samples, summary_field, values)
        report.view_name = f"{summary_field}_clips"
        dataset.save_view(report.view_name, dataset.to_clips(summary_field), overwrite=True)
    record_run(
        dataset,
        f"clipit_summary_{summary_field}",
        score_field=score_field,
        summary_field=summary_field,
        budget=budget,
        segmentation="uniform",
        segment_seconds=segment_seconds,
        label=label,
    )
    finish("Summarising", report.failures, report.n_summarized, skip_failures)
    return report

"""The `<key>_segments` evaluation the Model Evaluation panel opens: FiftyOne's ActivityNet segment
matching whose metrics() are the summary protocol's frame-overlap figures, and an mAR."""

from __future__ import annotations

import uuid

import fiftyone as fo
import numpy as np
import pytest

from fiftyone_clipit import add_videos
from fiftyone_clipit.fo.segment_evaluation import (
    SummarySegmentsResults,
    evaluate_summary_segments,
)
from fiftyone_clipit.metrics import summary_precision_recall_f1


def segments(*supports: tuple[int, int], label: str = "a person", confidence: float | None = None) -> fo.TemporalDetections:
    return fo.TemporalDetections(detections=[
        fo.TemporalDetection(label=label, support=list(s), confidence=confidence if confidence is not None else 0.9 - 0.1 * i)
        for i, s in enumerate(supports)
    ])


def mask(n: int, *supports: tuple[int, int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for first, last in supports:
        out[first - 1 : last] = True
    return out


@pytest.fixture
def two_videos(video_dir):
    """The two generated videos (90 and 150 frames), with a summary set by hand."""
    dataset = fo.Dataset(f"clipit-segments-{uuid.uuid4().hex[:6]}")
    add_videos(dataset, [str(video_dir)])
    dataset.sort_by("filepath").set_values("clipit_summary", [segments((1, 20), (41, 60)), segments((10, 40))])
    yield dataset.sort_by("filepath")
    dataset.delete()


def test_metrics_are_the_protocols_frame_overlap_figures(two_videos):
    view = two_videos
    (n_a, n_b) = view.values("metadata.total_frame_count")
    view.set_values("gt", [segments((11, 30), (41, 60)), segments((100, 140))])
    results = evaluate_summary_segments(view, gt_field="gt", eval_key="seg")
    expected = np.mean([
        summary_precision_recall_f1(mask(n_a, (1, 20), (41, 60)), mask(n_a, (11, 30), (41, 60))),
        summary_precision_recall_f1(mask(n_b, (10, 40)), mask(n_b, (100, 140))),
    ], axis=0)
    assert expected[2] > 0  # figures the panel must show (it draws 0 and None as "—")
    loaded = fo.load_dataset(view.dataset_name).load_evaluation_results("seg")  # what the panel reads
    assert isinstance(loaded, SummarySegmentsResults) and loaded.config.type == "detection"
    for got in (results.metrics(), loaded.metrics()):
        assert [got["precision"], got["recall"], got["fscore"]] == pytest.approx(list(expected))
        assert "segment_precision" in got and "accuracy" in got and "support" in got
    assert loaded.custom_metrics["@clipit/video-summarization/frame_overlap_f1"]["value"] == pytest.approx(expected[2])
    # FiftyOne's own segment matching: (41, 60) matches exactly, (1, 20) vs (11, 30) has IoU 1/3
    assert loaded.mAP() == pytest.approx(results.mAP()) and 0 < loaded.mAP() < 1
    # one of three ground-truth segments reached at every IoU threshold (the exact match)
    assert loaded.mAR() == pytest.approx(0.33, abs=1e-9)


def test_mar_is_one_for_a_perfect_summary_and_zero_for_a_disjoint_one(two_videos):
    view = two_videos
    view.set_values("same", view.values("clipit_summary"))
    view.set_values("apart", [segments((70, 80)), segments((120, 140))])
    perfect = evaluate_summary_segments(view, gt_field="same", eval_key="same")
    disjoint = evaluate_summary_segments(view, gt_field="apart", eval_key="apart")
    assert perfect.mAR() == pytest.approx(1.0) and perfect.mAP() == pytest.approx(1.0)
    assert perfect.metrics()["fscore"] == pytest.approx(1.0)
    assert disjoint.mAR() == 0.0 and disjoint.metrics()["fscore"] == 0.0

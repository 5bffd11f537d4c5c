"""Scores the App can show, filter and sort: the frame label and the per-video max and mean."""

from __future__ import annotations

import uuid

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F

from fiftyone_clipit import add_videos
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import record_run
from fiftyone_clipit.fo.score_labels import label_scores


@pytest.fixture
def scored(video_dir):
    """Two videos with planted scores (video a: frames 31-45 at 0.9, else 0.2) and a score run."""
    dataset = fo.Dataset(f"clipit-labels-{uuid.uuid4().hex[:6]}")
    add_videos(dataset, [str(video_dir)])
    scores = []
    for n_frames in dataset.values("metadata.total_frame_count"):
        values = np.full(n_frames, 0.2)
        values[30:45] = 0.9
        scores.append({i + 1: float(v) for i, v in enumerate(values)})
    dataset.set_values("frames.clipit_score", scores)
    record_run(dataset, "clipit_score_clipit_score", query="a person", complete=True)
    return dataset


def test_label_scores_gives_each_frame_a_filterable_label_and_each_video_sortable_figures(scored):
    assert label_scores(scored) == 2
    first = scored.sort_by("filepath").first()
    (label,) = first.frames[31].clipit_score_label.classifications
    assert label.label == "a person [clipit_score]" and label.confidence == pytest.approx(0.9)  # query and field
    assert first.clipit_score_max == pytest.approx(0.9)
    assert first.clipit_score_mean == pytest.approx((15 * 0.9 + 75 * 0.2) / 90)
    high = scored.filter_labels("frames.clipit_score_label", F("confidence") > 0.5)
    assert high.count("frames.clipit_score_label.classifications") == 30  # 15 frames in each video
    assert scored.count("frames.clipit_score_label.classifications") == 90 + 150


def test_the_single_label_field_of_an_earlier_version_is_replaced(scored):
    """Earlier versions wrote one Classification per frame, which the App's sidebar filter cannot
    narrow to the matching frames; labelling again replaces it with Classifications."""
    scored.set_values("frames.clipit_score_label", [{1: fo.Classification(label="a person", confidence=0.2)}] * 2)
    assert label_scores(scored) == 2
    assert scored.get_field("frames.clipit_score_label").document_type is fo.Classifications
    assert scored.count("frames.clipit_score_label.classifications") == 90 + 150


def test_label_scores_refuses_a_field_it_did_not_write(scored):
    scored.add_sample_field("clipit_score_max", fo.FloatField)
    scored.set_values("clipit_score_max", [1.0, 2.0])
    scored.delete_run("clipit_score_clipit_score")
    with pytest.raises(ClipItError, match="not written by CLIP-It"):
        label_scores(scored)


def test_a_rescore_replaces_the_old_querys_labels(scored):
    """Issue 24: labelling again after a new query leaves no frame with the old query's label,
    even a frame the new scores no longer cover."""
    assert label_scores(scored) == 2
    record_run(scored, "clipit_score_clipit_score", query="a dog", score_field="clipit_score", complete=True)
    first = scored.sort_by("filepath").first()
    numbers, scores = scored.select(first.id).values(["frames.frame_number", "frames.clipit_score"])
    kept = {n: (s if n != 1 else None) for n, s in zip(numbers[0], scores[0])}
    scored.set_values("frames.clipit_score", {first.id: kept}, key_field="id")  # frame 1 not scored this time
    assert label_scores(scored) == 2
    labels = scored.distinct("frames.clipit_score_label.classifications.label")
    assert labels == ["a dog [clipit_score]"]
    assert scored.select(first.id).values("frames.clipit_score_label")[0][0] is None

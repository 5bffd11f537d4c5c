"""Scores the App can show, filter and sort: a frame label beside the float, per-video max and mean.

A frame FloatField is neither drawn on the video nor offered as a sidebar filter of its frames by
FiftyOne's App; a frame label is both (its confidence is the score, its label the query), and two
sample fields, the best and the mean score of each video, sort the grid.

The label is a one-element ``Classifications``, not a ``Classification``: the App's sidebar filter
on a single Classification's confidence only picks the videos that have a matching frame and
leaves every frame's label shown and counted, while on a list of labels it keeps only the frames
that match (FiftyOne 1.22, query-performance mode, the default).
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.fo.common import (
    check_output_field,
    frame_batches,
    retry_frame_inserts,
    root_dataset,
    video_collection,
    write_declared,
    write_in_chunks,
)
from fiftyone_clipit.fo.scoring import DEFAULT_SCORE_FIELD, score_label_fields, score_run_key


def label_scores(samples: foc.SampleCollection, score_field: str = DEFAULT_SCORE_FIELD) -> int:
    """Writes `frames.<score_field>_label` (Classifications, one per frame: label = the query,
    confidence = the score) and `<score_field>_max` / `<score_field>_mean` per video, from
    `frames.<score_field>`. A single-Classification label field of an earlier version, written by
    the same score run, is replaced.

    Args:
        samples: a scored video dataset or view.
        score_field ("clipit_score"): the frame field `score_frames` wrote.

    Returns:
        The number of videos labelled (videos without a score are left as they are).

    Raises:
        ClipItError: not videos, or one of the fields to write belongs to something else.
    """
    samples = video_collection(samples)
    dataset = root_dataset(samples)
    run_key = score_run_key(score_field)
    label_field, max_field, mean_field = score_label_fields(score_field)
    _drop_single_label_field(dataset, f"frames.{label_field}", run_key)
    check_output_field(samples, f"frames.{label_field}", run_key, fo.EmbeddedDocumentField, fo.Classifications)
    for name in (max_field, mean_field):
        check_output_field(samples, name, run_key, fo.FloatField)
    query = dataset.get_run_info(run_key).config.query if dataset.has_run(run_key) else None
    label = "; ".join(query) if isinstance(query, list) else str(query or f"generic ({score_field})")
    path, n_labelled = f"frames.{label_field}", 0
    for part in frame_batches(samples):
        labels, maxima, means = {}, {}, {}
        view = samples.select(part, ordered=True)
        for sample_id, numbers, scores in zip(*view.values(["id", "frames.frame_number", f"frames.{score_field}"])):
            pairs = [(number, float(score)) for number, score in zip(numbers, scores) if score is not None]
            if not pairs:
                continue
            labels[sample_id] = {
                number: fo.Classifications(classifications=[fo.Classification(label=label, confidence=score)])
                for number, score in pairs
            }
            values = np.array([score for _, score in pairs])
            maxima[sample_id], means[sample_id] = float(values.max()), float(values.mean())
        if labels:
            write_declared(
                dataset, path, lambda: retry_frame_inserts(lambda: dataset.set_values(path, labels, key_field="id"))
            )
            write_in_chunks(samples, max_field, maxima)
            write_in_chunks(samples, mean_field, means)
            n_labelled += len(labels)
    return n_labelled


def _drop_single_label_field(dataset: fo.Dataset, path: str, run_key: str) -> None:
    """Deletes `path` when it is the single-Classification score label an earlier version wrote."""
    field = dataset.get_field(path)
    if field is not None and dataset.has_run(run_key) and getattr(field, "document_type", None) is fo.Classification:
        dataset.delete_frame_field(path.split(".", 1)[1])

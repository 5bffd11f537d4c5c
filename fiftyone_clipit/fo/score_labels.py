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
)
from fiftyone_clipit.fo.scoring import DEFAULT_SCORE_FIELD, score_label_fields, score_run_key, scored_at_steps
from fiftyone_clipit.shots import frame_scores_array


def score_label(query: str | list[str] | None, score_field: str) -> str:
    """The label a score run's frames carry: its query (or "generic") and the field, e.g.
    "a person [clipit_score]", so labels of two runs never read alike on a tile."""
    text = "; ".join(query) if isinstance(query, list) else str(query or "generic")
    return f"{text} [{score_field}]"


def label_scores(samples: foc.SampleCollection, score_field: str = DEFAULT_SCORE_FIELD) -> int:
    """Writes `frames.<score_field>_label` (Classifications, one per scored frame: label = the
    query and the score field it came from, e.g. "a person [clipit_score]", so labels of two runs
    never read alike on a tile; confidence = the score) and `<score_field>_max` /
    `<score_field>_mean` per video, from `frames.<score_field>` (scores written at the sampled
    steps are labelled there, and the mean is over every frame, as if each had been written). A
    labelled video's frames without a score lose an earlier query's label, so a re-score
    replaces the old query's labels. Videos are read and written a run of ~20,000 frames at a
    time. A single-Classification label field of an earlier version, written by the same score
    run, is replaced.

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
    label = score_label(query, score_field)
    path, n_labelled = f"frames.{label_field}", 0
    at_steps = scored_at_steps(dataset, score_field)
    for part in frame_batches(samples):
        labels, maxima, means = {}, {}, {}
        view = samples.select(part, ordered=True)
        fields = ["id", "metadata.total_frame_count", "frames.frame_number", f"frames.{score_field}"]
        for sample_id, n_frames, numbers, scores in zip(*view.values(fields)):
            pairs = [(number, float(score)) for number, score in zip(numbers, scores) if score is not None]
            if not pairs:
                continue
            labels[sample_id] = dict.fromkeys(numbers)  # frames scored no more: no label of an older query
            labels[sample_id].update({
                number: fo.Classifications(classifications=[fo.Classification(label=label, confidence=score)])
                for number, score in pairs
            })
            values = np.array([score for _, score in pairs])
            if at_steps and n_frames:  # the mean over every frame, as if each had been written
                values = frame_scores_array(numbers, scores, n_frames, score_field, steps=True)
            maxima[sample_id], means[sample_id] = float(values.max()), float(values.mean())
        if labels:
            # declared together: new fields wait once for concurrent schema saves, not once each
            batch = {path: labels, max_field: maxima, mean_field: means}
            write_declared(dataset, list(batch), lambda: _write(dataset, batch))  # noqa: B023 (called at once)
            n_labelled += len(labels)
    return n_labelled


def _write(dataset: fo.Dataset, values_by_field: dict[str, dict]) -> None:
    """One bulk write per field, values keyed by sample id (a frame field's by frame number)."""
    for path, values in values_by_field.items():
        retry_frame_inserts(lambda: dataset.set_values(path, values, key_field="id"))  # noqa: B023 (called at once)


def _drop_single_label_field(dataset: fo.Dataset, path: str, run_key: str) -> None:
    """Deletes `path` when it is the single-Classification score label an earlier version wrote."""
    field = dataset.get_field(path)
    if field is not None and dataset.has_run(run_key) and getattr(field, "document_type", None) is fo.Classification:
        dataset.delete_frame_field(path.split(".", 1)[1])

"""Ground truth on a FiftyOne video dataset: published annotations or your own, in fields.

The readers (``fiftyone_clipit.readers``) give the annotations of TVSum, SumMe, QFVS and
QVHighlights without the videos; when you have the videos, these functions put the annotations on
the matching samples (file stem = the dataset's video name) so that ``evaluate_summary`` and the
App can use them:

- per-frame user scores: ``frames.<user_scores_field>`` (one float per user) and
  ``frames.<gt_score_field>`` (the consensus score);
- user summaries: ``<summaries_field>`` TemporalDetections, one detection per continuous run of a
  user's selection, label ``"user <k>"`` and attribute ``user=<k>`` (1-based), so one field holds
  every user and ``evaluate_summary`` scores each user separately;
- the query: ``<query_field>`` (a string), with QVHighlights saliency and QFVS shot concepts.

Your own labels go through the same route: build :class:`VideoAnnotation` objects (name = the file
stem) and call :func:`add_video_annotations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.defaults import DEFAULT_CONCEPTS_FIELD, FALLBACK_FRAME_RATE
from fiftyone_clipit.errors import ItemFailure
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    check_field_type,
    finish,
    iterate,
    samples_info,
    video_collection,
    write_in_chunks,
)
from fiftyone_clipit.protocols import shot_frame_range
from fiftyone_clipit.readers import (
    QFVS_SHOT_SECONDS,
    HighlightQuery,
    QFVSVideo,
    VideoAnnotation,
)

DEFAULT_USER_SCORES_FIELD = "gt_user_scores"
DEFAULT_GT_SCORE_FIELD = "gt_score"
DEFAULT_USER_SUMMARIES_FIELD = "gt_user_summaries"
DEFAULT_QUERY_FIELD = "query"
DEFAULT_SALIENCY_FIELD = "gt_saliency"
DEFAULT_WINDOWS_FIELD = "gt_windows"
DEFAULT_ORACLE_FIELD = "gt_oracle"
DEFAULT_QFVS_SUMMARIES_FIELD = "gt_qfvs_user_summaries"


@dataclass
class GroundTruthReport:
    """What an ``add_*_annotations`` call wrote: labelled samples, annotations with no video."""

    n_labelled: int = 0
    unmatched: list[str] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)


def mask_to_detections(mask: np.ndarray, label: str, **attributes) -> list[fo.TemporalDetection]:
    """One TemporalDetection per continuous run of True in a per-frame mask (frame numbers 1-based).

    Args:
        mask: ``(n_frames,)`` bool.
        label: the detections' label.
        **attributes: extra attributes of every detection (e.g. ``user=3``).
    """
    padded = np.r_[False, np.asarray(mask, dtype=bool), False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [
        fo.TemporalDetection(label=label, support=[int(start) + 1, int(stop)], **attributes)
        for start, stop in zip(edges[::2], edges[1::2])
    ]


def add_video_annotations(
    samples: foc.SampleCollection,
    annotations: Sequence[VideoAnnotation],
    user_scores_field: str = DEFAULT_USER_SCORES_FIELD,
    gt_score_field: str = DEFAULT_GT_SCORE_FIELD,
    summaries_field: str = DEFAULT_USER_SUMMARIES_FIELD,
    skip_failures: bool = False,
    progress: Progress = None,
) -> GroundTruthReport:
    """Writes TVSum / SumMe-style annotations (or your own) onto the samples of the same videos.

    A sample matches the annotation whose ``name`` is its file's stem. Its frame count must equal
    the annotation's (a different encode of the video would misalign every frame).

    Args:
        samples: a video dataset or view with metadata (``add_videos`` reads it).
        annotations: the annotations, e.g. ``read_tvsum()``.
        user_scores_field ("gt_user_scores"): frame field, one float per user.
        gt_score_field ("gt_score"): frame field, the consensus score.
        summaries_field ("gt_user_summaries"): sample field, TemporalDetections of every user's
            summary (not written when the annotations have none).
        skip_failures (False): log mismatching videos instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Returns:
        A GroundTruthReport; ``unmatched`` names the annotations with no video in ``samples``.

    Raises:
        ClipItError: not videos, a bad field name, or a field of another type in the way.
        BatchError: some videos did not match their annotation (the others were written).
    """
    samples = video_collection(samples)
    for name, ftype, doc in (
        (user_scores_field, fo.ListField, None),
        (gt_score_field, fo.FloatField, None),
    ):
        check_field_name(name, "ground-truth field")
        check_field_type(samples, f"frames.{name}", ftype, doc)
    check_field_name(summaries_field, "ground-truth field")
    check_field_type(samples, summaries_field, fo.EmbeddedDocumentField, fo.TemporalDetections)
    by_name = {annotation.name: annotation for annotation in annotations}
    report = GroundTruthReport()
    user_scores, gt_scores, summaries = {}, {}, {}
    matched = set()
    for sample_id, path, meta in iterate(samples_info(samples), progress, "Adding ground truth"):
        annotation = by_name.get(Path(path).stem)
        if annotation is None:
            continue
        matched.add(annotation.name)
        n_frames = meta.total_frame_count if meta is not None else None
        if n_frames != annotation.n_frames:
            report.failures.append(
                ItemFailure(path, f"has {n_frames} frames but annotation '{annotation.name}' has "
                            f"{annotation.n_frames}; use the dataset's own copy of the video")
            )
            continue
        frame_numbers = range(1, annotation.n_frames + 1)
        user_scores[sample_id] = dict(zip(frame_numbers, annotation.user_scores.T.tolist()))
        gt_scores[sample_id] = dict(zip(frame_numbers, annotation.gt_score.tolist()))
        if annotation.user_summaries is not None:
            summaries[sample_id] = fo.TemporalDetections(
                detections=[
                    detection
                    for user, mask in enumerate(annotation.user_summaries, start=1)
                    for detection in mask_to_detections(mask, f"user {user}", user=user)
                ]
            )
        report.n_labelled += 1
    for path_name, values in (
        (f"frames.{user_scores_field}", user_scores),
        (f"frames.{gt_score_field}", gt_scores),
        (summaries_field, summaries),
    ):
        if values:
            write_in_chunks(samples, path_name, values, chunk=4)
    report.unmatched = sorted(set(by_name) - matched)
    finish("Adding ground truth", report.failures, report.n_labelled, skip_failures)
    return report


def add_highlight_annotations(
    samples: foc.SampleCollection,
    queries: Sequence[HighlightQuery],
    query_field: str = DEFAULT_QUERY_FIELD,
    saliency_field: str = DEFAULT_SALIENCY_FIELD,
    windows_field: str = DEFAULT_WINDOWS_FIELD,
    progress: Progress = None,
) -> GroundTruthReport:
    """Writes QVHighlights queries onto the samples whose file stem is the query's ``vid``.

    Fields: ``<query_field>`` the query text, ``<saliency_field>`` the 3 annotators' scores of
    every 2-second clip (a list of ``[a, b, c]``, 0 for unlisted clips) and ``<windows_field>``
    the relevant windows as TemporalDetections (label = the query).

    Returns:
        A GroundTruthReport; ``unmatched`` names the ``vid`` values with no sample.

    Raises:
        ClipItError: not videos, a bad field name, or a field of another type in the way.
    """
    samples = video_collection(samples)
    for name in (query_field, saliency_field, windows_field):
        check_field_name(name, "ground-truth field")
    check_field_type(samples, query_field, fo.StringField)
    check_field_type(samples, saliency_field, fo.ListField)
    check_field_type(samples, windows_field, fo.EmbeddedDocumentField, fo.TemporalDetections)
    by_vid = {query.vid: query for query in queries}
    report = GroundTruthReport()
    texts, saliency, windows = {}, {}, {}
    matched = set()
    for sample_id, path, meta in iterate(samples_info(samples), progress, "Adding ground truth"):
        query = by_vid.get(Path(path).stem)
        if query is None:
            continue
        matched.add(query.vid)
        rate = (meta.frame_rate if meta is not None else None) or FALLBACK_FRAME_RATE
        n_frames = (meta.total_frame_count if meta is not None else None) or round(query.duration * rate)
        texts[sample_id] = query.query
        saliency[sample_id] = query.saliency.tolist()
        windows[sample_id] = fo.TemporalDetections(
            detections=[
                fo.TemporalDetection(
                    label=query.query,
                    support=[min(round(start * rate) + 1, n_frames), max(1, min(round(end * rate), n_frames))],
                )
                for start, end in query.relevant_windows
            ]
        )
        report.n_labelled += 1
    for name, values in ((query_field, texts), (saliency_field, saliency), (windows_field, windows)):
        if values:
            write_in_chunks(samples, name, values)
    report.unmatched = sorted(set(by_vid) - matched)
    return report


def add_qfvs_annotations(
    samples: foc.SampleCollection,
    videos: Sequence[QFVSVideo],
    query_field: str = DEFAULT_QUERY_FIELD,
    concepts_field: str = DEFAULT_CONCEPTS_FIELD,
    oracle_field: str = DEFAULT_ORACLE_FIELD,
    summaries_field: str = DEFAULT_QFVS_SUMMARIES_FIELD,
    skip_failures: bool = False,
    progress: Progress = None,
) -> GroundTruthReport:
    """Writes QFVS shot concepts and summaries onto the samples of P01-P04 (file stem = video name).

    Each sample is one (video, query) pair: its ``<query_field>`` names the two concepts
    (``"Book Street"``, ``"Book_Street"``; any case); a sample without a query gets the
    query-free (global) summaries. Shots are 5 seconds; ``<concepts_field>`` lists each shot's
    concepts, ``<oracle_field>`` and ``<summaries_field>`` (attribute ``user``) hold the chosen
    shots as TemporalDetections. Shots past the end of the video are left out.

    Raises:
        ClipItError: not videos, a bad field name, or a field of another type in the way.
        BatchError: a sample's query is not one of its video's 45 (the others were written).
    """
    samples = video_collection(samples)
    for name in (concepts_field, oracle_field, summaries_field):
        check_field_name(name, "ground-truth field")
    check_field_type(samples, concepts_field, fo.ListField)
    for name in (oracle_field, summaries_field):
        check_field_type(samples, name, fo.EmbeddedDocumentField, fo.TemporalDetections)
    by_name = {video.name: video for video in videos}
    report = GroundTruthReport()
    concepts, oracles, summaries = {}, {}, {}
    has_query = samples.get_field(query_field) is not None
    rows = list(zip(*samples.values(["id", "filepath", "metadata", query_field]))) if has_query else [
        (i, p, m, None) for i, p, m in samples_info(samples)
    ]
    matched = set()
    for sample_id, path, meta, query_text in iterate(rows, progress, "Adding ground truth"):
        video = by_name.get(Path(path).stem)
        if video is None:
            continue
        matched.add(video.name)
        rate = (meta.frame_rate if meta is not None else None) or FALLBACK_FRAME_RATE
        n_frames = (meta.total_frame_count if meta is not None else None) or 0
        n_shots = min(video.shot_concepts.shape[0], int(np.ceil(n_frames / (QFVS_SHOT_SECONDS * rate))))
        if query_text:
            wanted = _concept_key(query_text)
            found = [q for q in video.queries if _concept_key(" ".join(q.concepts)) == wanted]
            if not found:
                some = ", ".join(q.text for q in video.queries[:5])
                report.failures.append(
                    ItemFailure(path, f"query '{query_text}' is not a QFVS query of {video.name} (e.g. {some}, ...)")
                )
                continue
            oracle, users = found[0].oracle, found[0].user_summaries
        else:
            oracle, users = video.global_oracle, video.global_user_summaries
        concepts[sample_id] = [
            [video.dictionary[k] for k in np.flatnonzero(row)] for row in video.shot_concepts[:n_shots]
        ]
        oracles[sample_id] = fo.TemporalDetections(detections=_shot_detections(oracle, n_shots, rate, n_frames, "oracle"))
        summaries[sample_id] = fo.TemporalDetections(
            detections=[
                detection
                for user, shots in enumerate(users, start=1)
                for detection in _shot_detections(shots, n_shots, rate, n_frames, f"user {user}", user=user)
            ]
        )
        report.n_labelled += 1
    for name, values in ((concepts_field, concepts), (oracle_field, oracles), (summaries_field, summaries)):
        if values:
            write_in_chunks(samples, name, values)
    report.unmatched = sorted(set(by_name) - matched)
    finish("Adding ground truth", report.failures, report.n_labelled, skip_failures)
    return report


def _shot_detections(
    shots: np.ndarray, n_shots: int, rate: float, n_frames: int, label: str, **attributes
) -> list[fo.TemporalDetection]:
    """The chosen QFVS shots inside the video as TemporalDetections, one per shot."""
    return [
        fo.TemporalDetection(
            label=label, support=list(shot_frame_range(int(s), rate, n_frames, QFVS_SHOT_SECONDS)), **attributes
        )
        for s in sorted(set(int(s) for s in shots))
        if s < n_shots
    ]


def _concept_key(text: str) -> tuple[str, ...]:
    """A query's concepts, case-folded and split on spaces / underscores."""
    return tuple(word.lower() for word in re.split(r"[\s_]+", text.strip()) if word)


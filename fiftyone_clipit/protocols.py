"""Per-video figures of each published evaluation protocol, from plain arrays.

TVSum / SumMe keyshot F1 (avg or max over users) and rank correlations, QFVS's concept-IoU
matching over fixed-length shots, QVHighlights' HIT@1 and AP over 2-second clips. FiftyOne's
``evaluate_summary`` turns each sample's fields into arrays (``fiftyone_clipit.fo.protocols``) and
calls these, so the numbers are those of the published protocols, testable without a database.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.metrics import (
    F1_MODES,
    highlight_hit_at_1,
    highlight_map,
    qfvs_f1,
    rank_correlation,
    summary_precision_recall_f1,
)
from fiftyone_clipit.summary import generate_summary, uniform_change_points

#: how per-user F1s combine by default: TVSum averages over users, SumMe keeps the best user.
DEFAULT_MODES = {"tvsum": "avg", "summe": "max", "qfvs": "avg", "qvhighlights": "avg"}
HIGHLIGHT_THRESHOLDS = {"fair": 2, "good": 3, "verygood": 4}
F1_METRICS = ("precision", "recall", "f1")
RANK_METRICS = ("kendall", "spearman")
HIGHLIGHT_METRICS = tuple(f"{kind}_{name}" for kind in ("hit1", "ap") for name in HIGHLIGHT_THRESHOLDS)


def protocol_metrics(protocol: str, with_ranks: bool) -> tuple[str, ...]:
    """The per-video figures a protocol writes (each one becomes a sample field ``<key>_<name>``)."""
    if protocol == "qvhighlights":
        return HIGHLIGHT_METRICS
    if protocol in ("tvsum", "summe") and with_ranks:
        return F1_METRICS + RANK_METRICS
    return F1_METRICS


def keyshot_figures(machine: np.ndarray, users: np.ndarray, mode: str) -> dict[str, float]:
    """Precision, recall and F1 against each user, combined by ``mode`` (avg: TVSum, max: SumMe).

    With ``"max"``, precision and recall are those of the user with the best F1.
    """
    if mode not in F1_MODES:
        raise ValueError(f"Unknown mode {mode!r}. Valid modes are {list(F1_MODES)}")
    per_user = np.array([summary_precision_recall_f1(machine, user) for user in users])
    if mode == "avg":
        precision, recall, f1 = per_user.mean(axis=0)
    else:
        precision, recall, f1 = per_user[int(per_user[:, 2].argmax())]
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def rank_figures(pred_scores: np.ndarray, user_scores: np.ndarray) -> dict[str, float]:
    """Kendall tau-b and Spearman rho of the predicted frame scores against each user, averaged."""
    return {method: rank_correlation(pred_scores, user_scores, method) for method in RANK_METRICS}


def shot_frame_range(shot: int, rate: float, n_frames: int, shot_seconds: float) -> tuple[int, int]:
    """Inclusive 1-based frame numbers of fixed-length shot ``shot`` (0-based) of a video."""
    first = round(shot * shot_seconds * rate) + 1
    last = min(round((shot + 1) * shot_seconds * rate), n_frames)
    return first, last


def frame_shots(n_frames: int, rate: float, shot_seconds: float) -> np.ndarray:
    """The 0-based fixed-length shot of every frame, ``(n_frames,)`` int64."""
    n_shots = max(1, int(np.ceil(n_frames / (shot_seconds * rate))))
    shots = np.zeros(n_frames, dtype=np.int64)
    for shot in range(n_shots):
        first, last = shot_frame_range(shot, rate, n_frames, shot_seconds)
        shots[first - 1 : last] = shot
    return shots


def selected_shots(mask: np.ndarray, shots_of_frames: np.ndarray) -> np.ndarray:
    """Shots with at least half of their frames in a summary mask (whole chosen shots always are)."""
    n_shots = int(shots_of_frames.max()) + 1
    chosen = np.bincount(shots_of_frames, weights=mask.astype(np.float64), minlength=n_shots)
    total = np.bincount(shots_of_frames, minlength=n_shots)
    return np.flatnonzero((chosen > 0) & (2 * chosen >= total))


def concepts_matrix(shot_concepts: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-shot concept lists as a bool matrix ``(n_shots, n_concepts)`` over the concepts seen."""
    vocabulary = sorted({c for concepts in shot_concepts for c in concepts or []})
    index = {c: i for i, c in enumerate(vocabulary)}
    matrix = np.zeros((len(shot_concepts), max(len(vocabulary), 1)), dtype=bool)
    for shot, concepts in enumerate(shot_concepts):
        for concept in concepts or []:
            matrix[shot, index[concept]] = True
    return matrix


def qfvs_figures(
    machine: np.ndarray,
    users: np.ndarray,
    shot_concepts: Sequence[Sequence[str]],
    rate: float,
    shot_seconds: float,
) -> dict[str, float]:
    """QFVS precision, recall and F1 of a frame summary against each ground-truth summary, averaged.

    Frame summaries become shot summaries (a shot counts when at least half its frames are chosen);
    shots are compared by the IoU of their concepts, matched by maximum-weight bipartite matching.
    """
    concepts = concepts_matrix(shot_concepts)
    shots = np.minimum(frame_shots(machine.size, rate, shot_seconds), concepts.shape[0] - 1)
    pred = selected_shots(machine, shots)
    per_user = np.array([qfvs_f1(pred, selected_shots(user, shots), concepts) for user in users])
    precision, recall, f1 = per_user.mean(axis=0)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def clip_scores(frame_scores: np.ndarray, rate: float, n_clips: int, clip_seconds: float) -> np.ndarray:
    """Mean frame score of each clip ``[k clip_seconds, (k + 1) clip_seconds)``; ``(n_clips,)``.

    A clip with no frame (past the end of the video) scores the lowest frame score.
    """
    clip_of_frame = (np.arange(frame_scores.size) / rate // clip_seconds).astype(np.int64)
    inside = clip_of_frame < n_clips
    sums = np.bincount(clip_of_frame[inside], weights=frame_scores[inside], minlength=n_clips)
    counts = np.bincount(clip_of_frame[inside], minlength=n_clips)
    return np.where(counts > 0, sums / np.maximum(counts, 1), frame_scores.min())


def highlight_figures(
    frame_scores: np.ndarray, saliency: np.ndarray, rate: float, clip_seconds: float
) -> dict[str, float]:
    """HIT@1 and average precision (mean over annotators) of one query at thresholds 2 / 3 / 4."""
    scores = clip_scores(frame_scores, rate, saliency.shape[0], clip_seconds)
    figures = {}
    for name, threshold in HIGHLIGHT_THRESHOLDS.items():
        figures[f"hit1_{name}"] = highlight_hit_at_1([scores], [saliency], threshold)
        figures[f"ap_{name}"] = highlight_map([scores], [saliency], threshold)
    return figures


def importance_keyshot_summary(
    numbers: Sequence[int] | None, values: Sequence | None, n_frames: int, rate: float, name: str, proportion: float
) -> np.ndarray:
    """The protocol's keyshot summary of per-frame importance (2 s shots), as one user (1, n_frames).

    `numbers` / `values` are a frame field's frame numbers and values (`name`, for the error);
    training on per-frame importance targets this summary.

    Raises:
        ClipItError: the field has no value on any frame.
    """
    importance = np.full(n_frames, np.nan)
    for number, value in zip(numbers or [], values or []):
        if value is not None and 1 <= number <= n_frames:
            importance[number - 1] = float(value)
    if np.isnan(importance).all():
        raise ClipItError(f"no values in 'frames.{name}'")
    importance = np.nan_to_num(importance, nan=float(np.nanmin(importance)))
    shots = uniform_change_points(n_frames, max(1, round(2.0 * rate)))
    lengths = shots[:, 1] - shots[:, 0] + 1
    return generate_summary(importance, shots, n_frames, lengths, np.arange(n_frames), proportion)[None, :]

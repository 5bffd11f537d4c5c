"""Summary metrics as published papers compute them.

Keyshot F1 follows the TVSum / SumMe protocol (DESIGN.md, "Evaluation protocols", steps 5-6); rank
correlation follows Otani et al. 2019 (Kendall tau-b and Spearman rho against each user, averaged
over users); ``qfvs_f1`` the QFVS concept-IoU matching (Sharghi et al. 2017); ``highlight_*`` the
QVHighlights saliency metrics (Lei et al. 2021, Moment-DETR's evaluation). Pure numpy / scipy: no FiftyOne, no torch. Nothing is padded or truncated: a length
mismatch is an error, because a silently cropped summary gives a wrong number that looks right.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from fiftyone_clipit.options import F1_MODES

CORRELATION_METHODS = ("kendall", "spearman")


def summary_precision_recall_f1(
    machine_summary: np.ndarray, user_summary: np.ndarray
) -> tuple[float, float, float]:
    """Compare one machine summary with one user summary, frame by frame.

    precision = overlap / |machine|, recall = overlap / |user|, F1 = 2PR / (P + R). An empty
    summary on either side gives 0 for the ratio it would divide (never NaN), and F1 is 0 when
    P + R is 0.

    Args:
        machine_summary: ``(n_frames,)`` mask; values > 0 count as selected.
        user_summary: ``(n_frames,)`` mask; values > 0 count as selected.

    Returns:
        ``(precision, recall, f1)``, each in ``[0, 1]``.

    Raises:
        ValueError: if either input is not 1-D, holds NaN, or the lengths differ.
    """
    machine = _as_mask(machine_summary, "machine_summary", ndims=(1,))
    user = _as_mask(user_summary, "user_summary", ndims=(1,))
    _check_same_length(machine.shape[-1], user.shape[-1], "machine_summary", "user_summary")
    overlap = int(np.count_nonzero(machine & user))
    n_machine, n_user = int(machine.sum()), int(user.sum())
    precision = overlap / n_machine if n_machine else 0.0
    recall = overlap / n_user if n_user else 0.0
    if precision + recall == 0:
        return precision, recall, 0.0
    return precision, recall, 2 * precision * recall / (precision + recall)


def summary_f1(
    machine_summary: np.ndarray, user_summaries: np.ndarray, mode: str = "avg"
) -> float:
    """Keyshot F1 of a machine summary against several users' summaries.

    Args:
        machine_summary: ``(n_frames,)`` mask; values > 0 count as selected.
        user_summaries: ``(n_users, n_frames)`` masks, or ``(n_frames,)`` for one user.
        mode ("avg"): how the per-user F1s combine: ``"avg"`` (TVSum) or ``"max"`` (SumMe).
            Pass it explicitly: the two datasets' published numbers are not comparable otherwise.

    Returns:
        F1 in ``[0, 1]``; 0.0 for an empty machine summary.

    Raises:
        ValueError: if ``mode`` is unknown, there are no users, an input holds NaN, or the machine
            summary and the user summaries differ in length.
    """
    if mode not in F1_MODES:
        raise ValueError(f"Unknown mode {mode!r}. Valid modes are {list(F1_MODES)}")
    machine = _as_mask(machine_summary, "machine_summary", ndims=(1,))
    users = np.atleast_2d(_as_mask(user_summaries, "user_summaries", ndims=(1, 2)))
    _check_same_length(machine.size, users.shape[1], "machine_summary", "user_summaries")
    if users.shape[0] == 0:
        raise ValueError("user_summaries has no users; at least one row is needed")
    f1s = [summary_precision_recall_f1(machine, user)[2] for user in users]
    return float(np.mean(f1s) if mode == "avg" else np.max(f1s))


def rank_correlation(
    pred_scores: np.ndarray, user_scores: np.ndarray, method: str = "kendall"
) -> float:
    """Rank correlation of predicted frame scores with each user's scores, averaged over users.

    Kendall uses ``scipy.stats.kendalltau`` (tau-b, which corrects for ties: user scores are often
    tied); Spearman uses ``scipy.stats.spearmanr``. When either side is constant scipy returns NaN;
    such a user counts as 0.0 (no correlation), so the average stays a number.

    Args:
        pred_scores: ``(n_frames,)`` predicted scores.
        user_scores: ``(n_users, n_frames)`` user scores, or ``(n_frames,)`` for one user.
        method ("kendall"): ``"kendall"`` or ``"spearman"``.

    Returns:
        The mean correlation over users, in ``[-1, 1]``.

    Raises:
        ValueError: if ``method`` is unknown, there are no users, an input holds NaN or infinity,
            or the lengths differ.
    """
    _check_method(method)
    pred = _as_finite(pred_scores, "pred_scores", ndims=(1,))
    users = np.atleast_2d(_as_finite(user_scores, "user_scores", ndims=(1, 2)))
    _check_same_length(pred.size, users.shape[1], "pred_scores", "user_scores")
    if users.shape[0] == 0:
        raise ValueError("user_scores has no users; at least one row is needed")
    values = [_scipy_correlation(pred, user, method) for user in users]  # NaN: constant input
    return float(np.mean(np.nan_to_num(values, nan=0.0)))


def pairwise_rank_correlation(scores: np.ndarray, method: str = "kendall") -> np.ndarray:
    """Rank correlation of every pair of rows: Kendall tau-b or Spearman rho, as scipy computes them.

    Rows with few distinct values (user scores on a 1-5 scale) are correlated through their joint
    contingency table, which gives scipy's tau-b / rho exactly (up to float rounding) in a fraction
    of the time; rows with many distinct values go to ``scipy.stats``. A pair where either row is
    constant has no defined correlation and gets 0.0, as in :func:`rank_correlation`.

    Args:
        scores: ``(n_rows, n_frames)`` finite scores, e.g. one row per user.
        method ("kendall"): ``"kendall"`` or ``"spearman"``.

    Returns:
        ``(n_rows, n_rows)`` symmetric float64 matrix with 1.0 on the diagonal.

    Raises:
        ValueError: if ``method`` is unknown, or ``scores`` is not 2-D or holds NaN / infinity.
    """
    _check_method(method)
    rows = _as_finite(scores, "scores", ndims=(2,))
    coded = [np.unique(row, return_inverse=True) for row in rows]
    matrix = np.eye(len(rows))
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            (values_a, codes_a), (values_b, codes_b) = coded[a], coded[b]
            if values_a.size * values_b.size <= 4 * rows.shape[1]:
                table = np.bincount(
                    codes_a * values_b.size + codes_b, minlength=values_a.size * values_b.size
                ).reshape(values_a.size, values_b.size)
                value = _table_correlation(table.astype(np.float64), method)
            else:
                value = _scipy_correlation(rows[a], rows[b], method)
            matrix[a, b] = matrix[b, a] = 0.0 if np.isnan(value) else value
    return matrix


def human_agreement(user_scores: np.ndarray, method: str = "kendall") -> float:
    """How well users agree: each user's scores as the prediction against every other user.

    Otani et al. (CVPR 2019) report this on TVSum as the reference a model's correlation is read
    against (Kendall tau 0.177, Spearman rho 0.204, averaged over the 50 videos): per video, the
    mean over users of the user's mean correlation with the other users.

    Args:
        user_scores: ``(n_users, n_frames)`` per-frame scores, ``n_users >= 2``.
        method ("kendall"): ``"kendall"`` or ``"spearman"``.

    Returns:
        The mean leave-one-out correlation for this video, in ``[-1, 1]``.

    Raises:
        ValueError: fewer than two users, or the errors of :func:`pairwise_rank_correlation`.
    """
    matrix = pairwise_rank_correlation(user_scores, method)
    n_users = matrix.shape[0]
    if n_users < 2:
        raise ValueError(f"human agreement needs at least 2 users; got {n_users}")
    return float(((matrix.sum(axis=1) - 1.0) / (n_users - 1)).mean())


def leave_one_out_f1(user_summaries: np.ndarray, mode: str = "max") -> float:
    """Human F1: each user's summary scored against the other users' summaries, averaged over users.

    Args:
        user_summaries: ``(n_users, n_frames)`` masks, ``n_users >= 2``.
        mode ("max"): how each user's F1s against the others combine (``"max"``: SumMe).

    Returns:
        The mean over users, in ``[0, 1]``.

    Raises:
        ValueError: fewer than two users, or the errors of :func:`summary_f1`.
    """
    users = _as_mask(user_summaries, "user_summaries", ndims=(2,))
    if users.shape[0] < 2:
        raise ValueError(f"leave-one-out F1 needs at least 2 users; got {users.shape[0]}")
    others = [np.delete(users, u, axis=0) for u in range(users.shape[0])]
    return float(np.mean([summary_f1(user, rest, mode) for user, rest in zip(users, others)]))


def concept_iou(concepts_a: np.ndarray, concepts_b: np.ndarray) -> np.ndarray:
    """IoU of the concept sets of every pair of shots (0 where both sets are empty).

    Args:
        concepts_a: ``(n_a, n_concepts)`` bool, True where a shot shows a concept.
        concepts_b: ``(n_b, n_concepts)`` bool.

    Returns:
        ``(n_a, n_b)`` float64 similarities in ``[0, 1]``.
    """
    a = np.asarray(concepts_a, dtype=bool).astype(np.int64)
    b = np.asarray(concepts_b, dtype=bool).astype(np.int64)
    intersection = a @ b.T
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros(intersection.shape), where=union > 0)


def qfvs_f1(
    pred_shots: np.ndarray, gt_shots: np.ndarray, shot_concepts: np.ndarray
) -> tuple[float, float, float]:
    """Semantic precision, recall and F1 of a query-focused summary (Sharghi et al., CVPR 2017).

    Shots are compared by the IoU of their concept sets; a maximum-weight bipartite matching
    (``scipy.optimize.linear_sum_assignment``) pairs predicted with ground-truth shots, and
    precision = matched weight / |predicted|, recall = matched weight / |ground truth|, as the
    dataset's own MATLAB evaluation does. An empty summary on either side scores 0, never NaN.

    Args:
        pred_shots: ``(n_pred,)`` 0-based shot indices of the predicted summary.
        gt_shots: ``(n_gt,)`` 0-based shot indices of the ground-truth summary.
        shot_concepts: ``(n_shots, n_concepts)`` bool concept tags of every shot of the video.

    Returns:
        ``(precision, recall, f1)``, each in ``[0, 1]``.

    Raises:
        ValueError: ``shot_concepts`` is not 2-D, or a shot index is not an integer in
            ``[0, n_shots)``.
    """
    concepts = np.asarray(shot_concepts)
    if concepts.ndim != 2:
        raise ValueError(f"shot_concepts must be 2-D (n_shots, n_concepts); got shape {concepts.shape}")
    pred = _as_shot_indices(pred_shots, "pred_shots", concepts.shape[0])
    gt = _as_shot_indices(gt_shots, "gt_shots", concepts.shape[0])
    if pred.size == 0 or gt.size == 0:
        return 0.0, 0.0, 0.0
    similarity = concept_iou(concepts[pred], concepts[gt])
    rows, cols = optimize.linear_sum_assignment(similarity, maximize=True)
    weight = float(similarity[rows, cols].sum())
    precision, recall = weight / pred.size, weight / gt.size
    if precision + recall == 0:
        return precision, recall, 0.0
    return precision, recall, 2 * precision * recall / (precision + recall)


def highlight_hit_at_1(
    pred_scores: Sequence[np.ndarray], saliency_scores: Sequence[np.ndarray], threshold: int = 4
) -> float:
    """QVHighlights HIT@1: how often the top-scored clip is positive for at least one annotator.

    A clip is positive for an annotator when their saliency score reaches ``threshold`` (2 Fair,
    3 Good, 4 Very Good: the headline). Ties in the prediction go to the first clip (as
    ``np.argmax`` in the Moment-DETR evaluation).

    Args:
        pred_scores: per query, ``(n_clips,)`` predicted clip scores.
        saliency_scores: per query, ``(n_clips, n_annotators)`` scores 0-4 (0 for unlisted clips).
        threshold (4): the least score that makes a clip positive.

    Returns:
        The mean over queries, in ``[0, 1]``.

    Raises:
        ValueError: no queries, different numbers of queries, a clip count mismatch, NaN scores.
    """
    hits = [
        float(np.any(saliency[int(np.argmax(pred))] >= threshold))
        for pred, saliency in _highlight_pairs(pred_scores, saliency_scores)
    ]
    return float(np.mean(hits))


def highlight_map(
    pred_scores: Sequence[np.ndarray], saliency_scores: Sequence[np.ndarray], threshold: int = 4
) -> float:
    """QVHighlights highlight mAP: average precision per annotator, averaged over annotators, queries.

    Average precision is the interpolated AP of the Moment-DETR / video2gif evaluation: precision
    made non-increasing in recall, averaged at every recall level reached; an annotator with no
    positive clip scores 0 and one with only positive clips scores 1.

    Args:
        pred_scores: per query, ``(n_clips,)`` predicted clip scores.
        saliency_scores: per query, ``(n_clips, n_annotators)`` scores 0-4 (0 for unlisted clips).
        threshold (4): the least score that makes a clip positive.

    Returns:
        The mean average precision, in ``[0, 1]``.

    Raises:
        ValueError: as :func:`highlight_hit_at_1`.
    """
    per_query = [
        np.mean([average_precision(saliency[:, k] >= threshold, pred) for k in range(saliency.shape[1])])
        for pred, saliency in _highlight_pairs(pred_scores, saliency_scores)
    ]
    return float(np.mean(per_query))


def average_precision(relevant: np.ndarray, scores: np.ndarray) -> float:
    """Interpolated average precision of ``scores`` ranking the ``relevant`` items first.

    Tied scores share one threshold (as ``sklearn.metrics.precision_recall_curve``). Precision is
    taken as its running maximum from full recall downward and averaged over the points where
    recall changes (recall compared in float32, as the reference code does).

    Args:
        relevant: ``(n,)`` bool, True for positive items.
        scores: ``(n,)`` finite scores, higher = more likely positive.

    Returns:
        AP in ``[0, 1]``: 0 when nothing is relevant, 1 when everything is.
    """
    relevant = np.asarray(relevant, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_relevant = int(relevant.sum())
    if n_relevant == 0:
        return 0.0
    if n_relevant == relevant.size:
        return 1.0
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], relevant[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_pos = np.cumsum(hits)[last_of_threshold]
    precision = true_pos / (last_of_threshold + 1)
    recall = (true_pos / n_relevant).astype(np.float32)
    precision = np.maximum.accumulate(np.r_[precision[::-1], 1.0])
    recall = np.r_[recall[::-1], np.float32(0.0)]
    return float(precision[np.flatnonzero(np.diff(recall))].mean())


def _check_method(method: str) -> None:
    """Refuse an unknown correlation method, listing the valid ones."""
    if method not in CORRELATION_METHODS:
        raise ValueError(
            f"Unknown method {method!r}. Valid methods are {list(CORRELATION_METHODS)}"
        )


def _scipy_correlation(a: np.ndarray, b: np.ndarray, method: str) -> float:
    """scipy's tau-b or rho of two rows; NaN (scipy's answer) when either row is constant."""
    correlate = stats.kendalltau if method == "kendall" else stats.spearmanr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(correlate(a, b)[0])


def _table_correlation(table: np.ndarray, method: str) -> float:
    """Kendall tau-b or Spearman rho from a contingency table of two rows' distinct values.

    ``table[i, j]`` counts the frames where row a holds its i-th smallest value and row b its j-th.
    Returns NaN when either row is constant (scipy's answer too).
    """
    n = table.sum()
    row_counts, col_counts = table.sum(axis=1), table.sum(axis=0)
    if method == "kendall":
        # after[i, j]: frames with a larger value in both rows; before_b: larger in a, smaller in b
        after = np.zeros_like(table)
        after[:-1, :-1] = table[::-1, ::-1].cumsum(0).cumsum(1)[::-1, ::-1][1:, 1:]
        before_b = np.zeros_like(table)
        before_b[:-1, 1:] = table[::-1, :].cumsum(0)[::-1, :].cumsum(1)[1:, :-1]
        concordant, discordant = (table * after).sum(), (table * before_b).sum()
        pairs = n * (n - 1) / 2
        ties_a = (row_counts * (row_counts - 1) / 2).sum()
        ties_b = (col_counts * (col_counts - 1) / 2).sum()
        denominator = np.sqrt((pairs - ties_a) * (pairs - ties_b))
        return float((concordant - discordant) / denominator) if denominator > 0 else float("nan")
    mean_rank = (n + 1) / 2
    rank_a = np.cumsum(row_counts) - (row_counts - 1) / 2 - mean_rank  # average rank of each value
    rank_b = np.cumsum(col_counts) - (col_counts - 1) / 2 - mean_rank
    covariance = rank_a @ table @ rank_b
    variance = (row_counts @ rank_a**2) * (col_counts @ rank_b**2)
    return float(covariance / np.sqrt(variance)) if variance > 0 else float("nan")


def _as_shot_indices(shots: np.ndarray, name: str, n_shots: int) -> np.ndarray:
    """Return shot indices as int64, refusing non-integers and indices outside [0, n_shots)."""
    shots = np.asarray(shots).ravel()
    if shots.size and (shots.dtype == bool or not np.issubdtype(shots.dtype, np.integer)):
        if shots.dtype == bool or not np.all(shots == np.round(shots)):
            raise ValueError(f"{name} must hold integer shot indices; got {shots[:5].tolist()}")
    shots = shots.astype(np.int64)
    bad = shots[(shots < 0) | (shots >= n_shots)]
    if bad.size:
        raise ValueError(
            f"{name} holds shot indices {bad[:5].tolist()} outside [0, {n_shots}) "
            f"(indices are 0-based; the video has {n_shots} shots)"
        )
    return shots


def _highlight_pairs(
    pred_scores: Sequence[np.ndarray], saliency_scores: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Checked (prediction, saliency) pairs of the queries of a highlight evaluation."""
    if len(pred_scores) != len(saliency_scores):
        raise ValueError(
            f"pred_scores has {len(pred_scores)} queries but saliency_scores has "
            f"{len(saliency_scores)}; give one of each per query"
        )
    if len(pred_scores) == 0:
        raise ValueError("no queries to evaluate; give at least one")
    pairs = []
    for index, (pred, saliency) in enumerate(zip(pred_scores, saliency_scores)):
        pred = _as_finite(pred, f"pred_scores[{index}]", ndims=(1,))
        saliency = _as_finite(saliency, f"saliency_scores[{index}]", ndims=(2,))
        _check_same_length(pred.size, saliency.shape[0], f"pred_scores[{index}]", f"saliency_scores[{index}]")
        if pred.size == 0:
            raise ValueError(f"pred_scores[{index}] has no clips")
        pairs.append((pred, saliency))
    return pairs


def _as_finite(array: np.ndarray, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    """Return ``array`` as float64, refusing the wrong dimensions and non-finite values."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim not in ndims:
        raise ValueError(f"{name} must be {_dims(ndims)}; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        n_bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{name} holds {n_bad} NaN or infinite value(s)")
    return array


def _as_mask(array: np.ndarray, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    """Return ``array > 0`` as a bool mask, refusing the wrong dimensions and NaN."""
    array = np.asarray(array)
    if array.dtype == bool:
        mask = array
    else:
        array = array.astype(np.float64)
        if np.any(np.isnan(array)):
            raise ValueError(f"{name} holds {int(np.isnan(array).sum())} NaN value(s)")
        mask = array > 0
    if mask.ndim not in ndims:
        raise ValueError(f"{name} must be {_dims(ndims)}; got shape {mask.shape}")
    return mask


def _dims(ndims: tuple[int, ...]) -> str:
    """Spell allowed dimensions for an error message, e.g. ``"1-D or 2-D"``."""
    return " or ".join(f"{n}-D" for n in ndims)


def _check_same_length(n_a: int, n_b: int, name_a: str, name_b: str) -> None:
    """Raise when two per-frame inputs cover different numbers of frames."""
    if n_a != n_b:
        raise ValueError(
            f"{name_a} has {n_a} frames but {name_b} has {n_b}; they must cover the same frames "
            "(nothing is padded or truncated)"
        )

"""Summary metrics as published papers compute them: keyshot F1 and rank correlation.

F1 follows the TVSum / SumMe protocol (DESIGN.md, "Evaluation protocols", steps 5-6); rank
correlation follows Otani et al. 2019 (Kendall tau-b and Spearman rho against each user, averaged
over users). Pure numpy / scipy: no FiftyOne, no torch. Nothing is padded or truncated: a length
mismatch is an error, because a silently cropped summary gives a wrong number that looks right.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

F1_MODES = ("avg", "max")
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
    if method not in CORRELATION_METHODS:
        raise ValueError(
            f"Unknown method {method!r}. Valid methods are {list(CORRELATION_METHODS)}"
        )
    pred = _as_finite(pred_scores, "pred_scores", ndims=(1,))
    users = np.atleast_2d(_as_finite(user_scores, "user_scores", ndims=(1, 2)))
    _check_same_length(pred.size, users.shape[1], "pred_scores", "user_scores")
    if users.shape[0] == 0:
        raise ValueError("user_scores has no users; at least one row is needed")
    correlate = stats.kendalltau if method == "kendall" else stats.spearmanr
    with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, counted as 0
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        values = [float(correlate(pred, user)[0]) for user in users]
    return float(np.mean(np.nan_to_num(values, nan=0.0)))


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

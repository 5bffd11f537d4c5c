"""Known-answer and property tests for fiftyone_clipit.metrics (keyshot F1, rank correlation)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fiftyone_clipit.metrics import rank_correlation, summary_f1, summary_precision_recall_f1

# ---------------------------------------------------------------- F1, known answers

# 10 frames; the machine keeps frames 0-3.
_MACHINE = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
_USERS = np.array(
    [
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # overlap 2: P = 2/4, R = 2/2, F = 2 * 0.5 * 1 / 1.5 = 2/3
        [0, 0, 0, 1, 1, 1, 1, 0, 0, 0],  # overlap 1: P = 1/4, R = 1/4, F = 1/4
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 1],  # overlap 0: F = 0
    ]
)


def test_precision_recall_f1_one_user():
    precision, recall, f1 = summary_precision_recall_f1(_MACHINE, _USERS[0])
    assert (precision, recall) == (0.5, 1.0)
    assert f1 == pytest.approx(2 / 3)


def test_f1_avg_and_max_differ():
    # avg: (2/3 + 1/4 + 0) / 3 = (8/12 + 3/12) / 3 = 11/36; max: 2/3.
    assert summary_f1(_MACHINE, _USERS, mode="avg") == pytest.approx(11 / 36)
    assert summary_f1(_MACHINE, _USERS, mode="max") == pytest.approx(2 / 3)


def test_f1_single_user_as_1d():
    assert summary_f1(_MACHINE, _USERS[1], mode="avg") == pytest.approx(0.25)


def test_f1_empty_summaries_score_zero_not_nan():
    empty = np.zeros(10)
    assert summary_f1(empty, _USERS, mode="avg") == 0.0
    assert summary_f1(empty, _USERS, mode="max") == 0.0
    assert summary_precision_recall_f1(empty, empty) == (0.0, 0.0, 0.0)
    # Machine non-empty, user empty: P = 0/4, R undefined -> 0, F = 0.
    assert summary_precision_recall_f1(_MACHINE, empty) == (0.0, 0.0, 0.0)


def test_f1_positive_values_count_as_selected():
    # [0.5, 0, 2, -1] selects frames 0 and 2; the user selects frame 2: P = 1/2, R = 1, F = 2/3.
    assert summary_f1([0.5, 0.0, 2.0, -1.0], [0, 0, 1, 0], mode="max") == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "machine, users, mode, match",
    [
        (np.ones(10), np.ones((3, 9)), "avg", "has 10 frames but user_summaries has 9"),
        (np.ones(10), np.ones(11), "max", "10 frames but user_summaries has 11"),
        (np.ones(10), np.ones((3, 10)), "mean", r"mode 'mean'. Valid modes are \['avg', 'max'\]"),
        (np.ones(10), np.ones((0, 10)), "avg", "no users"),
        (np.ones((2, 10)), np.ones((3, 10)), "avg", "machine_summary must be 1-D"),
        (np.full(10, np.nan), np.ones((3, 10)), "avg", "NaN"),
    ],
)
def test_f1_rejects_bad_input(machine, users, mode, match):
    with pytest.raises(ValueError, match=match):
        summary_f1(machine, users, mode=mode)


def test_precision_recall_f1_rejects_length_mismatch():
    with pytest.raises(ValueError, match="4 frames but user_summary has 5"):
        summary_precision_recall_f1(np.ones(4), np.ones(5))


# ---------------------------------------------------------------- F1, properties

_masks = st.integers(0, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=1, max_size=4),
    )
)


@settings(max_examples=150, deadline=None)
@given(_masks)
def test_f1_bounded_and_symmetric(masks):
    machine, users = np.array(masks[0], dtype=bool), np.array(masks[1], dtype=bool)
    avg = summary_f1(machine, users, mode="avg")
    best = summary_f1(machine, users, mode="max")
    assert 0.0 <= avg <= best + 1e-12 and best <= 1.0  # the mean of equal floats may round up
    # With one user, F1 is symmetric: swapping machine and user swaps P and R.
    assert summary_f1(machine, users[0], mode="avg") == pytest.approx(
        summary_f1(users[0], machine, mode="avg")
    )


# ---------------------------------------------------------------- rank correlation


def test_rank_correlation_hand_values():
    pred = [1, 2, 3, 4]
    user = [1, 3, 2, 4]
    # Kendall: of 6 pairs only (2nd, 3rd) is discordant: (5 - 1) / 6 = 2/3.
    assert rank_correlation(pred, user, method="kendall") == pytest.approx(2 / 3)
    # Spearman: rank differences 0, -1, 1, 0 -> 1 - 6 * 2 / (4 * (16 - 1)) = 1 - 12/60 = 0.8.
    assert rank_correlation(pred, user, method="spearman") == pytest.approx(0.8)


def test_rank_correlation_averages_over_users():
    # User 1: 2/3 (above); user 2 is reversed: -1. Mean (2/3 - 1) / 2 = -1/6.
    users = np.array([[1, 3, 2, 4], [4, 3, 2, 1]])
    assert rank_correlation([1, 2, 3, 4], users, method="kendall") == pytest.approx(-1 / 6)


def test_rank_correlation_kendall_is_tau_b_with_ties():
    # User ties (1st, 2nd) and (3rd, 4th); the other 4 pairs are concordant.
    # tau-b = (4 - 0) / sqrt((6 - 0) * (6 - 2)) = 4 / sqrt(24).
    assert rank_correlation([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(4 / math.sqrt(24))


def test_rank_correlation_matches_scipy_on_tied_data():
    rng = np.random.default_rng(7)
    pred = rng.integers(0, 5, 50).astype(float)  # heavy ties on both sides
    users = rng.integers(1, 6, (3, 50)).astype(float)
    kendall = np.mean([stats.kendalltau(pred, u)[0] for u in users])
    spearman = np.mean([stats.spearmanr(pred, u)[0] for u in users])
    assert rank_correlation(pred, users, method="kendall") == pytest.approx(kendall)
    assert rank_correlation(pred, users, method="spearman") == pytest.approx(spearman)


def test_rank_correlation_constant_scores_count_as_zero():
    # A constant user makes scipy return NaN; it counts as 0: (0 + 2/3) / 2 = 1/3.
    users = np.array([[2, 2, 2, 2], [1, 3, 2, 4]])
    assert rank_correlation([1, 2, 3, 4], users, method="kendall") == pytest.approx(1 / 3)
    assert rank_correlation([5, 5, 5, 5], users, method="spearman") == 0.0


@pytest.mark.parametrize(
    "pred, users, method, match",
    [
        ([1, 2, 3], [[1, 2, 3, 4]], "kendall", "pred_scores has 3 frames but user_scores has 4"),
        ([1, 2, 3], [1, 2, 3], "pearson", r"Valid methods are \['kendall', 'spearman'\]"),
        ([1, np.nan, 3], [1, 2, 3], "kendall", "pred_scores holds 1 NaN"),
        ([1, 2, 3], np.ones((0, 3)), "spearman", "no users"),
    ],
)
def test_rank_correlation_rejects_bad_input(pred, users, method, match):
    with pytest.raises(ValueError, match=match):
        rank_correlation(pred, users, method=method)

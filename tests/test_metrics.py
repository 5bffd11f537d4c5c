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


# ---------------------------------------------------------------- the protocol end to end: budget variants, ties

from fiftyone_clipit.metrics import (  # noqa: E402
    average_precision,
    concept_iou,
    highlight_hit_at_1,
    highlight_map,
    human_agreement,
    leave_one_out_f1,
    pairwise_rank_correlation,
    qfvs_f1,
)
from fiftyone_clipit.summary import generate_summary  # noqa: E402

# 7 shots over frames 0-30: lengths 5, 4, 5, 4, 5, 4, 4; shot 0 scores 0.9, shot 1 0.5, others 0.1.
_SHOTS = np.array([[0, 4], [5, 8], [9, 13], [14, 17], [18, 22], [23, 26], [27, 30]])
_SHOT_VALUES = [0.9, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1]


def _summary(n_frames: int, rounding: str) -> np.ndarray:
    scores = np.zeros(n_frames)
    for (first, last), value in zip(_SHOTS, _SHOT_VALUES):
        scores[first : last + 1] = value
    lengths = _SHOTS[:, 1] - _SHOTS[:, 0] + 1
    return generate_summary(scores, _SHOTS, n_frames, lengths, np.arange(n_frames), 0.15, rounding)


@pytest.mark.parametrize(
    "n_frames, rounding, chosen, f1",
    [
        # 31 frames: floor(4.65) = 4 -> only a 4-frame shot fits: shot 1 (frames 5-8).
        (31, "floor", (5, 8), 0.5),
        # round(4.65) = 5 -> shot 0 (frames 0-4).
        (31, "round", (0, 4), 4 / 9),
        # 34 frames, shots end at 30: floor(5.1) = 5 -> shot 0; last change point: floor(31 * .15) = 4.
        (34, "floor", (0, 4), 4 / 9),
        (34, "last_change_point", (5, 8), 0.5),
    ],
)
def test_capacity_variants_change_the_summary_and_its_f1(n_frames, rounding, chosen, f1):
    # The user keeps frames 3-6. Shot 0 overlaps it in frames 3-4: P = 2/5, R = 2/4, F = 4/9;
    # shot 1 in frames 5-6: P = 2/4, R = 2/4, F = 1/2.
    summary = _summary(n_frames, rounding)
    assert np.flatnonzero(summary).tolist() == list(range(chosen[0], chosen[1] + 1))
    user = np.zeros(n_frames)
    user[3:7] = 1
    assert summary_f1(summary, user, mode="avg") == pytest.approx(f1)


def test_budget_too_small_for_any_shot_gives_an_empty_summary_scoring_zero():
    # 20 frames at 15%: capacity 3, every shot has 4 frames: nothing fits; F1 is 0, not NaN.
    shots = np.array([[0, 3], [4, 7], [8, 11], [12, 15], [16, 19]])
    summary = generate_summary(np.linspace(0, 1, 20), shots, 20, np.full(5, 4), np.arange(20))
    assert not summary.any()
    assert summary_f1(summary, np.ones((2, 20)), mode="avg") == 0.0
    assert summary_f1(summary, np.ones((2, 20)), mode="max") == 0.0


@pytest.mark.parametrize(
    "shots, scores, kept",
    [
        # equal means, equal lengths: the earlier shot is kept
        ([[0, 3], [4, 7]], [0.5] * 8, [0, 1, 2, 3]),
        # equal means, lengths 2 and 4, capacity 4 (not both): the tie goes to the lighter shot
        ([[0, 1], [2, 5]], [0.5] * 6, [0, 1]),
    ],
)
def test_knapsack_ties_decide_the_summary_and_its_f1(shots, scores, kept):
    shots = np.array(shots)
    n_frames = int(shots[-1, 1]) + 1
    lengths = shots[:, 1] - shots[:, 0] + 1
    summary = generate_summary(np.array(scores), shots, n_frames, lengths, np.arange(n_frames), proportion=4 / n_frames + 1e-9)
    assert np.flatnonzero(summary).tolist() == kept
    user = np.zeros(n_frames)
    user[kept] = 1
    assert summary_f1(summary, user, mode="max") == 1.0


# ---------------------------------------------------------------- human agreement, leave-one-out F1

_U = np.array([[1, 2, 3, 4], [1, 3, 2, 4], [4, 3, 2, 1]], dtype=float)


def test_pairwise_rank_correlation_hand_values():
    # tau(u0, u1) = 2/3 (one discordant pair of 6), tau(u0, u2) = -1, tau(u1, u2) = -2/3.
    matrix = pairwise_rank_correlation(_U, "kendall")
    assert matrix == pytest.approx(np.array([[1, 2 / 3, -1], [2 / 3, 1, -2 / 3], [-1, -2 / 3, 1]]))


def test_human_agreement_is_each_user_against_the_others():
    # u0: (2/3 - 1) / 2 = -1/6; u1: (2/3 - 2/3) / 2 = 0; u2: (-1 - 2/3) / 2 = -5/6; mean -1/3.
    assert human_agreement(_U, "kendall") == pytest.approx(-1 / 3)


def test_pairwise_rank_correlation_equals_scipy_with_ties_and_without():
    rng = np.random.default_rng(3)
    tied = rng.integers(1, 6, (4, 400)).astype(float)  # contingency-table path
    smooth = rng.normal(size=(3, 60))  # scipy path
    for rows in (tied, smooth):
        for method, correlate in (("kendall", stats.kendalltau), ("spearman", stats.spearmanr)):
            matrix = pairwise_rank_correlation(rows, method)
            for a in range(len(rows)):
                for b in range(len(rows)):
                    if a != b:
                        assert matrix[a, b] == pytest.approx(correlate(rows[a], rows[b])[0], abs=1e-12)


def test_pairwise_rank_correlation_constant_row_counts_as_zero():
    rows = np.array([[2, 2, 2, 2], [1, 2, 3, 4]], dtype=float)
    assert pairwise_rank_correlation(rows, "spearman")[0, 1] == 0.0
    with pytest.raises(ValueError, match="at least 2 users"):
        human_agreement(rows[:1])


def test_leave_one_out_f1_hand_values():
    users = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]])
    # F1(u0, u1) = 2/3, every other pair 0. max: (2/3 + 2/3 + 0) / 3; avg: (1/3 + 1/3 + 0) / 3.
    assert leave_one_out_f1(users, "max") == pytest.approx(4 / 9)
    assert leave_one_out_f1(users, "avg") == pytest.approx(2 / 9)


# ---------------------------------------------------------------- QFVS

# concepts A, B, C: shot 0 {A}, shot 1 {A, B}, shot 2 {C}, shot 3 {}
_CONCEPTS = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)


def test_concept_iou_hand_values_and_empty_sets():
    iou = concept_iou(_CONCEPTS, _CONCEPTS)
    assert iou[0, 1] == 0.5 and iou[1, 1] == 1.0 and iou[0, 2] == 0.0
    assert iou[3, 3] == 0.0  # two empty concept sets: 0, not NaN


def test_qfvs_f1_hand_case():
    # pred {0, 2}, gt {1, 2}: matching 0-1 (1/2) and 2-2 (1): weight 3/2; P = R = 3/4.
    assert qfvs_f1([0, 2], [1, 2], _CONCEPTS) == pytest.approx((0.75, 0.75, 0.75))


def test_qfvs_f1_unequal_sizes():
    # pred {0, 1, 3}, gt {1}: best match 1-1 (1); P = 1/3, R = 1, F = 2 * (1/3) / (4/3) = 1/2.
    assert qfvs_f1([0, 1, 3], [1], _CONCEPTS) == pytest.approx((1 / 3, 1.0, 0.5))


def test_qfvs_f1_empty_summary_scores_zero():
    assert qfvs_f1([], [1, 2], _CONCEPTS) == (0.0, 0.0, 0.0)
    assert qfvs_f1([0], [], _CONCEPTS) == (0.0, 0.0, 0.0)
    assert qfvs_f1([3], [3], _CONCEPTS) == (0.0, 0.0, 0.0)  # no concepts at all: no similarity


def test_qfvs_f1_is_the_maximum_weight_matching():
    from itertools import permutations

    rng = np.random.default_rng(5)
    concepts = rng.random((12, 6)) < 0.4
    for _ in range(30):
        pred = rng.choice(12, rng.integers(1, 5), replace=False)
        gt = rng.choice(12, rng.integers(1, 5), replace=False)
        sim = concept_iou(concepts[pred], concepts[gt])
        small = sim if sim.shape[0] <= sim.shape[1] else sim.T
        best = max(
            sum(small[i, j] for i, j in zip(range(small.shape[0]), perm))
            for perm in permutations(range(small.shape[1]), small.shape[0])
        )
        precision, recall, _ = qfvs_f1(pred, gt, concepts)
        assert precision == pytest.approx(best / len(pred)) and recall == pytest.approx(best / len(gt))


@pytest.mark.parametrize(
    "pred, match", [([0, 4], r"outside \[0, 4\)"), ([0.5], "integer shot indices"), ([-1], "0-based")]
)
def test_qfvs_f1_rejects_bad_shots(pred, match):
    with pytest.raises(ValueError, match=match):
        qfvs_f1(pred, [0], _CONCEPTS)


# ---------------------------------------------------------------- QVHighlights

_PRED = np.array([0.1, 0.9, 0.5])
_SALIENCY = np.array([[4, 0, 1], [1, 2, 3], [4, 4, 4]])  # clips x annotators


def test_highlight_hit_at_1_per_threshold():
    # The top clip is clip 1, scored [1, 2, 3]: positive for someone at >= 2 and >= 3, not >= 4.
    assert highlight_hit_at_1([_PRED], [_SALIENCY], threshold=2) == 1.0
    assert highlight_hit_at_1([_PRED], [_SALIENCY], threshold=3) == 1.0
    assert highlight_hit_at_1([_PRED], [_SALIENCY], threshold=4) == 0.0
    # averaged over queries
    assert highlight_hit_at_1([_PRED, _PRED], [_SALIENCY, _SALIENCY[[2, 0, 1]]], threshold=4) == 0.5


def test_highlight_map_hand_value():
    # Ranking: clip 1, clip 2, clip 0. At >= 4, annotator 0 has positives {0, 2}: ranked [0, 1, 1],
    # precision 1/2 at recall 1/2 (interpolated up to 2/3) and 2/3 at recall 1: AP 2/3.
    # Annotators 1 and 2 have positive {2} only, found at rank 2: AP 1/2. mAP = (2/3 + 1/2 + 1/2) / 3.
    assert highlight_map([_PRED], [_SALIENCY], threshold=4) == pytest.approx(5 / 9)


def test_average_precision_ties_and_degenerate_cases():
    # All scores tied: one threshold, precision 2/4 at recall 1.
    assert average_precision([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert average_precision([0, 0, 0], [0.1, 0.2, 0.3]) == 0.0  # nothing relevant
    assert average_precision([1, 1], [0.1, 0.2]) == 1.0  # everything relevant
    # HIT@1 on tied predictions takes the first clip (np.argmax)
    assert highlight_hit_at_1([np.zeros(3)], [np.array([[4], [0], [0]])]) == 1.0


def _reference_ap(relevant, scores):
    """The published formula (video2gif / Moment-DETR get_ap) written with sklearn's PR curve."""
    from sklearn.metrics import precision_recall_curve

    if len(set(relevant)) == 1:
        return float(relevant[0])
    precision, recall, _ = precision_recall_curve(relevant, scores)
    precision = np.maximum.accumulate(precision)
    return float(np.mean(precision[np.flatnonzero(np.diff(recall.astype(np.float32)))]))


def test_average_precision_matches_the_published_formula():
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        relevant = (rng.random(n) < rng.random()).astype(int)
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.random(n)
        assert average_precision(relevant, scores) == pytest.approx(_reference_ap(relevant.tolist(), scores))


@pytest.mark.parametrize(
    "pred, saliency, match",
    [
        ([np.ones(3)], [np.ones((4, 3))], "has 3 frames but saliency_scores\\[0\\] has 4"),
        ([np.ones(3)], [], "1 queries but saliency_scores has 0"),
        ([], [], "no queries"),
        ([np.array([1.0, np.nan])], [np.ones((2, 3))], "NaN"),
    ],
)
def test_highlight_metrics_reject_bad_input(pred, saliency, match):
    with pytest.raises(ValueError, match=match):
        highlight_map(pred, saliency)

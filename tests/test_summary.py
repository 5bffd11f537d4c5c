"""Known-answer and property tests for fiftyone_clipit.summary (the keyshot protocol)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiftyone_clipit.summary import (
    generate_summary,
    knapsack,
    shot_scores,
    summary_capacity,
    uniform_change_points,
    upsample_scores,
)

# ---------------------------------------------------------------- knapsack, known answers


def test_knapsack_textbook_case():
    # {1, 2}: weight 20 + 30 = 50, value 100 + 120 = 220 beats {0, 2} (180) and {0, 1} (160).
    assert knapsack([60.0, 100.0, 120.0], [10, 20, 30], 50) == [1, 2]


def test_knapsack_tie_on_value_prefers_less_weight():
    # {0}: value 2, weight 3; {1, 2}: value 1 + 1 = 2, weight 1 + 1 = 2 -> the lighter {1, 2}.
    assert knapsack([2.0, 1.0, 1.0], [3, 1, 1], 3) == [1, 2]
    # Mirrored: {2}: value 2, weight 3; {0, 1}: value 2, weight 2 -> {0, 1}.
    assert knapsack([1.0, 1.0, 2.0], [1, 1, 3], 3) == [0, 1]


def test_knapsack_tie_on_value_and_weight_prefers_earlier_items():
    # Two equal items, room for one: the earlier wins.
    assert knapsack([1.0, 1.0], [1, 1], 1) == [0]
    # {0}: value 2, weight 2; {1, 2}: value 2, weight 2 -> walking back, items 2 and 1 can go.
    assert knapsack([2.0, 1.0, 1.0], [2, 1, 1], 2) == [0]
    # {0, 1}: value 2, weight 2; {2}: value 2, weight 2 -> item 2 can be left out.
    assert knapsack([1.0, 1.0, 2.0], [1, 1, 2], 2) == [0, 1]


def test_knapsack_skips_worthless_and_too_heavy_items():
    # Values 0 and -1 never help; weight 5 exceeds capacity 4.
    assert knapsack([0.0, -1.0, 3.0, 10.0], [1, 1, 1, 5], 4) == [2]


def test_knapsack_empty_and_zero_capacity():
    assert knapsack([], [], 10) == []
    assert knapsack([1.0, 2.0], [1, 2], 0) == []


def test_knapsack_takes_free_items():
    # Weight 0 and value 1 costs nothing, even at capacity 0.
    assert knapsack([1.0, 2.0], [0, 5], 0) == [0]
    # Free item 1 plus the best of the rest: item 2 (value 4, weight 3).
    assert knapsack([3.0, 0.5, 4.0], [2, 0, 3], 3) == [1, 2]


def test_knapsack_accepts_whole_float_weights():
    assert knapsack([60.0, 100.0, 120.0], np.array([10.0, 20.0, 30.0]), 50.0) == [1, 2]


@pytest.mark.parametrize(
    "values, weights, capacity, match",
    [
        ([1.0], [-1], 5, "weights must be >= 0"),
        ([1.0], [1.5], 5, "weights must hold integers"),
        ([1.0], [1], -1, "capacity must be >= 0"),
        ([1.0], [1], 2.5, "capacity must be an integer"),
        ([np.nan], [1], 5, "values must be finite"),
        ([1.0, 2.0], [1], 5, "same length"),
    ],
)
def test_knapsack_rejects_bad_input(values, weights, capacity, match):
    with pytest.raises(ValueError, match=match):
        knapsack(values, weights, capacity)


# ---------------------------------------------------------------- knapsack, properties


def _brute_force(values, weights, capacity):
    """The subset the tie rules pick: max value, then least weight, then least sum(2**index)."""
    best_key, best = None, None
    for size in range(len(values) + 1):
        for subset in itertools.combinations(range(len(values)), size):
            weight = sum(weights[i] for i in subset)
            if weight > capacity:
                continue
            key = (-sum(values[i] for i in subset), weight, sum(2**i for i in subset))
            if best_key is None or key < best_key:
                best_key, best = key, list(subset)
    return best


# Whole-number values keep every sum exact, so the tie rules are tested without float noise.
_items = st.integers(0, 10).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-3, 12).map(float), min_size=n, max_size=n),
        st.lists(st.integers(0, 15), min_size=n, max_size=n),
        st.integers(0, 50),
    )
)


@settings(max_examples=200, deadline=None)
@given(_items)
def test_knapsack_matches_brute_force(items):
    values, weights, capacity = items
    chosen = knapsack(values, weights, capacity)
    assert chosen == sorted(chosen)
    assert sum(weights[i] for i in chosen) <= capacity
    assert chosen == _brute_force(values, weights, capacity)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1.0, 1.0, allow_nan=False), st.integers(0, 40)),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 120),
    st.randoms(use_true_random=False),
)
def test_knapsack_value_independent_of_item_order(items, capacity, rng):
    values, weights = map(np.array, zip(*items))
    order = list(range(len(items)))
    rng.shuffle(order)
    chosen = knapsack(values, weights, capacity)
    chosen_permuted = knapsack(values[order], weights[order], capacity)
    assert weights[chosen].sum() <= capacity
    assert values[order][chosen_permuted].sum() == pytest.approx(values[chosen].sum(), abs=1e-9)


# ---------------------------------------------------------------- upsampling and shot scores


def test_upsample_scores_uneven_picks():
    # picks 0, 2, 5: frames 0-1 -> 0.1, frames 2-4 -> 0.5, frames 5-7 (to the end) -> 0.9.
    frames = upsample_scores([0.1, 0.5, 0.9], [0, 2, 5], 8)
    np.testing.assert_array_equal(frames, [0.1, 0.1, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9])


def test_upsample_scores_frames_before_first_pick_take_first_score():
    # Frames 0-1 precede pick 2 and take score 0 (1.0); frames 2 -> 1.0; frames 3-5 -> 2.0.
    np.testing.assert_array_equal(upsample_scores([1.0, 2.0], [2, 3], 6), [1, 1, 1, 2, 2, 2])


@pytest.mark.parametrize(
    "scores, picks, n_frames, match",
    [
        ([1.0, 2.0], [0], 5, "same length"),
        ([1.0, 2.0], [3, 1], 5, "strictly increasing"),
        ([1.0, 2.0], [1, 1], 5, "strictly increasing"),
        ([1.0, 2.0], [0, 5], 5, r"must lie in \[0, n_frames=5\)"),
        ([1.0], [-1], 5, "must lie in"),
        ([], [], 5, "picks is empty"),
    ],
)
def test_upsample_scores_rejects_bad_picks(scores, picks, n_frames, match):
    with pytest.raises(ValueError, match=match):
        upsample_scores(scores, picks, n_frames)


def test_shot_scores_are_means_over_inclusive_bounds():
    # Shot [0, 1]: (1 + 2) / 2 = 1.5; shot [2, 5]: (3 + 4 + 5 + 6) / 4 = 4.5.
    np.testing.assert_allclose(shot_scores([1, 2, 3, 4, 5, 6], [[0, 1], [2, 5]]), [1.5, 4.5])


@pytest.mark.parametrize(
    "change_points, match",
    [
        ([[0, 1, 2]], r"shape \(n_shots, 2\)"),
        ([[3, 1]], "first > last"),
        ([[0, 3], [3, 5]], "sorted and disjoint"),
        ([[0, 6]], "must lie in"),
    ],
)
def test_shot_scores_rejects_bad_change_points(change_points, match):
    with pytest.raises(ValueError, match=match):
        shot_scores(np.ones(6), change_points)


# ---------------------------------------------------------------- capacity


def test_summary_capacity_variants_differ():
    # 111 * 0.15 = 16.65: floor 16, round 17.
    assert summary_capacity(111) == 16
    assert summary_capacity(111, rounding="round") == 17
    # Last change point 89: (89 + 1) * 0.15 = 13.5 -> 13, although the video has 111 frames.
    change_points = np.array([[0, 39], [40, 89]])
    assert summary_capacity(111, rounding="last_change_point", change_points=change_points) == 13


def test_summary_capacity_round_halves_to_even():
    # 5 * 0.5 = 2.5 -> 2 and 7 * 0.5 = 3.5 -> 4 (Python's round); floor gives 2 and 3.
    assert summary_capacity(5, 0.5, "round") == 2
    assert summary_capacity(7, 0.5, "round") == 4
    assert summary_capacity(7, 0.5, "floor") == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rounding": "ceil"}, r"Unknown rounding 'ceil'.*'floor', 'round', 'last_change_point'"),
        ({"rounding": "last_change_point"}, "needs non-empty change_points"),
        ({"proportion": 1.5}, r"proportion must be in \[0, 1\]"),
    ],
)
def test_summary_capacity_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        summary_capacity(100, **kwargs)


# ---------------------------------------------------------------- generate_summary

# 20 frames, shots of 4, 6, 4, 6 frames; a score every 5th frame.
# Frame scores: 0-4 -> 0.2, 5-9 -> 0.9, 10-14 -> 0.4, 15-19 -> 0.6.
# Shot means: [0,3] 0.2; [4,9] (0.2 + 5 * 0.9) / 6 = 0.7833; [10,13] 0.4;
# [14,19] (0.4 + 5 * 0.6) / 6 = 0.5667.
_CP = np.array([[0, 3], [4, 9], [10, 13], [14, 19]])
_LENGTHS = np.array([4, 6, 4, 6])
_PICKS = np.array([0, 5, 10, 15])
_STEPS = np.array([0.2, 0.9, 0.4, 0.6])


def test_generate_summary_known_answer():
    # Budget floor(20 * 0.5) = 10: {1, 2} (weight 10, value 1.1833) beats {0, 1} (0.9833),
    # {2, 3} (0.9667) and {0, 3} (0.7667); frames 4-13 are kept.
    summary = generate_summary(_STEPS, _CP, 20, _LENGTHS, _PICKS, proportion=0.5)
    np.testing.assert_array_equal(np.flatnonzero(summary), np.arange(4, 14))
    assert summary.dtype == bool
    # Budget floor(20 * 0.3) = 6: one 6-frame shot or one 4-frame shot; shot 1 (0.7833) wins.
    summary = generate_summary(_STEPS, _CP, 20, _LENGTHS, _PICKS, proportion=0.3)
    np.testing.assert_array_equal(np.flatnonzero(summary), np.arange(4, 10))
    # Budget floor(20 * 0.15) = 3: no shot fits.
    assert not generate_summary(_STEPS, _CP, 20, _LENGTHS, _PICKS).any()


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"n_frame_per_seg": np.array([4, 6, 4, 5])}, r"n_frame_per_seg\[3\]=5 .* spans 6 frames"),
        ({"n_frame_per_seg": np.array([4, 6, 4])}, "change_points has 4 shots"),
        ({"step_scores": np.array([0.2, np.nan, 0.4, 0.6])}, "1 NaN"),
        ({"picks": np.array([0, 5, 10])}, "same length"),
        ({"n_frames": 19}, r"n_frames=19"),
        ({"rounding": "nearest"}, "Unknown rounding"),
    ],
)
def test_generate_summary_rejects_bad_input(changes, match):
    kwargs = dict(
        step_scores=_STEPS, change_points=_CP, n_frames=20, n_frame_per_seg=_LENGTHS, picks=_PICKS
    )
    with pytest.raises(ValueError, match=match):
        generate_summary(**{**kwargs, **changes})


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 300),
    st.integers(1, 40),
    st.integers(1, 20),
    st.floats(0.0, 1.0),
    st.sampled_from(["floor", "round", "last_change_point"]),
    st.randoms(use_true_random=False),
)
def test_generate_summary_stays_within_budget(n_frames, shot_len, step, proportion, rounding, rng):
    change_points = uniform_change_points(n_frames, shot_len)
    lengths = change_points[:, 1] - change_points[:, 0] + 1
    picks = np.arange(0, n_frames, step)
    scores = np.array([rng.random() for _ in picks])
    summary = generate_summary(
        scores, change_points, n_frames, lengths, picks, proportion, rounding
    )
    assert summary.shape == (n_frames,)
    capacity = summary_capacity(n_frames, proportion, rounding, change_points)
    assert summary.sum() <= capacity
    # Only whole shots are kept.
    for first, last in change_points:
        assert summary[first : last + 1].all() or not summary[first : last + 1].any()


# ---------------------------------------------------------------- uniform_change_points


def test_uniform_change_points():
    np.testing.assert_array_equal(uniform_change_points(10, 4), [[0, 3], [4, 7], [8, 9]])
    np.testing.assert_array_equal(uniform_change_points(8, 4), [[0, 3], [4, 7]])
    assert uniform_change_points(0, 4).shape == (0, 2)
    with pytest.raises(ValueError, match="segment_frames must be >= 1; got 0"):
        uniform_change_points(10, 0)

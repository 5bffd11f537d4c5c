"""Known-answer and property tests for fiftyone_clipit.summary (the keyshot protocol)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiftyone_clipit.storyboard import select_keyframes
from fiftyone_clipit.summary import (
    Budget,
    budget_capacity,
    generate_summary,
    knapsack,
    select_segments,
    shot_scores,
    split_long_shots,
    summary_capacity,
    uniform_change_points,
    upsample_scores,
)

# ---------------------------------------------------------------- knapsack, known answers


def test_knapsack_textbook_case():
    # {1, 2}: weight 20 + 30 = 50, value 100 + 120 = 220 beats {0, 2} (180) and {0, 1} (160).
    assert knapsack([60.0, 100.0, 120.0], [10, 20, 30], 50) == [1, 2]


def test_knapsack_tie_on_value_least_weight_prefers_less_weight():
    # {0}: value 2, weight 3; {1, 2}: value 1 + 1 = 2, weight 1 + 1 = 2 -> the lighter {1, 2}.
    assert knapsack([2.0, 1.0, 1.0], [3, 1, 1], 3, tie_break="least_weight") == [1, 2]
    # Mirrored: {2}: value 2, weight 3; {0, 1}: value 2, weight 2 -> {0, 1}.
    assert knapsack([1.0, 1.0, 2.0], [1, 1, 3], 3, tie_break="least_weight") == [0, 1]
    assert knapsack([1.0, 1.0], [2, 1], 2, tie_break="least_weight") == [1]


def test_knapsack_tie_on_value_reads_back_from_the_full_capacity_as_the_reference():
    # The reference code walks back from the full capacity: at capacity 2 item 1 never improved
    # on item 0 (1 + 0 is not > 1), so item 0 is kept although item 1 alone weighs less.
    assert knapsack([1.0, 1.0], [2, 1], 2) == [0]
    assert knapsack([2.0, 1.0, 1.0], [3, 1, 1], 3) == [0]
    assert knapsack([1.0, 1.0, 2.0], [1, 1, 3], 3) == [0, 1]
    for case in (([1.0, 1.0], [2, 1], 2), ([2.0, 1.0, 1.0], [3, 1, 1], 3), ([1.0, 1.0, 2.0], [1, 1, 3], 3)):
        assert knapsack(*case) == _reference_knapsack(*case)
    with pytest.raises(ValueError, match=r"Unknown tie_break 'lightest'"):
        knapsack([1.0], [1], 1, tie_break="lightest")


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


def _reference_knapsack(values, weights, capacity):
    """The published 0/1 knapsack of the summarisation evaluation code, written plainly from it.

    table[i][w] = table[i-1][w - w_i] + v_i when that is strictly greater, else table[i-1][w];
    then, from the last item and the full capacity, an item is kept where it entered the table.
    """
    n = len(values)
    table = [[0.0] * (capacity + 1) for _ in range(n + 1)]
    keep = [[False] * (capacity + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        w_i, v_i = weights[i - 1], values[i - 1]
        for w in range(capacity + 1):
            if w_i <= w and v_i + table[i - 1][w - w_i] > table[i - 1][w]:
                table[i][w], keep[i][w] = v_i + table[i - 1][w - w_i], True
            else:
                table[i][w] = table[i - 1][w]
    chosen, w = [], capacity
    for i in range(n, 0, -1):
        if keep[i][w]:
            chosen.append(i - 1)
            w -= weights[i - 1]
    return sorted(chosen)


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
    chosen = knapsack(values, weights, capacity, tie_break="least_weight")
    assert chosen == sorted(chosen)
    assert sum(weights[i] for i in chosen) <= capacity
    assert chosen == _brute_force(values, weights, capacity)


@settings(max_examples=200, deadline=None)
@given(_items)
def test_knapsack_matches_the_reference_algorithm(items):
    values, weights, capacity = items
    chosen = knapsack(values, weights, capacity)
    assert chosen == _reference_knapsack(values, weights, capacity)
    assert sum(values[i] for i in chosen) == sum(values[i] for i in _brute_force(values, weights, capacity))


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


# ---------------------------------------------------------------- shot order, larger cases


@settings(max_examples=150, deadline=None)
@given(_items, st.randoms(use_true_random=False))
def test_knapsack_choice_independent_of_item_order(items, rng):
    # When one subset is strictly best (no tie on value), any order of the items picks it.
    values, weights, capacity = items
    order = list(range(len(values)))
    rng.shuffle(order)
    best = _brute_force(values, weights, capacity)
    best_value = sum(values[i] for i in best)
    ties = [
        subset
        for size in range(len(values) + 1)
        for subset in itertools.combinations(range(len(values)), size)
        if sum(weights[i] for i in subset) <= capacity and sum(values[i] for i in subset) == best_value
        and all(values[i] > 0 for i in subset)
    ]
    chosen = knapsack([values[i] for i in order], [weights[i] for i in order], capacity)
    assert sum(weights[order[i]] for i in chosen) <= capacity
    assert sum(values[order[i]] for i in chosen) == best_value
    if len(ties) == 1:
        assert sorted(order[i] for i in chosen) == best


def test_knapsack_matches_scipy_milp_on_a_long_video():
    # 1,500 shots of 15-300 frames, 30 minutes at 30 fps: HiGHS's optimum value, to the float.
    from scipy.optimize import Bounds, LinearConstraint, milp

    rng = np.random.default_rng(7)
    weights = rng.integers(15, 300, size=1500)
    values = rng.random(1500) * weights
    capacity = summary_capacity(54_000, 0.15)
    chosen = knapsack(values, weights, capacity)
    reference = milp(
        -values, constraints=LinearConstraint(weights[None, :].astype(float), 0, capacity),
        integrality=np.ones(1500), bounds=Bounds(0, 1),
    )
    assert weights[chosen].sum() <= capacity
    assert values[chosen].sum() == pytest.approx(-reference.fun, rel=1e-9)


def test_all_equal_scores_give_the_most_shots_earliest_first():
    # Equal shot means: the value is the number of shots, so two of the three 5-frame shots win;
    # of {1, 3}, {1, 4} and {3, 4} the tie rule keeps the earlier ones (knapsack's rule 2).
    change_points = np.array([[0, 9], [10, 14], [15, 24], [25, 29], [30, 34]])
    segments = select_segments(np.full(35, 0.5), change_points, capacity=10)
    assert segments == [(10, 14, 0.5), (25, 29, 0.5)]


# ---------------------------------------------------------------- budgets and long shots


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=15),
    st.integers(1, 80),
    st.integers(0, 2**16),
)
def test_summary_never_exceeds_capacity_and_keeps_whole_shots(lengths, capacity, seed):
    ends = np.cumsum(lengths)
    change_points = np.stack([ends - lengths, ends - 1], axis=1)
    scores = np.random.default_rng(seed).random(int(ends[-1]))
    fitting = split_long_shots(change_points, capacity)
    segments = select_segments(scores, fitting, capacity=capacity)
    kept = sum(last - first + 1 for first, last, _ in segments)
    assert kept <= capacity
    assert kept > 0  # after splitting, some shot always fits
    chosen = np.zeros(len(scores), dtype=bool)
    for first, last, score in segments:
        chosen[first : last + 1] = True
        assert score == pytest.approx(scores[first : last + 1].mean())
    for first, last in fitting:
        assert chosen[first : last + 1].all() or not chosen[first : last + 1].any()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=1, max_size=10), st.integers(1, 40))
def test_split_long_shots_covers_the_same_frames_in_near_equal_pieces(lengths, max_frames):
    ends = np.cumsum(lengths)
    change_points = np.stack([ends - lengths, ends - 1], axis=1)
    pieces = split_long_shots(change_points, max_frames)
    np.testing.assert_array_equal(pieces[1:, 0], pieces[:-1, 1] + 1)
    assert pieces[0, 0] == 0 and pieces[-1, 1] == ends[-1] - 1
    sizes = pieces[:, 1] - pieces[:, 0] + 1
    assert sizes.max() <= max_frames
    for first, last in change_points:  # pieces of one shot differ by at most one frame
        inside = sizes[(pieces[:, 0] >= first) & (pieces[:, 1] <= last)]
        assert inside.sum() == last - first + 1 and inside.max() - inside.min() <= 1


@pytest.mark.parametrize(
    "text, expected",
    [("0.2", Budget(fraction=0.2)), ("15%", Budget(fraction=0.15)), ("45s", Budget(seconds=45.0)),
     (" 2.5 seconds", Budget(seconds=2.5)), ("1", Budget(fraction=1.0))],
)
def test_budget_parse_reads_what_people_type(text, expected):
    assert Budget.parse(text) == expected


@pytest.mark.parametrize(
    "text, match",
    [("1.5", r"fraction must be in \(0, 1\]; got 1.5"), ("0", "fraction must be in"), ("0s", "must be > 0"),
     ("ten seconds", "'ten seconds' is not understood")],
)
def test_budget_parse_rejects_bad_text(text, match):
    with pytest.raises(ValueError, match=match):
        Budget.parse(text)


@pytest.mark.parametrize(
    "value, match",
    [(None, "None is not understood"), (True, "True is not understood"), (1.5, "fraction must be in"),
     ("45s", r"read text with Budget.parse\('45s'\)"), (float("nan"), "fraction must be in")],
)
def test_library_budgets_are_typed(value, match):
    with pytest.raises(ValueError, match=match):
        Budget.of(value)


def test_budget_is_one_of_fraction_or_seconds_and_round_trips_its_record():
    assert Budget.of(0.15) == Budget(fraction=0.15) and Budget.of(1) == Budget(fraction=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        Budget(fraction=0.1, seconds=5)
    with pytest.raises(ValueError, match="exactly one"):
        Budget()
    for budget in (Budget(fraction=0.3), Budget(seconds=45)):
        assert Budget.from_record(*budget.record()) == budget
    assert str(Budget(fraction=0.15)) == "15%" and str(Budget(seconds=45)) == "45 s"
    assert Budget(seconds=30).share_of(120.0) == 0.25 and Budget(seconds=300).share_of(120.0) == 1.0


def test_budget_capacity_in_fractions_and_seconds():
    assert budget_capacity(1000, 30.0, 0.15) == 150
    assert budget_capacity(1000, 30.0, Budget(seconds=2)) == 60
    assert budget_capacity(1000, 29.97, Budget(seconds=10)) == 299  # floor(299.7)
    assert budget_capacity(100, 30.0, Budget(seconds=60)) == 100  # at most the whole video
    with pytest.raises(ValueError, match="needs the frame rate"):
        budget_capacity(100, 0.0, Budget(seconds=5))


# ---------------------------------------------------------------- keyframes


def test_keyframes_are_the_best_mutually_different_frames():
    # Frames 0-2 look alike (one direction); 3 and 4 each differ. Scores favour 0, 1, 2, then 4.
    embeddings = np.array([[1, 0, 0], [0.99, 0.1, 0], [0.98, 0.12, 0], [0, 1, 0], [0, 0, 1]], float)
    scores = np.array([0.9, 0.85, 0.8, 0.1, 0.5])
    np.testing.assert_array_equal(select_keyframes(scores, embeddings, n_keyframes=3), [0, 4, 3])
    np.testing.assert_array_equal(select_keyframes(scores, embeddings, n_keyframes=2), [0, 4])
    # Without embeddings, distance in time decides: frames 1 s apart or more.
    times = np.array([0.0, 0.5, 1.0, 1.5, 3.0])
    np.testing.assert_array_equal(select_keyframes(scores, times=times, min_gap=1.0), [0, 2, 4])


def test_keyframes_fill_up_to_the_number_asked_with_alike_frames_still_apart_in_time():
    embeddings = np.array([[1, 0, 0], [0.99, 0.1, 0], [0.98, 0.12, 0], [0, 1, 0], [0, 0, 1]], float)
    scores = np.array([0.9, 0.85, 0.8, 0.1, 0.5])
    times = np.array([0.0, 0.5, 2.0, 3.0, 4.0])
    # distinct first: 0, 4, 3; then alike but 1 s apart from the others: 2; 1 is 0.5 s from 0
    got = select_keyframes(scores, embeddings, times, n_keyframes=5, min_gap=1.0, fill=True)
    np.testing.assert_array_equal(got, [0, 4, 3, 2])
    np.testing.assert_array_equal(select_keyframes(scores, embeddings, times, 3, min_gap=1.0, fill=True), [0, 4, 3])
    np.testing.assert_array_equal(select_keyframes(scores, embeddings, n_keyframes=9, fill=True), [0, 4, 3, 1, 2])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"scores": [np.nan]}, "finite"), ({"scores": [1.0], "n_keyframes": 0}, "n_keyframes must be >= 1"),
     ({"scores": [1.0, 2.0], "embeddings": np.eye(3)}, "3 embeddings for 2 scores")],
)
def test_keyframes_reject_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_keyframes(**kwargs)

"""Kernel temporal segmentation: agreement with ruptures, brute force, bounds and bad input."""

import itertools

import numpy as np
import pytest
import ruptures
from hypothesis import given, settings
from hypothesis import strategies as st

from fiftyone_clipit.segmentation import (
    kts,
    kts_fixed,
    kts_penalty,
    segment_scatter,
    steps_to_frames,
)


def shots_signal(lengths, dim=8, noise=0.5, seed=0):
    """Unit-norm embeddings: one random direction per shot plus per-step noise."""
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=dim) + noise * rng.normal(size=(n, dim)) for n in lengths]
    x = np.concatenate(blocks)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x, n_change_points, min_length=1, max_length=None):
    """Least scatter over every placement of the change points (small n only)."""
    n = len(x)
    max_length = max_length or n
    best = (np.inf, None)
    for cuts in itertools.combinations(range(1, n), n_change_points):
        bounds = [0, *cuts, n]
        lengths = np.diff(bounds)
        if lengths.min() < min_length or lengths.max() > max_length:
            continue
        change_points = np.array([[a, b - 1] for a, b in zip(bounds[:-1], bounds[1:])])
        best = min(best, (segment_scatter(x, change_points), cuts), key=lambda item: item[0])
    return best


# ---------------------------------------------------------------- agreement with ruptures


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("min_length", [1, 2, 4])
def test_fixed_count_matches_ruptures_kernel_cpd(seed, min_length):
    x = shots_signal([9, 14, 6, 11, 20], seed=seed)
    algo = ruptures.KernelCPD(kernel="linear", min_size=min_length).fit(x)
    for n_change_points in range(1, 9):
        change_points, scatter = kts_fixed(x, n_change_points, min_length=min_length)
        expected = algo.predict(n_bkps=n_change_points)
        assert (change_points[:, 1] + 1).tolist() == expected
        assert scatter == pytest.approx(algo.cost.sum_of_costs(expected), abs=1e-9)


def test_penalised_choice_matches_ruptures_costs():
    # ruptures gives D(m) for each m; KTS's penalised choice over them is the same segmentation.
    x = shots_signal([12, 7, 15, 9, 10, 8], seed=3)
    n = len(x)
    algo = ruptures.KernelCPD(kernel="linear", min_size=1).fit(x)
    costs = [algo.cost.error(0, n) / n]
    for m in range(1, 20):
        costs.append(algo.cost.sum_of_costs(algo.predict(n_bkps=m)) / n + float(kts_penalty(m, n)))
    best = int(np.argmin(costs))
    result = kts(x)
    assert result.n_change_points == best == 5
    assert (result.change_points[:, 1] + 1).tolist() == algo.predict(n_bkps=best)
    np.testing.assert_allclose(result.costs[: len(costs)][: len(result.costs)], costs[: len(result.costs)], atol=1e-9)


# ---------------------------------------------------------------- brute force


@settings(max_examples=60, deadline=None)
@given(
    st.integers(3, 10),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2**16),
)
def test_fixed_count_is_optimal_against_brute_force(n, n_change_points, min_length, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    max_length = int(rng.integers(min_length, n + 1))
    expected, cuts = brute_force(x, n_change_points, min_length, max_length)
    if cuts is None:
        with pytest.raises(ValueError, match="cannot be cut into"):
            kts_fixed(x, n_change_points, min_length, max_length)
        return
    change_points, scatter = kts_fixed(x, n_change_points, min_length, max_length)
    lengths = change_points[:, 1] - change_points[:, 0] + 1
    assert lengths.min() >= min_length and lengths.max() <= max_length
    assert scatter == pytest.approx(expected, abs=1e-9)
    assert scatter == pytest.approx(segment_scatter(x, change_points), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=8), st.integers(0, 2**16), st.floats(0.1, 5.0))
def test_early_stop_keeps_the_penalised_optimum(lengths, seed, vmax):
    # The search over m stops early; the answer must equal the best over every m, computed in full.
    x = shots_signal(lengths, dim=4, noise=0.8, seed=seed)
    n = len(x)
    full = [segment_scatter(x, np.array([[0, n - 1]])) / n]
    for m in range(1, n):
        full.append(kts_fixed(x, m)[1] / n + float(kts_penalty(m, n, vmax)))
    result = kts(x, vmax=vmax)
    assert result.costs[result.n_change_points] == pytest.approx(min(full), abs=1e-9)


# ---------------------------------------------------------------- what KTS finds


def test_finds_planted_shots_exactly():
    lengths = [30, 12, 45, 8, 25]
    result = kts(shots_signal(lengths, dim=16, noise=0.2, seed=1))
    np.testing.assert_array_equal(result.change_points[:, 0], np.cumsum([0, *lengths[:-1]]))
    np.testing.assert_array_equal(result.change_points[:, 1], np.cumsum(lengths) - 1)


def test_length_limits_are_respected():
    x = shots_signal([50, 5, 5, 40], dim=16, noise=0.2, seed=2)
    result = kts(x, min_length=8, max_length=20)
    lengths = result.change_points[:, 1] - result.change_points[:, 0] + 1
    assert lengths.min() >= 8 and lengths.max() <= 20 and lengths.sum() == 100


def test_a_video_without_change_is_one_shot():
    x = np.tile(np.array([[0.6, 0.8, 0.0]]), (40, 1))
    result = kts(x)
    assert result.n_change_points == 0
    np.testing.assert_array_equal(result.change_points, [[0, 39]])


def test_shorter_than_min_length_is_one_shot():
    result = kts(shots_signal([3]), min_length=5)
    np.testing.assert_array_equal(result.change_points, [[0, 2]])


def test_larger_vmax_gives_fewer_shots():
    x = shots_signal([10] * 12, dim=8, noise=1.0, seed=4)
    assert kts(x, vmax=20.0).n_change_points < kts(x, vmax=0.5).n_change_points


def test_long_video_never_builds_an_n_by_n_matrix():
    # 14,400 steps with no max_length would need a 14,400^2 band: refused with a remedy.
    x = np.random.default_rng(0).normal(size=(14_400, 4))
    with pytest.raises(ValueError, match=r"1582 MiB cost band \(limit 512 MiB\); pass a smaller max_length"):
        kts(x)
    # Bounded to 60 s at 2 fps, the band is (n + 1) x 120 floats = 13 MiB.
    result = kts(x[:2000], max_length=120, max_band_bytes=8 * 2001 * 120)
    assert result.change_points[-1, 1] == 1999


# ---------------------------------------------------------------- steps to frames


def test_steps_to_frames_follows_the_upsampling_rule():
    # Steps at frames 2, 17, 32, 47 of 60; step segments [0, 1] and [2, 3].
    frames = steps_to_frames(np.array([[0, 1], [2, 3]]), np.array([2, 17, 32, 47]), 60)
    np.testing.assert_array_equal(frames, [[0, 31], [32, 59]])


@pytest.mark.parametrize(
    "change_points, picks, match",
    [
        ([[0, 1], [3, 3]], [0, 5, 10, 15], "tile steps"),
        ([[0, 2]], [0, 5, 10, 15], "tile steps"),
        ([[0, 1]], [5, 0], "strictly increasing"),
        ([[0, 1]], [0, 60], r"n_frames=60"),
    ],
)
def test_steps_to_frames_rejects_bad_input(change_points, picks, match):
    with pytest.raises(ValueError, match=match):
        steps_to_frames(np.array(change_points), np.array(picks), 60)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "embeddings, kwargs, match",
    [
        (np.zeros((0, 3)), {}, "non-empty"),
        (np.ones(5), {}, r"\(n, d\)"),
        (np.array([[1.0, np.nan]]), {}, "NaN or infinite"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), {}, r"rows \[1\] are all zeros"),
        (np.eye(4), {"min_length": 0}, "min_length must be an integer >= 1; got 0"),
        (np.eye(4), {"min_length": 3, "max_length": 2}, r"max_length \(2\) must be >= min_length \(3\)"),
        (np.eye(4), {"vmax": -1.0}, "vmax must be >= 0"),
        (np.eye(5), {"min_length": 3, "max_length": 4}, "No segmentation of 5 steps"),
    ],
)
def test_bad_input_is_named(embeddings, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kts(embeddings, **kwargs)

"""Property-based tests (hypothesis) of core invariants not covered elsewhere.

Already covered: knapsack optimality and order independence, long-shot splitting (test_summary),
KTS early stopping (test_segmentation), F1 bounds, avg <= max and symmetry (test_metrics). Here:
whole summaries respect their budget, upsampled scores stay in range, rank correlations stay
bounded, QFVS F1 and concept IoU stay in [0, 1] and are symmetric.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiftyone_clipit.metrics import concept_iou, qfvs_f1, rank_correlation
from fiftyone_clipit.summary import generate_summary, summary_capacity, upsample_scores

pytestmark = pytest.mark.reliability("property")

unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def scored_video(draw):
    """Shot lengths, step scores at every `step`-th frame, and a budget proportion."""
    lengths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=12))
    n_frames = sum(lengths)
    step = draw(st.integers(1, 15))
    picks = np.arange(0, n_frames, step)
    scores = np.array(draw(st.lists(unit, min_size=len(picks), max_size=len(picks))))
    ends = np.cumsum(lengths)
    change_points = np.stack([ends - np.array(lengths), ends - 1], axis=1)
    proportion = draw(st.floats(0.0, 1.0))
    return scores, change_points, n_frames, np.array(lengths), picks, proportion


@settings(max_examples=150, deadline=None)
@given(scored_video())
def test_summary_respects_its_budget_and_keeps_whole_shots(video):
    scores, change_points, n_frames, lengths, picks, proportion = video
    mask = generate_summary(scores, change_points, n_frames, lengths, picks, proportion)
    assert mask.shape == (n_frames,) and mask.dtype == bool
    assert mask.sum() <= summary_capacity(n_frames, proportion)
    for first, last in change_points:  # a shot is kept whole or not at all
        shot = mask[first : last + 1]
        assert shot.all() or not shot.any()


@settings(max_examples=150, deadline=None)
@given(scored_video())
def test_upsampled_scores_stay_within_the_step_scores(video):
    scores, _, n_frames, _, picks, _ = video
    frames = upsample_scores(scores, picks, n_frames)
    assert frames.shape == (n_frames,)
    assert frames.min() >= scores.min() and frames.max() <= scores.max()
    assert np.array_equal(frames[picks], scores)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.lists(unit, min_size=n, max_size=n), st.lists(unit, min_size=n, max_size=n))),
    st.sampled_from(["kendall", "spearman"]))
def test_rank_correlation_is_bounded_and_symmetric(pair, method):
    a, b = (np.array(x) for x in pair)
    ab, ba = rank_correlation(a, b, method), rank_correlation(b, a, method)
    assert -1.0 - 1e-9 <= ab <= 1.0 + 1e-9 and np.isfinite(ab)
    assert ab == pytest.approx(ba, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=n, max_size=n),
    st.lists(st.integers(0, n - 1), max_size=n, unique=True),
    st.lists(st.integers(0, n - 1), max_size=n, unique=True))))
def test_qfvs_f1_and_concept_iou_are_bounded_and_symmetric(case):
    concepts, pred, gt = np.array(case[0], dtype=bool), np.array(case[1], int), np.array(case[2], int)
    iou = concept_iou(concepts, concepts)
    assert np.allclose(iou, iou.T) and iou.min() >= 0.0 and iou.max() <= 1.0
    p, r, f1 = qfvs_f1(pred, gt, concepts)
    rp, rr, rf1 = qfvs_f1(gt, pred, concepts)
    assert all(0.0 <= x <= 1.0 + 1e-12 for x in (p, r, f1))
    assert (p, r, f1) == pytest.approx((rr, rp, rf1))  # swapping sides swaps precision and recall

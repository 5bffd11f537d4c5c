"""Planning one video's summary under a budget (create_summary, the panel's preview and Apply)."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_clipit.shots import plan_summary
from fiftyone_clipit.summary import Budget, uniform_change_points


def planted_scores() -> np.ndarray:
    scores = np.full(90, 0.2)
    scores[30:45] = 0.9
    return scores


def test_replan_keeps_the_best_shots_that_fit_the_new_budget():
    asked = []

    def shots(capacity: int) -> np.ndarray:
        asked.append(capacity)
        return uniform_change_points(90, 15)

    plan = plan_summary(planted_scores(), 30.0, 0.2, shots)
    assert plan.segments == [(30, 44, pytest.approx(0.9))]
    assert (plan.capacity, plan.n_shots, plan.n_split_shots) == (18, 6, 0)
    segments = plan_summary(planted_scores(), 30.0, Budget(seconds=0.5), shots).segments
    assert [(a, b) for a, b, _ in segments] == [(30, 44)]
    assert asked == [18, 15]  # floor(90 * 0.2), 0.5 s at 30 fps


def test_replan_cuts_shots_longer_than_the_budget():
    plan = plan_summary(planted_scores(), 30.0, 0.1, lambda capacity: np.array([[0, 89]]))
    assert sum(b - a + 1 for a, b, _ in plan.segments) <= 9 and len(plan.segments) == 1
    assert plan.n_shots == 10 and plan.n_split_shots == 9  # one 90-frame shot cut into pieces of 9


def test_replan_refuses_a_budget_of_no_frames_and_a_summary_of_nothing():
    with pytest.raises(ValueError, match="gives 0 frames"):
        plan_summary(planted_scores(), 30.0, Budget(seconds=0.01), lambda capacity: uniform_change_points(90, 15))
    with pytest.raises(ValueError, match="keeps nothing"):
        plan_summary(np.zeros(90), 30.0, 0.2, lambda capacity: uniform_change_points(90, 15))
    with pytest.raises(ValueError, match="not understood"):
        plan_summary(planted_scores(), 30.0, "lots", lambda capacity: uniform_change_points(90, 15))

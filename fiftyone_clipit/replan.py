"""Re-planning one video's summary under a new budget, keeping how its shots are made.

The CLIP-It panel previews a budget by re-planning in memory and writes only when asked; both
go through `replan_segments`, so what is previewed is what is written.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fiftyone_clipit.summary import Budget, budget_capacity, select_segments, split_long_shots


def replan_segments(
    frame_scores: np.ndarray,
    frame_rate: float,
    budget: Budget | float,
    shots: Callable[[int], np.ndarray],
    rounding: str = "floor",
) -> list[tuple[int, int, float]]:
    """The summary segments of one video under `budget`, as `create_summary` plans them.

    Args:
        frame_scores: float array (n_frames,), one finite score per frame.
        frame_rate: frames per second (needed for a budget in seconds).
        budget: a `Budget`, or a number: the fraction of the video in (0, 1].
        shots: the video's shots for a capacity in frames: ``capacity -> (n_shots, 2)`` inclusive
            0-based [first, last] frame bounds (KTS keeps its shots under the budget, so the
            shots may depend on it).
        rounding ("floor"): how a fractional budget is rounded ("floor" or "round").

    Returns:
        [(first, last, score), ...] in time order: inclusive 0-based frame indices and the mean
        frame score of each segment; shots longer than the budget are cut into pieces that fit.

    Raises:
        ValueError: a budget that gives no frame, bad scores, or a budget no shot fits with a
            positive score.
    """
    budget = Budget.of(budget)
    capacity = budget_capacity(len(frame_scores), frame_rate, budget, rounding)
    if capacity < 1:
        raise ValueError(f"the budget {budget} gives 0 frames of this video; raise it")
    segments = select_segments(frame_scores, split_long_shots(shots(capacity), capacity), capacity=capacity)
    if not segments:
        raise ValueError("no shot has a positive mean score, so the knapsack keeps nothing")
    return segments

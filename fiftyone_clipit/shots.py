"""How a video's summary is planned over its frames: its shots, its per-frame scores, its keyframes.

One plan (`plan_video`: shots by one policy, `shots_for_video`, cut to fit the budget, the best
of them by an exact knapsack) serves `create_summary`, the panel's preview and re-planning; the
same shots serve the model selection of training, so a scorer is chosen on the shots its
summaries will use.
FiftyOne-free: the FiftyOne layer reads the fields and passes plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from fiftyone_clipit.defaults import FALLBACK_FRAME_RATE
from fiftyone_clipit.options import ShotOptions, SummaryOptions
from fiftyone_clipit.store import FrameEmbeddings
from fiftyone_clipit.storyboard import select_keyframes
from fiftyone_clipit.summary import (
    Budget,
    budget_capacity,
    kts_summary_shots,
    select_segments,
    split_long_shots,
    uniform_change_points,
    upsample_scores,
)


@dataclass(frozen=True)
class SummaryPlan:
    """One video's summary as planned: what `create_summary` writes and the panel previews.

    Attributes:
        segments: [(first, last, score), ...] in time order: inclusive 0-based frames and the
            mean frame score of each segment.
        capacity: the budget in frames.
        n_shots: shots the knapsack chose from (long ones cut to fit the budget).
        n_split_shots: of those, the pieces added by cutting shots longer than the budget.
    """

    segments: list[tuple[int, int, float]]
    capacity: int
    n_shots: int
    n_split_shots: int


def plan_summary(
    frame_scores: np.ndarray,
    frame_rate: float,
    budget: Budget | float,
    shots: Callable[[int], np.ndarray],
    rounding: str = SummaryOptions.rounding,
) -> SummaryPlan:
    """The summary of one video under `budget`: its shots, cut to fit, and the best of them.

    Args:
        frame_scores: float array (n_frames,), one finite score per frame.
        frame_rate: frames per second (needed for a budget in seconds; 0 when unknown).
        budget: a `Budget`, or a number: the fraction of the video in (0, 1].
        shots: the video's shots for a capacity in frames: ``capacity -> (n_shots, 2)`` inclusive
            0-based [first, last] frame bounds (KTS keeps its shots under the budget, so the
            shots may depend on it).
        rounding: how a fractional budget is rounded ("floor" or "round").

    Raises:
        ValueError: a budget that gives no frame, bad scores, or a budget no shot fits with a
            positive score.
    """
    budget = Budget.of(budget)
    capacity = budget_capacity(len(frame_scores), frame_rate, budget, rounding)
    if capacity < 1:
        raise ValueError(f"the budget {budget} gives 0 frames of this video; raise it")
    change_points = shots(capacity)
    fitting = split_long_shots(change_points, capacity)
    segments = select_segments(frame_scores, fitting, capacity=capacity)
    if not segments:
        raise ValueError("no shot has a positive mean score, so the knapsack keeps nothing")
    return SummaryPlan(segments, capacity, len(fitting), len(fitting) - len(change_points))


def plan_video(
    options: SummaryOptions,
    frame_scores: np.ndarray,
    frame_rate: float | None,
    item: FrameEmbeddings | None,
    given: Sequence[tuple[int, int]] | None = None,
) -> SummaryPlan:
    """One video's summary under `options`: the one sequence `create_summary`, the panel's
    re-planning and its preview share.

    Args:
        options: the shots, the budget and its rounding.
        frame_scores: one finite score per frame of the video.
        frame_rate: its frames per second (None or 0 when unknown: seconds budgets then fail,
            shots assume `FALLBACK_FRAME_RATE`).
        item: its stored frame embeddings (KTS cuts on them); None without.
        given: "shots" only: its shots as 1-based inclusive [first, last] frames.

    Raises:
        ValueError: as `plan_summary` and `shots_for_video`.
    """
    n_frames = len(frame_scores)
    rate = frame_rate or FALLBACK_FRAME_RATE
    return plan_summary(
        frame_scores, frame_rate or 0.0, options.budget,
        lambda capacity: shots_for_video(options, n_frames, rate, item, capacity, given), options.rounding,
    )


def shots_for_video(
    options: ShotOptions,
    n_frames: int,
    frame_rate: float,
    item: FrameEmbeddings | None,
    capacity: int,
    given: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """``(n_shots, 2)`` inclusive 0-based frame bounds of the shots of a video's first `n_frames`.

    Args:
        options: the segmentation and its settings.
        n_frames: frames of the video; frame_rate: its frames per second.
        item: its stored frame embeddings (KTS cuts on them); None without.
        capacity: the summary budget in frames (KTS keeps shots under it where it can; uniform
            shots are never longer).
        given: "shots" only: the video's shots as 1-based inclusive [first, last] frames.

    Raises:
        ValueError: KTS without embeddings or with none inside the video, or given shots that
            are missing, outside the video or overlap.
    """
    if options.segmentation == "uniform":
        shot_frames = max(1, min(round(options.segment_seconds * frame_rate), capacity))
        return uniform_change_points(n_frames, shot_frames)
    if options.segmentation == "shots":
        return given_shots(given, n_frames)
    if item is None:
        raise ValueError("no frame embeddings for KTS; run compute_frame_embeddings")
    picks = np.asarray(item.frame_numbers) - 1
    keep = picks < n_frames
    picks, embeddings = picks[keep], np.asarray(item.embeddings)[keep]
    if picks.size == 0:
        raise ValueError("the stored embeddings do not match this video's frames; re-embed it")
    step_rate = float(item.info.get("fps") or frame_rate)
    return kts_summary_shots(embeddings, picks, n_frames, step_rate, frame_rate, capacity, options)


def given_shots(supports: Sequence[tuple[int, int]] | None, n_frames: int) -> np.ndarray:
    """Shots given as 1-based inclusive [first, last] frames, checked, as 0-based bounds in order."""
    if not supports:
        raise ValueError("the shots field has no shots for this video")
    bounds = sorted((int(first) - 1, int(last) - 1) for first, last in supports)
    for (first, last), (next_first, _) in zip(bounds, bounds[1:] + [(n_frames, n_frames)]):
        if first < 0 or last < first or last >= n_frames:
            raise ValueError(f"shot [{first + 1}, {last + 1}] is outside frames 1..{n_frames}")
        if next_first <= last:
            raise ValueError(f"shots overlap: [{first + 1}, {last + 1}] and one starting at {next_first + 1}")
    return np.array(bounds, dtype=np.int64)


def frame_scores_array(
    frame_numbers: Sequence[int], scores: Sequence, n_frames: int, field_name: str, steps: bool = False
) -> np.ndarray:
    """One score per frame 1..n_frames from a frame field's values; raises when any is missing.

    With `steps`, the field holds scores at the sampled frames only (`score_frames(...,
    frames="steps")`) and every frame's score is the step function the evaluation protocol
    makes of them (`upsample_scores`): the same values a score written to every frame holds.
    """
    if steps:
        pairs = sorted((n, s) for n, s in zip(frame_numbers, scores) if s is not None and 1 <= n <= n_frames)
        if not pairs:
            raise ValueError(f"{n_frames} of {n_frames} frames have no finite 'frames.{field_name}'; run score_frames")
        numbers, values = zip(*pairs)
        return upsample_scores(np.asarray(values, dtype=np.float64), np.asarray(numbers) - 1, n_frames)
    array = np.full(n_frames, np.nan)
    for number, score in zip(frame_numbers, scores):
        if score is not None and 1 <= number <= n_frames:
            array[number - 1] = score
    missing = int(np.isnan(array).sum())
    if missing:
        raise ValueError(
            f"{missing} of {n_frames} frames have no finite 'frames.{field_name}'; run score_frames"
        )
    return array


def summary_keyframes(
    frame_scores: np.ndarray,
    segments: Sequence[tuple[int, int, float]],
    item: FrameEmbeddings | None,
    seconds: np.ndarray | None,
    n_keyframes: int,
) -> list[tuple[int, int]]:
    """``[(frame number, rank), ...]`` of one summary's keyframes (rank 1 = best): its best frames
    that are not near-duplicates by their embeddings, at least 1 s apart by the frames'
    timestamps (`seconds`, one per frame)."""
    if n_keyframes == 0:
        return []
    inside = np.zeros(len(frame_scores), dtype=bool)
    for first, last, _ in segments:
        inside[first : last + 1] = True
    embeddings = None
    if item is not None:
        picks = np.asarray(item.frame_numbers) - 1
        ok = (picks < len(frame_scores)) & inside[np.minimum(picks, len(frame_scores) - 1)]
        frames, embeddings = picks[ok], np.asarray(item.embeddings)[ok]
    if embeddings is None or frames.size == 0:
        frames, embeddings = np.flatnonzero(inside), None
    chosen = select_keyframes(frame_scores[frames], embeddings, seconds[frames], n_keyframes, min_gap=1.0, fill=True)
    return [(int(frames[index]) + 1, rank) for rank, index in enumerate(chosen, start=1)]

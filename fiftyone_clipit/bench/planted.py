"""What both planted worlds of `bench learning` share: shots of kinds, steps of noisy unit vectors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FRAMES_PER_STEP = 15  # TVSum's picks: every 15th frame of ~30 fps video, i.e. 2 steps per second


def unit(x: np.ndarray) -> np.ndarray:
    """`x` scaled to unit length along its last axis."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@functools.cache
def planted_video_class() -> type:
    """`PlantedVideo`: a `TrainingVideo` that also knows the kind of shot of each step (`step_kinds`), so the
    bench can say which kinds a scorer prefers; training reads it as any `TrainingVideo`. Made on first use:
    the CLI imports every bench module to list them, and training imports torch."""
    from fiftyone_clipit.training import TrainingVideo

    @dataclass(frozen=True)
    class PlantedVideo(TrainingVideo):
        step_kinds: np.ndarray | None = None

    return PlantedVideo


def score_by_kind(videos: list, scores: list) -> dict[str, float]:
    """Each kind's mean score, after standardising each video's scores (mean 0, sd 1): which kinds a scorer prefers."""
    by_kind: dict[str, list[float]] = {}
    for video, step_scores in zip(videos, scores):
        z = (step_scores - step_scores.mean()) / (step_scores.std() + 1e-9)
        for kind in np.unique(video.step_kinds):
            by_kind.setdefault(str(kind), []).append(float(z[video.step_kinds == kind].mean()))
    return {kind: round(float(np.mean(values)), 3) for kind, values in sorted(by_kind.items())}


def shot_plan(rng: np.random.Generator, shares: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """16-25 shots of 3-6 steps: each shot's kind (`shares` of them per kind, at least one; the rest
    "background") and length in steps."""
    n_shots = int(rng.integers(16, 26))
    lengths = rng.integers(3, 7, size=n_shots)
    kinds = np.array(["background"] * n_shots, dtype=object)
    order, start = rng.permutation(n_shots), 0
    for kind, share in shares.items():
        count = max(1, round(share * n_shots))
        kinds[order[start : start + count]] = kind
        start += count
    return kinds, lengths


def shots_video(
    name: str,
    rng: np.random.Generator,
    kinds: np.ndarray,
    lengths: np.ndarray,
    base: Callable[[str], np.ndarray],
    query: np.ndarray,
    noise: float,
):
    """A `PlantedVideo` (`planted_video_class`): each shot's steps are unit(`base(kind)` + noise of norm `noise`), 15 frames a
    step; the text is `query` and the user summary the "important" shots."""
    dim = len(query)
    steps, important = [], []
    for kind, length in zip(kinds, lengths):
        shot = base(kind)
        for _ in range(length):
            steps.append(unit(shot + rng.normal(size=dim) * noise / np.sqrt(dim)))
            important.append(kind == "important")
    n_steps = len(steps)
    bounds = np.concatenate([[0], np.cumsum(lengths)]) * FRAMES_PER_STEP
    return planted_video_class()(
        name=name,
        features=np.asarray(steps, dtype=np.float32),
        text=np.asarray(query, dtype=np.float32)[None, :],
        picks=np.arange(n_steps) * FRAMES_PER_STEP,
        n_frames=n_steps * FRAMES_PER_STEP,
        change_points=np.stack([bounds[:-1], bounds[1:] - 1], axis=1),
        user_summaries=np.repeat(np.asarray(important), FRAMES_PER_STEP)[None, :],
        step_kinds=np.repeat(kinds.astype(str), lengths),
    )

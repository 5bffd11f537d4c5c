"""A video as the scorer learns and is tested on it: `training_example`.

`train_scorer` (from a FiftyOne dataset) and the benchmarks (from features files) build their
`TrainingVideo`s here, so both plan validation and test summaries over the shots
`create_summary` would cut (`fiftyone_clipit.shots.shots_for_video`, kept under the budget and
cut to fit it).
"""

from __future__ import annotations

import numpy as np

from fiftyone_clipit.options import ShotOptions
from fiftyone_clipit.shots import shots_for_video
from fiftyone_clipit.store import FrameEmbeddings
from fiftyone_clipit.summary import split_long_shots, summary_capacity
from fiftyone_clipit.training import TrainingVideo


def training_example(
    name: str,
    item: FrameEmbeddings,
    n_frames: int,
    frame_rate: float,
    text: np.ndarray,
    users: np.ndarray | None,
    proportion: float,
    shots: ShotOptions,
) -> TrainingVideo:
    """One video's `TrainingVideo`: its steps inside the video, its text, its users' summaries,
    and the shots its summaries under `proportion` are planned over.

    Args:
        name: what reports call it (a file path, a TVSum id).
        item: its frame embeddings; `info["fps"]` is the rate of the steps.
        n_frames: frames in the video; frame_rate: its frames per second.
        text: (m, d) sentence embeddings it is read against (`captions.video_text`).
        users: bool (n_users, n_frames) users' summaries, or None.
        proportion: the summary budget of its validation / test F1.
        shots: how the shots are cut (KTS with its limits, by default).

    Raises:
        ClipItError: no step inside the video, or features or text of the wrong shape.
        ValueError: as `shots_for_video`.
    """
    picks = np.asarray(item.frame_numbers) - 1
    keep = picks < n_frames
    features = np.asarray(item.embeddings, dtype=np.float32)[keep]
    capacity = max(1, summary_capacity(n_frames, proportion))
    change_points = split_long_shots(shots_for_video(shots, n_frames, frame_rate, item, capacity), capacity)
    users = None if users is None else np.asarray(users, dtype=bool)
    return TrainingVideo(name, features, text, picks[keep], n_frames, change_points, users)

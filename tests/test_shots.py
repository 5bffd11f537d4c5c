"""The shot policy every summary is planned with (`fiftyone_clipit.shots`), without a database."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_clipit.shots import ShotOptions, frame_scores_array, given_shots, shots_for_video, summary_keyframes
from fiftyone_clipit.store import FrameEmbeddings
from fiftyone_clipit.summary import upsample_scores


def scene_embeddings(n_steps: int, change_at: int, dim: int = 16) -> FrameEmbeddings:
    """One step per 15 frames (2 fps of a 30 fps video); two scenes with different directions."""
    rng = np.random.default_rng(0)
    base = np.eye(dim)[np.where(np.arange(n_steps) < change_at, 0, 1)]
    vectors = base + 0.05 * rng.standard_normal((n_steps, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return FrameEmbeddings(np.arange(n_steps) * 15 + 1, vectors.astype(np.float32), {"fps": 2.0})


def test_kts_cuts_where_the_scene_changes_and_covers_the_video():
    shots = shots_for_video(ShotOptions(), 300, 30.0, scene_embeddings(20, 8), capacity=200)
    assert shots[0, 0] == 0 and shots[-1, 1] == 299
    np.testing.assert_array_equal(shots[1:, 0], shots[:-1, 1] + 1)
    assert 120 in shots[:, 0]  # the second scene starts at step 8 = frame 121


def test_uniform_shots_are_never_longer_than_the_budget():
    shots = shots_for_video(ShotOptions("uniform", segment_seconds=2.0), 300, 30.0, None, capacity=45)
    assert (shots[:, 1] - shots[:, 0] + 1).max() == 45


def test_given_shots_are_checked_and_ordered():
    np.testing.assert_array_equal(given_shots([(11, 20), (1, 10)], 20), [[0, 9], [10, 19]])
    with pytest.raises(ValueError, match="outside frames 1..20"):
        given_shots([(15, 25)], 20)
    with pytest.raises(ValueError, match="overlap"):
        given_shots([(1, 10), (10, 20)], 20)
    with pytest.raises(ValueError, match="no shots"):
        shots_for_video(ShotOptions("shots", shots_field="shots"), 20, 30.0, None, 5, given=[])
    with pytest.raises(ValueError, match="run compute_frame_embeddings"):
        shots_for_video(ShotOptions(), 20, 30.0, None, 5)


def test_frame_scores_name_the_missing_field():
    np.testing.assert_array_equal(frame_scores_array([1, 2, 3], [0.1, 0.2, 0.3], 3, "s"), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="1 of 3 frames have no finite 'frames.clipit'"):
        frame_scores_array([1, 2], [0.1, 0.2], 3, "clipit")


def test_scores_at_the_steps_are_every_frames_scores_as_the_protocol_upsamples():
    steps = np.array([0.3, 0.9, 0.1])
    picks = np.array([4, 19, 34])  # 0-based frames of the steps; frames 1-4 take the first step's score
    every = upsample_scores(steps, picks, 45)
    stored_numbers = [35, 5, 20, 2]  # in any order, with a frame whose score is None (another field's)
    rebuilt = frame_scores_array(stored_numbers, [0.1, 0.3, 0.9, None], 45, "s", steps=True)
    np.testing.assert_array_equal(rebuilt, every)
    assert rebuilt[0] == 0.3 and rebuilt[19] == 0.9 and rebuilt[44] == 0.1
    with pytest.raises(ValueError, match="45 of 45 frames have no finite 'frames.s'; run score_frames"):
        frame_scores_array([1, 2], [None, None], 45, "s", steps=True)


def test_keyframes_come_from_the_summary_and_are_a_second_apart():
    scores = np.linspace(0, 1, 300)
    seconds = np.arange(300) / 30.0
    chosen = summary_keyframes(scores, [(150, 299, 0.8)], scene_embeddings(20, 8), seconds, 3)
    frames = [number for number, _ in chosen]
    assert [rank for _, rank in chosen] == [1, 2, 3] and all(151 <= n <= 300 for n in frames)
    assert np.diff(sorted(frames)).min() >= 30
    assert summary_keyframes(scores, [(150, 299, 0.8)], None, seconds, 0) == []

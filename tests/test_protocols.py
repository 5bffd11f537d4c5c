"""The evaluation protocols on plain arrays: hand-computed cases, no database."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.protocols import (
    clip_scores,
    frame_shots,
    highlight_figures,
    importance_keyshot_summary,
    keyshot_figures,
    protocol_metrics,
    qfvs_figures,
    selected_shots,
    shot_frame_range,
)


def test_keyshot_figures_average_or_keep_the_best_user():
    machine = np.array([1, 1, 0, 0], dtype=bool)
    users = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
    assert keyshot_figures(machine, users, "avg") == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert keyshot_figures(machine, users, "max") == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    with pytest.raises(ValueError, match="Unknown mode 'best'"):
        keyshot_figures(machine, users, "best")


def test_fixed_length_shots_and_the_half_rule():
    assert shot_frame_range(0, 2.0, 25, 5.0) == (1, 10) and shot_frame_range(2, 2.0, 25, 5.0) == (21, 25)
    shots = frame_shots(25, 2.0, 5.0)
    assert shots.tolist() == [0] * 10 + [1] * 10 + [2] * 5
    mask = np.zeros(25, dtype=bool)
    mask[:5] = True  # half of shot 0
    mask[10:14] = True  # less than half of shot 1
    assert selected_shots(mask, shots).tolist() == [0]


def test_qfvs_figures_match_shots_by_concepts():
    concepts = [["car"], ["car"], ["dog"], ["dog", "tree"]]
    users = np.zeros((1, 40), dtype=bool)
    users[0, 20:30] = True  # shot 2: dog
    machine = np.zeros(40, dtype=bool)
    machine[30:40] = True  # shot 3: dog, tree -> IoU 1/2
    figures = qfvs_figures(machine, users, concepts, rate=2.0, shot_seconds=5.0)
    assert figures == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_highlight_clips_average_frames_and_find_the_top_clip():
    frames = np.array([0.1, 0.1, 0.9, 0.9, 0.2, 0.2])  # 1 fps, 2-second clips
    assert clip_scores(frames, 1.0, 4, 2.0).tolist() == pytest.approx([0.1, 0.9, 0.2, 0.1])
    saliency = np.array([[0, 0], [4, 3], [2, 2], [0, 0]])
    figures = highlight_figures(frames, saliency, 1.0, 2.0)
    assert figures["hit1_verygood"] == 1.0 and figures["ap_fair"] == 1.0
    assert sorted(protocol_metrics("qvhighlights", False)) == sorted(figures)
    assert protocol_metrics("tvsum", True)[-2:] == ("kendall", "spearman")


def test_importance_keyshot_summary_keeps_the_most_important_two_second_shot():
    numbers = list(range(1, 301))
    values = [1.0 if 61 <= n <= 120 else (None if n > 290 else 0.0) for n in numbers]
    summary = importance_keyshot_summary(numbers, values, 300, 30.0, "importance", 0.2)
    assert summary.shape == (1, 300)
    assert np.flatnonzero(summary[0]).tolist() == list(range(60, 120))
    with pytest.raises(ClipItError, match="no values in 'frames.importance'"):
        importance_keyshot_summary(numbers, [None] * 300, 300, 30.0, "importance", 0.2)

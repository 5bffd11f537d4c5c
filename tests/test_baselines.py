"""The trained scorer against zero-shot and its query-blind twin on the validation videos, and the warning.

The world here favours zero-shot: the important steps are the ones that look like the video's
query, so CLIP similarity alone finds them. A scorer trained one epoch at a negligible learning
rate cannot beat that, and the comparison must say so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fiftyone_clipit.baselines import baseline_card_lines, baseline_warning, validation_baselines
from fiftyone_clipit.options import TrainingOptions
from fiftyone_clipit.relevance import zero_shot_scores
from fiftyone_clipit.scorer import load_preset
from fiftyone_clipit.training import TrainingVideo, checkpoint_metadata, model_card, train, video_f1

DIM, STEPS, FRAMES_PER_STEP = 32, 40, 15


def _zero_shot_world(n_videos: int, seed: int = 0) -> list[TrainingVideo]:
    """Videos whose important steps (a 4-step run) look like their query; the rest are noise."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(n_videos):
        query = rng.normal(size=DIM)
        query /= np.linalg.norm(query)
        features = rng.normal(size=(STEPS, DIM))
        start = int(rng.integers(0, STEPS - 4))
        features[start : start + 4] += 4 * query
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        users = np.zeros((1, STEPS * FRAMES_PER_STEP), dtype=bool)
        users[0, start * FRAMES_PER_STEP : (start + 4) * FRAMES_PER_STEP] = True
        bounds = np.arange(0, STEPS + 1, 2) * FRAMES_PER_STEP
        videos.append(TrainingVideo(
            name=f"v{i}", features=features.astype(np.float32), text=query[None, :].astype(np.float32),
            picks=np.arange(STEPS) * FRAMES_PER_STEP, n_frames=STEPS * FRAMES_PER_STEP,
            change_points=np.stack([bounds[:-1], bounds[1:] - 1], axis=1), user_summaries=users,
        ))
    return videos


def test_a_scorer_that_does_not_beat_zero_shot_is_warned_about(one_thread):
    videos = _zero_shot_world(8)
    config, options = load_preset("tiny"), TrainingOptions(epochs=1, learning_rate=1e-7, validation_fraction=0.25)
    result = train(videos, config, options)
    figures = validation_baselines(result, videos, config, options)
    validation = [v for v in videos if v.name in result.validation_names]
    assert figures["n_videos"] == len(validation) == 2
    assert figures["f1_zero_shot"] == pytest.approx(
        np.mean([video_f1(v, zero_shot_scores(v.features, v.text)) for v in validation]))
    assert figures["f1_zero_shot"] >= 0.75 and figures["f1_trained"] < figures["f1_zero_shot"], figures
    assert figures["f1_query_blind"] is not None and 0 <= figures["f1_query_blind"] <= 1
    assert figures["warning"].startswith("the trained scorer's validation F1") and "zero-shot" in figures["warning"]
    card = model_card(result.model.config, checkpoint_metadata(result, {"videos": 8}), baseline_card_lines(figures))
    assert f"**Warning: {figures['warning']}.**" in card
    assert f"| zero-shot (CLIP similarity, the default scorer) | {figures['f1_zero_shot']:.4f} |" in card
    assert card.index("## Against the baselines") < card.index("## Limits")


def test_no_warning_when_the_scorer_wins_and_none_without_validation_labels(one_thread):
    assert baseline_warning({"f1_trained": 0.61, "f1_zero_shot": 0.60, "n_videos": 3}) is None
    assert "0.6000 does not beat zero-shot's 0.6000" in baseline_warning({"f1_trained": 0.6, "f1_zero_shot": 0.6, "n_videos": 3})
    videos = _zero_shot_world(4)
    same_text = [replace(v, text=videos[0].text) for v in videos]
    options = TrainingOptions(epochs=1, validation_fraction=0.25)
    result = train(same_text, load_preset("tiny"), options)
    figures = validation_baselines(result, same_text, load_preset("tiny"), options)
    assert figures["f1_query_blind"] is None  # one text for every video: the scorer is query-blind itself
    assert "query-blind itself" in "\n".join(baseline_card_lines(figures))
    unlabelled = train(videos, load_preset("tiny"), TrainingOptions(epochs=1, validation_fraction=0))
    skipped = validation_baselines(unlabelled, videos, load_preset("tiny"), options)
    assert "skipped" in skipped and baseline_warning(skipped) is None
    assert "not computed: no validation videos" in "\n".join(baseline_card_lines(skipped))

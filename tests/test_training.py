"""Losses, the training loop and the learning test on planted data (tiny preset, fast)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from fiftyone_clipit.bench.learning import learning_figures, planted_task, planted_videos
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.scorer import load_preset, predict_scores
from fiftyone_clipit.training import (
    TrainingOptions,
    checkpoint_metadata,
    diversity_loss,
    model_card,
    reconstruction_loss,
    split_validation,
    train,
    weighted_bce,
)


def test_weighted_bce_weighs_positives_by_negatives_over_positives():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0, 9.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True, False]])
    p = torch.sigmoid(logits[0, :4])
    expected = (-3.0 * torch.log(p[0]) - torch.log(1 - p[1:]).sum()) / 4  # 3 negatives / 1 positive
    assert torch.allclose(weighted_bce(logits, targets, mask), expected)


def test_reconstruction_loss_is_the_mse_over_real_steps():
    features = torch.zeros(1, 3, 2)
    rebuilt = torch.tensor([[[1.0, 1.0], [0.0, 2.0], [50.0, 50.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.isclose(reconstruction_loss(rebuilt, features, mask), torch.tensor((1.0 + 2.0) / 2))


def test_diversity_loss_is_the_mean_pairwise_cosine_of_the_selected_frames():
    rng = np.random.default_rng(0)
    rebuilt = torch.from_numpy(rng.normal(size=(1, 7, 5)).astype(np.float32))
    selected = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]])
    mask = torch.ones(1, 7, dtype=torch.bool)
    unit = torch.nn.functional.normalize(rebuilt[0], dim=-1)
    chosen = unit[selected[0] > 0]
    cosines = chosen @ chosen.T
    expected = (cosines.sum() - cosines.diagonal().sum()) / (len(chosen) * (len(chosen) - 1))
    assert torch.allclose(diversity_loss(rebuilt, selected, mask), expected, atol=1e-6)
    soft = torch.rand(1, 7, requires_grad=True)
    diversity_loss(rebuilt, soft, mask).backward()
    assert soft.grad.abs().sum() > 0  # the soft selection trains the scores


def test_options_and_splits_are_checked():
    with pytest.raises(ClipItError, match=r"Unknown training mode 'semi'.*\['supervised', 'unsupervised'\]"):
        TrainingOptions(mode="semi")
    assert TrainingOptions(mode="unsupervised").loss_weights() == {"reconstruction": 1.0, "diversity": 1.0}
    videos = planted_videos(planted_task(), 10, seed=0, prefix="v")
    train_part, validation = split_validation(videos, 0.2, seed=3)
    assert len(validation) == 2 and not {v.name for v in validation} & {v.name for v in train_part}
    assert [v.name for v in split_validation(videos, 0.2, seed=3)[1]] == [v.name for v in validation]
    with pytest.raises(ClipItError, match="cannot be split"):
        split_validation(videos[:1], 0.2, seed=0)


def test_training_is_seeded_and_keeps_the_best_validation_epoch(one_thread):
    videos = planted_videos(planted_task(), 12, seed=1, prefix="v")
    options = TrainingOptions(epochs=4, learning_rate=1e-2, seed=5, patience=None)
    first, second = (train(videos, load_preset("tiny"), options) for _ in range(2))
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    figures = [row["validation_f1"] for row in first.history]
    assert first.criterion == "validation_f1" and len(figures) == 4
    assert first.best_value == max(figures) and figures[first.best_epoch - 1] == max(figures)
    assert set(first.validation_names) <= {v.name for v in videos}
    assert not set(first.validation_names) & set(first.train_names)
    metadata = checkpoint_metadata(first, {"clip_model": "tiny-random"})
    card = model_card(first.model.config, metadata)
    assert "bce x 1" in card and f"kept epoch {first.best_epoch}" in card and "tiny-random" in card


def test_supervised_training_needs_ground_truth():
    video = planted_videos(planted_task(), 3, seed=2, prefix="v")
    unlabelled = [replace(v, user_summaries=None) for v in video]
    with pytest.raises(ClipItError, match="needs ground truth for every video"):
        train(unlabelled, load_preset("tiny"), TrainingOptions(epochs=1))


def test_the_scorer_learns_what_zero_shot_similarity_cannot_see(one_thread):
    """The learning test on planted data (see fiftyone_clipit/bench/learning.py)."""
    figures = learning_figures(seed=0, n_train=40, n_test=20, epochs=60)
    assert figures["f1_supervised"] >= figures["f1_zero_shot"] + 0.05, figures
    assert figures["f1_zero_shot"] > figures["f1_random"], figures
    assert figures["f1_unsupervised"] > figures["f1_random"], figures
    assert figures["query_swap_changed"] >= 0.9, figures
    assert figures["f1_supervised_swapped_query"] < figures["f1_supervised"] - 0.1, figures


def test_a_swapped_query_changes_the_trained_scores(one_thread):
    task = planted_task()
    videos = planted_videos(task, 16, seed=3, prefix="v")
    model = train(videos, load_preset("tiny"), TrainingOptions(epochs=5, learning_rate=1e-2, seed=0)).model
    own, other = predict_scores(model, [videos[0].features] * 2, [task.queries[0:1], task.queries[1:2]])
    assert np.abs(own - other).max() > 1e-3

"""Losses, the training loop and the learning test on planted data (tiny preset, fast)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from fiftyone_clipit.bench.concepts import KIND_SHARES as CONCEPT_KINDS
from fiftyone_clipit.bench.concepts import concept_videos, concept_world
from fiftyone_clipit.bench.learning import (
    FIRST_FRESH_SEED,
    KIND_SHARES,
    WORLDS,
    gate_failures,
    learning_figures,
    mean_figures,
    paired_interval,
    planted_videos,
    planted_world,
)
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.scorer import load_preset, predict_scores
from fiftyone_clipit.training import (
    TrainingOptions,
    TrainingVideo,
    checkpoint_metadata,
    diversity_loss,
    learning_rate_factor,
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
    with pytest.raises(ClipItError, match=r"Unknown attention 'local'"):
        TrainingOptions(attention="local")
    videos = planted_videos(planted_world(), 10, seed=0, prefix="v")
    train_part, validation = split_validation(videos, 0.2, seed=3)
    assert len(validation) == 2 and not {v.name for v in validation} & {v.name for v in train_part}
    assert [v.name for v in split_validation(videos, 0.2, seed=3)[1]] == [v.name for v in validation]
    with pytest.raises(ClipItError, match="cannot be split"):
        split_validation(videos[:1], 0.2, seed=0)


def test_training_is_seeded_and_keeps_the_best_validation_epoch(one_thread):
    videos = planted_videos(planted_world(), 12, seed=1, prefix="v")
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
    video = planted_videos(planted_world(), 3, seed=2, prefix="v")
    unlabelled = [replace(v, user_summaries=None) for v in video]
    with pytest.raises(ClipItError, match="needs ground truth for every video"):
        train(unlabelled, load_preset("tiny"), TrainingOptions(epochs=1))


@pytest.fixture(scope="module", params=WORLDS)
def learning(request) -> dict:
    """`bench learning` on each planted world, small: tiny preset, the library's options, 2 fresh seeds, one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seeds = (FIRST_FRESH_SEED, FIRST_FRESH_SEED + 1)
        return mean_figures([learning_figures(seed=seed, preset="tiny", world=request.param) for seed in seeds])
    finally:
        torch.set_num_threads(before)


def shortcuts_of(figures: dict, leave_out: str | None = None) -> dict:
    names = ("f1_zero_shot", "f1_training_free", "f1_query_blind")
    return {name: figures[name] for name in names if name != leave_out}


@pytest.mark.slow  # 2 seeds of each world: a minute alone, minutes on a busy machine
def test_the_default_recipe_learns_language_guidance_that_carries_over_to_new_queries(learning):
    """Unseen test queries; every shortcut in the same run (see fiftyone_clipit/bench/learning.py)."""
    failures = gate_failures(
        learning["f1_supervised"], learning["f1_supervised_swapped"], shortcuts_of(learning), learning["f1_random"]
    )
    assert failures == [], learning
    assert learning["f1_unsupervised"] > learning["f1_random"], learning


@pytest.mark.slow  # 2 seeds of each world: a minute alone, minutes on a busy machine
def test_the_gates_fail_a_query_blind_scorer_and_the_zero_shot_formula(learning):
    """The bench can fail: each shortcut, put in the supervised scorer's place, fails the gates."""
    # A query-blind scorer reads the same constant text whatever the query, so swapping the
    # test queries among the videos leaves its F1 as it is.
    blind = gate_failures(learning["f1_query_blind"], learning["f1_query_blind"], shortcuts_of(learning, "f1_query_blind"))
    zero_shot = gate_failures(
        learning["f1_zero_shot"], learning["f1_zero_shot_swapped"], shortcuts_of(learning, "f1_zero_shot")
    )
    assert any("swapped" in failure for failure in blind), learning
    assert zero_shot, learning


def test_a_swapped_query_changes_the_trained_scores(one_thread):
    world = planted_world()
    videos = planted_videos(world, 16, seed=3, prefix="v")
    model = train(videos, load_preset("tiny"), TrainingOptions(epochs=5, seed=0)).model
    own, other = predict_scores(model, [videos[0].features] * 2, [videos[0].text, videos[1].text])
    assert np.abs(own - other).max() > 1e-3


def test_the_learning_rate_warms_up_then_decays_to_zero():
    options = TrainingOptions(epochs=10, warmup_epochs=2)
    factors = [learning_rate_factor(step, 3, options) for step in range(30)]
    assert factors[:6] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])
    assert all(a >= b for a, b in zip(factors[5:], factors[6:])) and factors[-1] < 0.01
    assert TrainingOptions().peak_learning_rate(load_preset("tiny")) > TrainingOptions().peak_learning_rate(load_preset("paper"))
    assert TrainingOptions(learning_rate=0.05).peak_learning_rate(load_preset("paper")) == 0.05


def test_unsupervised_training_chooses_its_epoch_without_reading_labels(one_thread):
    videos = planted_videos(planted_world(), 10, seed=4, prefix="v")
    options = TrainingOptions(mode="unsupervised", epochs=3, seed=1, patience=None)
    labelled = train(videos, load_preset("tiny"), options)
    unlabelled = train([replace(v, user_summaries=None) for v in videos], load_preset("tiny"), options)
    assert labelled.criterion == unlabelled.criterion == "validation_loss"
    assert labelled.best_epoch == unlabelled.best_epoch
    assert [row["validation_loss"] for row in labelled.history] == [row["validation_loss"] for row in unlabelled.history]
    for name, tensor in labelled.model.state_dict().items():
        assert torch.equal(tensor, unlabelled.model.state_dict()[name]), name


def test_bad_training_videos_are_named_before_any_epoch_runs():
    videos = planted_videos(planted_world(), 4, seed=5, prefix="v")
    epochs_run = []
    progress = lambda fraction, label: epochs_run.append(label)  # noqa: E731
    no_positive = replace(videos[1], user_summaries=np.zeros_like(videos[1].user_summaries))
    with pytest.raises(ClipItError, match=r"Video 'v1' has no positive frame"):
        train([videos[0], no_positive, *videos[2:]], load_preset("tiny"), TrainingOptions(epochs=1), progress=progress)
    with pytest.raises(ClipItError, match=r"Only one training video \('v0'\)"):
        train(videos[:1], load_preset("tiny"), TrainingOptions(epochs=1), progress=progress)
    with pytest.raises(ClipItError, match=r"Video 'v2' has no text"):
        replace(videos[2], text=np.zeros((0, 32), np.float32))
    other_model = replace(videos[3], name="v3-other", features=np.ones((len(videos[3].features), 16), np.float32),
                          text=np.ones((1, 16), np.float32))
    with pytest.raises(ClipItError, match=r"Video 'v3-other' has 16-d features, 'v0' 32-d"):
        train([*videos, other_model], load_preset("tiny"), TrainingOptions(epochs=1), progress=progress)
    assert epochs_run == []
    with pytest.raises(ClipItError, match=r"Video 'v3'.*differ in dimension"):
        TrainingVideo("v3", videos[3].features, np.ones((1, 512), np.float32), videos[3].picks,
                      videos[3].n_frames, videos[3].change_points, videos[3].user_summaries)


def test_the_model_card_records_the_recipe_the_curve_and_the_epoch_kept(one_thread):
    videos = planted_videos(planted_world(), 8, seed=6, prefix="v")
    result = train(videos, load_preset("tiny"), TrainingOptions(epochs=3, seed=2, patience=None))
    metadata = checkpoint_metadata(result, {"clip_model": "tiny-random"})
    card = model_card(result.model.config, metadata)
    assert f"peak learning rate {TrainingOptions().peak_learning_rate(load_preset('tiny')):.3g} (scaled with width)" in card
    assert "linear warm-up over 5 epoch(s), then cosine decay" in card and "fusion `product`" in card
    assert card.count("| kept |") == 1 and f"| {result.best_epoch} |" in card
    assert len([line for line in card.splitlines() if line.startswith("| ") and "kept" not in line[-8:]]) >= 3


def test_bench_learning_prints_every_figure_its_spread_and_its_gates_for_both_worlds(capsys, one_thread):
    from fiftyone_clipit.cli import main

    assert main(["bench", "learning", "--seeds", "2", "--train-videos", "8", "--test-videos", "4",
                 "--epochs", "2", "--warmup-epochs", "1", "--threads", "1", "--ablate", "input_norm=false"]) == 0
    printed = capsys.readouterr()
    line = json.loads(printed.out.strip().splitlines()[-1])
    # a line on stderr per world and seed as each finishes (a paper run takes minutes a seed)
    assert [entry.split(":")[1].strip() for entry in printed.err.splitlines() if entry.startswith("bench learning:")] == [
        f"{world} seed {seed}" for world in WORLDS for seed in (FIRST_FRESH_SEED, FIRST_FRESH_SEED + 1)]
    methods = ["random", "zero_shot", "training_free", "query_blind", "supervised", "supervised_swapped", "unsupervised"]
    assert line["seeds"] == [FIRST_FRESH_SEED, FIRST_FRESH_SEED + 1] and set(line["worlds"]) == set(WORLDS)
    kinds = {"bilinear": {"background", *KIND_SHARES}, "concepts": {"background", *CONCEPT_KINDS}}
    for name, world in line["worlds"].items():
        for method in methods:
            per_seed = world[f"f1_{method}_per_seed"]
            assert len(per_seed) == 2 and all(0.0 <= f1 <= 1.0 for f1 in per_seed), (method, world)
            assert world[f"f1_{method}_mean"] == pytest.approx(np.mean(per_seed), abs=1e-4)
            assert world[f"f1_{method}_sd"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-4)
        assert isinstance(world["gates_passed"], bool) and world["gates_passed"] == (world["gate_failures"] == [])
        for method in ("supervised", "query_blind", "unsupervised"):  # which kinds of shot each scorer prefers
            assert set(world[f"score_by_kind_{method}_mean"]) == kinds[name]
        (ablation,) = world["ablations"]
        assert ablation["preset_overrides"] == {"input_norm": False}
        assert ablation["difference_per_seed"] == pytest.approx(
            np.subtract(world["f1_supervised_per_seed"], ablation["ablated_f1_supervised_per_seed"]), abs=2e-4)
    assert line["preset"] == "tiny" and line["training_options"]["epochs"] == 2
    assert line["training_options"]["learning_rate"] is None  # the library's default unless a flag says
    assert line["gates_passed"] == all(world["gates_passed"] for world in line["worlds"].values())


def test_the_paired_interval_of_an_ablation():
    interval = paired_interval([0.7, 0.6, 0.8], [0.5, 0.5, 0.5])
    # differences 0.2, 0.1, 0.3: mean 0.2, sd 0.1, t(0.975, 2) = 4.303
    assert interval["difference_mean"] == pytest.approx(0.2)
    assert interval["difference_ci"] == pytest.approx([0.2 - 4.3027 * 0.1 / 3**0.5, 0.2 + 4.3027 * 0.1 / 3**0.5], abs=1e-4)


def test_the_concept_world_tests_on_concept_pairs_no_training_query_names():
    world = concept_world(32, seed=7)
    assert not set(world.train_pairs) & set(world.test_pairs)
    assert np.abs(world.visual @ world.textual.T).max() < 1e-5  # a frame showing a concept does not look like its word
    train_videos = concept_videos(world, 6, seed=1, prefix="train")
    test_videos = concept_videos(world, 6, seed=2, prefix="test", test=True)
    for videos, pairs in ((train_videos, world.train_pairs), (test_videos, world.test_pairs)):
        for video in videos:
            named = {int(i) for i in np.argsort(world.textual @ video.text[0])[-2:]}
            assert tuple(sorted(named)) in pairs, video.name
            kept = video.features[video.targets() > 0]
            assert (kept @ world.visual[sorted(named)].T).mean(axis=0).min() > 0.3, video.name  # both concepts shown


def test_score_by_kind_says_which_kinds_of_shot_a_scorer_prefers():
    from fiftyone_clipit.bench.planted import score_by_kind

    videos = planted_videos(planted_world(), 3, seed=8, prefix="v")
    prefers_important = [(v.step_kinds == "important").astype(float) * 5 + 1 for v in videos]
    by_kind = score_by_kind(videos, prefers_important)
    assert set(by_kind) == {"background", "important", "distractor", "other_highlight"}
    assert by_kind["important"] > 0 > max(by_kind[k] for k in by_kind if k != "important")
    assert len({by_kind[k] for k in by_kind if k != "important"}) == 1  # the rest alike: every video's own scale

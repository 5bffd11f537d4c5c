"""`bench learning`: does the CLIP-It scorer learn what zero-shot similarity cannot see?

Planted data, built so that zero-shot similarity is informative but far from perfect. Frame
features are unit vectors: a random content vector per shot, plus noise. Background shots also
share the video's "style" vector (so they look alike); the important shots do not (they are the
visually distinctive moments, as in highlight footage) and carry the query direction weakly plus
M @ query, a pattern only training can find (M is a fixed random rotation the scorer never sees).
Distractor shots carry the query direction as strongly as the important ones, and "other
highlights" are distinctive and carry M @ (another query). So zero-shot similarity ranks
important and distractor shots alike, a query-blind learner confuses important shots with other
highlights, and only a scorer that reads the frames in the light of the query finds them.

Figures are summary F1s (TVSum protocol, budget 15%) on held-out videos, averaged over seeds.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

import numpy as np

DESCRIPTION = "learning test on planted data: supervised / unsupervised / zero-shot / random summary F1"

FRAMES_PER_STEP = 15  # TVSum's picks: every 15th frame of ~30 fps video, i.e. 2 steps per second


@dataclass(frozen=True)
class PlantedTask:
    """The hidden truth shared by the videos of one planted data set.

    Attributes:
        queries: float32 (n_queries, dim) unit query embeddings.
        mapping: float32 (dim, dim) the fixed unknown rotation M; important frames carry M @ query.
    """

    queries: np.ndarray
    mapping: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def planted_task(dim: int = 32, n_queries: int = 4, seed: int = 0) -> PlantedTask:
    """Random unit queries and a random rotation, from `seed`."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return PlantedTask(_unit(rng.normal(size=(n_queries, dim))).astype(np.float32), rotation.astype(np.float32))


def planted_video(
    task: PlantedTask,
    query_index: int,
    rng: np.random.Generator,
    name: str,
    query_weight: float = 0.5,
    pattern_weight: float = 0.7,
    noise: float = 0.8,
):
    """One planted video with its query as text and its important shots as the user summary.

    Args:
        task: the shared queries and hidden mapping.
        query_index: which query the video is about.
        rng: the generator to draw from.
        name: the video's name.
        query_weight (0.5): how strongly important and distractor frames carry the query.
        pattern_weight (0.7): how strongly important frames carry M @ query.
        noise (0.8): norm of the Gaussian noise added to every frame.

    Returns:
        a `fiftyone_clipit.training.TrainingVideo` (16-25 shots of 3-6 steps; 15 frames a step).
    """
    from fiftyone_clipit.training import TrainingVideo

    queries, dim = task.queries, task.queries.shape[1]
    query = queries[query_index]
    other = queries[(query_index + 1 + rng.integers(len(queries) - 1)) % len(queries)]
    n_shots = int(rng.integers(16, 26))
    lengths = rng.integers(3, 7, size=n_shots)
    kinds = np.zeros(n_shots, dtype=int)  # 0 background, 1 important, 2 distractor, 3 other highlight
    per_kind = max(1, round(0.15 * n_shots))
    order = rng.permutation(n_shots)
    for kind in (1, 2, 3):
        kinds[order[(kind - 1) * per_kind : kind * per_kind]] = kind
    style = _unit(rng.normal(size=dim))
    steps, important = [], []
    for kind, length in zip(kinds, lengths):
        content = _unit(rng.normal(size=dim))
        base = {
            0: style + 0.6 * content,
            1: content + query_weight * query + pattern_weight * (task.mapping @ query),
            2: style + 0.6 * content + query_weight * query,
            3: content + pattern_weight * (task.mapping @ other),
        }[kind]
        for _ in range(length):
            steps.append(_unit(base + rng.normal(size=dim) * noise / np.sqrt(dim)))
            important.append(kind == 1)
    n_steps = len(steps)
    bounds = np.concatenate([[0], np.cumsum(lengths)]) * FRAMES_PER_STEP
    return TrainingVideo(
        name=name,
        features=np.asarray(steps, dtype=np.float32),
        text=query[None, :],
        picks=np.arange(n_steps) * FRAMES_PER_STEP,
        n_frames=n_steps * FRAMES_PER_STEP,
        change_points=np.stack([bounds[:-1], bounds[1:] - 1], axis=1),
        user_summaries=np.repeat(np.asarray(important), FRAMES_PER_STEP)[None, :],
    )


def planted_videos(task: PlantedTask, n_videos: int, seed: int, prefix: str) -> list:
    """`n_videos` planted videos cycling through the task's queries."""
    rng = np.random.default_rng(seed)
    return [planted_video(task, i % len(task.queries), rng, f"{prefix}{i}") for i in range(n_videos)]


def learning_figures(
    seed: int = 0,
    n_train: int = 40,
    n_test: int = 20,
    epochs: int = 60,
    learning_rate: float = 1e-2,
    preset: str = "tiny",
) -> dict[str, float]:
    """Trains supervised and unsupervised scorers on planted data and scores held-out videos.

    Returns:
        f1_supervised, f1_unsupervised, f1_zero_shot, f1_random (mean over held-out videos),
        f1_supervised_swapped_query (scored with another query) and query_swap_changed (share
        of held-out videos whose summary changes when the query is swapped).
    """
    from fiftyone_clipit.relevance import zero_shot_scores
    from fiftyone_clipit.scorer import load_preset
    from fiftyone_clipit.training import TrainingOptions, evaluate_f1, score_videos, summary_of_scores, train, video_f1

    task = planted_task(seed=seed, dim=load_preset(preset).feature_dim)
    train_videos = planted_videos(task, n_train, seed + 1000, "train")
    test_videos = planted_videos(task, n_test, seed + 2000, "test")
    figures = {}
    for mode in ("supervised", "unsupervised"):
        options = TrainingOptions(mode=mode, epochs=epochs, learning_rate=learning_rate, seed=seed, patience=20)
        result = train(train_videos, load_preset(preset), options)
        figures[f"f1_{mode}"] = float(np.mean(evaluate_f1(result.model, test_videos)))
        if mode == "supervised":
            supervised = result.model
    n_queries = len(task.queries)  # video i is about query i % n_queries; give it the next one
    swapped = [replace(v, text=task.queries[(i + 1) % n_queries][None, :]) for i, v in enumerate(test_videos)]
    own = score_videos(supervised, test_videos)
    other = score_videos(supervised, swapped)
    figures["f1_supervised_swapped_query"] = float(np.mean([video_f1(v, s) for v, s in zip(test_videos, other)]))
    figures["query_swap_changed"] = float(np.mean([
        not np.array_equal(summary_of_scores(v, a), summary_of_scores(v, b))
        for v, a, b in zip(test_videos, own, other)
    ]))
    figures["f1_zero_shot"] = float(np.mean([video_f1(v, zero_shot_scores(v.features, v.text)) for v in test_videos]))
    rng = np.random.default_rng(seed)
    figures["f1_random"] = float(np.mean([
        video_f1(v, rng.random(len(v.features))) for v in test_videos for _ in range(5)
    ]))
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="planted data sets / training seeds (default 3)")
    parser.add_argument("--train-videos", type=int, default=40)
    parser.add_argument("--test-videos", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--preset", default="tiny", help="scorer preset (default tiny)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: small models)")


def run(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    per_seed = [
        learning_figures(seed, args.train_videos, args.test_videos, args.epochs, preset=args.preset)
        for seed in range(args.seeds)
    ]
    means = {key: round(float(np.mean([f[key] for f in per_seed])), 4) for key in per_seed[0]}
    return {
        **means,
        "margin_supervised_vs_zero_shot": round(means["f1_supervised"] - means["f1_zero_shot"], 4),
        "seeds": args.seeds,
        "per_seed_f1_supervised": [round(f["f1_supervised"], 4) for f in per_seed],
        "per_seed_f1_zero_shot": [round(f["f1_zero_shot"], 4) for f in per_seed],
    }

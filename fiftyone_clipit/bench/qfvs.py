"""`fiftyone-clipit bench qfvs`: why random shots beat a perfect concept matcher under QFVS's protocol.

Training-free selections scored by QFVS's semantic F1 (`metrics.qfvs_f1`) on the real
annotations, at the protocol's budget (the top 2% of shots) and at each oracle's own size:
random shots, shots ranked by how many of the query's two concepts their real tags show (a
perfect concept detector; `matcher_iou` ranks by the IoU of the tags with the query pair
instead), half the budget from the matcher and half random, the video's query-free oracle
summary, the most typical shots, and the oracle itself (the ceiling). It also counts how many
oracle shots show either query concept. docs/evaluation.md reads the figures.

With `--write-features DIR` it also writes planted-concept features for `fiftyone-clipit
benchmark qfvs --features DIR`: each shot's feature is the sum of random unit embeddings of the
concepts its real tags show, plus Gaussian noise; nothing else (no oracle membership) is planted,
unless `--query-free W` adds a direction of weight W to the shots of each video's query-free
oracle summary (QFVS's Global_Summaries, an annotation apart from the query-focused oracles).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DESCRIPTION = "QFVS protocol diagnosis: training-free selections on the real annotations (semantic F1)"
BUDGETS = ("top_2_percent", "oracle_size")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", help="QFVS origin_data folder (default: the shared data)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random selections and tie-breaks")
    parser.add_argument("--draws", type=int, default=5, help="random selections averaged per query")
    parser.add_argument("--write-features", metavar="DIR",
                        help="also write planted-concept features (P01.npz ... + concepts.npz) into DIR")
    parser.add_argument("--dim", type=int, default=64, help="--write-features: embedding dimension")
    parser.add_argument("--noise", type=float, default=0.3, help="--write-features: norm of each shot's noise")
    parser.add_argument("--query-free", type=float, default=0.0,
                        help="--write-features: weight of a direction planted in the shots of the query-free oracle summary")


def plant_concept_features(
    videos: list, target: Path, dim: int = 64, noise: float = 0.3, seed: int = 0, query_free: float = 0.0
) -> Path:
    """Per-shot features carrying each shot's real concept tags, and concepts.npz.

    A shot's feature is the sum of its tagged concepts' random unit embeddings plus Gaussian
    noise of norm about `noise`; the concepts' embeddings are their text embeddings. With
    `query_free` > 0 the shots of the video's query-free oracle summary (another real
    annotation: what is worth keeping whatever the query) also carry one random direction with
    that weight, as a visual cue of importance would.
    """
    rng = np.random.default_rng(seed)
    dictionary = videos[0].dictionary
    concepts = rng.standard_normal((len(dictionary), dim))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    important = np.random.default_rng(seed + 1).standard_normal(dim)
    important /= np.linalg.norm(important)
    target.mkdir(parents=True, exist_ok=True)
    np.savez(target / "concepts.npz", **{c: concepts[i] for i, c in enumerate(dictionary)})
    for video in videos:
        shown = video.shot_concepts.astype(float) @ concepts
        shown += noise * rng.standard_normal(shown.shape) / np.sqrt(dim)
        features = shown.astype(np.float32)
        features[video.global_oracle] += query_free * important
        np.savez(target / f"{video.name}.npz", features=features)
    return target


def _selections(video, query, k: int, rng: np.random.Generator, typicality: np.ndarray) -> dict[str, np.ndarray]:
    """Each training-free method's k shots (0-based) for one query."""
    tags = video.shot_concepts
    columns = [video.dictionary.index(c) for c in query.concepts]
    count = tags[:, columns].sum(axis=1).astype(float)
    iou = count / (tags.sum(axis=1) + len(columns) - count)
    tie = rng.random(len(tags)) * 1e-3

    def top(scores: np.ndarray, n: int = k) -> np.ndarray:
        return np.argsort(-scores, kind="stable")[:n]

    matcher = top(count + tie)
    half = np.unique(np.r_[matcher[: k // 2], rng.choice(np.setdiff1d(np.arange(len(tags)), matcher[: k // 2]),
                                                         k - k // 2, replace=False)])
    query_free = np.zeros(len(tags))
    query_free[video.global_oracle] = 1
    oracle = np.zeros(len(tags))
    oracle[query.oracle] = 1
    return {
        "matcher": matcher, "matcher_iou": top(iou + tie), "half_matcher_half_random": half,
        "query_free_oracle": top(query_free + tie), "typicality": top(typicality + tie), "oracle": top(oracle + tie),
    }


def diagnose(videos: list, seed: int = 0, draws: int = 5) -> dict:
    """Mean semantic F1 (and P, R) of each training-free selection over the videos, per budget."""
    from fiftyone_clipit.metrics import concept_iou, qfvs_f1

    rng = np.random.default_rng(seed)
    per_video: dict = {budget: {} for budget in BUDGETS}
    statistics = []
    for video in videos:
        n_shots = len(video.shot_concepts)
        typicality = concept_iou(video.shot_concepts, video.shot_concepts).mean(axis=1)
        either, both_absent = [], 0
        for query in video.queries:
            shows = video.shot_concepts[:, [video.dictionary.index(c) for c in query.concepts]]
            either.append(float(shows.any(axis=1)[query.oracle].mean()))
            both_absent += int(not shows.all(axis=1).any())
            for budget in BUDGETS:
                k = max(1, int(n_shots * 0.02)) if budget == "top_2_percent" else len(query.oracle)
                chosen = _selections(video, query, k, rng, typicality)
                scores = {m: qfvs_f1(np.sort(s), query.oracle, video.shot_concepts) for m, s in chosen.items()}
                scores["random"] = tuple(np.mean([
                    qfvs_f1(np.sort(rng.choice(n_shots, k, replace=False)), query.oracle, video.shot_concepts)
                    for _ in range(draws)
                ], axis=0))
                for method, prf in scores.items():
                    per_video[budget].setdefault(method, {}).setdefault(video.name, []).append(prf)
        statistics.append({
            "video": video.name, "shots": n_shots, "top_2_percent_shots": max(1, int(n_shots * 0.02)),
            "oracle_shots_mean": round(float(np.mean([len(q.oracle) for q in video.queries])), 1),
            "oracle_shots_showing_a_query_concept": round(float(np.mean(either)), 3),
            "queries_whose_concepts_never_meet": both_absent, "queries": len(video.queries),
        })
    table = {
        budget: {
            method: {
                "f1": round(float(np.mean([np.mean(v, axis=0)[2] for v in rows.values()])), 4),
                "precision": round(float(np.mean([np.mean(v, axis=0)[0] for v in rows.values()])), 4),
                "recall": round(float(np.mean([np.mean(v, axis=0)[1] for v in rows.values()])), 4),
                "f1_per_video": {name: round(float(np.mean(v, axis=0)[2]), 4) for name, v in rows.items()},
            }
            for method, rows in methods.items()
        }
        for budget, methods in per_video.items()
    }
    return {"semantic_f1": table, "videos": statistics}


def run(args: argparse.Namespace) -> dict:
    from fiftyone_clipit.readers import read_qfvs

    videos = read_qfvs(args.annotations)
    figures = diagnose(videos, args.seed, args.draws)
    if args.write_features:
        figures["features"] = str(plant_concept_features(
            videos, Path(args.write_features), args.dim, args.noise, args.seed, args.query_free))
    return figures

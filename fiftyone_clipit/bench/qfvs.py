"""`fiftyone-clipit bench qfvs`: why random shots beat a perfect concept matcher under QFVS's protocol.

Training-free selections scored by QFVS's semantic F1 (`metrics.qfvs_f1`) on the real
annotations, at the protocol's budget (the top 2% of shots) and at each oracle's own size:
random shots, shots ranked by how many of the query's two concepts their real tags show (a
perfect concept detector; `matcher_iou` ranks by the IoU of the tags with the query pair
instead), half the budget from the matcher and half random, the video's query-free oracle
summary, the most typical shots, and the oracle itself (the ceiling). It also counts how many
oracle shots show either query concept. docs/evaluation.md reads the figures.

`query_headroom` measures what the query can add at all: in the four rounds of `benchmark qfvs`
(train on two videos, test on a third), a logistic regression ranks each shot from what a
scorer could know, its real tags (and, with the cue, whether it is in the query-free oracle
summary), once without the query (a query-blind ranker) and once with the query's concepts as
well. Their difference is what language guidance gains over a query-blind twin under the
protocol for a per-shot ranker of what the features carry.

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


def _shot_descriptors(video, query, aware: bool, cue: bool) -> np.ndarray:
    """Per shot: the real tags and their count, and with `cue` the query-free oracle membership; `aware`
    adds how many of the query's two concepts the shot shows, whether it shows both (and, with the cue,
    that count within the oracle)."""
    tags = video.shot_concepts.astype(float)
    cued = np.zeros((len(tags), 1))
    cued[video.global_oracle] = 1
    columns = [tags, tags.sum(axis=1, keepdims=True)] + ([cued] if cue else [])
    if aware:
        count = tags[:, [video.dictionary.index(c) for c in query.concepts]].sum(axis=1, keepdims=True)
        columns += [count, (count == 2).astype(float)] + ([cued * count] if cue else [])
    return np.hstack(columns)


def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression, by Newton's method (a few dozen
    weights, so each step solves its system exactly)."""
    from scipy.special import expit

    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.diag(np.r_[np.full(x.shape[1], l2), 0.0])
    weights = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = expit(design @ weights)
        gradient = design.T @ (p - y) + penalty @ weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty + 1e-9 * np.eye(len(weights))
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return weights


def _ranker_f1(by_name: dict, aware: bool, cue: bool) -> dict[str, float]:
    """Per test video, the mean semantic F1 (top 2%) over its queries of the ranker fitted in its round."""
    from fiftyone_clipit.metrics import qfvs_f1
    from fiftyone_clipit.qfvs import qfvs_rounds, top_shots

    per_video = {}
    for train_names, _, test_name in qfvs_rounds(list(by_name)):
        pairs = [(by_name[n], q) for n in train_names for q in by_name[n].queries]
        x = np.vstack([_shot_descriptors(v, q, aware, cue) for v, q in pairs])
        y = np.concatenate([np.isin(np.arange(len(v.shot_concepts)), q.oracle) for v, q in pairs]).astype(float)
        spread = x.std(axis=0)
        scale = np.where(spread > 0, spread, 1.0)  # a column constant in training keeps its values
        weights = _logistic_fit(x / scale, y)
        test = by_name[test_name]
        per_video[test_name] = round(float(np.mean([
            qfvs_f1(top_shots(_shot_descriptors(test, q, aware, cue) / scale @ weights[:-1]), q.oracle,
                    test.shot_concepts)[2]
            for q in test.queries
        ])), 4)
    return per_video


def query_headroom(videos: list) -> dict:
    """Semantic F1 of per-shot logistic rankers without and with the query, from the tags alone and
    with the query-free cue, in the four rounds (each fits on every (video, query) of its two training
    videos and ranks the test video's shots per query); means over queries, then over videos."""
    by_name = {v.name: v for v in videos}
    figures = {}
    for features, cue in (("tags", False), ("tags_and_query_free_cue", True)):
        rankers = {}
        for name, aware in (("query_blind_ranker", False), ("query_aware_ranker", True)):
            per_video = _ranker_f1(by_name, aware, cue)
            rankers[name] = {"f1": round(float(np.mean(list(per_video.values()))), 4), "f1_per_video": per_video}
        rankers["difference"] = round(rankers["query_aware_ranker"]["f1"] - rankers["query_blind_ranker"]["f1"], 4)
        figures[features] = rankers
    return figures


def run(args: argparse.Namespace) -> dict:
    from fiftyone_clipit.readers import read_qfvs

    videos = read_qfvs(args.annotations)
    figures = diagnose(videos, args.seed, args.draws)
    figures["query_headroom"] = query_headroom(videos)
    if args.write_features:
        figures["features"] = str(plant_concept_features(
            videos, Path(args.write_features), args.dim, args.noise, args.seed, args.query_free))
    return figures

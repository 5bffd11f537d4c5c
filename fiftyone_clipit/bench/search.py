"""`fiftyone-clipit bench search`: the frame index on 1,000,000 frame-like vectors, against
exact search and against FiftyOne Brain's default (sklearn) similarity backend.

Vectors: `fiftyone_clipit.bench.vectors.FrameLikeVectors` (videos of 600 frames whose frames
share a common direction, a per-video content and a scene drift over time; see there). Queries:
200 "near" ones (a new frame of a random video: an image or a frame as the query) and 200
text-like ones (cosine ~0.3 to their best frames). Ground truth: exact inner-product top 10.

The index is built as the library builds it (`FrameIndex.from_arrays`, IVF past
EXACT_MAX_FRAMES); then nprobe is swept over powers of two, and the line reports the smallest
setting whose recall@10 reaches the target for near queries (`nprobe`, `recall_at_10`,
`median_ms`) and for text-like ones (`nprobe_text`, `recall_at_10_text`, `median_ms_text`),
with `recall_at_10_text_at_nprobe` showing text recall at the near setting. Latency is the
median of single queries, as a user's search runs.

The sklearn backend (`fiftyone.brain.internal.core.sklearn.SklearnSimilarityIndex`, FiftyOne
Brain's default) is timed on the first `--sklearn-size` vectors with the same queries, through
its own `_kneighbors` (the call `sort_by_similarity` makes), against our index built on the
same vectors; `speedup_over_sklearn` is the ratio of median latencies at that size. That
backend centres the embeddings before its cosine search, so its top 10 differ from exact
inner-product search (`sklearn_recall_at_10` shows by how much); it is timed as it is.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

DESCRIPTION = "frame index: latency, recall (near and text-like queries), build time, memory, vs sklearn backend"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=1_000_000, help="vectors (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--sklearn-size", type=int, default=200_000, help="vectors for the sklearn comparison")
    parser.add_argument("--seed", type=int, default=0)


def exact_top_k(vectors, queries, k: int, chunk: int = 131072):
    """Exact inner-product top k of each query (row ids, best first), in chunks of the data."""
    import numpy as np

    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(vectors), chunk):
        scores = queries @ vectors[start : start + chunk].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        merged_ids = np.concatenate([best_ids, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, 1)
        best_ids = np.take_along_axis(merged_ids, order, 1)
    return best_ids


def median_ms(search, queries) -> float:
    import numpy as np

    times = []
    for q in queries:
        start = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - start)
    return round(1000.0 * float(np.median(times)), 3)


def sweep(index, queries: dict, truth: dict, k: int, target: float, row_of) -> list[dict]:
    """Recall@k and median latency per nprobe (powers of two) until every kind reaches target."""
    from fiftyone_clipit.index import recall_at_k

    results, nprobe = [], 1
    limit = index._index.nlist if index.kind == "ivf" else 1
    while True:
        row = {"nprobe": nprobe}
        for kind, q in queries.items():
            found = index.search(q, k, nprobe=nprobe)
            row[kind] = recall_at_k(row_of(found), truth[kind])
            row[f"{kind}_ms"] = median_ms(lambda x: index.search(x, k, nprobe=nprobe), q[:100])
        results.append(row)
        if all(row[kind] >= target for kind in queries) or nprobe >= limit:
            return results
        nprobe *= 2


def _first_reaching(results: list[dict], kind: str, target: float) -> dict:
    return next((r for r in results if r[kind] >= target), results[-1])


def run(args: argparse.Namespace) -> dict:
    import numpy as np

    from fiftyone_clipit.bench.vectors import FrameLikeVectors
    from fiftyone_clipit.index import FrameIndex

    data = FrameLikeVectors(args.size, dim=args.dim, seed=args.seed)
    start = time.perf_counter()
    vectors = data.all()
    generate_seconds = time.perf_counter() - start
    owners = np.repeat(np.arange(data.n_videos), [data.video_length(v) for v in range(data.n_videos)])
    numbers = np.concatenate([np.arange(1, data.video_length(v) + 1) for v in range(data.n_videos)])
    starts = np.concatenate([[0], np.cumsum([data.video_length(v) for v in range(data.n_videos)])])
    keys = [f"v{v}" for v in range(data.n_videos)]
    queries = {"near": data.near_queries(args.queries), "text": data.text_queries(args.queries)}

    def row_of(found):
        return np.array([[starts[int(key[1:])] + n - 1 for key, n in zip(h.keys, h.frame_numbers)] for h in found])

    start = time.perf_counter()
    truth = {kind: exact_top_k(vectors, q, args.k) for kind, q in queries.items()}
    exact_seconds = time.perf_counter() - start

    start = time.perf_counter()
    index = FrameIndex.from_arrays(vectors, keys, owners, numbers)
    build_seconds = time.perf_counter() - start
    results = sweep(index, queries, truth, args.k, args.target_recall, row_of)
    near = _first_reaching(results, "near", args.target_recall)
    text = _first_reaching(results, "text", args.target_recall)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    small = min(args.sklearn_size, args.size)
    small_vectors = vectors[:small].copy()
    del index, vectors
    small_owners, small_numbers = owners[:small], numbers[:small]
    small_keys = keys[: int(small_owners[-1]) + 1]
    ours = FrameIndex.from_arrays(small_vectors, small_keys, small_owners, small_numbers)
    small_truth = exact_top_k(small_vectors, queries["near"], args.k)
    small_results = sweep(ours, {"near": queries["near"]}, {"near": small_truth}, args.k, args.target_recall, row_of)
    small_setting = _first_reaching(small_results, "near", args.target_recall)
    sklearn_ms, sklearn_recall = _sklearn(small_vectors, queries["near"], small_truth, args.k)

    return {
        "size": args.size,
        "dim": args.dim,
        "vectors": "FrameLikeVectors: videos of 600 frames; common direction + per-video content "
        "(64 topics) + OU scene drift + noise",
        "index": index_kind(args.size),
        "queries_per_kind": args.queries,
        "median_ms": near["near_ms"],
        "recall_at_10": round(near["near"], 4),
        "nprobe": near["nprobe"],
        "recall_at_10_text_at_nprobe": round(near["text"], 4),
        "recall_at_10_text": round(text["text"], 4),
        "nprobe_text": text["nprobe"],
        "median_ms_text": text["text_ms"],
        "build_seconds": round(build_seconds, 1),
        "peak_memory_gb": round(peak_gb, 2),
        "vectors_gb": round(args.size * args.dim * 4 / 2**30, 2),
        "exact_search_seconds_for_ground_truth": round(exact_seconds, 1),
        "generate_seconds": round(generate_seconds, 1),
        "sweep": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in results],
        "sklearn_size": small,
        "sklearn_median_ms": sklearn_ms,
        "sklearn_recall_at_10": sklearn_recall,
        "ours_median_ms_at_sklearn_size": small_setting["near_ms"],
        "ours_recall_at_10_at_sklearn_size": round(small_setting["near"], 4),
        "speedup_over_sklearn": round(sklearn_ms / small_setting["near_ms"], 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def index_kind(size: int) -> str:
    from fiftyone_clipit.index import EXACT_MAX_FRAMES, nlist_for

    return f"IVF{nlist_for(size)},Flat (inner product)" if size > EXACT_MAX_FRAMES else "Flat (inner product)"


def _sklearn(vectors, queries, truth, k: int) -> tuple[float, float]:
    """FiftyOne Brain's sklearn backend on these vectors: median ms of a top-k query, recall@k."""
    import fiftyone as fo
    import numpy as np
    from fiftyone.brain.internal.core.sklearn import SklearnSimilarityConfig, SklearnSimilarityIndex

    from fiftyone_clipit.index import recall_at_k

    dataset = fo.Dataset()  # the backend needs a collection; the vectors are handed to it directly
    try:
        ids = np.array([f"{i:024x}" for i in range(len(vectors))])
        backend = SklearnSimilarityIndex(
            dataset, SklearnSimilarityConfig(metric="cosine"), None, embeddings=vectors, sample_ids=ids
        )
        found = [backend._kneighbors(query=q, k=k)[0] for q in queries[:20]]  # builds its neighbours
        recall = recall_at_k(np.array([[int(i, 16) for i in row] for row in found]), truth[:20])
        ms = median_ms(lambda q: backend._kneighbors(query=q[0], k=k), queries[:50])
        return ms, round(recall, 4)
    finally:
        dataset.delete()

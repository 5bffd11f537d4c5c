"""Exact k-nearest-neighbour search by inner product, streamed, and the checks and measures
around it: vectors of the right shape, recall@k, and queries as far from the data as text.

FiftyOne-free; the frame indexes (`fiftyone_clipit.index`, `fiftyone_clipit.milvus_index`)
and `bench search` use them.
"""

from __future__ import annotations

from typing import Iterable

import faiss
import numpy as np

from fiftyone_clipit.errors import ClipItError


def check_vectors(
    vectors: np.ndarray,
    dim: int,
    what: str,
    model: str | None = None,
    holder: str = "the index",
    remedy: str = "embed with the index's model, or rebuild the index after re-embedding every video with one model",
) -> np.ndarray:
    """`vectors` as contiguous float32 (n, dim), or a ClipItError naming `what`, the shapes, the
    model that made the index's vectors and `remedy`; non-finite values are refused too."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        made_by = f" (made by '{model}')" if model else ""
        raise ClipItError(f"{what} has shape {vectors.shape}, but {holder} holds {dim}-d vectors{made_by}; {remedy}")
    if not np.isfinite(vectors).all():
        raise ClipItError(f"{what} contains NaN or infinite values; re-embed it")
    return vectors


def exact_top_k(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top k over (vectors (m, d), ids (m,)) chunks, streamed.

    Returns:
        (scores float32 (q, k), ids int64 (q, k)), best first; ids -1 past the data's size.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.full((len(queries), k), -1, np.int64)
    for vectors, ids in chunks:
        if not len(vectors):
            continue
        scores, rows = faiss.knn(
            queries, np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(vectors)),
            metric=faiss.METRIC_INNER_PRODUCT,
        )
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_ids = np.concatenate([best_ids, np.asarray(ids, np.int64)[rows]], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, 1)
        best_ids = np.take_along_axis(merged_ids, order, 1)
    return best_scores, best_ids


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of `truth` (ids, (m, k)) that appears in the same row of `found`."""
    hits = [len(set(f.tolist()) & set(t.tolist())) / max(len(t), 1) for f, t in zip(found, truth)]
    return float(np.mean(hits)) if hits else 1.0


def far_queries(vectors: np.ndarray, n: int, cosine: float = 0.3, seed: int = 0) -> np.ndarray:
    """Queries as far from the data as CLIP text is from images: cosine `cosine` to one random
    frame each, the rest a random direction. Used to measure recall for text queries.

    Returns:
        float32 array (min(n, len(vectors)), d), unit rows.
    """
    rng = np.random.default_rng(seed)
    picks = vectors[rng.choice(len(vectors), min(n, len(vectors)), replace=False)]
    noise = rng.standard_normal(picks.shape).astype(np.float32)
    noise -= (noise * picks).sum(1, keepdims=True) * picks
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (cosine * picks + np.sqrt(1 - cosine**2) * noise).astype(np.float32)

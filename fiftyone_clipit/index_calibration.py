"""Measured search settings of an IVF frame index: per query kind, the fewest lists to probe
(and for IVF-PQ, the re-rank pool) that reach a target recall against exact search.

Queries near the data (a frame or an image as the query) and text queries, which sit farther
from every frame, get their own settings: text queries' best frames lie within thousandths
of each other, so they need a pool of hundreds of candidates where frame queries need tens.
`Calibration` is a part of `fiftyone_clipit.index.FrameIndex`; it measures with the index's
own search.
"""

from __future__ import annotations

import time

import numpy as np

from fiftyone_clipit.knn import exact_top_k, recall_at_k

#: an IVF-PQ search re-ranks this many times k candidates with their exact vectors, unless
#: `calibrate` chose another pool for the query kind
RERANK_FACTOR = 10
#: re-rank pools (multiples of k) `calibrate` tries for an IVF-PQ index, smallest first
RERANK_FACTORS = (10, 30, 100, 300)
#: `calibrate` keeps the best recall within this median single-query time (ms) when no setting
#: reaches the target recall (text-like queries at 10M frames: see docs/scale.md)
SEARCH_BUDGET_MS = 20.0
_BUDGET_TRIES = 12
#: query kinds with their own measured nprobe
QUERY_KINDS = ("near", "text")


class Calibration:
    """`calibrate` and its measurements, for a FrameIndex (which provides `kind`, `nlist`,
    `nprobe`, `recall`, `rerank`, `chunks`, `_check_vectors` and `_search`)."""

    def calibrate(
        self,
        queries: dict[str, np.ndarray],
        target_recall: float = 0.95,
        k: int = 10,
        max_nprobe: int = 1024,
        reference: tuple[np.ndarray, np.ndarray] | None = None,
        max_ms: float | None = SEARCH_BUDGET_MS,
    ) -> dict[str, dict]:
        """Measures recall@k against exact search and keeps, per query kind, the smallest nprobe
        (a power of two) that reaches `target_recall`; for an IVF-PQ index, with each re-rank
        pool (RERANK_FACTORS, as multiples of k), the fastest (pool, nprobe) as measured.

        An IVF-PQ pool too small for a kind levels off below the target however many lists are
        probed (text queries: their best frames are within thousandths of each other), so each
        pool's nprobe doubling stops once recall stops rising; a larger pool is tried only with
        fewer lists than the best so far. When none reaches the target, the setting with the
        best recall among those whose median single-query time is within `max_ms` is kept (the
        best recall of all when none is). Times are measured on this machine as it is loaded
        now: a busy machine at build time gives a more cautious setting.

        Args:
            queries: query kind ("near", "text") -> float array (m, dim) of sample queries.
            target_recall (0.95): the recall@k to reach.
            k (10): recall@k.
            max_nprobe (1024): stop there (capped at the number of lists) if not reached.
            reference (None): `vectors()` when the caller has it already; else the exact
                search streams through `chunks()`.
            max_ms (SEARCH_BUDGET_MS): the search time to stay within when the target cannot
                be reached (None: no limit, the best recall).

        Returns:
            kind -> {"nprobe", "rerank", "recall", "median_ms"} as measured (flat: nprobe 0,
            recall 1; rerank is 0 but for IVF-PQ).
        """
        for kind in queries:
            if kind not in QUERY_KINDS:
                raise ValueError(f"Unknown query kind '{kind}'. Available: {list(QUERY_KINDS)}")
        queries = {kind: self._check_vectors(q, f"Calibration queries '{kind}'") for kind, q in queries.items()}
        truths: dict[str, np.ndarray] = {}
        if self.kind != "flat" and sum(len(q) for q in queries.values()):
            # one exact pass over every vector (an IVF-PQ index's stream from the store) for all kinds
            chunks = [reference] if reference is not None else self.chunks()
            found = exact_top_k(chunks, np.concatenate(list(queries.values())), min(k, len(self)))[1]
            bounds = np.cumsum([len(q) for q in queries.values()])[:-1]
            truths = dict(zip(queries, np.split(found, bounds)))
        report = {}
        for kind, q in queries.items():
            if self.kind == "flat" or not len(q):
                report[kind] = {"nprobe": 0, "rerank": 0, "recall": 1.0, "median_ms": self._median_ms(q, k, None)}
                continue
            truth = truths[kind]
            limit = min(max_nprobe, self.nlist)
            pools = RERANK_FACTORS if self.kind == "ivfpq" else (0,)
            tried: list[tuple[float, int, int]] = []  # (recall, nprobe, pool) of every setting measured
            fastest = None
            for pool in pools:
                recall, nprobe = self._lowest_nprobe(q, truth, k, pool, target_recall, limit, tried)
                if recall >= target_recall:
                    ms = self._median_ms(q, k, nprobe, pool or RERANK_FACTOR)
                    if fastest is None or ms < fastest[0]:
                        fastest = (ms, recall, nprobe, pool)
                    if nprobe == 1:
                        break
                    limit = nprobe // 2  # a larger pool pays only if it needs fewer lists
            if fastest is None:
                ms, recall, nprobe, pool = self._best_within(q, k, tried, max_ms)
            else:
                ms, recall, nprobe, pool = fastest
            self.nprobe[kind], self.recall[kind] = nprobe, recall
            if self.kind == "ivfpq":
                self.rerank[kind] = pool
            report[kind] = {"nprobe": nprobe, "rerank": pool, "recall": recall, "median_ms": ms}
        return report

    def _best_within(
        self, queries: np.ndarray, k: int, tried: list[tuple[float, int, int]], max_ms: float | None
    ) -> tuple[float, float, int, int]:
        """(ms, recall, nprobe, pool): of the settings tried, the best recall whose median time
        is within max_ms (timing the best few, best first), else the best recall of all."""
        ranked = sorted(tried, key=lambda t: (-t[0], t[1], t[2]))
        first = None
        for recall, nprobe, pool in ranked[: 1 if max_ms is None else _BUDGET_TRIES]:
            ms = self._median_ms(queries, k, nprobe, pool or RERANK_FACTOR)
            first = first or (ms, recall, nprobe, pool)
            if max_ms is None or ms <= max_ms:
                return ms, recall, nprobe, pool
        return first

    def _lowest_nprobe(
        self, queries: np.ndarray, truth: np.ndarray, k: int, rerank: int, target: float, limit: int,
        tried: list[tuple[float, int, int]],
    ) -> tuple[float, int]:
        """(recall, nprobe): the smallest power-of-two nprobe reaching `target` with this re-rank
        pool, or the best one seen once recall stops rising (or at `limit`); each setting
        measured is added to `tried` as (recall, nprobe, pool)."""
        best, nprobe = (-1.0, 1), 1
        while True:
            recall = recall_at_k(self._search(queries, k, nprobe, rerank or RERANK_FACTOR)[1], truth)
            tried.append((recall, nprobe, rerank))
            if recall >= target:
                return recall, nprobe
            if recall <= best[0] and self.kind == "ivfpq":
                return best
            best = max(best, (recall, nprobe), key=lambda r: r[0])
            if nprobe >= limit:
                return best
            nprobe = min(2 * nprobe, limit)

    def _median_ms(self, queries: np.ndarray, k: int, nprobe: int | None, rerank: int = RERANK_FACTOR) -> float:
        times = []
        for q in queries[:100]:
            start = time.perf_counter()
            self._search(q[None], k, nprobe, rerank)
            times.append(time.perf_counter() - start)
        return 1000.0 * float(np.median(times)) if times else 0.0

"""A FAISS inner-product index over the frame embeddings of many videos.

Each vector's FAISS id packs (video slot, frame number) and a table maps slots to keys
(FiftyOne sample ids); embeddings are L2-normalised, so inner product is cosine similarity.
The layout for a size (flat, IVF, IVF-PQ) and the ids are `fiftyone_clipit.index_layout`'s;
an IVF index's search settings are measured when it is built (`calibrate`, from
`fiftyone_clipit.index_calibration`).

Past `COMPRESSED_MIN_FRAMES` (or asked with kind="ivfpq") the index keeps no vectors: 4-bit
fast-scan IVF-PQ codes of dim/8 bytes per frame (dim/4 sub-quantizers of 4 bits: 64 bytes for
512-d, 1/32 of float32) in about sqrt(n) lists, optionally behind an OPQ rotation. A search
asks it for `rerank` x k candidates and re-ranks them by their exact vectors, read from the
per-video embedding store through memory maps (`fiftyone_clipit.mapped.MappedStore`), so the
scores returned are exact cosines. `calibrate` chooses nprobe and the re-rank pool per query
kind: text queries sit far from every frame, their best frames within thousandths of each
other, and need a pool of hundreds where frame queries need tens. 4-bit fast-scan codes were
measured against 8-bit PQ of the same size (`bench search`): at 1M frame-like vectors,
PQ128x4fs with 1,000 candidates found 0.94 of the text-like top 10 in 0.4 ms, where PQ64x8
levelled off at 0.8 (twice as many sub-quantizers, each coarser, rank close scores better,
and the SIMD scan is ~5 times faster per code). It is built
in a stream (`build_compressed`): trained on a sample, then filled a video at a time, never
holding all vectors. `FrameIndex.load(..., mmap=True)` maps an IVF-Flat index's inverted lists
from the file instead of reading them; FAISS maps only plain array lists, so the fast-scan
IVF-PQ lists (blocks of 32 codes) are read into memory either way (71 MB per million frames).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

import faiss
import numpy as np

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.index_calibration import QUERY_KINDS, RERANK_FACTOR, Calibration
from fiftyone_clipit.index_layout import (
    EXACT_MAX_FRAMES,
    TRAIN_PER_LIST,
    check_kind,
    choose_kind,
    describe_kind,
    nlist_for,
    pack_ids,
    pq_subquantizers,
    slot_id_range,
    train_size,
    unpack_ids,
)
from fiftyone_clipit.knn import check_vectors
from fiftyone_clipit.store import write_atomically

logger = logging.getLogger("fiftyone_clipit")

_POOL_MIN_K = 10  # a search for fewer than 10 frames re-ranks as many candidates as one for 10
_META_FILE = "frame_index.json"
_KMEANS_ITERATIONS = 10
_ADD_CHUNK = 65536
_OPQ_ITERATIONS = 10


class EmptyIndexError(ClipItError):
    """A search on an index that holds no frames."""


@dataclass(frozen=True)
class FrameHits:
    """The best frames for one query, best first.

    Attributes:
        keys: the video key (sample id) of each hit.
        frame_numbers: int64 array (k,), 1-based frame numbers.
        scores: float32 array (k,), cosine similarity to the query.
    """

    keys: list[str]
    frame_numbers: np.ndarray
    scores: np.ndarray


@contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """One OpenMP thread for a few queries: on a busy 2-core machine, two threads made a single
    flat query up to 10 times slower (they spin waiting for each other)."""
    before = faiss.omp_get_max_threads()
    if n_queries < 16:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorSource(Protocol):
    """Where a compressed index reads exact vectors (`fiftyone_clipit.mapped.MappedStore`)."""

    def rows(self, key: str, frame_numbers: np.ndarray) -> np.ndarray:
        """Exact vectors of some frames of one video: float32 (n, d)."""

    def video(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(frame numbers (n,), vectors (n, d)) of one video."""


class FrameIndex(Calibration):
    """Frame embeddings of many videos in one FAISS index, keyed by video.

    Args:
        dim: embedding dimension.
        info (None): what made the embeddings (model, fps, ...), kept with the index.
        source (None): exact vectors by (video, frames); needed by an "ivfpq" index, which
            keeps none itself.
    """

    def __init__(self, dim: int, info: dict | None = None, source: VectorSource | None = None):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.info = dict(info or {})
        self.source = source
        self.kind = "flat"
        self.opq = False
        self.slots: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        self.nprobe: dict[str, int] = {}
        self.rerank: dict[str, int] = {}
        self.recall: dict[str, float] = {}
        self.trained_size = 0
        self._index = self._new_flat()

    @classmethod
    def from_arrays(
        cls,
        vectors: np.ndarray,
        keys: list[str],
        owners: np.ndarray,
        frame_numbers: np.ndarray,
        info: dict | None = None,
        kind: str = "auto",
        source: VectorSource | None = None,
        opq: bool = False,
    ) -> "FrameIndex":
        """An index whose row i is frame `frame_numbers[i]` of video `keys[owners[i]]`.

        Args:
            vectors: float32 (n, d), L2-normalised (used in place when already contiguous).
            keys: the videos' keys (sample ids), each once.
            owners: int array (n,) of positions in `keys`.
            frame_numbers: int array (n,), 1-based.
            info (None): what made the embeddings.
            kind ("auto"): one of KINDS; "auto" follows `choose_kind`.
            source (None): exact vectors for an "ivfpq" index's re-ranking.
            opq (False): an "ivfpq" index rotates vectors by a trained OPQ matrix first.

        Raises:
            ClipItError: wrong dimension, non-finite values, or "ivfpq" without a source.
            ValueError: lengths differ, a key is repeated, or a bad kind.
        """
        if len(set(keys)) != len(keys):
            raise ValueError("Each video key must be given once")
        index = cls(np.shape(vectors)[1] if np.ndim(vectors) == 2 else 0, info, source)
        index.opq = bool(opq)
        vectors = index._check_vectors(vectors, "The embeddings")
        owners = np.asarray(owners, dtype=np.int64)
        if not len(owners) == len(frame_numbers) == len(vectors):
            raise ValueError(f"{len(vectors)} vectors, {len(owners)} owners, {len(frame_numbers)} frame numbers")
        index.slots = list(keys)
        index._slot_of = {key: slot for slot, key in enumerate(keys)}
        ids = pack_ids(owners, frame_numbers)
        kind = check_kind(kind, len(vectors))
        if kind == "ivfpq":
            sample = np.random.default_rng(0).choice(len(vectors), train_size(len(vectors)), replace=False)
            index._train(kind, len(vectors), vectors[np.sort(sample)])
            index._add_rows(vectors, ids)
        else:
            index._build(vectors, ids, kind)
        return index

    def _new_flat(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def keys(self) -> list[str]:
        """The videos in the index."""
        return list(self._slot_of)

    @property
    def nlist(self) -> int:
        """Inverted lists of an IVF or IVF-PQ index (0 for a flat one)."""
        return 0 if self.kind == "flat" else int(faiss.extract_index_ivf(self._index).nlist)

    @property
    def layout(self) -> str:
        """The FAISS layout, in factory words ("IVF4096,PQ128x4fs (...)")."""
        if self.kind != "ivfpq":
            return describe_kind(self.kind, self.nlist, self.dim, self.opq)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(self._index))
        return describe_kind(self.kind, self.nlist, self.dim, self.opq, ivf.pq.M, ivf.pq.nbits)

    def __contains__(self, key: str) -> bool:
        return key in self._slot_of

    def _check_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        return check_vectors(vectors, self.dim, what, self.info.get("model"))

    def add(self, key: str, frame_numbers: np.ndarray, embeddings: np.ndarray) -> None:
        """Adds (or replaces) one video's frames.

        Args:
            key: the video's key (its sample id).
            frame_numbers: int array (n,), 1-based.
            embeddings: float array (n, dim), L2-normalised.

        Raises:
            ClipItError: wrong dimension or non-finite values.
            ValueError: lengths differ or frame numbers out of range.
        """
        vectors = self._check_vectors(embeddings, f"Embeddings of video '{key}'")
        if len(frame_numbers) != len(vectors):
            raise ValueError(f"{len(frame_numbers)} frame numbers for {len(vectors)} embeddings of '{key}'")
        self.remove(key)
        slot = len(self.slots)
        ids = pack_ids(slot, frame_numbers)
        self.slots.append(key)
        self._slot_of[key] = slot
        if len(vectors):
            self._index.add_with_ids(vectors, ids)

    def remove(self, key: str) -> int:
        """Removes one video's frames; returns how many were removed (0 for an unknown key)."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return 0
        self.slots[slot] = None
        selector = faiss.IDSelectorRange(*slot_id_range(slot))
        return int(self._index.remove_ids(selector))

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every vector with its id, a piece at a time: (float32 (m, dim), int64 (m,)).

        Flat: all at once; IVF: one inverted list at a time; IVF-PQ: one video at a time, read
        from the source (memory-mapped: only what the caller touches is read).
        """
        if self.kind == "flat":
            n = len(self)
            xb = faiss.rev_swig_ptr(faiss.downcast_index(self._index.index).get_xb(), n * self.dim)
            yield np.array(xb, dtype=np.float32).reshape(n, self.dim), faiss.vector_to_array(self._index.id_map)
        elif self.kind == "ivf":
            invlists = self._index.invlists
            for lst in range(invlists.nlist):
                size = invlists.list_size(lst)
                if size:
                    codes = faiss.rev_swig_ptr(invlists.get_codes(lst), size * invlists.code_size)
                    ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size).astype(np.int64)
                    yield np.frombuffer(codes, dtype=np.float32).reshape(size, self.dim).copy(), ids
        else:
            source = self._require_source()
            for key in self.keys:
                numbers, vectors = source.video(key)
                yield vectors, pack_ids(self._slot_of[key], numbers)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every vector and its id: float32 (n, dim) and int64 (n,), in storage order (all in
        memory: for an IVF-PQ index prefer `chunks`)."""
        pieces = list(self.chunks())
        if not pieces:
            return np.empty((0, self.dim), np.float32), np.empty(0, np.int64)
        return (
            np.concatenate([np.asarray(v, np.float32) for v, _ in pieces]),
            np.concatenate([i for _, i in pieces]).astype(np.int64),
        )

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Up to n of the indexed vectors, drawn at random: float32 (min(n, len), dim)."""
        size = len(self)
        picks = np.sort(np.random.default_rng(seed).choice(size, min(n, size), replace=False))
        out, seen = [], 0
        for vectors, _ in self.chunks():
            inside = picks[(picks >= seen) & (picks < seen + len(vectors))] - seen
            if len(inside):
                out.append(np.asarray(vectors[inside], np.float32))
            seen += len(vectors)
        return np.concatenate(out) if out else np.empty((0, self.dim), np.float32)

    def needs_rebuild(self) -> bool:
        """Whether the index kind no longer suits its size (another kind by `choose_kind`, or
        an IVF / IVF-PQ index grown or shrunk 4-fold since it was trained)."""
        n = len(self)
        if self.kind == "flat":
            return n > EXACT_MAX_FRAMES
        if choose_kind(n) == "flat" and n <= EXACT_MAX_FRAMES // 2:
            return True
        return not self.trained_size / 4 <= n <= 4 * self.trained_size

    def rebuild(self, kind: str = "auto", seed: int = 0) -> None:
        """Rebuilds the index from its own vectors (an IVF-PQ index: from its source, a video
        at a time): flat, IVF or IVF-PQ by size ("auto"), or as told.

        After an IVF rebuild, call `calibrate` to choose nprobe from measured recall.
        """
        kind = check_kind(kind, len(self))
        if kind != "ivfpq":
            vectors, ids = self.vectors()
            self._build(vectors, ids, kind, seed)
            return
        n = len(self)
        sample = self.sample(train_size(n), seed)
        # an IVF-PQ index reads its vectors from the source; others hold them, so copy first
        old = self.chunks() if self.kind == "ivfpq" else iter(list(self.chunks()))
        self._train("ivfpq", n, sample)
        for vectors, ids in old:
            self._add_rows(vectors, ids)

    def _train(self, kind: str, n: int, sample: np.ndarray) -> None:
        """Replaces the FAISS index by an empty one of `kind` ("ivf" or "ivfpq") for about n
        frames, trained on `sample` (float32 (m, dim))."""
        nlist = nlist_for(n)
        if len(sample) < nlist:
            raise ClipItError(f"An IVF index needs at least {nlist} frames, got {len(sample)}; use kind='flat'")
        quantizer = faiss.IndexFlatIP(self.dim)
        if kind == "ivf":
            index = ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            if kind == "ivfpq" and self.source is None:
                raise ClipItError(
                    "An IVF-PQ index keeps no vectors and re-ranks from the embedding store: give "
                    "it a source (fiftyone_clipit.mapped.MappedStore(store_root))"
                )
            m = pq_subquantizers(self.dim)
            ivf = faiss.IndexIVFPQFastScan(quantizer, self.dim, nlist, m, 4, faiss.METRIC_INNER_PRODUCT)
            ivf.by_residual = True  # codes of x - centroid: at 300k frames, 300 candidates found 0.96
            # of the far queries' top 10 at nprobe 16 where codes of x found 0.86
            index = ivf
            if self.opq:
                rotation = faiss.OPQMatrix(self.dim, m)
                rotation.niter = _OPQ_ITERATIONS
                index = faiss.IndexPreTransform(rotation, ivf)
        ivf.cp.niter = _KMEANS_ITERATIONS
        ivf.cp.max_points_per_centroid = TRAIN_PER_LIST
        ivf.cp.min_points_per_centroid = 1
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        self._index, self.kind, self.trained_size = index, kind, n
        self._keep_alive = (quantizer, ivf)
        self.nprobe, self.rerank, self.recall = {}, {}, {}

    def _add_rows(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        for start in range(0, len(vectors), _ADD_CHUNK):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors[start : start + _ADD_CHUNK], dtype=np.float32),
                ids[start : start + _ADD_CHUNK],
            )

    def _build(self, vectors: np.ndarray, ids: np.ndarray, kind: str, seed: int = 0) -> None:
        """Replaces the FAISS index by a flat or IVF one holding `vectors` under `ids`.

        IVF lists come from k-means (10 iterations) on a random sample of 32 vectors per list,
        which kept k-means to ~10 s at 1M frames with recall measured afterwards.
        """
        n = len(vectors)
        if kind == "ivf":
            nlist = nlist_for(n)
            if n < nlist:
                raise ClipItError(f"An IVF index needs at least {nlist} frames, got {n}; use kind='flat'")
            sample = np.random.default_rng(seed).choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False)
            self._train("ivf", n, vectors[np.sort(sample)])
            self._add_rows(vectors, ids)
            return
        index = self._new_flat()
        if n:
            index.add_with_ids(vectors, ids)
        self._index, self.kind, self.trained_size = index, "flat", 0
        self.nprobe, self.rerank, self.recall = {}, {}, {}

    def _require_source(self) -> VectorSource:
        if self.source is None:
            raise ClipItError(
                "This IVF-PQ frame index re-ranks with the exact vectors of the embedding store, and "
                "none is attached; load it with FrameIndex.load(directory, source=MappedStore(store_root))"
            )
        return self.source

    def _search(
        self, queries: np.ndarray, k: int, nprobe: int | None, rerank: int = RERANK_FACTOR
    ) -> tuple[np.ndarray, np.ndarray]:
        with _threads_for(len(queries)):
            if self.kind == "flat":
                return self._index.search(queries, k)
            ivf_params = faiss.SearchParametersIVF(nprobe=int(nprobe or 1))
            params = ivf_params
            if isinstance(self._index, faiss.IndexPreTransform):
                params = faiss.SearchParametersPreTransform()
                params.index_params = ivf_params
            if self.kind == "ivf":
                return self._index.search(queries, k, params=params)
            candidates = min(len(self), rerank * max(k, _POOL_MIN_K))
            return self._rerank(queries, self._index.search(queries, candidates, params=params)[1], k)

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best of each row of candidate ids by exact cosine (vectors from the source)."""
        source = self._require_source()
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        for row, (query, found) in enumerate(zip(queries, candidates)):
            found = np.sort(found[found >= 0])  # by video, then frame: each video read in one go
            slots, numbers = unpack_ids(found)
            exact = np.empty(len(found), np.float32)
            starts = np.flatnonzero(np.diff(slots, prepend=-1))
            for start, stop in zip(starts.tolist(), np.append(starts[1:], len(found)).tolist()):
                exact[start:stop] = source.rows(self.slots[slots[start]], numbers[start:stop]) @ query
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)], ids[row, : len(best)] = exact[best], found[best]
        return scores, ids

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        query_kind: str = "near",
        nprobe: int | None = None,
        rerank: int | None = None,
    ) -> list[FrameHits]:
        """The k best frames of the index for each query.

        Args:
            queries: float array (m, dim) or (dim,), L2-normalised.
            k (10): frames per query; more than the index holds returns them all (with a log).
            query_kind ("near"): "near" (a frame or image) or "text": picks the measured nprobe.
            nprobe (None): IVF lists to visit; None takes the calibrated one for query_kind.
            rerank (None): IVF-PQ: candidates re-ranked exactly, as a multiple of k (of 10 when
                k < 10); None takes the calibrated pool for query_kind (RERANK_FACTOR if never
                calibrated).

        Returns:
            One FrameHits per query (IVF-PQ too: scores are exact cosines).

        Raises:
            EmptyIndexError: the index holds no frames.
            ClipItError: the queries' dimension differs from the index's.
            ValueError: k < 1 or an unknown query kind.
        """
        if query_kind not in QUERY_KINDS:
            raise ValueError(f"Unknown query kind '{query_kind}'. Available: {list(QUERY_KINDS)}")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if len(self) == 0:
            raise EmptyIndexError(
                "The frame index holds no frames; embed videos (compute_frame_embeddings) and "
                "build the index (build_frame_index) first"
            )
        queries = self._check_vectors(np.atleast_2d(queries), "The query")
        if k > len(self):
            logger.info("k=%d is more than the %d frames indexed; returning all of them", k, len(self))
            k = len(self)
        chosen = nprobe or self.nprobe.get(query_kind) or self.nprobe.get("near") or 1
        pool = rerank or self.rerank.get(query_kind) or self.rerank.get("near") or RERANK_FACTOR
        scores, ids = self._search(queries, k, chosen, pool)
        hits = []
        for row_scores, row_ids in zip(scores, ids):
            keep = row_ids >= 0
            slots, numbers = unpack_ids(row_ids[keep])
            hits.append(FrameHits([self.slots[s] for s in slots.tolist()], numbers, row_scores[keep]))
        return hits

    def save(self, directory: str) -> str:
        """Writes the index to `directory` (a new generation, then the metadata, atomically), so a
        reader sees the old index or the new one, never half of either. Returns the index file."""
        os.makedirs(directory, exist_ok=True)
        meta_path = os.path.join(directory, _META_FILE)
        generation = _read_json(meta_path).get("generation", 0) + 1 if os.path.exists(meta_path) else 1
        name = f"frames-{generation}.faiss"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".frames-", suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            os.replace(tmp, os.path.join(directory, name))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        meta = {
            "generation": generation, "file": name, "dim": self.dim, "kind": self.kind, "opq": self.opq,
            "layout": self.layout, "slots": self.slots, "nprobe": self.nprobe, "rerank": self.rerank,
            "recall": self.recall,
            "trained_size": self.trained_size, "n_frames": len(self), "info": self.info,
        }
        _write_json(meta_path, meta)
        for old in os.listdir(directory):
            if old.startswith("frames-") and old.endswith(".faiss") and old != name:
                os.remove(os.path.join(directory, old))
        return os.path.join(directory, name)

    @classmethod
    def load(cls, directory: str, source: VectorSource | None = None, mmap: bool = False) -> "FrameIndex":
        """Reads an index written by `save`.

        Args:
            directory: where `save` wrote it.
            source (None): exact vectors for an IVF-PQ index's re-ranking.
            mmap (False): map the index file instead of reading it (an IVF-Flat index's
                inverted lists stay on disk, paged in as searches touch them; FAISS reads
                fast-scan IVF-PQ lists into memory regardless); such an index is read-only.

        Raises:
            ClipItError: no index in `directory`.
        """
        meta_path = os.path.join(directory, _META_FILE)
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        for attempt in range(3):
            if not os.path.exists(meta_path):
                raise ClipItError(f"No frame index in '{directory}'; build it with build_frame_index")
            meta = _read_json(meta_path)
            try:
                index = faiss.read_index(os.path.join(directory, meta["file"]), flags)
                break
            except RuntimeError:
                if attempt == 2:  # a writer replaced the generation while we read: read again
                    raise
        self = cls(meta["dim"], meta.get("info"), source)
        self._index, self.kind, self.opq = index, meta["kind"], meta.get("opq", False)
        self.slots = meta["slots"]
        self._slot_of = {key: slot for slot, key in enumerate(self.slots) if key is not None}
        self.nprobe, self.recall = meta.get("nprobe", {}), meta.get("recall", {})
        self.rerank = meta.get("rerank", {})
        self.trained_size = meta.get("trained_size", 0)
        return self


def merge_moments(moments: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Overlapping [first, last] frame ranges merged, keeping the best score: sorted by first."""
    merged: list[list] = []
    for first, last, score in sorted(moments):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
            merged[-1][2] = max(merged[-1][2], score)
        else:
            merged.append([first, last, score])
    return [(a, b, float(s)) for a, b, s in merged]


def build_index(
    items: Iterable[tuple[str, np.ndarray, np.ndarray]],
    dim: int,
    info: dict | None = None,
    kind: str = "auto",
    source: VectorSource | None = None,
    opq: bool = False,
) -> FrameIndex:
    """A FrameIndex of (key, frame numbers (n,), embeddings (n, dim)) items, one per video, by
    `choose_kind` (or as told). Needs about twice the vectors' size in memory while building:
    past COMPRESSED_MIN_FRAMES use `build_compressed`, which streams."""
    keys, owners, numbers, chunks = [], [], [], []
    for key, frame_numbers, embeddings in items:
        if len(frame_numbers) != len(embeddings):
            raise ValueError(f"{len(frame_numbers)} frame numbers for {len(embeddings)} embeddings of '{key}'")
        owners.append(np.full(len(frame_numbers), len(keys), dtype=np.int64))
        keys.append(key)
        numbers.append(np.asarray(frame_numbers, dtype=np.int64))
        chunks.append(np.asarray(embeddings, dtype=np.float32).reshape(len(frame_numbers), -1))
    if not keys:
        return FrameIndex(dim, info, source)
    return FrameIndex.from_arrays(
        np.concatenate(chunks), keys, np.concatenate(owners), np.concatenate(numbers), info, kind, source, opq
    )


def build_compressed(
    source: VectorSource,
    keys: list[str],
    dim: int,
    info: dict | None = None,
    opq: bool = False,
    seed: int = 0,
    on_video: Callable[[int], None] | None = None,
) -> FrameIndex:
    """An IVF-PQ FrameIndex of the videos `keys` of `source`, built in a stream.

    Three passes over the source, one video at a time: frame counts (file headers only), a
    random training sample (32 frames per list, at least 10,000; only the sampled rows are
    read), then every video's frames added in turn. Memory: the sample plus the codes.

    Args:
        source: exact vectors by video (`fiftyone_clipit.mapped.MappedStore`).
        keys: the videos to index, each once.
        dim: embedding dimension.
        info (None): what made the embeddings.
        opq (False): rotate by a trained OPQ matrix before PQ.
        seed (0): the training sample.
        on_video (None): called with the number of videos added so far (progress).

    Raises:
        ClipItError: fewer frames than the index needs to train, or a wrong dimension.
        ValueError: a key is repeated.
    """
    if len(set(keys)) != len(keys):
        raise ValueError("Each video key must be given once")
    index = FrameIndex(dim, info, source)
    index.opq = bool(opq)
    counts = [len(source.video(key)[0]) for key in keys]
    n = int(sum(counts))
    picks = np.sort(np.random.default_rng(seed).choice(n, train_size(n), replace=False))
    sample, seen = [], 0
    for key, count in zip(keys, counts):
        inside = picks[(picks >= seen) & (picks < seen + count)] - seen
        if len(inside):
            sample.append(index._check_vectors(source.video(key)[1][inside], f"Embeddings of video '{key}'"))
        seen += count
    index._train("ivfpq", n, np.concatenate(sample) if sample else np.empty((0, dim), np.float32))
    batch: list[tuple[np.ndarray, np.ndarray]] = []
    for done, key in enumerate(keys, 1):
        numbers, vectors = source.video(key)
        slot = len(index.slots)
        index.slots.append(key)
        index._slot_of[key] = slot
        batch.append((index._check_vectors(vectors, f"Embeddings of video '{key}'"), pack_ids(slot, numbers)))
        if sum(len(v) for v, _ in batch) >= _ADD_CHUNK or done == len(keys):
            index._add_rows(np.concatenate([v for v, _ in batch]), np.concatenate([i for _, i in batch]))
            batch = []
        if on_video is not None:
            on_video(done)
    return index


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, data: dict) -> None:
    write_atomically(path, lambda f: json.dump(data, f), mode="w")

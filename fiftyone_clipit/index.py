"""A FAISS inner-product index over the frame embeddings of many videos.

Each vector's FAISS id packs (video slot, frame number): `slot << 32 | frame_number`, and a
table maps slots to keys (FiftyOne sample ids), so a hit names its video and frame directly
and a video's frames are removed with one id range. Embeddings are L2-normalised, so inner
product is cosine similarity.

Exact search (a flat index) is kept while the index is small; past `EXACT_MAX_FRAMES` an IVF
index takes over. The switch point was measured on the 2-core machine this project is built
on (`fiftyone-clipit bench search`, frame-like 512-d vectors, one query, one thread): a flat
scan took 0.5 ms at 10,000 frames, 1.7 ms at 20,000, 3.9 ms at 50,000 and 12 ms at 100,000
(linear in size), while IVF answered in 0.1 ms at recall@10 >= 0.97. So exact search is kept
up to 20,000 frames (about 3 hours of video at 2 fps), where it is still ~2 ms.

An IVF index's recall is measured when it is built (`calibrate`): for queries near the data (a
frame or an image as the query) and, when given, for text queries, which sit farther from
every frame; the smallest `nprobe` that reaches the target recall is kept for each kind.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import faiss
import numpy as np

from fiftyone_clipit.errors import ClipItError

logger = logging.getLogger("fiftyone_clipit")

#: exact (flat) search up to this many frames; IVF past it (see the module docstring)
EXACT_MAX_FRAMES = 20_000
#: query kinds with their own measured nprobe
QUERY_KINDS = ("near", "text")
_FRAME_BITS = 32
_FRAME_MASK = (1 << _FRAME_BITS) - 1
_META_FILE = "frame_index.json"
_KMEANS_ITERATIONS = 10
_TRAIN_PER_LIST = 32
_ADD_CHUNK = 65536


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


def nlist_for(n_frames: int) -> int:
    """IVF lists for an index of n frames: ~4 sqrt(n) as a power of two, in [64, 1024].

    At 1M frame-like vectors, 1,024 lists answered as well as 2,048 or 4,096 (recall@10 0.99
    for near queries at nprobe 1, 0.96 for text-like ones at nprobe 8, both under 1 ms) and
    built in a fraction of their time (k-means cost grows with the number of lists squared).
    """
    target = 4.0 * np.sqrt(max(n_frames, 1))
    return int(min(1024, max(64, 2 ** round(np.log2(target)))))


def pack_ids(slot: int, frame_numbers: np.ndarray) -> np.ndarray:
    """FAISS ids of one video's frames: slot << 32 | frame number."""
    numbers = np.asarray(frame_numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 1 or numbers.max() > _FRAME_MASK):
        raise ValueError(f"frame numbers must lie in [1, {_FRAME_MASK}], got {numbers.min()}..{numbers.max()}")
    return (np.int64(slot) << _FRAME_BITS) | numbers


def unpack_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slots, frame numbers) of FAISS ids."""
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> _FRAME_BITS, ids & _FRAME_MASK


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


class FrameIndex:
    """Frame embeddings of many videos in one FAISS index, keyed by video.

    Args:
        dim: embedding dimension.
        info (None): what made the embeddings (model, fps, ...), kept with the index.
    """

    def __init__(self, dim: int, info: dict | None = None):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.info = dict(info or {})
        self.kind = "flat"
        self.slots: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        self.nprobe: dict[str, int] = {}
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
    ) -> "FrameIndex":
        """An index whose row i is frame `frame_numbers[i]` of video `keys[owners[i]]`.

        Args:
            vectors: float32 (n, d), L2-normalised (used in place when already contiguous).
            keys: the videos' keys (sample ids), each once.
            owners: int array (n,) of positions in `keys`.
            frame_numbers: int array (n,), 1-based.
            info (None): what made the embeddings.
            kind ("auto"): "auto" (flat up to EXACT_MAX_FRAMES, IVF past it), "flat" or "ivf".

        Raises:
            ClipItError: wrong dimension or non-finite values.
            ValueError: lengths differ, a key is repeated, or a bad kind.
        """
        if len(set(keys)) != len(keys):
            raise ValueError("Each video key must be given once")
        index = cls(np.shape(vectors)[1] if np.ndim(vectors) == 2 else 0, info)
        vectors = index._check_vectors(vectors, "The embeddings")
        owners = np.asarray(owners, dtype=np.int64)
        if not len(owners) == len(frame_numbers) == len(vectors):
            raise ValueError(f"{len(vectors)} vectors, {len(owners)} owners, {len(frame_numbers)} frame numbers")
        index.slots = list(keys)
        index._slot_of = {key: slot for slot, key in enumerate(keys)}
        index._build(vectors, (owners << _FRAME_BITS) | pack_ids(0, frame_numbers), kind)
        return index

    def _new_flat(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def keys(self) -> list[str]:
        """The videos in the index."""
        return list(self._slot_of)

    def __contains__(self, key: str) -> bool:
        return key in self._slot_of

    def _check_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            model = self.info.get("model")
            made_by = f" (made by '{model}')" if model else ""
            raise ClipItError(
                f"{what} has shape {vectors.shape}, but the index holds {self.dim}-d vectors"
                f"{made_by}; embed with the index's model, or rebuild the index after "
                f"re-embedding every video with one model"
            )
        if not np.isfinite(vectors).all():
            raise ClipItError(f"{what} contains NaN or infinite values; re-embed it")
        return vectors

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
        selector = faiss.IDSelectorRange(slot << _FRAME_BITS, (slot + 1) << _FRAME_BITS)
        return int(self._index.remove_ids(selector))

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every vector and its id: float32 (n, dim) and int64 (n,), in storage order."""
        if self.kind == "flat":
            n = len(self)
            xb = faiss.rev_swig_ptr(faiss.downcast_index(self._index.index).get_xb(), n * self.dim)
            return np.array(xb, dtype=np.float32).reshape(n, self.dim), faiss.vector_to_array(self._index.id_map)
        invlists = self._index.invlists
        chunks, ids = [], []
        for lst in range(invlists.nlist):
            size = invlists.list_size(lst)
            if size:
                codes = faiss.rev_swig_ptr(invlists.get_codes(lst), size * invlists.code_size)
                chunks.append(np.frombuffer(codes, dtype=np.float32).reshape(size, self.dim).copy())
                ids.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
        if not chunks:
            return np.empty((0, self.dim), np.float32), np.empty(0, np.int64)
        return np.concatenate(chunks), np.concatenate(ids).astype(np.int64)

    def needs_rebuild(self) -> bool:
        """Whether the index kind no longer suits its size (flat past EXACT_MAX_FRAMES, IVF
        grown or shrunk 4-fold since it was trained, or small enough for exact search again)."""
        n = len(self)
        if self.kind == "flat":
            return n > EXACT_MAX_FRAMES
        return n <= EXACT_MAX_FRAMES // 2 or not self.trained_size / 4 <= n <= 4 * self.trained_size

    def rebuild(self, kind: str = "auto", seed: int = 0) -> None:
        """Rebuilds the index from its own vectors: flat or IVF by size ("auto"), or as told.

        After an IVF rebuild, call `calibrate` to choose nprobe from measured recall.
        """
        vectors, ids = self.vectors()
        self._build(vectors, ids, kind, seed)

    def _build(self, vectors: np.ndarray, ids: np.ndarray, kind: str, seed: int = 0) -> None:
        """Replaces the FAISS index by one of `kind` holding `vectors` under `ids`.

        IVF lists come from k-means (10 iterations) on a random sample of 32 vectors per list,
        which kept k-means to ~10 s at 1M frames with recall measured afterwards.
        """
        if kind not in ("auto", "flat", "ivf"):
            raise ValueError(f"Unknown index kind '{kind}'. Available: ['auto', 'flat', 'ivf']")
        n = len(vectors)
        if kind == "auto":
            kind = "ivf" if n > EXACT_MAX_FRAMES else "flat"
        if kind == "ivf":
            nlist = nlist_for(n)
            if n < nlist:
                raise ClipItError(f"An IVF index needs at least {nlist} frames, got {n}; use kind='flat'")
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = _KMEANS_ITERATIONS
            index.cp.max_points_per_centroid = _TRAIN_PER_LIST
            index.cp.min_points_per_centroid = 1
            sample = np.random.default_rng(seed).choice(n, min(n, _TRAIN_PER_LIST * nlist), replace=False)
            index.train(vectors[np.sort(sample)])
            for start in range(0, n, _ADD_CHUNK):
                index.add_with_ids(vectors[start : start + _ADD_CHUNK], ids[start : start + _ADD_CHUNK])
            self.trained_size = n
        else:
            index = self._new_flat()
            if n:
                index.add_with_ids(vectors, ids)
            self.trained_size = 0
        self._index, self.kind = index, kind
        self.nprobe, self.recall = {}, {}

    def calibrate(
        self,
        queries: dict[str, np.ndarray],
        target_recall: float = 0.95,
        k: int = 10,
        max_nprobe: int = 1024,
        reference: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, dict]:
        """Measures recall@k against exact search and keeps, per query kind, the smallest nprobe
        (a power of two) that reaches `target_recall`.

        Args:
            queries: query kind ("near", "text") -> float array (m, dim) of sample queries.
            target_recall (0.95): the recall@k to reach.
            k (10): recall@k.
            max_nprobe (1024): stop there (capped at the number of lists) if not reached.
            reference (None): `vectors()` when the caller has it already (saves a copy).

        Returns:
            kind -> {"nprobe", "recall", "median_ms"} as measured (flat: nprobe 0, recall 1).
        """
        report = {}
        for kind, q in queries.items():
            if kind not in QUERY_KINDS:
                raise ValueError(f"Unknown query kind '{kind}'. Available: {list(QUERY_KINDS)}")
            q = self._check_vectors(q, f"Calibration queries '{kind}'")
            if self.kind == "flat" or not len(q):
                report[kind] = {"nprobe": 0, "recall": 1.0, "median_ms": self._median_ms(q, k, None)}
                continue
            vectors, ids = reference if reference is not None else self.vectors()
            _, exact = faiss.knn(q, vectors, min(k, len(vectors)), metric=faiss.METRIC_INNER_PRODUCT)
            truth = ids[exact]
            nprobe, limit = 1, min(max_nprobe, self._index.nlist)
            while True:
                found = self._search(q, k, nprobe)[1]
                recall = recall_at_k(found, truth)
                if recall >= target_recall or nprobe >= limit:
                    break
                nprobe = min(2 * nprobe, limit)
            self.nprobe[kind], self.recall[kind] = nprobe, recall
            report[kind] = {"nprobe": nprobe, "recall": recall, "median_ms": self._median_ms(q, k, nprobe)}
        return report

    def _median_ms(self, queries: np.ndarray, k: int, nprobe: int | None) -> float:
        times = []
        for q in queries[:100]:
            start = time.perf_counter()
            self._search(q[None], k, nprobe)
            times.append(time.perf_counter() - start)
        return 1000.0 * float(np.median(times)) if times else 0.0

    def _search(self, queries: np.ndarray, k: int, nprobe: int | None) -> tuple[np.ndarray, np.ndarray]:
        with _threads_for(len(queries)):
            if self.kind == "ivf":
                params = faiss.SearchParametersIVF(nprobe=int(nprobe or self._index.nprobe))
                return self._index.search(queries, k, params=params)
            return self._index.search(queries, k)

    def search(
        self, queries: np.ndarray, k: int = 10, query_kind: str = "near", nprobe: int | None = None
    ) -> list[FrameHits]:
        """The k best frames of the index for each query.

        Args:
            queries: float array (m, dim) or (dim,), L2-normalised.
            k (10): frames per query; more than the index holds returns them all (with a log).
            query_kind ("near"): "near" (a frame or image) or "text": picks the measured nprobe.
            nprobe (None): IVF lists to visit; None takes the calibrated one for query_kind.

        Returns:
            One FrameHits per query.

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
        scores, ids = self._search(queries, k, chosen)
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
            "generation": generation, "file": name, "dim": self.dim, "kind": self.kind,
            "slots": self.slots, "nprobe": self.nprobe, "recall": self.recall,
            "trained_size": self.trained_size, "n_frames": len(self), "info": self.info,
        }
        _write_json(meta_path, meta)
        for old in os.listdir(directory):
            if old.startswith("frames-") and old.endswith(".faiss") and old != name:
                os.remove(os.path.join(directory, old))
        return os.path.join(directory, name)

    @classmethod
    def load(cls, directory: str) -> "FrameIndex":
        """Reads an index written by `save`.

        Raises:
            ClipItError: no index in `directory`.
        """
        meta_path = os.path.join(directory, _META_FILE)
        for attempt in range(3):
            if not os.path.exists(meta_path):
                raise ClipItError(f"No frame index in '{directory}'; build it with build_frame_index")
            meta = _read_json(meta_path)
            try:
                index = faiss.read_index(os.path.join(directory, meta["file"]))
                break
            except RuntimeError:
                if attempt == 2:  # a writer replaced the generation while we read: read again
                    raise
        self = cls(meta["dim"], meta.get("info"))
        self._index, self.kind = index, meta["kind"]
        self.slots = meta["slots"]
        self._slot_of = {key: slot for slot, key in enumerate(self.slots) if key is not None}
        self.nprobe, self.recall = meta.get("nprobe", {}), meta.get("recall", {})
        self.trained_size = meta.get("trained_size", 0)
        return self


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
    items: Iterable[tuple[str, np.ndarray, np.ndarray]], dim: int, info: dict | None = None, kind: str = "auto"
) -> FrameIndex:
    """A FrameIndex of (key, frame numbers (n,), embeddings (n, dim)) items, one per video, flat
    or IVF by size (or as told). Needs about twice the vectors' size in memory while building."""
    keys, owners, numbers, chunks = [], [], [], []
    for key, frame_numbers, embeddings in items:
        if len(frame_numbers) != len(embeddings):
            raise ValueError(f"{len(frame_numbers)} frame numbers for {len(embeddings)} embeddings of '{key}'")
        owners.append(np.full(len(frame_numbers), len(keys), dtype=np.int64))
        keys.append(key)
        numbers.append(np.asarray(frame_numbers, dtype=np.int64))
        chunks.append(np.asarray(embeddings, dtype=np.float32).reshape(len(frame_numbers), -1))
    if not keys:
        return FrameIndex(dim, info)
    return FrameIndex.from_arrays(
        np.concatenate(chunks), keys, np.concatenate(owners), np.concatenate(numbers), info, kind
    )


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".meta-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

"""Queries against a frame index: the query's embedding, and the loops that search until enough
frames or videos of a view are found. FiftyOne-free; `fiftyone_clipit.fo.search` and the Brain
backend (`fiftyone_clipit.fo.brain`) call these.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image

from fiftyone_clipit.encoders import ClipEncoder, load_clip
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.index import FrameIndex
from fiftyone_clipit.knn import far_queries

#: frames drawn from the index as queries when its nprobe is calibrated (and as many text-like ones)
CALIBRATION_QUERIES = 200
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_encoders: dict[tuple, ClipEncoder] = {}


def calibrate_index(index: FrameIndex, target_recall: float) -> dict:
    """Measures recall for sample frames as queries and for far (text-like) queries (exact
    search streams through the index's vectors, an IVF-PQ index's from the store)."""
    near = index.sample(CALIBRATION_QUERIES)
    queries = {"near": near, "text": far_queries(near, CALIBRATION_QUERIES)}
    return index.calibrate(queries, target_recall=target_recall)


def query_encoder(index: FrameIndex, model: str | ClipEncoder | None, device: str | None = None) -> ClipEncoder:
    """The encoder for queries: the index's model (loaded once per process) or the given one.

    Raises:
        ClipItError: the given model is not the one the frames were embedded with.
    """
    embedded_with = index.info.get("model")
    if isinstance(model, ClipEncoder):
        if model.name != embedded_with or (model.dim and model.dim != index.dim):
            raise ClipItError(
                f"The frame index holds {index.dim}-d embeddings by '{embedded_with}'; the query "
                f"model '{model.name}' makes {model.dim}-d ones. Search with model='{embedded_with}', "
                f"or re-embed the frames with '{model.name}' and rebuild the index"
            )
        return model
    if model is not None and model != embedded_with:
        raise ClipItError(
            f"The frame index holds embeddings by '{embedded_with}', not '{model}'; search with "
            f"model='{embedded_with}' or re-embed the frames with '{model}' and rebuild the index"
        )
    key = (embedded_with, index.info.get("pretrained"), device)
    if key not in _encoders:
        _encoders.clear()  # keep one model in memory
        _encoders[key] = load_clip(embedded_with, index.info.get("pretrained"), device)
    return _encoders[key]


def embed_query(
    index: FrameIndex, query: str | Sequence[str] | np.ndarray, model: str | ClipEncoder | None = None
) -> tuple[np.ndarray, str, str]:
    """(unit query vector (d,), query kind "text"/"near", label) of a text, an image file or a vector.

    Several sentences are averaged (their unit embeddings), as FiftyOne's "mean" aggregation.
    """
    if isinstance(query, np.ndarray):
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        return vector / max(np.linalg.norm(vector), 1e-12), "near", "vector query"
    if isinstance(query, str) and query.lower().endswith(_IMAGE_EXTENSIONS) and os.path.isfile(query):
        encoder = query_encoder(index, model)
        return encoder.encode_images(model_input(query, encoder.image_size))[0], "near", os.path.basename(query)
    sentences = [query] if isinstance(query, str) else list(query)
    encoder = query_encoder(index, model)
    vector = encoder.encode_text(sentences).mean(axis=0)
    return vector / np.linalg.norm(vector), "text", "; ".join(sentences)


def model_input(path: str, size: int) -> np.ndarray:
    """An image file as the model's input: shortest side to `size` (bicubic), centre crop."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = size / min(image.size)
        shape = (max(size, round(image.width * scale)), max(size, round(image.height * scale)))
        image = image.resize(shape, Image.BICUBIC)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)))[None]


def top_frames(
    index: FrameIndex, vector: np.ndarray, k: int, allowed: set[str] | None, query_kind: str = "near"
) -> list[tuple[str, int, float]]:
    """The k best frames of the videos in `allowed` (None: all): [(sample id, frame, cosine)].

    Searches more frames until k of them belong to `allowed` or the index is exhausted.
    """
    n = min(k, max(len(index), 1))  # an empty index raises its own EmptyIndexError
    while True:
        (hits,) = index.search(vector, n, query_kind=query_kind)
        found = [
            (key, number, score)
            for key, number, score in zip(hits.keys, hits.frame_numbers.tolist(), hits.scores.tolist())
            if allowed is None or key in allowed
        ]
        if len(found) >= k or n >= len(index):
            return found[:k]
        n = min(len(index), 4 * n)


def best_videos(
    index: FrameIndex,
    vector: np.ndarray,
    n_videos: int | None,
    allowed: set[str] | None,
    query_kind: str = "near",
    frames_per_video: int = 1,
) -> list[tuple[str, list[tuple[int, float]]]]:
    """Videos ranked by their best frame, with up to `frames_per_video` best frames each.

    Searches more frames until `n_videos` distinct videos of `allowed` are found (None: all of
    them) or the index is exhausted.

    Returns:
        [(sample id, [(frame number, cosine), ...]), ...], best video first.
    """
    wanted = n_videos if n_videos is not None else len(index.keys)
    k = min(max(len(index), 1), max(10 * wanted * frames_per_video, 100))
    while True:
        (hits,) = index.search(vector, k, query_kind=query_kind)
        ranked: dict[str, list[tuple[int, float]]] = {}
        for key, number, score in zip(hits.keys, hits.frame_numbers.tolist(), hits.scores.tolist()):
            if allowed is not None and key not in allowed:
                continue
            frames = ranked.setdefault(key, [])
            if len(frames) < frames_per_video:
                frames.append((number, score))
        if len(ranked) >= wanted or k >= len(index):
            return list(ranked.items())[:wanted]
        k = min(len(index), 4 * k)


def check_query(query: str | Sequence[str] | np.ndarray) -> None:
    """Refuses an empty text, list of sentences or vector, naming it."""
    empty = not query.strip() if isinstance(query, str) else (
        query.size == 0 if isinstance(query, np.ndarray) else not list(query)
    )
    if empty:
        raise ClipItError(f"The query must be non-empty text, an image file or a vector, got {query!r}")

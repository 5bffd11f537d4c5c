"""Queries against a frame index: the query's embedding, and the loops that search until enough
frames or videos of a view are found. FiftyOne-free; `fiftyone_clipit.fo.search` and the Brain
backend (`fiftyone_clipit.fo.brain`) call these.

A text query is taken as the path of an image (`names_a_file`) when it names an existing
file, ends with a file extension of `FILE_EXTENSIONS` (images, videos, documents, arrays), or
starts as a path does (`/`, `./`, `../`, `~/`, a drive `C:/`). Such a query must be a readable
image file; anything else is refused rather than searched for as text. Every other text is a
sentence: "a dog. a cat" and "the 3.5 m jump" search by text.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np
from PIL import Image

from fiftyone_clipit.encoders import ClipEncoder, load_clip
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.index import FrameIndex
from fiftyone_clipit.knn import far_queries

#: frames drawn from the index as queries when its nprobe is calibrated (and as many text-like ones)
CALIBRATION_QUERIES = 200
#: extensions that make a text query the path of a file (see the module docstring)
FILE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".heic", ".avif",
    ".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
    ".txt", ".csv", ".json", ".md", ".pdf", ".html", ".npy", ".npz", ".h5", ".pt", ".wav", ".mp3",
)
_PATH_START = re.compile(r"^(/|\.{1,2}[/\\]|~[/\\]|[A-Za-z]:[/\\])")
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
    if isinstance(query, str) and names_a_file(query):
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
        return np.array(image.crop((left, top, left + size, top + size)))[None]  # writable, for torch


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


def names_a_file(query: str) -> bool:
    """Whether a text query is a path rather than a sentence (the rule is in the module docstring)."""
    text = query.strip()
    return os.path.isfile(query) or text.lower().endswith(FILE_EXTENSIONS) or bool(_PATH_START.match(text))


def check_query(query: str | Sequence[str] | np.ndarray) -> None:
    """Refuses an empty text, list of sentences or vector, and a path that is not a readable
    image (a missing file, a text file, a video), naming it.

    Raises:
        ClipItError: naming the query and what to pass instead.
    """
    empty = not query.strip() if isinstance(query, str) else (
        query.size == 0 if isinstance(query, np.ndarray) else not list(query)
    )
    if empty:
        raise ClipItError(f"The query must be non-empty text, an image file or a vector, got {query!r}")
    if isinstance(query, np.ndarray):
        return
    sentences = [query] if isinstance(query, str) else list(query)
    for path in filter(names_a_file, sentences):
        if isinstance(query, str):
            _check_image_file(path)
        else:
            raise ClipItError(
                f"The query {path!r} in a list of sentences looks like a file; pass one image file on its own "
                f"to search by an image, or sentences without a file extension to search by text"
            )


def _check_image_file(path: str) -> None:
    """Refuses a path query that is not an image file PIL can read."""
    remedy = "pass an existing image file, or a sentence without a file extension to search by text"
    if not os.path.isfile(path):
        what = "it is a folder" if os.path.isdir(path) else "there is no such file"
        raise ClipItError(f"The query '{path}' looks like a file, but {what}; {remedy}")
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, Image.DecompressionBombError) as e:
        raise ClipItError(f"The query '{path}' is not a readable image ({e}); {remedy}") from e

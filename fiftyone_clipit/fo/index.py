"""The dataset's frame index: built from the embedding store, kept in step, searched by text.

The index covers every video of the dataset that has frame embeddings (as FiftyOne Brain's
similarity indexes cover the whole dataset); a search on a view keeps the hits in that view.
It lives on disk beside the embedding store (`<store>.frame-index/`), recorded by the run
`clipit_frame_index`, so any process that opens the dataset (the App, a delegated worker)
loads it. Each build or search first brings it in step with the store: videos deleted from the
dataset leave the index, videos embedded since join it, re-embedded videos are replaced.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Sequence

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.runs as fors
import numpy as np
from PIL import Image

from fiftyone_clipit.defaults import DEFAULT_BRAIN_KEY, DEFAULT_MATCHES_FIELD, DEFAULT_RELEVANCE_FIELD, FALLBACK_FRAME_RATE
from fiftyone_clipit.encoders import ClipEncoder, load_clip
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    Progress,
    check_field_name,
    check_field_type,
    embedding_store,
    iterate,
    record_run,
    root_dataset,
    video_collection,
    write_in_chunks,
)
from fiftyone_clipit.index import (
    KINDS,
    FrameIndex,
    build_compressed,
    build_index,
    choose_kind,
    merge_moments,
)
from fiftyone_clipit.knn import far_queries
from fiftyone_clipit.mapped import MappedStore
from fiftyone_clipit.milvus_index import MilvusFrameIndex

INDEX_RUN = "clipit_frame_index"
#: where the frame index lives: FAISS files beside the store, or a Milvus collection
BACKENDS = ("faiss", "milvus")
_RUNS = {"faiss": INDEX_RUN, "milvus": f"{INDEX_RUN}_milvus"}
_FOLDERS = {"faiss": ".frame-index", "milvus": ".milvus-index"}
SEARCH_RUN = "clipit_search"
_CALIBRATION_QUERIES = 200
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_cache: dict[str, tuple[float, FrameIndex]] = {}
_encoders: dict[tuple, ClipEncoder] = {}


class FrameIndexRunConfig(fors.RunConfig):
    """The `clipit_frame_index` run: where the index is, its kind, size and measured recall.

    Deleting the run (`dataset.delete_run("clipit_frame_index")`) deletes the index files.
    """


class FrameIndexRun(fors.Run):
    """The run class FiftyOne builds from FrameIndexRunConfig (for its cleanup)."""

    def cleanup(self, samples: foc.SampleCollection, key: str) -> None:
        index_dir = getattr(self.config, "index_dir", None)
        if index_dir and os.path.isdir(index_dir):
            for name in os.listdir(index_dir):
                os.remove(os.path.join(index_dir, name))
            os.rmdir(index_dir)
        _cache.pop(index_dir, None)


@dataclass
class IndexReport:
    """What `build_frame_index` (or a sync before a search) did to the index."""

    n_added: int = 0
    n_removed: int = 0
    n_videos: int = 0
    n_frames: int = 0
    kind: str = "flat"
    layout: str = ""
    rebuilt: bool = False
    calibration: dict | None = None


def index_dir(dataset: fo.Dataset, backend: str = "faiss") -> str:
    """Where the dataset's frame index (or, for Milvus, its record) lives: recorded by its run
    (`clipit_frame_index`, `clipit_frame_index_milvus`), else beside the store."""
    _check_backend(backend)
    if dataset.has_run(_RUNS[backend]):
        return dataset.get_run_info(_RUNS[backend]).config.index_dir
    return embedding_store(dataset).root.rstrip(os.sep) + _FOLDERS[backend]


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ClipItError(f"Unknown index backend '{backend}'. Available: {list(BACKENDS)}")


def _embeddings_config(dataset: fo.Dataset):
    if not dataset.has_run(EMBEDDINGS_RUN):
        raise ClipItError(
            f"Dataset '{dataset.name}' has no frame embeddings; run compute_frame_embeddings first"
        )
    return dataset.get_run_info(EMBEDDINGS_RUN).config


def load_frame_index(samples: foc.SampleCollection, backend: str = "faiss") -> FrameIndex | MilvusFrameIndex:
    """The dataset's frame index as saved (cached per process until it is saved again).

    Raises:
        ClipItError: the dataset has no frame index yet (for Milvus: or the server is
            unreachable, or the collection is gone).
    """
    dataset = root_dataset(samples)
    directory = index_dir(dataset, backend)
    meta = os.path.join(directory, "frame_index.json")
    if not os.path.exists(meta):
        raise ClipItError(
            f"Dataset '{dataset.name}' has no frame index; run build_frame_index first"
        )
    mtime = os.stat(meta).st_mtime_ns
    cached = _cache.get(directory)
    if cached is None or cached[0] != mtime:
        if backend == "milvus":
            opened = MilvusFrameIndex.load(directory)
        else:
            opened = FrameIndex.load(directory, source=MappedStore(embedding_store(dataset).root))
        cached = (mtime, opened)
        _cache[directory] = cached
    return cached[1]


def _calibrate(index: FrameIndex, target_recall: float) -> dict:
    """Measures recall for sample frames as queries and for far (text-like) queries (exact
    search streams through the index's vectors, an IVF-PQ index's from the store)."""
    near = index.sample(_CALIBRATION_QUERIES)
    queries = {"near": near, "text": far_queries(near, _CALIBRATION_QUERIES)}
    return index.calibrate(queries, target_recall=target_recall)


def build_frame_index(
    samples: foc.SampleCollection,
    kind: str = "auto",
    overwrite: bool = False,
    target_recall: float = 0.95,
    brain_key: str | None = DEFAULT_BRAIN_KEY,
    progress: Progress = None,
    backend: str = "faiss",
    uri: str | None = None,
    collection: str | None = None,
) -> IndexReport:
    """Builds the dataset's frame index from its embedding store, or brings it in step.

    Exact inner-product search up to `fiftyone_clipit.index.EXACT_MAX_FRAMES` frames, an IVF
    index up to `COMPRESSED_MIN_FRAMES`, a compressed IVF-PQ index past that (built in a
    stream from the store, candidates re-ranked with the exact vectors memory-mapped from
    it), with nprobe chosen from recall measured at build time (for frame/image queries and
    for text-like ones). The kind and FAISS layout chosen are in the report and the
    `clipit_frame_index` run. Ids map to (sample id, frame number). A second call only adds
    videos embedded since, removes deleted ones and replaces re-embedded ones.

    With backend="milvus" the frames go to a Milvus collection instead (same ids, same hits;
    `fiftyone_clipit.milvus_index`), for indexes that many machines share or that outgrow one;
    the FAISS index, if any, is left as it is. Both can exist; searches name the one they use.

    Args:
        samples: a video dataset or a view of it; the index always covers the whole dataset.
        kind ("auto"): "auto" (by size), "flat" (always exact), "ivf" or "ivfpq".
        overwrite (False): rebuild from scratch instead of updating.
        target_recall (0.95): recall@10 the IVF nprobe settings must reach.
        brain_key ("clipit_frames"): also register a FiftyOne Brain similarity run under this
            key, so `sort_by_similarity` (text prompts too) uses this index; None: don't.
        progress (None): True for a progress bar, or a callback(fraction, label).
        backend ("faiss"): "faiss" or "milvus".
        uri (None): Milvus: the server (`http://host:19530`) or a Milvus Lite file; None: a
            Milvus Lite file beside the embedding store (one process at a time).
        collection (None): Milvus: the collection; None: `clipit_frames_<dataset name>`.

    Raises:
        ClipItError: no embeddings, embeddings of differing dimension, a bad kind or backend,
            or a Milvus server that cannot be reached or fails (naming its URI).
    """
    samples = video_collection(samples)
    if kind not in KINDS:
        raise ClipItError(f"Unknown index kind '{kind}'. Available: {list(KINDS)}")
    _check_backend(backend)
    dataset = root_dataset(samples)
    config = _embeddings_config(dataset)
    directory = index_dir(dataset, backend)
    exists = os.path.exists(os.path.join(directory, "frame_index.json"))
    if backend == "milvus" and exists and not overwrite:
        with open(os.path.join(directory, "frame_index.json")) as f:
            recorded = json.load(f)
        exists = (uri or recorded["uri"], collection or recorded["collection"]) == (
            recorded["uri"], recorded["collection"]
        )  # another server or collection named: build there
    if backend == "milvus" and (overwrite or not exists):
        uri = uri or os.path.join(directory, "frames.db")
        collection = collection or "clipit_frames_" + re.sub(r"\W", "_", dataset.name)
        return _build_milvus(dataset, config, directory, uri, collection, overwrite, progress)
    if overwrite or not exists:
        report = _build(dataset, config, directory, kind, target_recall, progress)
    else:
        report = sync_frame_index(dataset, kind=kind, target_recall=target_recall, progress=progress, backend=backend)
    if brain_key is not None and backend == "faiss":
        from fiftyone_clipit.fo.brain import register_similarity_run

        register_similarity_run(dataset, brain_key)
    return report


def _current(dataset: fo.Dataset, config, known: dict[str, str] | None = None) -> dict[str, str]:
    """sample id -> store stamp, for the dataset's videos embedded by the run's model and fps.

    A video whose stamp is in `known` (indexed before, so checked then) costs one stat.
    """
    store = embedding_store(dataset)
    known = known or {}
    current = {}
    for sample_id in dataset.values("id"):
        stamp = store.stamp(sample_id)
        if stamp is None:
            continue
        if known.get(sample_id) != stamp:
            info = store.info(sample_id)
            if info.get("model") != config.model or info.get("fps") != config.fps:
                continue
        current[sample_id] = stamp
    return current


def _build(dataset, config, directory, kind, target_recall, progress) -> IndexReport:
    store = embedding_store(dataset)
    current = _current(dataset, config)

    def items():
        for sample_id in iterate(list(current), progress, "Indexing frames"):
            item = store.get(sample_id)
            yield sample_id, item.frame_numbers, item.embeddings

    dim = config.dim or (store.get(next(iter(current))).embeddings.shape[1] if current else 1)
    info = {"model": config.model, "pretrained": config.pretrained, "fps": config.fps, "stamps": current}
    source = MappedStore(store.root)
    if kind == "auto":
        kind = choose_kind(source.n_frames(current))
    if kind == "ivfpq":
        index = build_compressed(source, list(current), dim, info)
    else:
        index = build_index(items(), dim, info, kind, source)
    report = IndexReport(n_added=len(current), rebuilt=True)
    if index.kind != "flat":
        report.calibration = _calibrate(index, target_recall)
    _save(dataset, index, directory, report)
    return report


def _build_milvus(dataset, config, directory, uri, collection, overwrite, progress) -> IndexReport:
    """A new Milvus collection of every embedded video; its record is written only at the end,
    so a build that fails part-way leaves no record (and any FAISS index as it was)."""
    store = embedding_store(dataset)
    current = _current(dataset, config)
    dim = config.dim or (store.get(next(iter(current))).embeddings.shape[1] if current else 1)
    info = {"model": config.model, "pretrained": config.pretrained, "fps": config.fps, "stamps": current}
    index = MilvusFrameIndex.create(uri, collection, dim, info, overwrite=overwrite)
    for sample_id in iterate(list(current), progress, "Indexing frames in Milvus"):
        item = store.get(sample_id)
        index.add(sample_id, item.frame_numbers, item.embeddings)
    report = IndexReport(n_added=len(current), rebuilt=True)
    _save(dataset, index, directory, report, "milvus")
    return report


def sync_frame_index(
    samples: foc.SampleCollection,
    kind: str = "auto",
    target_recall: float = 0.95,
    progress: Progress = None,
    backend: str = "faiss",
) -> IndexReport:
    """Brings the saved frame index in step with the dataset and its store (see the module).

    Raises:
        ClipItError: no embeddings or no index yet.
    """
    dataset = root_dataset(samples)
    config = _embeddings_config(dataset)
    index = load_frame_index(dataset, backend)
    directory = index_dir(dataset, backend)
    if index.info.get("model") != config.model or index.info.get("fps") != config.fps:
        if backend == "milvus":
            return _build_milvus(dataset, config, directory, index.uri, index.collection, True, progress)
        return _build(dataset, config, directory, kind, target_recall, progress)
    stamps = index.info.setdefault("stamps", {})
    current = _current(dataset, config, stamps)
    report = IndexReport()
    for key in [k for k in index.keys if current.get(k) != stamps.get(k)]:
        index.remove(key)
        stamps.pop(key, None)
        report.n_removed += 1
    changed = [k for k in current if k not in index]
    store = embedding_store(dataset)
    for sample_id in iterate(changed, progress, "Indexing frames"):
        item = store.get(sample_id)
        index.add(sample_id, item.frame_numbers, item.embeddings)
        stamps[sample_id] = current[sample_id]
        report.n_added += 1
    wanted = kind if kind != "auto" else choose_kind(len(index))
    if index.needs_rebuild() or (backend == "faiss" and kind != "auto" and index.kind != wanted):
        index.rebuild(wanted)
        report.rebuilt = True
        if index.kind != "flat":
            report.calibration = _calibrate(index, target_recall)
    if report.n_added or report.n_removed or report.rebuilt:
        _save(dataset, index, directory, report, backend)
    else:
        _fill(report, index)
    return report


def _fill(report: IndexReport, index: FrameIndex) -> None:
    report.n_videos, report.n_frames, report.kind = len(index.keys), len(index), index.kind
    report.layout = index.layout


def _save(dataset: fo.Dataset, index, directory: str, report: IndexReport, backend: str = "faiss") -> None:
    index.save(directory)
    _cache[directory] = (os.stat(os.path.join(directory, "frame_index.json")).st_mtime_ns, index)
    _fill(report, index)
    config = FrameIndexRunConfig(
        index_dir=directory,
        kind=index.kind,
        layout=index.layout,
        model=index.info.get("model"),
        dim=index.dim,
        n_videos=report.n_videos,
        n_frames=report.n_frames,
        nprobe=index.nprobe,
        recall=index.recall,
        backend=backend,
        uri=getattr(index, "uri", None),
        collection=getattr(index, "collection", None),
    )
    run = _RUNS[backend]
    if dataset.has_run(run) and not isinstance(dataset.get_run_info(run).config, FrameIndexRunConfig):
        dataset.delete_run(run)
    dataset.register_run(run, config, overwrite=True, cleanup=False)


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
        return encoder.encode_images(_model_input(query, encoder.image_size))[0], "near", os.path.basename(query)
    sentences = [query] if isinstance(query, str) else list(query)
    encoder = query_encoder(index, model)
    vector = encoder.encode_text(sentences).mean(axis=0)
    return vector / np.linalg.norm(vector), "text", "; ".join(sentences)


def _model_input(path: str, size: int) -> np.ndarray:
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


def search_frames(
    samples: foc.SampleCollection,
    query: str | Sequence[str] | np.ndarray,
    k: int = 10,
    model: str | ClipEncoder | None = None,
    clip_seconds: float = 2.0,
    matches_field: str = DEFAULT_MATCHES_FIELD,
    relevance_field: str = DEFAULT_RELEVANCE_FIELD,
    sync: bool = True,
    backend: str = "faiss",
) -> fo.DatasetView:
    """The top `k` frames across the collection for a text (or an image), as a browsable view.

    The view holds the videos with a match, ordered by their best match. On each of them,
    `<matches_field>` (TemporalDetections) holds the matching moments (`clip_seconds` around
    each hit frame, overlapping ones merged; label = the query, confidence = cosine
    similarity), so `view.to_clips(matches_field)` shows the moments as clips; and
    `<relevance_field>` holds the video's best cosine similarity, to filter on in the App.
    Both fields are cleared on videos that this search did not match.

    Args:
        samples: a video dataset or view with frame embeddings (compute_frame_embeddings).
        query: text, several sentences (averaged), an image file, or an embedding (d,).
        k (10): how many frames to return across the collection (all, if fewer are indexed).
        model (None): the index's model (default) or a loaded ClipEncoder of it.
        clip_seconds (2.0): length of the moment around each hit frame.
        matches_field ("clipit_matches"): the TemporalDetections field to write.
        relevance_field ("clipit_relevance"): the float field to write.
        sync (True): build the index, or bring it in step with the dataset, first (see
            build_frame_index); False searches the index as saved.
        backend ("faiss"): search the FAISS index or the Milvus collection (build_frame_index).

    Returns:
        a DatasetView of the matched videos, best first.

    Raises:
        ClipItError: no index, an empty index, an empty query, a model or vector whose
            dimension differs from the index's, or bad field names.
        ValueError: k < 1 or clip_seconds <= 0.
    """
    samples = video_collection(samples)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be > 0, got {clip_seconds!r}")
    _check_query(query)
    check_field_name(matches_field, "matches field")
    check_field_name(relevance_field, "relevance field")
    check_field_type(samples, matches_field, fo.EmbeddedDocumentField, fo.TemporalDetections)
    check_field_type(samples, relevance_field, fo.FloatField)
    dataset = root_dataset(samples)
    if sync:  # builds it on first use, else brings it in step
        build_frame_index(dataset, backend=backend, brain_key=DEFAULT_BRAIN_KEY if backend == "faiss" else None)
    index = load_frame_index(dataset, backend)
    vector, query_kind, label = embed_query(index, query, model)
    allowed = None if isinstance(samples, fo.Dataset) else set(samples.values("id"))
    per_video: dict[str, list[tuple[int, float]]] = {}
    for sample_id, number, score in top_frames(index, vector, k, allowed, query_kind):
        per_video.setdefault(sample_id, []).append((number, score))
    order = list(per_video)
    _write_matches(dataset, per_video, label, clip_seconds, matches_field, relevance_field)
    record_run(dataset, SEARCH_RUN, query=label, k=int(k), model=index.info.get("model"),
               matches_field=matches_field, relevance_field=relevance_field)
    return dataset.select(order, ordered=True)


def _check_query(query) -> None:
    empty = not query.strip() if isinstance(query, str) else (
        query.size == 0 if isinstance(query, np.ndarray) else not list(query)
    )
    if empty:
        raise ClipItError(f"The query must be non-empty text, an image file or a vector, got {query!r}")


def _write_matches(dataset, per_video, label, clip_seconds, matches_field, relevance_field) -> None:
    """Writes this search's moments and relevance, clearing the last search's on other videos."""
    for field in (relevance_field, matches_field):
        if dataset.has_field(field):
            stale = [i for i in dataset.exists(field).values("id") if i not in per_video]
            if stale:
                write_in_chunks(dataset, field, {i: None for i in stale})
    if not per_video:
        return
    view = dataset.select(list(per_video), ordered=True)
    rates, counts = view.values("metadata.frame_rate"), view.values("metadata.total_frame_count")
    matches, relevance = {}, {}
    for (sample_id, frames), rate, count in zip(per_video.items(), rates, counts):
        half = max(1, round((rate or FALLBACK_FRAME_RATE) * clip_seconds / 2))
        last_frame = count or max(n for n, _ in frames) + half
        moments = merge_moments([(max(1, n - half), min(last_frame, n + half), s) for n, s in frames])
        matches[sample_id] = fo.TemporalDetections(
            detections=[fo.TemporalDetection(label=label, support=[a, b], confidence=s) for a, b, s in moments]
        )
        relevance[sample_id] = max(s for _, s in frames)
    write_in_chunks(dataset, matches_field, matches)
    write_in_chunks(dataset, relevance_field, relevance)

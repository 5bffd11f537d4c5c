"""The dataset's frame index: built from the embedding store and kept in step with it.

The index covers every video of the dataset that has frame embeddings (as FiftyOne Brain's
similarity indexes cover the whole dataset); a search on a view keeps the hits in that view.
It lives on disk beside the embedding store (`<store>.frame-index/`), recorded by the run
`clipit_frame_index`, so any process that opens the dataset (the App, a delegated worker)
loads it. Each build or search first brings it in step with the store: videos deleted from the
dataset leave the index, videos embedded since join it, re-embedded videos are replaced; an
explicit build or update also leaves out videos whose source file changed since they were
embedded (their vectors show other footage) until they are embedded again.
The public entry points (`build_frame_index`, `search_frames`) are in `fiftyone_clipit.fo.search`,
above this module and the Brain backend (`fiftyone_clipit.fo.brain`) that reads the index.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.runs as fors

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    Progress,
    embedding_store,
    iterate,
    root_dataset,
    video_collection,
)
from fiftyone_clipit.fo.lineage import source_problem
from fiftyone_clipit.index import FrameIndex, build_compressed, build_index
from fiftyone_clipit.index_layout import choose_kind
from fiftyone_clipit.options import BACKENDS, IndexOptions
from fiftyone_clipit.mapped import MappedStore
from fiftyone_clipit.milvus_index import MilvusFrameIndex
from fiftyone_clipit.queries import calibrate_index

INDEX_RUN = "clipit_frame_index"
MILVUS_INDEX_RUN = f"{INDEX_RUN}_milvus"
#: where the frame index lives: FAISS files beside the store, or a Milvus collection
_RUNS = {"faiss": INDEX_RUN, "milvus": MILVUS_INDEX_RUN}
_FOLDERS = {"faiss": ".frame-index", "milvus": ".milvus-index"}
_cache: dict[str, tuple[float, FrameIndex]] = {}


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
    #: sample id -> why its video is left out: its source file changed since it was embedded
    stale: dict[str, str] = field(default_factory=dict)


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


def update_frame_index(
    samples: foc.SampleCollection,
    options: IndexOptions | None = None,
    *,
    overwrite: bool = False,
    check_sources: bool = True,
    progress: Progress = None,
    **settings: Any,
) -> IndexReport:
    """Builds the dataset's frame index, or brings it in step: `build_frame_index` without the
    Brain run (`fiftyone_clipit.fo.search.build_frame_index` documents the arguments)."""
    options = IndexOptions.of(options, **settings)
    kind, target_recall, backend = options.kind, options.target_recall, options.backend
    uri, collection = options.uri, options.collection
    samples = video_collection(samples)
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
        return _build(dataset, config, directory, kind, target_recall, progress)
    return sync_frame_index(dataset, options, check_sources=check_sources, progress=progress)


def _current(
    dataset: fo.Dataset,
    config,
    known: dict[str, str] | None = None,
    check_sources: bool = False,
    stale: dict[str, dict] | None = None,
) -> dict[str, str]:
    """sample id -> store stamp, for the dataset's videos embedded by the run's model and fps
    from the file that is there now.

    With `check_sources` every source file is fingerprinted and compared with the one its
    embeddings were decoded from; a video whose file was replaced or is gone is left out and
    named in `stale` (sample id -> {"stamp", "reason"}). Without, a video found stale before
    stays out until it is embedded again (its stamp changes), so the sync before each search
    reads no source file. A video whose stamp is in `known` (indexed before, so checked then)
    otherwise costs one stat.
    """
    store = embedding_store(dataset)
    known = known or {}
    stale = stale if stale is not None else {}
    current = {}
    for sample_id, path in zip(*dataset.values(["id", "filepath"])):
        stamp = store.stamp(sample_id)
        if stamp is None or (not check_sources and stale.get(sample_id, {}).get("stamp") == stamp):
            continue
        if check_sources or known.get(sample_id) != stamp:
            info = store.info(sample_id)
            if info.get("model") != config.model or info.get("fps") != config.fps:
                continue
            problem = source_problem(path, info.get("fingerprint"), "embedded") if check_sources else None
            if problem:
                stale[sample_id] = {"stamp": stamp, "reason": problem}
                continue
        stale.pop(sample_id, None)
        current[sample_id] = stamp
    for sample_id in [i for i, entry in stale.items() if store.stamp(i) != entry["stamp"]]:
        stale.pop(sample_id)  # embedded again, or deleted
    return current


def _build(dataset, config, directory, kind, target_recall, progress) -> IndexReport:
    store = embedding_store(dataset)
    stale: dict[str, dict] = {}
    current = _current(dataset, config, check_sources=True, stale=stale)

    def items():
        for sample_id in iterate(list(current), progress, "Indexing frames"):
            item = store.get(sample_id)
            yield sample_id, item.frame_numbers, item.embeddings

    dim = config.dim or (store.get(next(iter(current))).embeddings.shape[1] if current else 1)
    info = {"model": config.model, "pretrained": config.pretrained, "fps": config.fps, "stamps": current, "stale": stale}
    source = MappedStore(store.root)
    if kind == "auto":
        kind = choose_kind(source.n_frames(current))
    if kind == "ivfpq":
        index = build_compressed(source, list(current), dim, info)
    else:
        index = build_index(items(), dim, info, kind, source)
    report = IndexReport(n_added=len(current), rebuilt=True, stale=_reasons(stale))
    if index.kind != "flat":
        report.calibration = calibrate_index(index, target_recall)
    _save(dataset, index, directory, report)
    return report


def _build_milvus(dataset, config, directory, uri, collection, overwrite, progress) -> IndexReport:
    """A new Milvus collection of every embedded video; its record is written only at the end,
    so a build that fails part-way leaves no record (and any FAISS index as it was)."""
    store = embedding_store(dataset)
    stale: dict[str, dict] = {}
    current = _current(dataset, config, check_sources=True, stale=stale)
    dim = config.dim or (store.get(next(iter(current))).embeddings.shape[1] if current else 1)
    info = {"model": config.model, "pretrained": config.pretrained, "fps": config.fps, "stamps": current, "stale": stale}
    index = MilvusFrameIndex.create(uri, collection, dim, info, overwrite=overwrite)
    for sample_id in iterate(list(current), progress, "Indexing frames in Milvus"):
        item = store.get(sample_id)
        index.add(sample_id, item.frame_numbers, item.embeddings)
    report = IndexReport(n_added=len(current), rebuilt=True, stale=_reasons(stale))
    _save(dataset, index, directory, report, "milvus")
    return report


def sync_frame_index(
    samples: foc.SampleCollection,
    options: IndexOptions | None = None,
    *,
    check_sources: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> IndexReport:
    """Brings the saved frame index in step with the dataset and its store (see the module);
    with `check_sources`, videos whose source file changed since they were embedded leave it
    (`_current`).

    Raises:
        ClipItError: no embeddings or no index yet.
    """
    options = IndexOptions.of(options, **settings)
    kind, target_recall, backend = options.kind, options.target_recall, options.backend
    dataset = root_dataset(samples)
    config = _embeddings_config(dataset)
    index = load_frame_index(dataset, backend)
    directory = index_dir(dataset, backend)
    if index.info.get("model") != config.model or index.info.get("fps") != config.fps:
        if backend == "milvus":
            return _build_milvus(dataset, config, directory, index.uri, index.collection, True, progress)
        return _build(dataset, config, directory, kind, target_recall, progress)
    stamps = index.info.setdefault("stamps", {})
    stale = index.info.setdefault("stale", {})
    before = dict(stale)
    current = _current(dataset, config, stamps, check_sources, stale)
    report = IndexReport(stale=_reasons(stale))
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
            report.calibration = calibrate_index(index, target_recall)
    unrecorded = not dataset.has_run(_RUNS[backend])  # found on disk (a clone shares the store)
    if report.n_added or report.n_removed or report.rebuilt or stale != before or unrecorded:
        _save(dataset, index, directory, report, backend)
    else:
        _fill(report, index)
    return report


def _reasons(stale: dict[str, dict]) -> dict[str, str]:
    return {sample_id: entry["reason"] for sample_id, entry in stale.items()}


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

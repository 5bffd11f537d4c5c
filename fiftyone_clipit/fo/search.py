"""Frame search for FiftyOne users: build the frame index (and its Brain run), search it by text.

`build_frame_index` keeps the index (`fiftyone_clipit.fo.index`) and registers FiftyOne Brain's
similarity run over it (`fiftyone_clipit.fo.brain`); `search_frames` answers a query with a view
of the matching videos and their moments. The query encoding and search loops are in the core
(`fiftyone_clipit.queries`).
"""

from __future__ import annotations

from typing import Any, Sequence

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.defaults import DEFAULT_BRAIN_KEY, DEFAULT_MATCHES_FIELD, DEFAULT_RELEVANCE_FIELD, FALLBACK_FRAME_RATE
from fiftyone_clipit.encoders import ClipEncoder
from fiftyone_clipit.fo.brain import register_similarity_run
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    check_output_field,
    embedding_store,
    logger,
    record_run,
    root_dataset,
    video_collection,
    write_replacing,
)
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.lineage import source_problem
from fiftyone_clipit.fo.index import IndexReport, load_frame_index, update_frame_index
from fiftyone_clipit.index import merge_moments
from fiftyone_clipit.options import IndexOptions, SearchOptions
from fiftyone_clipit.queries import check_query, embed_query, top_frames

SEARCH_RUN = "clipit_search"


def build_frame_index(
    samples: foc.SampleCollection,
    options: IndexOptions | None = None,
    *,
    overwrite: bool = False,
    brain_key: str | None = DEFAULT_BRAIN_KEY,
    check_sources: bool = True,
    progress: Progress = None,
    **settings: Any,
) -> IndexReport:
    """Builds the dataset's frame index from its embedding store, or brings it in step.

    Exact inner-product search up to `fiftyone_clipit.index_layout.EXACT_MAX_FRAMES` frames, an IVF
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
        options (None): an `IndexOptions`; keyword `settings` build or replace them: `kind`
            ("auto" by size, "flat" always exact, "ivf" or "ivfpq"), `target_recall` (recall@10
            the IVF nprobe settings must reach), `backend` ("faiss" or "milvus"), and for
            Milvus `uri` (the server, `http://host:19530`, or a Milvus Lite file; None: a Lite
            file beside the embedding store, one process at a time) and `collection` (None:
            `clipit_frames_<dataset name>`).
        overwrite (False): rebuild from scratch instead of updating.
        brain_key ("clipit_frames"): also register a FiftyOne Brain similarity run under this
            key, so `sort_by_similarity` (text prompts too) uses this index; None: don't.
        progress (None): True for a progress bar, or a callback(fraction, label).
        check_sources (True): fingerprint every source file (`store.file_fingerprint`, about
            384 KiB read per video) and leave out the videos whose file changed since they
            were embedded, until they are embedded again (`report.stale` names them); False
            trusts the last check, as the sync before a search does.

    Raises:
        ClipItError: no embeddings, embeddings of differing dimension, a bad kind or backend,
            or a Milvus server that cannot be reached or fails (naming its URI).
    """
    options = IndexOptions.of(options, **settings)
    report = update_frame_index(samples, options, overwrite=overwrite, check_sources=check_sources, progress=progress)
    if brain_key is not None and options.backend == "faiss":
        register_similarity_run(root_dataset(samples), brain_key)
    return report


def search_frames(
    samples: foc.SampleCollection,
    query: str | Sequence[str] | np.ndarray,
    options: SearchOptions | None = None,
    *,
    model: str | ClipEncoder | None = None,
    matches_field: str = DEFAULT_MATCHES_FIELD,
    relevance_field: str = DEFAULT_RELEVANCE_FIELD,
    sync: bool = True,
    backend: str = "faiss",
    overwrite: bool = False,
    **settings: Any,
) -> fo.DatasetView:
    """The top `k` frames across the collection for a text (or an image), as a browsable view.

    The view holds the videos with a match, ordered by their best match. On each of them,
    `<matches_field>` (TemporalDetections) holds the matching moments (`clip_seconds` around
    each hit frame, overlapping ones merged; label = the query, confidence = cosine
    similarity), so `view.to_clips(matches_field)` shows the moments as clips; and
    `<relevance_field>` holds the video's best cosine similarity, to filter on in the App.
    Both fields are cleared on videos that this search did not match. A matched video whose
    source file changed since it was embedded is still shown (its vectors are what was
    indexed) but its moments say so (`stale` attribute, a warning, `stale` in the
    `clipit_search` run); `build_frame_index` drops such videos until they are re-embedded.

    Args:
        samples: a video dataset or view with frame embeddings (compute_frame_embeddings).
        query: text, several sentences (averaged), an image file, or an embedding (d,).
        options (None): a `SearchOptions`; keyword `settings` build or replace them: `k`, how
            many frames to return across the collection (all, if fewer are indexed), and
            `clip_seconds`, the length of the moment around each hit frame.
        model (None): the index's model (default) or a loaded ClipEncoder of it.
        matches_field ("clipit_matches"): the TemporalDetections field to write.
        relevance_field ("clipit_relevance"): the float field to write.
        sync (True): build the index, or bring it in step with the dataset, first (see
            build_frame_index); False searches the index as saved.
        backend ("faiss"): search the FAISS index or the Milvus collection (build_frame_index).
        overwrite (False): write into existing fields that no search wrote (a summary, ground
            truth); without it they are refused before the search runs.

    Returns:
        a DatasetView of the matched videos, best first.

    Raises:
        ClipItError: no index, an empty index, an empty query, a model or vector whose
            dimension differs from the index's, bad field names, or (without `overwrite`)
            fields that another stage or tool wrote.
        ValueError: k < 1 or clip_seconds <= 0.
    """
    options = SearchOptions.of(options, **settings)
    k, clip_seconds = options.k, options.clip_seconds
    samples = video_collection(samples)
    check_query(query)
    check_field_name(matches_field, "matches field")
    check_field_name(relevance_field, "relevance field")
    if matches_field == relevance_field:
        raise ClipItError(f"The matches and relevance fields must differ, both are '{matches_field}'")
    check_output_field(samples, matches_field, SEARCH_RUN, fo.EmbeddedDocumentField, fo.TemporalDetections, overwrite)
    check_output_field(samples, relevance_field, SEARCH_RUN, fo.FloatField, overwrite=overwrite)
    dataset = root_dataset(samples)
    if sync:  # builds it on first use, else brings it in step (trusting its last source check)
        build_frame_index(
            dataset, IndexOptions(backend=backend), brain_key=DEFAULT_BRAIN_KEY if backend == "faiss" else None,
            check_sources=False,
        )
    index = load_frame_index(dataset, backend)
    vector, query_kind, label = embed_query(index, query, model)
    allowed = None if isinstance(samples, fo.Dataset) else set(samples.values("id"))
    per_video: dict[str, list[tuple[int, float]]] = {}
    for sample_id, number, score in top_frames(index, vector, k, allowed, query_kind):
        per_video.setdefault(sample_id, []).append((number, score))
    order = list(per_video)
    stale = _stale_results(dataset, order)
    _write_matches(dataset, per_video, label, clip_seconds, matches_field, relevance_field, stale)
    written = getattr(dataset.get_run_info(SEARCH_RUN).config, "written_fields", None) if dataset.has_run(SEARCH_RUN) else None
    record_run(dataset, SEARCH_RUN, query=label, k=int(k), model=index.info.get("model"),
               matches_field=matches_field, relevance_field=relevance_field, stale=stale,
               written_fields=sorted(set(written or []) | {matches_field, relevance_field}))
    return dataset.select(order, ordered=True)


def _stale_results(dataset: fo.Dataset, sample_ids: list[str]) -> dict[str, str]:
    """Sample id -> why a matched video's vectors show other footage than its file holds now
    (its file was replaced or is gone since it was embedded), for the matched videos only."""
    if not sample_ids:
        return {}
    store = embedding_store(dataset)
    stale = {}
    for sample_id, path in zip(*dataset.select(sample_ids, ordered=True).values(["id", "filepath"])):
        problem = source_problem(path, (store.info(sample_id) or {}).get("fingerprint"), "embedded")
        if problem:
            stale[sample_id] = problem
            logger.warning("Search result from a stale video %s: %s", path, problem)
    return stale


def _write_matches(dataset, per_video, label, clip_seconds, matches_field, relevance_field, stale) -> None:
    """Writes this search's moments and relevance, clearing the last search's on other videos;
    the moments of a video in `stale` carry the reason as their `stale` attribute."""
    view = dataset.select(list(per_video), ordered=True)
    rates, counts = view.values("metadata.frame_rate"), view.values("metadata.total_frame_count")
    matches, relevance = {}, {}
    for (sample_id, frames), rate, count in zip(per_video.items(), rates, counts):
        half = max(1, round((rate or FALLBACK_FRAME_RATE) * clip_seconds / 2))
        last_frame = count or max(n for n, _ in frames) + half
        moments = merge_moments([(max(1, n - half), min(last_frame, n + half), s) for n, s in frames])
        marks = {"stale": stale[sample_id]} if sample_id in stale else {}
        matches[sample_id] = fo.TemporalDetections(
            detections=[
                fo.TemporalDetection(label=label, support=[a, b], confidence=s, **marks) for a, b, s in moments
            ]
        )
        relevance[sample_id] = max(s for _, s in frames)
    write_replacing(dataset, relevance_field, relevance)
    write_replacing(dataset, matches_field, matches)

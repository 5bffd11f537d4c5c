"""`fiftyone-clipit bench search`: the frame index at archive scale, against exact search and
against the in-memory IVF-Flat index on a size both fit.

Vectors: `fiftyone_clipit.bench.vectors.FrameLikeVectors` (videos of 600 frames whose frames
share a common direction, a per-video content and a scene drift over time; see there),
generated a chunk of videos at a time and written, one `.npz` per video, to a real embedding
store (`--store`, a temporary folder by default; 2 KB per 512-d frame on disk), so no step
holds them all. Queries: `--queries` "near" ones (a new frame of a random video, held out of
the data: an image or a frame as the query) and as many text-like ones (cosine ~0.3 to their
best frames). Ground truth: exact inner-product top k, streamed over the chunks as they are
generated.

The index is built as the library builds it: `kind="auto"` (`choose_kind`: flat, IVF, or past
COMPRESSED_MIN_FRAMES the compressed IVF-PQ index, trained on a sample and filled from the
memory-mapped store a video at a time, with candidates re-ranked by their exact vectors).
nprobe is swept over powers of two; the line reports the smallest setting whose recall@10
reaches the target for near queries (`nprobe`, `recall_at_10`, `median_ms`) and for text-like
ones (`nprobe_text`, `recall_at_10_text`, `median_ms_text`). Latency is the median of single
queries (one thread), as a user's search runs. `peak_memory_gb` is the peak resident memory of
the process that generated, built and searched (each phase runs in a fresh process, so each
peak is its own); `index_mb_per_million_frames` is the saved index per million frames.

The baseline (`--baseline-frames`, 1,000,000 by default) runs the in-memory IVF-Flat index and
the compressed index (with and without OPQ) on the first videos of the same store, each in its
own process, and reports their ratios (`baseline`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time

DESCRIPTION = "frame index at scale: recall (near, text-like), latency, build time, memory; IVF-PQ vs IVF-Flat"
_VIDEO_FRAMES = 600
_MAX_NPROBE = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", "--size", dest="frames", type=int, default=1_000_000,
                        help="frames (vectors) in all (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="held-out queries of each kind")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--kind", default="auto", help="index kind (default: auto, by size)")
    parser.add_argument("--opq", action="store_true", help="IVF-PQ with an OPQ rotation")
    parser.add_argument("--baseline-frames", type=int, default=1_000_000,
                        help="frames for the IVF-Flat / IVF-PQ / OPQ comparison (0: none)")
    parser.add_argument("--store", default=None, help="folder for the embedding store (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def _median_ms(search, queries) -> float:
    import numpy as np

    times = []
    for q in queries:
        start = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - start)
    return round(1000.0 * float(np.median(times)), 3)


def _found_ids(hits) -> "list[list[int]]":
    """Packed ids (video << 32 | frame) of hits whose keys are 'v<video>'."""
    return [[(int(key[1:]) << 32) | int(n) for key, n in zip(h.keys, h.frame_numbers)] for h in hits]


def sweep(index, queries: dict, truth: dict, k: int, target: float) -> list[dict]:
    """Recall@k and median single-query latency per nprobe (powers of two) until every kind
    reaches `target` or 1,024 lists (or all) are probed."""
    import numpy as np

    from fiftyone_clipit.knn import recall_at_k

    results, nprobe = [], 1
    while True:
        row: dict = {"nprobe": nprobe}
        for kind, q in queries.items():
            found = [np.array(row) for row in _found_ids(index.search(q, k, nprobe=nprobe))]
            row[kind] = round(recall_at_k(found, truth[kind]), 4)
            row[f"{kind}_ms"] = _median_ms(lambda x: index.search(x, k, nprobe=nprobe), q[:100])
        results.append(row)
        if all(row[kind] >= target for kind in queries) or nprobe >= min(index.nlist, _MAX_NPROBE):
            return results
        nprobe *= 2


def _first_reaching(results: list[dict], kind: str, target: float) -> dict:
    return next((r for r in results if r[kind] >= target), results[-1])


def _queries(args, frames: int):
    """The frames' generator and held-out queries drawn from their own videos (the first
    `frames` frames are the same videos whatever the total)."""
    from fiftyone_clipit.bench.vectors import FrameLikeVectors

    data = FrameLikeVectors(frames, dim=args.dim, frames_per_video=_VIDEO_FRAMES, seed=args.seed)
    return data, {"near": data.near_queries(args.queries), "text": data.text_queries(args.queries)}


def _figures(index, queries, truth, args, build_seconds: float) -> dict:
    results = sweep(index, queries, truth, args.k, args.target_recall)
    near = _first_reaching(results, "near", args.target_recall)
    text = _first_reaching(results, "text", args.target_recall)
    return {
        "frames": len(index), "kind": index.kind, "layout": index.layout,
        "median_ms": near["near_ms"], "recall_at_10": near["near"], "nprobe": near["nprobe"],
        "median_ms_text": text["text_ms"], "recall_at_10_text": text["text"], "nprobe_text": text["nprobe"],
        "build_seconds": round(build_seconds, 1), "sweep": results,
    }


def _index_mb(index) -> float:
    folder = tempfile.mkdtemp(prefix="clipit-bench-index-")
    try:
        return os.path.getsize(index.save(folder)) / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _large(args, root: str) -> dict:
    """Generates the frames into the store (with exact ground truth on the way), builds the
    index the library would, and measures it. Runs in its own process."""
    import numpy as np

    from fiftyone_clipit.index import build_compressed, build_index, choose_kind
    from fiftyone_clipit.knn import exact_top_k
    from fiftyone_clipit.mapped import MappedStore
    from fiftyone_clipit.store import EmbeddingStore, FrameEmbeddings

    data, queries = _queries(args, args.frames)
    store = EmbeddingStore(root)
    keys = [f"v{v}" for v in range(data.n_videos)]

    def generated():
        for video in range(data.n_videos):
            vectors = data.video(video)
            numbers = np.arange(1, len(vectors) + 1)
            store.put(keys[video], FrameEmbeddings(numbers, vectors, {"model": "frame-like"}))
            yield vectors, (np.int64(video) << 32) | numbers

    start = time.perf_counter()
    stacked = np.concatenate([queries["near"], queries["text"]])
    truth_ids = exact_top_k(generated(), stacked, args.k)[1]
    truth = {"near": truth_ids[: args.queries], "text": truth_ids[args.queries :]}
    generate_seconds = time.perf_counter() - start

    source = MappedStore(root)
    kind = choose_kind(args.frames) if args.kind == "auto" else args.kind
    start = time.perf_counter()
    if kind == "ivfpq":
        index = build_compressed(source, keys, args.dim, opq=args.opq)
    else:
        index = build_index(((key, *source.video(key)) for key in keys), args.dim, kind=kind)
    figures = _figures(index, queries, truth, args, time.perf_counter() - start)
    index_mb = _index_mb(index)
    figures.update(
        generate_and_ground_truth_seconds=round(generate_seconds, 1),
        peak_memory_gb=_peak_gb(),
        index_mb=round(index_mb, 1),
        index_mb_per_million_frames=round(index_mb / (len(index) / 1e6), 1),
        store_gb=round(sum(e.stat().st_size for e in os.scandir(root)) / 2**30, 2),
    )
    return figures


def _baseline(args, root: str, kind: str, opq: bool) -> dict:
    """One index kind on the first `--baseline-frames` frames of the store, in its own process:
    IVF-Flat holds every vector in memory (built as `build_index` does), IVF-PQ streams."""
    import numpy as np

    from fiftyone_clipit.index import build_compressed, build_index
    from fiftyone_clipit.knn import exact_top_k
    from fiftyone_clipit.mapped import MappedStore

    keys = [f"v{v}" for v in range(max(1, args.baseline_frames // _VIDEO_FRAMES))]
    _, queries = _queries(args, len(keys) * _VIDEO_FRAMES)
    source = MappedStore(root)

    def chunks():
        for key in keys:
            numbers, vectors = source.video(key)
            yield vectors, (np.int64(int(key[1:])) << 32) | numbers

    stacked = np.concatenate([queries["near"], queries["text"]])
    truth_ids = exact_top_k(chunks(), stacked, args.k)[1]
    truth = {"near": truth_ids[: args.queries], "text": truth_ids[args.queries :]}
    start = time.perf_counter()
    if kind == "ivfpq":
        index = build_compressed(source, keys, args.dim, opq=opq)
    else:
        index = build_index(((key, *source.video(key)) for key in keys), args.dim, kind=kind)
    figures = _figures(index, queries, truth, args, time.perf_counter() - start)
    figures.update(peak_memory_gb=_peak_gb(), index_mb=round(_index_mb(index), 1))
    del figures["sweep"]
    return figures


def _in_own_process(function, *args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def run(args: argparse.Namespace) -> dict:
    root = args.store or tempfile.mkdtemp(prefix="clipit-bench-store-")
    try:
        report = {"frames": args.frames, "dim": args.dim, "queries_per_kind": args.queries,
                  "vectors": "FrameLikeVectors: videos of 600 frames; common direction + per-video content "
                  "(64 topics) + OU scene drift + noise; written to a per-video embedding store"}
        report.update(_in_own_process(_large, args, root))
        report["index_gb_at_100m_frames"] = round(report["index_mb_per_million_frames"] * 100 / 1024, 1)
        size = min(args.baseline_frames, args.frames)
        if size >= _VIDEO_FRAMES:
            baseline = {
                "frames": size,
                "ivf_flat": _in_own_process(_baseline, args, root, "ivf", False),
                "ivf_pq": _in_own_process(_baseline, args, root, "ivfpq", False),
                "ivf_opq": _in_own_process(_baseline, args, root, "ivfpq", True),
            }
            flat, pq = baseline["ivf_flat"], baseline["ivf_pq"]
            baseline["ratios_pq_over_flat"] = {
                key: round(pq[key] / flat[key], 3) if flat[key] else None
                for key in ("peak_memory_gb", "index_mb", "median_ms", "median_ms_text", "build_seconds")
            }
            report["baseline"] = baseline
        report["load_average_1min"] = round(os.getloadavg()[0], 2)
        return report
    finally:
        if args.store is None:
            shutil.rmtree(root, ignore_errors=True)

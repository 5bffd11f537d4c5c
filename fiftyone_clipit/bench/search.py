"""`fiftyone-clipit bench search`: the frame index at archive scale, against exact search and
against the in-memory IVF-Flat index on a size both fit.

Vectors: `fiftyone_clipit.bench.vectors.FrameLikeVectors` (videos of 600 frames whose frames
share a common direction, a per-video content and a scene drift over time; see there),
generated a video at a time and written, one `.npz` per video, to a real embedding store (2 KB
per 512-d frame on disk), so no step holds them all. Queries: `--queries` "near" ones (a new
frame of a random video, held out of the data: an image or a frame as the query) and as many
text-like ones (cosine ~0.3 to their best frames). Ground truth: exact inner-product top k,
streamed over the videos as they are generated.

`--store DIR` keeps the store and its ground truth (`bench-search.json` in DIR) and reuses them
when a later run asks for the same frames, dimension, seed, queries and k, so generating
(`--generate-only`) and building / searching can run separately; without it the store is a
temporary folder, deleted at the end.

The index is built and calibrated as the library builds it: `kind="auto"` (`choose_kind`:
flat, IVF, or past COMPRESSED_MIN_FRAMES the compressed IVF-PQ index, trained on a sample and
filled from the memory-mapped store a video at a time), then `FrameIndex.calibrate` on the
library's calibration queries (200 sample frames and as many `far_queries`, as
`build_frame_index` does through `fiftyone_clipit.queries.calibrate_index`), which picks nprobe and the re-rank pool per query kind. The headline
figures are the held-out queries searched with those defaults, one query at a time on one
thread as a user's search runs: `recall_at_10` / `median_ms` (near) and `recall_at_10_text` /
`median_ms_text`. `sweep` adds recall and latency per nprobe (powers of two) with each kind's
calibrated pool. `peak_memory_gb` is the largest peak resident memory of the phases (each runs
in a fresh process: generating, building and searching); `index_mb_per_million_frames` is the
saved index per million frames and `index_gb_at_100m_frames` its extrapolation.

`targets` holds the gates (`--max-memory-gb`, `--max-ms`, `--min-recall`) and `passed` says for
each whether the measured figure meets it: the run reports a failure, it does not hide one.

The baseline (`--baseline-frames`, 1,000,000 by default, 0 for none) runs the in-memory
IVF-Flat index and the compressed index (with and without OPQ) on the first videos of the same
store, each in its own process, and reports their ratios (`baseline`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time

DESCRIPTION = "frame index at scale: recall (near, text-like), latency, build time, memory; IVF-PQ vs IVF-Flat"
_VIDEO_FRAMES = 600
_MAX_NPROBE = 1024
_MANIFEST = "bench-search.json"
_CALIBRATION_QUERIES = 200  # as fiftyone_clipit.queries.calibrate_index (not imported: it loads torch)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", "--size", dest="frames", type=int, default=1_000_000,
                        help="frames (vectors) in all (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=512, help="vector dimension (ViT-B/32: 512)")
    parser.add_argument("--queries", type=int, default=200, help="held-out queries of each kind")
    parser.add_argument("--k", type=int, default=10, help="frames per query (recall@k)")
    parser.add_argument("--target-recall", type=float, default=0.95,
                        help="recall the library's calibration aims at (build_frame_index's default)")
    parser.add_argument("--kind", default="auto", help="index kind (default: auto, by size)")
    parser.add_argument("--opq", action="store_true", help="IVF-PQ with an OPQ rotation")
    parser.add_argument("--baseline-frames", type=int, default=1_000_000,
                        help="frames for the IVF-Flat / IVF-PQ / OPQ comparison (0: none)")
    parser.add_argument("--store", default=None,
                        help="folder for the embedding store, kept and reused with its ground truth "
                        "(default: a temporary one, deleted)")
    parser.add_argument("--generate-only", action="store_true",
                        help="write the store and its ground truth to --store, then stop")
    parser.add_argument("--max-memory-gb", type=float, default=4.0, help="gate: peak memory of every phase")
    parser.add_argument("--max-ms", type=float, default=20.0, help="gate: median ms of one query of each kind")
    parser.add_argument("--min-recall", type=float, default=0.9, help="gate: recall@k of each kind")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planted vectors")


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def _progress(phase: str, done: int, total: int, start: float) -> None:
    print(f"bench search: {phase} {done:,}/{total:,} ({time.perf_counter() - start:.0f} s, "
          f"load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


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


def _measure(index, q, truth, k: int, kind: str, nprobe=None) -> tuple[float, float]:
    """(recall@k, median ms of one query) for one query kind at the index's defaults (or nprobe)."""
    import numpy as np

    from fiftyone_clipit.knn import recall_at_k

    found = [np.array(row) for row in _found_ids(index.search(q, k, query_kind=kind, nprobe=nprobe))]
    ms = _median_ms(lambda x: index.search(x, k, query_kind=kind, nprobe=nprobe), q[:100])
    return round(recall_at_k(found, truth), 4), ms


def sweep(index, queries: dict, truth: dict, k: int, target: float) -> list[dict]:
    """Recall@k and median single-query latency per nprobe (powers of two), each kind with its
    calibrated re-rank pool, until every kind reaches `target` or 1,024 lists (or all) are probed."""
    results, nprobe = [], 1
    while True:
        row: dict = {"nprobe": nprobe}
        for kind, q in queries.items():
            row[kind], row[f"{kind}_ms"] = _measure(index, q, truth[kind], k, kind, nprobe)
        results.append(row)
        if all(row[kind] >= target for kind in queries) or nprobe >= min(index.nlist, _MAX_NPROBE):
            return results
        nprobe *= 2


def _queries(args, frames: int):
    """The frames' generator and held-out queries drawn from their own videos (the first
    `frames` frames are the same videos whatever the total)."""
    from fiftyone_clipit.bench.vectors import FrameLikeVectors

    data = FrameLikeVectors(frames, dim=args.dim, frames_per_video=_VIDEO_FRAMES, seed=args.seed)
    return data, {"near": data.near_queries(args.queries), "text": data.text_queries(args.queries)}


def _wanted(args) -> dict:
    return {"frames": args.frames, "dim": args.dim, "seed": args.seed, "queries": args.queries, "k": args.k,
            "frames_per_video": _VIDEO_FRAMES}


def _read_manifest(root: str, args) -> dict | None:
    """The store's generation record when it matches this run, else None."""
    path = os.path.join(root, _MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        manifest = json.load(f)
    return manifest if all(manifest.get(key) == value for key, value in _wanted(args).items()) else None


def _generate(args, root: str) -> dict:
    """Writes the frames to the store a video at a time, with exact ground truth on the way, and
    records both in the store's manifest. Runs in its own process."""
    import numpy as np

    from fiftyone_clipit.knn import exact_top_k
    from fiftyone_clipit.store import EmbeddingStore, FrameEmbeddings, write_atomically

    data, queries = _queries(args, args.frames)
    store = EmbeddingStore(root)
    start = time.perf_counter()
    every = max(1, data.n_videos // 20)

    def generated():
        for video in range(data.n_videos):
            vectors = data.video(video)
            numbers = np.arange(1, len(vectors) + 1)
            store.put(f"v{video}", FrameEmbeddings(numbers, vectors, {"model": "frame-like"}))
            if (video + 1) % every == 0:
                _progress("generated frames", (video + 1) * _VIDEO_FRAMES, args.frames, start)
            yield vectors, (np.int64(video) << 32) | numbers

    stacked = np.concatenate([queries["near"], queries["text"]])
    truth = exact_top_k(generated(), stacked, args.k)[1]
    manifest = {
        **_wanted(args), "videos": data.n_videos,
        "generate_and_ground_truth_seconds": round(time.perf_counter() - start, 1),
        "generate_peak_memory_gb": _peak_gb(),
        "truth_near": truth[: args.queries].tolist(), "truth_text": truth[args.queries :].tolist(),
    }
    write_atomically(os.path.join(root, _MANIFEST), lambda f: json.dump(manifest, f), mode="w")
    return manifest


def _index_mb(index) -> float:
    folder = tempfile.mkdtemp(prefix="clipit-bench-index-")
    try:
        return os.path.getsize(index.save(folder)) / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _build(args, source, keys: list[str], kind: str, opq: bool):
    """The index as the library builds it, calibrated as `build_frame_index` calibrates it."""
    from fiftyone_clipit.index import build_compressed, build_index
    from fiftyone_clipit.knn import far_queries

    start = time.perf_counter()
    every = max(1, len(keys) // 10)

    def on_video(done: int) -> None:
        if done % every == 0:
            _progress("indexed videos", done, len(keys), start)

    if kind == "ivfpq":
        index = build_compressed(source, keys, args.dim, opq=opq, on_video=on_video)
    else:
        index = build_index(((key, *source.video(key)) for key in keys), args.dim, kind=kind)
    build_seconds = time.perf_counter() - start
    near = index.sample(_CALIBRATION_QUERIES)
    start = time.perf_counter()
    calibration = index.calibrate({"near": near, "text": far_queries(near, _CALIBRATION_QUERIES)},
                                  target_recall=args.target_recall)
    return index, build_seconds, time.perf_counter() - start, calibration


def _figures(index, queries, truth, args) -> dict:
    """The held-out queries at the index's calibrated defaults, then the nprobe sweep."""
    near_recall, near_ms = _measure(index, queries["near"], truth["near"], args.k, "near")
    text_recall, text_ms = _measure(index, queries["text"], truth["text"], args.k, "text")
    return {
        "frames": len(index), "kind": index.kind, "layout": index.layout,
        "median_ms": near_ms, "recall_at_10": near_recall,
        "nprobe": index.nprobe.get("near"), "rerank": index.rerank.get("near"),
        "median_ms_text": text_ms, "recall_at_10_text": text_recall,
        "nprobe_text": index.nprobe.get("text"), "rerank_text": index.rerank.get("text"),
        "sweep": sweep(index, queries, truth, args.k, args.target_recall),
    }


def _large(args, root: str, manifest: dict) -> dict:
    """Builds the index the library would over the whole store and measures it. Runs in its own
    process."""
    import numpy as np

    from fiftyone_clipit.index_layout import choose_kind
    from fiftyone_clipit.mapped import MappedStore

    _, queries = _queries(args, args.frames)
    truth = {"near": np.array(manifest["truth_near"]), "text": np.array(manifest["truth_text"])}
    keys = [f"v{v}" for v in range(manifest["videos"])]
    kind = choose_kind(args.frames) if args.kind == "auto" else args.kind
    index, build_seconds, calibrate_seconds, calibration = _build(args, MappedStore(root), keys, kind, args.opq)
    print(f"bench search: built {index.layout} in {build_seconds:.0f} s; calibrated {calibration}",
          file=sys.stderr, flush=True)
    figures = _figures(index, queries, truth, args)
    index_mb = _index_mb(index)
    figures.update(
        build_seconds=round(build_seconds, 1), calibrate_seconds=round(calibrate_seconds, 1),
        calibration=calibration, search_peak_memory_gb=_peak_gb(), index_mb=round(index_mb, 1),
        index_mb_per_million_frames=round(index_mb / (len(index) / 1e6), 1),
        store_gb=round(sum(e.stat().st_size for e in os.scandir(root)) / 2**30, 2),
    )
    return figures


def _baseline(args, root: str, kind: str, opq: bool) -> dict:
    """One index kind on the first `--baseline-frames` frames of the store, in its own process:
    IVF-Flat holds every vector in memory (built as `build_index` does), IVF-PQ streams."""
    import numpy as np

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
    index, build_seconds, _, _ = _build(args, source, keys, kind, opq)
    figures = _figures(index, queries, truth, args)
    figures.update(build_seconds=round(build_seconds, 1), peak_memory_gb=_peak_gb(),
                   index_mb=round(_index_mb(index), 1))
    del figures["sweep"]
    return figures


def _in_own_process(function, *args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def _gates(report: dict, args) -> None:
    """The targets and, for each, whether the measured figure meets it."""
    report["targets"] = {"peak_memory_gb": args.max_memory_gb, "median_ms": args.max_ms,
                         "median_ms_text": args.max_ms, "recall_at_10": args.min_recall,
                         "recall_at_10_text": args.min_recall}
    report["passed"] = {
        key: (report[key] <= limit if key.startswith(("peak", "median")) else report[key] >= limit)
        for key, limit in report["targets"].items()
    }
    report["passed_all"] = all(report["passed"].values())


def run(args: argparse.Namespace) -> dict:
    if args.generate_only and not args.store:
        raise SystemExit("--generate-only needs --store DIR to keep what it generates")
    root = args.store or tempfile.mkdtemp(prefix="clipit-bench-store-")
    os.makedirs(root, exist_ok=True)
    try:
        report = {"frames": args.frames, "dim": args.dim, "queries_per_kind": args.queries,
                  "vectors": "FrameLikeVectors: videos of 600 frames; common direction + per-video content "
                  "(64 topics) + OU scene drift + noise; written to a per-video embedding store",
                  "load_average_1min_at_start": round(os.getloadavg()[0], 2)}
        manifest = _read_manifest(root, args)
        report["store_reused"] = manifest is not None
        if manifest is None:
            manifest = _in_own_process(_generate, args, root)
        report["generate_and_ground_truth_seconds"] = manifest["generate_and_ground_truth_seconds"]
        report["generate_peak_memory_gb"] = manifest["generate_peak_memory_gb"]
        if args.generate_only:
            report["load_average_1min"] = round(os.getloadavg()[0], 2)
            return report
        report.update(_in_own_process(_large, args, root, manifest))
        report["peak_memory_gb"] = max(report["generate_peak_memory_gb"], report["search_peak_memory_gb"])
        report["index_gb_at_100m_frames"] = round(report["index_mb_per_million_frames"] * 100 / 1024, 1)
        report["store_gb_per_million_frames"] = round(report["store_gb"] / (report["frames"] / 1e6), 2)
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
        _gates(report, args)
        report["load_average_1min"] = round(os.getloadavg()[0], 2)
        return report
    finally:
        if args.store is None:
            shutil.rmtree(root, ignore_errors=True)

"""`fiftyone-clipit bench highlights`: the highlight reel's candidate stage as the archive grows.

`create_highlight_reel` reads candidates from the frame index: the `max_videos` videos with the
best frames for the query (`queries.best_videos`), so its cost should grow with the reel and
`max_videos`, not with the archive. This plants CLIP-like frame vectors of N videos
(`bench.vectors`), builds the index the way `build_frame_index` does (kind by size, nprobe
calibrated), and times the candidate stage for text-like queries at each N; the baseline, in the
same process on the same vectors, is exact search (what a flat index, or a scan of every
video's stored frames, costs). It passes when the stage at the largest N takes at most
`--max-ratio` times its time at the smallest.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

DESCRIPTION = "highlight reel candidates: time at 1,000 and 10,000 videos (planted vectors) against exact search"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", type=int, nargs="+", default=[1000, 10000], help="archive sizes (default: 1000 10000)")
    parser.add_argument("--frames-per-video", type=int, default=40, help="frames per video (default: 40, 20 s at 2 fps)")
    parser.add_argument("--dim", type=int, default=512, help="vector dimension (default: 512, ViT-B/32)")
    parser.add_argument("--max-videos", type=int, default=20, help="candidates per query (the reel's default: 20)")
    parser.add_argument("--queries", type=int, default=50, help="timed text-like queries per size (default: 50)")
    parser.add_argument("--max-ratio", type=float, default=2.0, help="gate: largest / smallest size's time (default: 2)")


def _median_ms(function, queries: np.ndarray) -> float:
    times = []
    for query in queries:
        started = time.perf_counter()
        function(query)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def _size(args, n_videos: int) -> dict:
    from fiftyone_clipit.bench.vectors import FrameLikeVectors
    from fiftyone_clipit.index import build_index
    from fiftyone_clipit.queries import best_videos, calibrate_index

    videos = FrameLikeVectors(n_videos * args.frames_per_video, args.dim, args.frames_per_video)
    vectors = videos.all()
    items = (
        (f"v{v}", np.arange(1, videos.video_length(v) + 1), vectors[v * args.frames_per_video : v * args.frames_per_video + videos.video_length(v)])
        for v in range(videos.n_videos)
    )
    started = time.perf_counter()
    index = build_index(items, args.dim)
    if index.kind != "flat":
        calibrate_index(index, 0.95)
    build_s = time.perf_counter() - started
    queries = videos.text_queries(args.queries)
    candidates = _median_ms(lambda q: best_videos(index, q, args.max_videos, None, "text"), queries)
    exact = _median_ms(lambda q: np.argpartition(vectors @ q, -200)[-200:], queries)
    return {
        "videos": n_videos, "frames": int(len(vectors)), "kind": index.kind, "build_s": round(build_s, 1),
        "candidates_ms": round(candidates, 3), "exact_scan_ms": round(exact, 3),
    }


def run(args: argparse.Namespace) -> dict:
    sizes = [_size(args, n) for n in sorted(args.videos)]
    ratio = sizes[-1]["candidates_ms"] / sizes[0]["candidates_ms"]
    exact_ratio = sizes[-1]["exact_scan_ms"] / sizes[0]["exact_scan_ms"]
    return {
        "sizes": sizes,
        "candidates_ratio": round(ratio, 2),
        "exact_scan_ratio": round(exact_ratio, 2),
        "passed": bool(ratio <= args.max_ratio),
    }

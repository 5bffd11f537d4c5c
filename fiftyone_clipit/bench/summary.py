"""`fiftyone-clipit bench summary`: shots, knapsack and export for a 2-hour video.

A 2-hour video at 2 steps per second is 14,400 steps of 512-d embeddings (ViT-B-32's size) and
216,000 frames at 30 fps. The embeddings are synthetic shots (a direction per shot plus noise,
cosine ~0.8 within a shot), so KTS's answer can be checked against the planted cuts. Timed:
KTS with `create_summary`'s defaults (shots of one step up to 60 s) and the exact knapsack at
frame capacity (15% of 216,000 frames). Baselines, on the same machine in the same process:
ruptures' KernelCPD on the first `--baseline-steps` steps (the same objective; it has no maximum
segment length and needs O(k n^2) time, so it cannot take the whole video) and scipy's MILP
solver (HiGHS) on the same knapsack. Export writes the summary's clips, reel and storyboard
from real footage: the shared car-detection.mp4 (12.5 fps, with audio) and bottle-detection.mp4
(29.8 fps), each looped by stream copy to `--export-minutes`; the slower one is reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from fiftyone_clipit.errors import ClipItError

DESCRIPTION = "KTS + knapsack on a 2-hour video (14,400 steps), and export speed"

SHARED_DATA = Path(os.environ.get("CLIPIT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
SHARED_VIDEOS = [SHARED_DATA / "videos" / "car-detection.mp4", SHARED_DATA / "videos" / "bottle-detection.mp4"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hours", type=float, default=2.0, help="video length (default 2)")
    parser.add_argument("--steps-per-second", type=float, default=2.0, help="sampled steps per second of video")
    parser.add_argument("--frame-rate", type=float, default=30.0, help="frames per second for the capacity")
    parser.add_argument("--dim", type=int, default=512, help="embedding size (ViT-B-32: 512)")
    parser.add_argument("--baseline-steps", type=int, default=1200, help="steps given to ruptures")
    parser.add_argument("--video", help="a video to export from (default: the two shared videos, looped)")
    parser.add_argument("--export-minutes", type=float, default=10.0, help="source minutes whose summary is exported")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planted data")


def planted_shots(n_steps: int, dim: int, seed: int):
    """Synthetic CLIP-like step embeddings: shots of 2-60 s at 2 steps/s, noise within a shot."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = []
    while sum(lengths) < n_steps:
        lengths.append(int(np.clip(rng.exponential(16.0), 4, 120)))
    lengths[-1] -= sum(lengths) - n_steps
    if lengths[-1] < 4:
        last = lengths.pop()  # (`lengths[-2] += lengths.pop()` would read one item and write another)
        lengths[-1] += last
    common = rng.normal(size=dim)
    embeddings = np.empty((n_steps, dim), dtype=np.float32)
    start = 0
    for length in lengths:
        centre = common + rng.normal(size=dim) * 1.2
        centre /= np.linalg.norm(centre)
        block = centre + rng.normal(size=(length, dim)) * (0.5 / np.sqrt(dim))
        embeddings[start : start + length] = block / np.linalg.norm(block, axis=1, keepdims=True)
        start += length
    cuts = np.cumsum(lengths)[:-1]
    return embeddings, cuts


def boundary_f1(found, planted, tolerance: int = 1) -> float:
    """F1 of found change points against planted ones, a match within `tolerance` steps."""
    import numpy as np

    found, planted = np.asarray(found), np.asarray(planted)
    if not len(found) or not len(planted):
        return 0.0
    hits_found = sum(np.min(np.abs(planted - f)) <= tolerance for f in found)
    hits_planted = sum(np.min(np.abs(found - p)) <= tolerance for p in planted)
    precision, recall = hits_found / len(found), hits_planted / len(planted)
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def _peak_rss_gb() -> float:
    """Peak resident memory of this process so far (imports included), in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _rss_gb() -> float:
    """Resident memory of this process now, in GiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _knapsack_milp(values, weights, capacity):
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    result = milp(
        -np.asarray(values),
        constraints=LinearConstraint(np.asarray(weights, dtype=float)[None, :], 0, capacity),
        integrality=np.ones(len(values)),
        bounds=Bounds(0, 1),
    )
    return float(-result.fun)


def _sources(args, folder: str) -> list[tuple[str, str]]:
    """(path, description) of the videos to export from: --video, or both shared videos looped."""
    if args.video:
        return [(args.video, os.path.basename(args.video))]
    missing = [str(v) for v in SHARED_VIDEOS if not v.exists()]
    if missing or shutil.which("ffmpeg") is None:
        raise SystemExit(f"bench summary needs --video, or ffmpeg and {missing or SHARED_VIDEOS}")
    sources = []
    for video in SHARED_VIDEOS:
        looped = os.path.join(folder, f"looped-{video.name}")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", str(video), "-t",
             str(args.export_minutes * 60), "-c", "copy", looped],
            check=True,
        )
        sources.append((looped, f"{video.name} looped to {args.export_minutes:g} min (stream copy)"))
    return sources


def _export(source: str, described: str, segments_30fps, keyframe_times, folder: str, frame_rate: float) -> dict:
    """Cuts the summary's segments that fall in the source video: clips + reel + storyboard."""
    from fiftyone_clipit.decode import probe_video
    from fiftyone_clipit.reels import read_frames, write_segments
    from fiftyone_clipit.storyboard import format_time, render_storyboard

    info = probe_video(source)
    scale = info.frame_rate / frame_rate
    segments = []
    for first, last in segments_30fps:
        a, b = round(first * scale) + 1, round((last + 1) * scale)
        if b > info.n_frames:
            break
        if b >= a and (not segments or a > segments[-1][1]):
            segments.append((a, b))
    if not segments:
        first = segments_30fps[0][1] + 1 if segments_30fps else 0
        raise ClipItError(
            f"'{source}' lasts {info.n_frames / info.frame_rate:.1f} s, shorter than the planned summary's "
            f"first segment (it ends at {first / frame_rate:.1f} s), so there is nothing to export from it; "
            f"give --video a longer video (minutes), or leave --video out to loop the shared videos"
        )
    keyframes = [round(t * info.frame_rate) + 1 for t in keyframe_times if t * info.frame_rate < info.n_frames]
    keyframes = keyframes[:8] or [segments[0][0]]
    out = tempfile.mkdtemp(dir=folder)
    start = time.perf_counter()
    written = write_segments(
        source, segments, reel_path=os.path.join(out, "reel.mp4"),
        clip_paths=[os.path.join(out, f"clip{i:04d}.mp4") for i in range(len(segments))],
    )
    images = read_frames(source, keyframes, width=320)
    captions = [format_time((n - 1) / info.frame_rate) for n in keyframes]
    render_storyboard(images, captions, os.path.join(out, "storyboard.png"))
    seconds = time.perf_counter() - start
    return {
        "source": f"{described}, {info.width}x{info.height} at {info.frame_rate:.2f} fps, audio={info.has_audio}",
        "segments": len(segments),
        "summary_seconds": round(written.reel.duration, 2),
        "wall_seconds": round(seconds, 2),
        "realtime_factor": round(written.reel.duration / seconds, 2),
    }


def run(args: argparse.Namespace) -> dict:
    import numpy as np
    import ruptures

    from fiftyone_clipit.segmentation import kts, kts_fixed, steps_to_frames
    from fiftyone_clipit.summary import knapsack, select_segments, shot_scores, summary_capacity, upsample_scores

    n_steps = round(args.hours * 3600 * args.steps_per_second)
    n_frames = round(args.hours * 3600 * args.frame_rate)
    embeddings, planted = planted_shots(n_steps, args.dim, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    step_scores = np.convolve(rng.random(n_steps), np.ones(9) / 9, mode="same")
    picks = np.round(np.arange(n_steps) * args.frame_rate / args.steps_per_second).astype(np.int64)
    frame_scores = upsample_scores(step_scores, picks, n_frames)

    rss_before = _rss_gb()
    start = time.perf_counter()
    segmentation = kts(embeddings, min_length=1, max_length=round(60 * args.steps_per_second))
    kts_seconds = time.perf_counter() - start
    change_points = steps_to_frames(segmentation.change_points, picks, n_frames)
    capacity = summary_capacity(n_frames, 0.15)
    start = time.perf_counter()
    segments = select_segments(frame_scores, change_points, capacity=capacity)
    knapsack_seconds = time.perf_counter() - start
    peak = _peak_rss_gb()

    step_frames = steps_to_frames(np.stack([np.arange(n_steps)] * 2, axis=1), picks, n_frames)
    start = time.perf_counter()
    knapsack(shot_scores(frame_scores, step_frames), step_frames[:, 1] - step_frames[:, 0] + 1, capacity)
    knapsack_per_step_seconds = time.perf_counter() - start

    values = shot_scores(frame_scores, change_points)
    weights = change_points[:, 1] - change_points[:, 0] + 1
    chosen = knapsack(values, weights, capacity)
    start = time.perf_counter()
    milp_value = _knapsack_milp(values, weights, capacity)
    milp_seconds = time.perf_counter() - start

    prefix = embeddings[: args.baseline_steps]
    m = kts(prefix).n_change_points
    start = time.perf_counter()
    ours, _ = kts_fixed(prefix, m)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = ruptures.KernelCPD(kernel="linear", min_size=1).fit(prefix.astype(np.float64)).predict(n_bkps=m)
    ruptures_seconds = time.perf_counter() - start

    found = segmentation.change_points[1:, 0]
    selected = sum(last - first + 1 for first, last, _ in segments)
    keyframe_times = sorted((first + last) / 2 / args.frame_rate for first, last, _ in segments[:8])
    with tempfile.TemporaryDirectory(prefix="clipit-bench-summary-") as folder:
        exports = [
            _export(path, described, [(a, b) for a, b, _ in segments], keyframe_times, folder, args.frame_rate)
            for path, described in _sources(args, folder)
        ]
    return {
        "steps": n_steps,
        "frames": n_frames,
        "dim": args.dim,
        "kts_seconds": round(kts_seconds, 2),
        "kts_shots": len(segmentation.change_points),
        "kts_boundary_f1_vs_planted": round(boundary_f1(found, planted), 3),
        "knapsack_seconds": round(knapsack_seconds, 3),
        "kts_plus_knapsack_seconds": round(kts_seconds + knapsack_seconds, 2),
        "capacity_frames": capacity,
        "summary_frames": int(selected),
        "summary_segments": len(segments),
        "peak_memory_gb": round(peak, 3),
        "rss_before_kts_gb": round(rss_before, 3),
        "knapsack_per_step_items_seconds": round(knapsack_per_step_seconds, 3),
        "knapsack_milp_seconds": round(milp_seconds, 3),
        "knapsack_equals_milp": bool(abs(values[chosen].sum() - milp_value) <= 1e-6 * max(1.0, milp_value)),
        "baseline_steps": len(prefix),
        "baseline_change_points": m,
        "ruptures_kernelcpd_seconds": round(ruptures_seconds, 3),
        "ours_same_problem_seconds": round(ours_seconds, 3),
        "ruptures_over_ours": round(ruptures_seconds / ours_seconds, 1),
        "agrees_with_ruptures": (ours[:, 1] + 1).tolist() == theirs,
        "export_realtime_factor": min(e["realtime_factor"] for e in exports),
        "export_writes": "per video: one clip per segment + the reel (two H.264/AAC encodes, x264 veryfast "
        "crf 20, one decode) + a storyboard PNG",
        "exports": exports,
    }

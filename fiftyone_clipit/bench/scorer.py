"""`fiftyone-clipit bench scorer`: the CLIP-It scorer on a 2-hour video, on the CPU.

A 2-hour video sampled at 2 steps per second is 14,400 steps of 512-d CLIP ViT-B/32 embeddings.
The paper-sized scorer (random weights, seed 0: the cost does not depend on the weights) scores
it with a one-sentence query; the baseline is a 10-minute video (1,200 steps) on the same
machine, measured the same way. Each length runs in a fresh process, so `peak_memory_gb` is
that process's whole peak resident memory (Python, torch, model, features and the scoring);
`rss_before_scoring_gb` is the same process before the forward pass, for reference. Time per
step is the best of `--repeats` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor

DESCRIPTION = "CLIP-It scorer, 2-hour video (14,400 steps), paper preset, CPU: peak memory, time/step vs 10 min"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="paper", help="scorer preset (default paper)")
    parser.add_argument("--hours", type=float, default=2.0, help="long video length (default 2)")
    parser.add_argument("--baseline-minutes", type=float, default=10.0, help="baseline length (default 10)")
    parser.add_argument("--steps-per-second", type=float, default=2.0, help="sampled steps per second of video")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per length, best kept (default 2)")
    parser.add_argument("--window-batch", type=int, default=16, help="attention windows per encoder call")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def measure(preset: str, n_steps: int, repeats: int, window_batch: int, threads: int) -> dict:
    """Scores one random video of `n_steps` steps in this process; time and peak memory."""
    import time

    import numpy as np
    import torch

    from fiftyone_clipit.scorer import ClipItScorer, load_preset, predict_scores

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = load_preset(preset)
    model = ClipItScorer(config).eval()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n_steps, config.feature_dim)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    query = rng.normal(size=(1, config.feature_dim)).astype(np.float32)
    query /= np.linalg.norm(query)
    rss_before = _peak_rss_gb()
    predict_scores(model, [features], [query], window_batch=window_batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scores = predict_scores(model, [features], [query], window_batch=window_batch)[0]
        times.append(time.perf_counter() - start)
    if scores.shape != (n_steps,) or not np.isfinite(scores).all():
        raise RuntimeError(f"the scorer returned {scores.shape} scores for {n_steps} steps")
    return {
        "seconds": min(times),
        "peak_memory_gb": _peak_rss_gb(),
        "rss_before_scoring_gb": rss_before,
        "threads": torch.get_num_threads(),
    }


def _in_fresh_process(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, *args).result()


def run(args: argparse.Namespace) -> dict:
    long_steps = round(args.hours * 3600 * args.steps_per_second)
    short_steps = round(args.baseline_minutes * 60 * args.steps_per_second)
    common = (args.repeats, args.window_batch, args.threads)
    short = _in_fresh_process(args.preset, short_steps, *common)
    long = _in_fresh_process(args.preset, long_steps, *common)
    per_step_long = long["seconds"] / long_steps
    per_step_short = short["seconds"] / short_steps
    return {
        "preset": args.preset,
        "device": "cpu",
        "threads": long["threads"],
        "steps": long_steps,
        "baseline_steps": short_steps,
        "peak_memory_gb": round(long["peak_memory_gb"], 3),
        "rss_before_scoring_gb": round(long["rss_before_scoring_gb"], 3),
        "baseline_peak_memory_gb": round(short["peak_memory_gb"], 3),
        "seconds": round(long["seconds"], 2),
        "baseline_seconds": round(short["seconds"], 3),
        "ms_per_step": round(per_step_long * 1e3, 3),
        "baseline_ms_per_step": round(per_step_short * 1e3, 3),
        "time_per_step_ratio": round(per_step_long / per_step_short, 3),
    }

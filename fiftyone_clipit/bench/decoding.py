"""`fiftyone-clipit bench embeddings --model null`: the ingest's decoders alone, behind a
zero-cost encoder, against what its decoders can do at most.

Measured in one process, each the best of `--repeats` interleaved rounds:
- one decoder alone: `iter_sampled_frames` over every video in this process (one FFmpeg thread,
  as each decoder of the pool runs), in sampled frames per second;
- the pipeline: `embed_videos` (decoders, their queues, the in-order merge) with an encoder that
  returns zeros at once, with 1, 2, ... up to `--decoders` decoders.
decode_limit_fps is the one-decoder rate times the decoders the cores can run at once
(min(decoders, cores)): what decoding could give if the pool cost nothing;
pipeline_over_decode_limit the pipeline's rate with all decoders against it, and
two_decoders_over_one the pool's gain where one decoder was all the model left.
`--height 1080` makes the videos (the first `--seconds` of each, H.264) at that height with PyAV
in a temporary folder, and `--copies` repeats them, for many 1080p sources.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from fractions import Fraction

import numpy as np


class NullEncoder:
    """An encoder that costs nothing: a zero vector per frame (the bench's stand-in for a model)."""

    name = "null"
    activation = "none"
    precision = "fp32"
    dim = 8

    def __init__(self, size: int = 224):
        import torch

        from fiftyone_clipit.decode import ResizeSpec

        self.device = torch.device("cpu")
        self.resize = ResizeSpec(size)

    def encode_images(self, frames: np.ndarray) -> np.ndarray:
        return np.zeros((len(frames), self.dim), dtype=np.float32)


def make_videos(sources: list[str], folder: str, height: int, seconds: float) -> list[str]:
    """`seconds` of each source (played again from its start where it is shorter) re-encoded
    (H.264, yuv420p, x264's default keyframe interval) at `height`, in `folder`."""
    import av

    made = []
    for i, source in enumerate(sources):
        out_path = os.path.join(folder, f"{i:03d}-{height}p.mp4")
        with av.open(out_path, "w") as out:
            stream, index, rate = None, 0, 0  # the rate is the source's, read when its first pass opens
            while stream is None or index < seconds * rate:
                with av.open(source) as src:
                    stream_in = src.streams.video[0]
                    if stream is None:
                        rate = round(float(stream_in.average_rate or 30)) or 30  # whole: x264 refused 25/2
                        width = round(stream_in.width * height / stream_in.height / 2) * 2
                        stream = out.add_stream("libx264", rate=rate)
                        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                        stream.options = {"preset": "veryfast", "crf": "23"}
                    for frame in src.decode(stream_in):
                        if index >= seconds * rate:
                            break
                        image = frame.reformat(width=width, height=height, format="yuv420p")
                        image.pts, image.time_base = index, Fraction(1, rate)
                        out.mux(stream.encode(image))
                        index += 1
            out.mux(stream.encode(None))
        made.append(out_path)
    return made


def _decode_alone_seconds(videos: list[str], fps: float, encoder: NullEncoder) -> tuple[float, int]:
    from fiftyone_clipit.decode import iter_sampled_frames

    start, n = time.perf_counter(), 0
    for video in videos:
        for batch in iter_sampled_frames(video, fps, resize=encoder.resize, codec_threads=1):
            n += len(batch.frame_numbers)
    return time.perf_counter() - start, n


def _pipeline_seconds(videos: list[str], fps: float, batch_size: int, encoder: NullEncoder, decoders: int) -> tuple[float, int]:
    from fiftyone_clipit.ingest import embed_videos

    start, n = time.perf_counter(), 0
    for outcome in embed_videos([(str(i), v) for i, v in enumerate(videos)], encoder, fps, batch_size, decoders=decoders):
        if outcome.error is not None:
            raise SystemExit(str(outcome.error))
        n += len(outcome.item.frame_numbers)
    return time.perf_counter() - start, n


def run_null(args: argparse.Namespace, sources: list[str]) -> dict:
    """The figures of `bench embeddings --model null` (see the module's docstring)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    most = args.decoders or cores
    encoder = NullEncoder()
    folder = tempfile.mkdtemp(prefix="clipit-bench-decoding-")
    try:
        made = make_videos(sources, folder, args.height, args.seconds) if args.height else sources
        videos = made * max(1, args.copies)
        counts = sorted({1, min(2, most), most})
        alone: list[float] = []
        pipeline: dict[int, list[float]] = {k: [] for k in counts}
        n_frames = 0
        for _ in range(max(1, args.repeats)):
            seconds, n_frames = _decode_alone_seconds(videos, args.fps, encoder)
            alone.append(seconds)
            for k in counts:
                seconds, n = _pipeline_seconds(videos, args.fps, args.batch_size, encoder, k)
                assert n == n_frames, f"the pipeline with {k} decoders gave {n} frames, decoding alone {n_frames}"
                pipeline[k].append(seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    one = n_frames / min(alone)
    fps_of = {k: n_frames / min(s) for k, s in pipeline.items()}
    limit = one * min(most, cores)
    figures = {
        "model": "null",
        "videos": len(videos),
        "height": args.height or "source",
        "frames": n_frames,
        "cores": cores,
        "decoders": most,
        "decode_fps_one_decoder": round(one, 2),
        "decode_limit_fps": round(limit, 2),
        **{f"pipeline_fps_{k}_decoders": round(v, 2) for k, v in fps_of.items()},
        "pipeline_over_decode_limit": round(fps_of[most] / limit, 3),
    }
    if 2 in fps_of:
        figures["two_decoders_over_one"] = round(fps_of[2] / fps_of[1], 3)
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    return figures

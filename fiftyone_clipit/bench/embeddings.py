"""`fiftyone-clipit bench embeddings`: video files to stored frame embeddings, against the model
alone and against FiftyOne's own path, in one process on the same videos and weights.

Measured, each the best of `--repeats` rounds (rounds interleave the paths, so load from other
processes hits them alike):
- model alone: `ClipEncoder.encode_images` on the sampled frames already decoded, in memory;
- pipeline: `compute_frame_embeddings` on a fresh dataset: decoding in a background thread,
  the model, the store writes (the whole path from video file to stored embeddings);
- FiftyOne: `to_frames(sample_frames=True, fps=...)` (ffmpeg writes JPEGs) then
  `compute_embeddings` with the same weights wrapped as `fiftyone.utils.open_clip`'s model.
Each at fp32 and at the fast precision (int8 on CPU, fp16 on a GPU), which counts only with
embedding_cosine_min (fast vs fp32 embeddings of the same frames) >= 0.999.
`--model null` measures the decoders alone instead (`fiftyone_clipit.bench.decoding`).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile
import time
import uuid

DESCRIPTION = "frame embedding throughput: pipeline vs model alone vs FiftyOne's to_frames + compute_embeddings"


def _default_videos() -> list[str]:
    shared = os.environ.get("CLIPIT_SHARED_DATA") or os.path.join(os.getcwd(), "..", "shared", "data")
    return sorted(glob.glob(os.path.join(shared, "videos", "*.mp4")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", nargs="+", help="video files (default: the shared sample videos)")
    parser.add_argument(
        "--model", default="ViT-B-32-random",
        help="CLIP model (default: ViT-B-32-random); null: a zero-cost encoder, to measure the decoders alone",
    )
    parser.add_argument("--fps", type=float, default=2.0, help="frames sampled per second")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per model call")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each figure is the best round")
    parser.add_argument("--device", help="torch device (default: cuda, mps or cpu)")
    parser.add_argument("--skip-fiftyone", action="store_true", help="leave out FiftyOne's path")
    parser.add_argument("--decoders", type=int, help="--model null: the most decoder processes (default: the cores)")
    parser.add_argument("--height", type=int, help="--model null: re-encode the videos at this height (e.g. 1080)")
    parser.add_argument("--seconds", type=float, default=10.0, help="--model null with --height: seconds of each video (a shorter source plays again from its start)")
    parser.add_argument("--copies", type=int, default=1, help="--model null: times each video is repeated")


def _best_fps(n_frames: int, seconds: list[float]) -> float:
    return n_frames / min(seconds)


def _model_alone_seconds(encoder, frames, batch_size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(frames), batch_size):
        encoder.encode_images(frames[i : i + batch_size])
    return time.perf_counter() - start


def _pipeline(dataset, encoder, fps: float, batch_size: int) -> tuple[float, dict]:
    from fiftyone_clipit.fo.common import embedding_store
    from fiftyone_clipit.fo.embeddings import compute_frame_embeddings

    start = time.perf_counter()
    report = compute_frame_embeddings(dataset, model=encoder, fps=fps, batch_size=batch_size, overwrite=True)
    seconds = time.perf_counter() - start
    store = embedding_store(dataset)
    items = {path: store.get(k) for k, path in zip(dataset.values("id"), dataset.values("filepath"))}
    return seconds, {"frames": report.n_frames, "items": items}


def fiftyone_open_clip_model(encoder):
    """FiftyOne's open_clip zoo model (config as in its manifest) holding the encoder's weights."""
    import fiftyone.utils.open_clip as fouoc

    config = fouoc.TorchOpenClipModelConfig(
        {
            "entrypoint_fcn": "",
            "labels_path": "{{eta-resources}}/voc-labels.txt",
            "output_processor_cls": "fiftyone.utils.torch.ClassifierOutputProcessor",
            "image_size": [encoder.image_size, encoder.image_size],
            "image_mean": encoder._mean.tolist(),
            "image_std": encoder._std.tolist(),
            "embeddings_layer": "visual",
            "text_prompt": "A photo of",
            "clip_model": encoder.architecture,
            "pretrained": "",  # no download: the weights are copied in below
            "device": str(encoder.device),
        }
    )
    model = fouoc.TorchOpenClipModel(config)
    model._model.load_state_dict(encoder.model.state_dict())
    return model


def _fiftyone_path(videos: list[str], model, fps: float, batch_size: int) -> tuple[float, int, object]:
    import fiftyone as fo

    dataset = fo.Dataset(f"clipit-bench-fo-{uuid.uuid4().hex[:8]}")
    dataset.add_samples([fo.Sample(filepath=v) for v in videos])
    dataset.compute_metadata()  # outside the timing, as our path reads metadata beforehand too
    paths = dict(zip(dataset.values("id"), dataset.values("filepath")))
    frames_dir = tempfile.mkdtemp(prefix="clipit-bench-frames-")
    try:
        start = time.perf_counter()
        frames = dataset.to_frames(sample_frames=True, fps=fps, output_dir=frames_dir)
        frames.compute_embeddings(model, embeddings_field="clip", batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - start
        n = len(frames)
        sources = [paths[i] for i in frames.values("sample_id")]
        embeddings = dict(zip(zip(sources, frames.values("frame_number")), frames.values("clip")))
        return seconds, n, embeddings
    finally:
        shutil.rmtree(frames_dir, ignore_errors=True)
        dataset.delete()


def _min_cosine(items_a: dict, items_b: dict) -> float:
    import numpy as np

    lows = []
    for key, a in items_a.items():
        b = items_b[key]
        np.testing.assert_array_equal(a.frame_numbers, b.frame_numbers)
        lows.append(float((a.embeddings * b.embeddings).sum(axis=1).min()))
    return min(lows)


def run(args: argparse.Namespace) -> dict:
    import fiftyone as fo
    import numpy as np
    import torch

    from fiftyone_clipit.decode import iter_sampled_frames
    from fiftyone_clipit.encoders import load_clip, resolve_device
    from fiftyone_clipit.fo.videos import add_videos

    videos = [os.path.abspath(v) for v in (args.videos or _default_videos())]
    if not videos:
        raise SystemExit("no videos: pass --videos or set CLIPIT_SHARED_DATA")
    if args.model == "null":
        from fiftyone_clipit.bench.decoding import run_null

        return run_null(args, videos)
    device = resolve_device(args.device)
    fast = "fp16" if device.type == "cuda" else "int8"
    encoders = {p: load_clip(args.model, device=args.device, precision=p) for p in ("fp32", fast)}
    frames = np.concatenate(
        [b.frames for v in videos for b in iter_sampled_frames(v, args.fps, resize=encoders["fp32"].resize)]
    )
    dataset = fo.Dataset(f"clipit-bench-{uuid.uuid4().hex[:8]}")
    store_dir = tempfile.mkdtemp(prefix="clipit-bench-store-")
    previous_store = os.environ.get("FIFTYONE_CLIPIT_STORE_DIR")
    os.environ["FIFTYONE_CLIPIT_STORE_DIR"] = store_dir
    add_videos(dataset, videos)
    fo_model = None if args.skip_fiftyone else fiftyone_open_clip_model(encoders["fp32"])
    alone = {p: [] for p in encoders}
    pipeline = {p: [] for p in encoders}
    items, fiftyone_seconds, fiftyone_frames, fiftyone_embeddings = {}, [], 0, {}
    try:
        for p, encoder in encoders.items():  # warm-up: first calls allocate and pack weights
            encoder.encode_images(frames[: args.batch_size])
        for _ in range(max(1, args.repeats)):
            for p, encoder in encoders.items():
                alone[p].append(_model_alone_seconds(encoder, frames, args.batch_size))
                seconds, result = _pipeline(dataset, encoder, args.fps, args.batch_size)
                pipeline[p].append(seconds)
                items[p] = result["items"]
            if fo_model is not None:
                seconds, fiftyone_frames, fiftyone_embeddings = _fiftyone_path(
                    videos, fo_model, args.fps, args.batch_size
                )
                fiftyone_seconds.append(seconds)
    finally:
        dataset.delete()
        shutil.rmtree(store_dir, ignore_errors=True)
        if previous_store is None:
            os.environ.pop("FIFTYONE_CLIPIT_STORE_DIR", None)
        else:
            os.environ["FIFTYONE_CLIPIT_STORE_DIR"] = previous_store
    n = len(frames)
    figures = {
        "model": args.model,
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "videos": len(videos),
        "frames": n,
        "fast_precision": fast,
        "model_fps_fp32": round(_best_fps(n, alone["fp32"]), 2),
        f"model_fps_{fast}": round(_best_fps(n, alone[fast]), 2),
        "pipeline_fps_fp32": round(_best_fps(n, pipeline["fp32"]), 2),
        f"pipeline_fps_{fast}": round(_best_fps(n, pipeline[fast]), 2),
        "pipeline_over_model": round(min(alone[fast]) / min(pipeline[fast]), 3),
        "pipeline_over_model_fp32": round(min(alone["fp32"]) / min(pipeline["fp32"]), 3),
        "embedding_cosine_min": round(_min_cosine(items[fast], items["fp32"]), 5),
    }
    if fiftyone_seconds:
        fiftyone_fps = _best_fps(fiftyone_frames, fiftyone_seconds)
        figures.update(
            {
                "fiftyone_frames": fiftyone_frames,
                "fiftyone_fps": round(fiftyone_fps, 2),
                "speedup_over_fiftyone": round(figures[f"pipeline_fps_{fast}"] / fiftyone_fps, 3),
                "speedup_over_fiftyone_fp32": round(figures["pipeline_fps_fp32"] / fiftyone_fps, 3),
                "fiftyone_vs_ours_cosine_median": _cosine_to_fiftyone(items["fp32"], fiftyone_embeddings),
            }
        )
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    return figures


def _cosine_to_fiftyone(items: dict, fiftyone_embeddings: dict) -> float | None:
    """Median cosine between our fp32 embeddings and FiftyOne's of the same frames (same
    weights; only decoding and resizing differ): shows both paths compute the same thing."""
    import numpy as np

    cosines = []
    for (path, number), theirs in fiftyone_embeddings.items():
        ours = items.get(path)
        if ours is None or number not in ours.frame_numbers:
            continue
        theirs = np.asarray(theirs, dtype=np.float32)
        mine = ours.embeddings[int(np.searchsorted(ours.frame_numbers, number))]
        cosines.append(float(mine @ theirs / np.linalg.norm(theirs)))
    return round(float(np.median(cosines)), 4) if cosines else None

"""Planted videos for `bench pipeline`: embeddings in the store as `compute_frame_embeddings`
leaves them, a ground truth, and a twin dataset for FiftyOne's own path; nothing is decoded."""

from __future__ import annotations

import argparse
import os

import fiftyone as fo
import numpy as np

from fiftyone_clipit.bench.summary import planted_shots
from fiftyone_clipit.encoders import ClipEncoder
from fiftyone_clipit.fo.common import embedding_store
from fiftyone_clipit.fo.embeddings import _record_run
from fiftyone_clipit.fo.groundtruth import mask_to_detections
from fiftyone_clipit.store import FrameEmbeddings, file_fingerprint

N_USERS = 3


def plant_dataset(
    args: argparse.Namespace, root: str, encoder: ClipEncoder, text: np.ndarray
) -> tuple[fo.Dataset, fo.Dataset, dict[str, tuple[FrameEmbeddings, int]]]:
    """The benchmark's dataset with stored embeddings and users' summaries, its twin (same
    samples, nothing else), and per sample id the planted embeddings and frame count."""
    files = os.path.join(root, "videos")
    os.makedirs(files)
    n_frames = round(args.minutes * 60 * args.frame_rate)
    stride = args.frame_rate / args.fps
    n_steps = int(np.ceil(n_frames / stride))
    samples, twins, plants = [], [], []
    for v in range(args.videos):
        path = os.path.join(files, f"video-{v:05d}.mp4")
        with open(path, "wb") as f:  # a small real file: the lineage fingerprints it
            f.write(np.random.default_rng((args.seed, v)).bytes(4096))
        metadata = fo.VideoMetadata(
            total_frame_count=n_frames, frame_rate=args.frame_rate, duration=n_frames / args.frame_rate,
            frame_width=1280, frame_height=720, size_bytes=4096, mime_type="video/mp4",
        )
        item, mask = _planted_video(path, n_steps, n_frames, stride, encoder, text, (args.seed, v), args.fps)
        summaries = fo.TemporalDetections(detections=[
            d for u, user in enumerate(_jittered(mask, N_USERS, stride, (args.seed, v)))
            for d in mask_to_detections(user, "summary", user=u)
        ])
        samples.append(fo.Sample(filepath=path, metadata=metadata, gt_user_summaries=summaries))
        twins.append(fo.Sample(filepath=path, metadata=metadata))
        plants.append((item, n_frames))
    dataset = fo.Dataset("clipit-bench-pipeline")
    twin = fo.Dataset("clipit-bench-pipeline-fiftyone")
    ids = dataset.add_samples(samples)
    twin_ids = twin.add_samples(twins)
    store = embedding_store(dataset)
    os.makedirs(store.root, exist_ok=True)
    for sample_id, (item, _) in zip(ids, plants):
        store.put(sample_id, item)
    _record_run(dataset, store, encoder, None, args.fps, ids, {})
    return dataset, twin, dict(zip(twin_ids, plants))


def _planted_video(path, n_steps, n_frames, stride, encoder, text, seed, fps) -> tuple[FrameEmbeddings, np.ndarray]:
    """One video's step embeddings (shots; whole shots making up to 12% of the steps pulled
    towards the query's text) and the frame mask of the pulled shots."""
    embeddings, cuts = planted_shots(n_steps, encoder.dim, seed[0] * 1_000_003 + seed[1])
    rng = np.random.default_rng(seed)
    bounds = np.r_[0, cuts, n_steps]
    mask = np.zeros(n_frames, dtype=bool)
    pulled = 0
    for shot in rng.permutation(len(bounds) - 1):
        first, stop = bounds[shot], bounds[shot + 1]
        if pulled + stop - first > 0.12 * n_steps:
            continue
        block = 0.8 * embeddings[first:stop] + 0.6 * text[0]
        embeddings[first:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
        mask[int(first * stride) : min(n_frames, int(stop * stride))] = True
        pulled += stop - first
    frame_numbers = np.minimum(np.round(np.arange(n_steps) * stride).astype(np.int64) + 1, n_frames)
    info = {
        "model": encoder.name, "activation": encoder.activation, "precision": encoder.precision,
        "fps": fps, "dim": encoder.dim, "fingerprint": file_fingerprint(path), "n_frames": n_steps,
        "n_decoded": n_frames, "n_expected": n_frames, "broken": None,
    }
    return FrameEmbeddings(frame_numbers, embeddings, info), mask


def _jittered(mask: np.ndarray, n_users: int, stride: float, seed) -> list[np.ndarray]:
    """`n_users` users' masks: the planted one shifted by up to two steps, as annotators differ."""
    rng = np.random.default_rng(seed)
    return [np.roll(mask, int(rng.integers(-2, 3) * stride)) for _ in range(n_users)]

"""The decode-and-embed pipeline: PyAV decoders (a thread, or a pool of processes) feeding the CLIP image encoder.

The decoders run a few batches ahead of the model, so the model never waits on them when they are
faster (and the next video is already decoding while the last batch of the current one is
encoded); with several decoder processes, as many videos decode at once, and the results still
come out in the videos' order (`fiftyone_clipit.decoders`). FiftyOne-free: `compute_frame_embeddings` hands it
(key, path) pairs and writes what comes out to the embedding store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from fiftyone_clipit.decode import DecodeStatus, FrameBatch
from fiftyone_clipit.decoders import decode_videos
from fiftyone_clipit.encoders import ClipEncoder
from fiftyone_clipit.defaults import DEFAULT_FPS
from fiftyone_clipit.errors import VideoError
from fiftyone_clipit.store import FrameEmbeddings, file_fingerprint


@dataclass(frozen=True)
class EmbeddedVideo:
    """One video's outcome in `embed_videos`: embeddings (and how decoding went) or an error."""

    key: str
    path: str
    item: FrameEmbeddings | None
    status: DecodeStatus | None
    error: VideoError | None


def codec_threads_for(encoder: ClipEncoder) -> int:
    """Decoder threads beside this encoder: FFmpeg's choice when the model runs on a GPU; one
    when it runs on the CPU and needs every core (on 2 cores, frame threads beside the int8
    ViT-B/32 cost more than they gave: the pipeline ran at 0.90 of the model alone with one
    decoder thread and 0.88 with FFmpeg's automatic threads, medians of 4 interleaved rounds)."""
    return 1 if encoder.device.type == "cpu" else 0


def decoders_for(encoder: ClipEncoder) -> int:
    """Decoder processes beside this encoder: the cores the model leaves, at least one. A CPU model
    takes torch's threads (on 2 cores, both: one decoder thread, as before the pool); a GPU model
    one core to feed it."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    model_cores = torch.get_num_threads() if encoder.device.type == "cpu" else 1
    return max(1, cores - model_cores)


def embed_videos(
    videos: Sequence[tuple[str, str]],
    encoder: ClipEncoder,
    fps: float = DEFAULT_FPS,
    batch_size: int = 32,
    keep_partial: bool = False,
    prefetch_batches: int = 3,
    decoders: int | None = None,
) -> Iterator[EmbeddedVideo]:
    """Embeds the sampled frames of many videos, decoding ahead of the model (one thread, or a
    pool of decoder processes: `fiftyone_clipit.decoders`).

    Args:
        videos: (key, path) pairs, embedded in this order.
        encoder: the CLIP model.
        fps (2.0): frames sampled per second of video (by timestamp).
        batch_size (32): frames per forward pass.
        keep_partial (False): embed what decodes of a video that breaks off (see
            iter_sampled_frames) instead of failing it.
        prefetch_batches (3): how many decoded batches may wait for the model (per decoder).
        decoders (None): decoder processes; None: the cores the model leaves (`decoders_for`).

    Returns:
        An iterator of EmbeddedVideo, one per video, in order; a video that fails carries its
        VideoError and the others go on.
    """
    events = decode_videos(
        videos, fps, encoder.resize, batch_size, keep_partial, decoders or decoders_for(encoder),
        codec_threads_for(encoder), prefetch_batches,
    )
    for key, path in videos:
        numbers, chunks = [], []
        for event_key, event in events:
            assert event_key == key, f"decoder out of step: {event_key} while embedding {key}"
            if isinstance(event, FrameBatch):
                chunks.append(encoder.encode_images(event.frames))
                numbers.append(event.frame_numbers)
                continue
            if isinstance(event, VideoError):
                yield EmbeddedVideo(key, path, None, None, event)
            else:
                item = _frame_embeddings(path, encoder, fps, numbers, chunks, event)
                yield EmbeddedVideo(key, path, item, event, None)
            break


def _frame_embeddings(
    path: str, encoder: ClipEncoder, fps: float, numbers: list, chunks: list, status: DecodeStatus
) -> FrameEmbeddings:
    frame_numbers = np.concatenate(numbers)
    return FrameEmbeddings(
        frame_numbers=frame_numbers,
        embeddings=np.concatenate(chunks),
        info={
            "model": encoder.name,
            "activation": encoder.activation,
            "precision": encoder.precision,
            "fps": fps,
            "dim": int(chunks[0].shape[1]),
            "fingerprint": file_fingerprint(path),
            "n_frames": int(len(frame_numbers)),
            "n_decoded": status.n_decoded,
            "n_expected": status.n_expected,
            "broken": status.broken,
        },
    )


def up_to_date(stored: dict | None, wanted: dict, keep_partial: bool) -> bool:
    """Whether stored embeddings (their info) are those `wanted` (model, fps, file fingerprint, ...),
    and whole unless partial ones are acceptable."""
    if stored is None or any(stored.get(k) != v for k, v in wanted.items()):
        return False
    return keep_partial or not stored.get("broken")

"""The decode-and-embed pipeline: PyAV decoding in a background thread feeding the CLIP image encoder.

One decoder thread runs through every video, a few batches ahead of the model, so the model never
waits on the decoder when the decoder is faster (and the next video is already decoding while the
last batch of the current one is encoded). FiftyOne-free: `compute_frame_embeddings` hands it
(key, path) pairs and writes what comes out to the embedding store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from fiftyone_clipit.decode import DecodeStatus, FrameBatch, iter_sampled_frames, prefetch
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


_FIRST_BATCH = 8


def _merged(parts: list[FrameBatch]) -> FrameBatch:
    if len(parts) == 1:
        return parts[0]
    return FrameBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("frames", "frame_numbers", "times")))


def _decode_events(
    videos: Sequence[tuple[str, str]], encoder: ClipEncoder, fps: float, batch_size: int, keep_partial: bool
) -> Iterator[tuple[str, FrameBatch | DecodeStatus | VideoError]]:
    """(key, batch) for every batch of every video, then (key, status) or (key, error) at its end.

    The run's first batch holds at most `_FIRST_BATCH` frames, so the model starts as soon as a few
    frames are decoded (a full first batch kept it idle ~0.25 s, 5% of a 70-second-footage run);
    after that the decoder is ahead and batches are full.
    """
    step = max(d for d in range(1, min(_FIRST_BATCH, batch_size) + 1) if batch_size % d == 0)
    started = False
    for key, path in videos:
        status = DecodeStatus()
        parts, n = [], 0
        try:
            for part in iter_sampled_frames(
                path, fps, resize=encoder.resize, batch_size=step, keep_partial=keep_partial,
                status=status, codec_threads=codec_threads_for(encoder),
            ):
                parts.append(part)
                n += len(part.frame_numbers)
                if n >= batch_size or not started:
                    yield key, _merged(parts)
                    parts, n, started = [], 0, True
        except VideoError as e:
            yield key, e
            continue
        if parts:
            yield key, _merged(parts)
        yield key, status


def embed_videos(
    videos: Sequence[tuple[str, str]],
    encoder: ClipEncoder,
    fps: float = DEFAULT_FPS,
    batch_size: int = 32,
    keep_partial: bool = False,
    prefetch_batches: int = 3,
) -> Iterator[EmbeddedVideo]:
    """Embeds the sampled frames of many videos, decoding ahead of the model in one thread.

    Args:
        videos: (key, path) pairs, embedded in this order.
        encoder: the CLIP model.
        fps (2.0): frames sampled per second of video (by timestamp).
        batch_size (32): frames per forward pass.
        keep_partial (False): embed what decodes of a video that breaks off (see
            iter_sampled_frames) instead of failing it.
        prefetch_batches (3): how many decoded batches may wait for the model.

    Returns:
        An iterator of EmbeddedVideo, one per video, in order; a video that fails carries its
        VideoError and the others go on.
    """
    events = prefetch(_decode_events(videos, encoder, fps, batch_size, keep_partial), depth=prefetch_batches)
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

"""Frame embeddings: PyAV decoding in a background thread feeding the CLIP image encoder."""

from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.decode import iter_sampled_frames, prefetch
from fiftyone_clipit.encoders import DEFAULT_MODEL, ClipEncoder, load_clip
from fiftyone_clipit.errors import ItemFailure, VideoError
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    Progress,
    embedding_store,
    finish,
    iterate,
    record_run,
    root_dataset,
    samples_info,
    video_collection,
)
from fiftyone_clipit.store import FrameEmbeddings, file_fingerprint


@dataclass
class EmbeddingReport:
    """What `compute_frame_embeddings` did."""

    n_embedded: int = 0
    n_up_to_date: int = 0
    n_frames: int = 0
    failures: list[ItemFailure] = field(default_factory=list)


def embed_video(path: str, encoder: ClipEncoder, fps: float, batch_size: int) -> FrameEmbeddings:
    """Decodes one video at `fps` (ahead of the model, in a thread) and embeds its frames."""
    numbers, chunks = [], []
    batches = iter_sampled_frames(path, fps, resize=encoder.resize, batch_size=batch_size)
    for batch in prefetch(batches, depth=2):
        chunks.append(encoder.encode_images(batch.frames))
        numbers.append(batch.frame_numbers)
    if not chunks:
        raise VideoError(path, "no frame could be sampled")
    return FrameEmbeddings(
        frame_numbers=np.concatenate(numbers),
        embeddings=np.concatenate(chunks),
        info={"model": encoder.name, "fps": fps, "fingerprint": file_fingerprint(path)},
    )


def compute_frame_embeddings(
    samples: foc.SampleCollection,
    model: str | ClipEncoder = DEFAULT_MODEL,
    pretrained: str | None = None,
    fps: float = 2.0,
    batch_size: int = 32,
    device: str | None = None,
    overwrite: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
) -> EmbeddingReport:
    """Embeds every video's frames sampled at `fps` and keeps them in the dataset's store.

    Videos whose stored embeddings were made by the same model at the same fps from the same
    file are skipped (so a second call only embeds what is new or changed). Embeddings live
    outside the frame documents; the run `clipit_embeddings` records model, fps, dimension and
    where the store is.

    Args:
        samples: a video dataset or view.
        model (DEFAULT_MODEL): a model name for `load_clip`, or a loaded ClipEncoder.
        pretrained (None): weights tag or file (see `load_clip`).
        fps (2.0): frames sampled per second of video.
        batch_size (32): frames per forward pass.
        device (None): torch device; None picks one.
        overwrite (False): re-embed videos even when they are up to date.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Raises:
        ClipItError: not a video collection, unknown model, or weights not found.
        BatchError: some videos failed (after all others were embedded and stored).
    """
    video_collection(samples)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    encoder = model if isinstance(model, ClipEncoder) else load_clip(model, pretrained, device)
    dataset = root_dataset(samples)
    store = embedding_store(dataset)
    report = EmbeddingReport()
    for sample_id, path, _ in iterate(samples_info(samples), progress, "Embedding frames"):
        try:
            wanted = {"model": encoder.name, "fps": fps, "fingerprint": file_fingerprint(path)}
        except OSError:
            report.failures.append(ItemFailure(path, "file not found; check the path"))
            continue
        stored = store.info(sample_id)
        if not overwrite and stored is not None and all(stored.get(k) == v for k, v in wanted.items()):
            report.n_up_to_date += 1
            continue
        try:
            item = embed_video(path, encoder, fps, batch_size)
        except VideoError as e:
            report.failures.append(ItemFailure(path, e.reason))
            continue
        store.put(sample_id, item)
        report.n_embedded += 1
        report.n_frames += len(item.frame_numbers)
    record_run(
        dataset,
        EMBEDDINGS_RUN,
        model=encoder.name,
        pretrained=pretrained,
        fps=fps,
        dim=encoder.dim,
        store_dir=store.root,
    )
    finish("Embedding frames", report.failures, report.n_embedded + report.n_up_to_date, skip_failures)
    return report

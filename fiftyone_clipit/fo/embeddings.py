"""`compute_frame_embeddings`: the videos of a dataset through the core's decode-and-embed pipeline.

The pipeline (`fiftyone_clipit.ingest`) decodes ahead of the model in a background thread. Each
video's embeddings are written to the store as soon as it is done, atomically: a run that is
killed loses at most the video in flight, and the next call embeds only what is missing or changed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.runs as fors

from fiftyone_clipit.encoders import DEFAULT_MODEL, ClipEncoder, load_clip
from fiftyone_clipit.errors import ON_BROKEN_HINT, BrokenVideoError, ClipItError, ItemFailure
from fiftyone_clipit.options import EmbeddingOptions
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    Progress,
    embedding_store,
    finish,
    iterate,
    root_dataset,
    samples_info,
    video_collection,
)
from fiftyone_clipit.fo.shards import delete_plans, run_fields, run_record_lock
from fiftyone_clipit.ingest import embed_videos, up_to_date
from fiftyone_clipit.store import EmbeddingStore, file_fingerprint

logger = logging.getLogger("fiftyone_clipit")

#: what to do with a video that breaks off mid-stream
ON_BROKEN = ("fail", "keep")


@dataclass
class EmbeddingReport:
    """What `compute_frame_embeddings` did.

    Attributes:
        n_embedded: videos embedded by this call.
        n_up_to_date: videos skipped because their stored embeddings are current.
        n_frames: frames embedded by this call.
        n_pruned: stored embeddings of videos no longer in the dataset, deleted by this call.
        partial: videos that broke off mid-stream and were kept with the frames that decoded
            (on_broken="keep"), with how much decoded.
        failures: videos that could not be embedded, and why.
        embedded: the sample ids of the videos embedded by this call.
    """

    n_embedded: int = 0
    n_up_to_date: int = 0
    n_frames: int = 0
    n_pruned: int = 0
    partial: list[ItemFailure] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)


class FrameEmbeddingsRunConfig(fors.RunConfig):
    """The `clipit_embeddings` run: model, precision, fps, dimension, the store, what is in it;
    for a run scheduled in shards (`fiftyone_clipit.fo.shards`), `shards`, `shards_done` and
    `complete` (True once every shard is done, and for a run made in one call).

    Deleting the run (`dataset.delete_run("clipit_embeddings")`) deletes the stored embeddings.
    """


class FrameEmbeddingsRun(fors.Run):
    """The run class FiftyOne builds from FrameEmbeddingsRunConfig (for its cleanup)."""

    def cleanup(self, samples: foc.SampleCollection, key: str) -> None:
        store_dir = getattr(self.config, "store_dir", None)
        if store_dir:
            EmbeddingStore(store_dir).clear()
        delete_plans(root_dataset(samples), key)


def compute_frame_embeddings(
    samples: foc.SampleCollection,
    options: EmbeddingOptions | None = None,
    *,
    model: str | ClipEncoder = DEFAULT_MODEL,
    pretrained: str | None = None,
    device: str | None = None,
    overwrite: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> EmbeddingReport:
    """Embeds every video's frames sampled at `fps` and keeps them in the dataset's store.

    Videos whose stored embeddings were made by the same model at the same fps from the same
    file are skipped (so a second call only embeds what is new or changed, and a killed call
    loses at most the video in flight); the precision is recorded but not compared (int8 and
    fp16 embeddings stay within cosine 0.999 of fp32): pass overwrite=True to re-embed.
    Embeddings live outside the frame documents, one file per video; the files of videos since
    deleted from the dataset are deleted too. The run `clipit_embeddings` records model,
    precision, fps, dimension, where the store is and what is in it
    (`dataset.delete_run("clipit_embeddings")` deletes the store).

    Args:
        samples: a video dataset or view.
        options (None): an `EmbeddingOptions`; keyword `settings` build or replace them:
            `fps`, frames sampled per second of video, by timestamp (variable frame rate too);
            `batch_size`, frames per forward pass; `precision`, "fp32", "fp16" (cuda) or "int8"
            (faster CPU path, embeddings at cosine >= 0.999 to fp32), None for fp16 on cuda
            and fp32 elsewhere (only for a model name); `on_broken`, whether a video that
            breaks off mid-stream fails ("fail") or is embedded as far as it decodes ("keep";
            the report and a warning say how far).
        model (DEFAULT_MODEL): a model name for `load_clip`, or a loaded ClipEncoder.
        pretrained (None): weights tag or file (see `load_clip`).
        device (None): torch device; None picks cuda, mps or cpu.
        overwrite (False): re-embed videos even when they are up to date.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Raises:
        ClipItError: not a video collection, unknown model or precision, bad on_broken, or
            weights not found.
        BatchError: some videos failed (after all others were embedded and stored).
    """
    options = EmbeddingOptions.of(options, **settings)
    fps, precision = options.fps, options.precision
    samples = video_collection(samples)
    if isinstance(model, ClipEncoder):
        if precision is not None and precision != model.precision:
            raise ClipItError(
                f"The given encoder runs at '{model.precision}', not '{precision}'; load it with "
                f"load_clip(..., precision='{precision}') or pass the model name"
            )
        encoder = model
    else:
        encoder = load_clip(model, pretrained, device, precision)
    keep_partial = options.on_broken == "keep"
    started = time.time()
    dataset = root_dataset(samples)
    store = embedding_store(dataset)
    report = EmbeddingReport()
    todo, failed = [], {}
    infos = samples_info(samples)
    for sample_id, path, _ in infos:
        try:
            wanted = {
                "model": encoder.name,
                "activation": encoder.activation,
                "fps": fps,
                "fingerprint": file_fingerprint(path),
            }
        except OSError:
            report.failures.append(ItemFailure(path, "file not found; check the path"))
            failed[sample_id] = {"reason": report.failures[-1].reason, "broken": False}
            continue
        if not overwrite and up_to_date(store.info(sample_id), wanted, keep_partial):
            report.n_up_to_date += 1
        else:
            todo.append((sample_id, path))
    outcomes = embed_videos(todo, encoder, fps, options.batch_size, keep_partial, decoders=options.decoders)
    for _ in iterate(todo, progress, "Embedding frames"):
        outcome = next(outcomes)
        if outcome.error is not None:
            broken = isinstance(outcome.error, BrokenVideoError)
            failed[outcome.key] = {"reason": outcome.error.reason, "broken": broken}
            hint = f"; {ON_BROKEN_HINT} to embed the frames that decode" if broken else ""
            report.failures.append(ItemFailure(outcome.path, outcome.error.reason + hint))
            continue
        store.put(outcome.key, outcome.item)
        report.embedded.append(outcome.key)
        report.n_embedded += 1
        report.n_frames += len(outcome.item.frame_numbers)
        if outcome.status.broken:
            kept = len(outcome.item.frame_numbers)
            note = ItemFailure(outcome.path, f"{outcome.status.broken}; kept {kept} sampled frames")
            report.partial.append(note)
            logger.warning("Embedded part of %s", note)
    report.n_pruned = len(store.prune(dataset.values("id"), written_before=started))
    _record_run(dataset, store, encoder, pretrained, fps, [sample_id for sample_id, _, _ in infos], failed)
    finish("Embedding frames", report.failures, report.n_embedded + report.n_up_to_date, skip_failures)
    return report


def _record_run(
    dataset: fo.Dataset, store: EmbeddingStore, encoder: ClipEncoder, pretrained: str | None, fps: float,
    ids: list[str], failed: dict[str, dict],
) -> None:
    """Records the run, with what the store holds for this dataset's videos (frames per video)
    and the videos that failed to embed (`failed`: sample id -> {"reason", "broken"}), under the
    run's record lock: shards of one scheduled run record it from several workers.
    The videos of this call (`ids`) are read from the store; the others' counts and failures
    are kept from the previous record when it was made by the same model at the same fps, so a
    shard of a large dataset reads its own videos' files, not every video's."""
    with run_record_lock(dataset, EMBEDDINGS_RUN):
        dataset.reload()
        _write_record(dataset, store, encoder, pretrained, fps, ids, failed)


def embedding_failures(dataset: fo.Dataset) -> dict[str, dict]:
    """The videos whose last embedding failed, as the `clipit_embeddings` run recorded them:
    sample id -> {"reason": why, "broken": whether it broke off mid-stream}."""
    if not dataset.has_run(EMBEDDINGS_RUN):
        return {}
    results = dataset.load_run_results(EMBEDDINGS_RUN, cache=False)
    return dict(getattr(results, "failed", None) or {})


def failed_to_embed(failure: dict) -> str:
    """Why a video has no embeddings to score or summarise, and the remedy: for a video that
    breaks off mid-stream, embedding what decodes or replacing the file; else replacing it."""
    if failure.get("broken"):
        remedy = f"re-embed it ({ON_BROKEN_HINT} to keep the frames that decode) or replace the file"
    else:
        remedy = "replace the file (or fix its path) and embed it again"
    return f"its frames failed to embed ({failure['reason']}), so it has no embeddings; {remedy}, then score and summarize it"


def _previous_counts(dataset: fo.Dataset, encoder: ClipEncoder, fps: float) -> tuple[dict, dict, dict] | None:
    """(frames per video, partial, failed) of the recorded run, when it was made by this model at this fps."""
    if not dataset.has_run(EMBEDDINGS_RUN):
        return None
    config = dataset.get_run_info(EMBEDDINGS_RUN).config
    if not isinstance(config, FrameEmbeddingsRunConfig) or getattr(config, "model", None) != encoder.name:
        return None
    if getattr(config, "fps", None) != fps:
        return None
    results = dataset.load_run_results(EMBEDDINGS_RUN, cache=False)
    if results is None:
        return None
    return tuple(dict(getattr(results, name, {}) or {}) for name in ("frames_per_video", "partial", "failed"))


def _write_record(
    dataset: fo.Dataset, store: EmbeddingStore, encoder: ClipEncoder, pretrained: str | None, fps: float,
    ids: list[str], failed: dict[str, dict],
) -> None:
    in_dataset = dataset.values("id")
    previous = _previous_counts(dataset, encoder, fps)
    if previous is None:
        embedded, partial, to_read = {}, {}, in_dataset
    else:
        kept = set(in_dataset) - set(ids)
        embedded = {i: n for i, n in previous[0].items() if i in kept}
        partial = {i: b for i, b in previous[1].items() if i in kept}
        failed = {**{i: f for i, f in previous[2].items() if i in kept}, **failed}
        to_read = ids
    for sample_id in to_read:
        info = store.info(sample_id)
        if info is None or info.get("model") != encoder.name or info.get("fps") != fps:
            continue
        embedded[sample_id] = info.get("n_frames") or len(store.get(sample_id).frame_numbers)
        if info.get("broken"):
            partial[sample_id] = info["broken"]
    config = FrameEmbeddingsRunConfig(
        model=encoder.name,
        pretrained=pretrained,
        precision=encoder.precision,
        fps=fps,
        dim=encoder.dim,
        store_dir=store.root,
        n_videos=len(embedded),
        n_frames=int(sum(embedded.values())),
        **run_fields(dataset, EMBEDDINGS_RUN),
    )
    if dataset.has_run(EMBEDDINGS_RUN):
        if not isinstance(dataset.get_run_info(EMBEDDINGS_RUN).config, FrameEmbeddingsRunConfig):
            dataset.delete_run(EMBEDDINGS_RUN)  # an older generic record; its cleanup does nothing
    dataset.register_run(EMBEDDINGS_RUN, config, overwrite=True, cleanup=False)
    results = dataset.init_run_results(EMBEDDINGS_RUN, frames_per_video=embedded, partial=partial, failed=failed)
    dataset.save_run_results(EMBEDDINGS_RUN, results)

"""`train_scorer`: a CLIP-It scorer trained on a FiftyOne dataset's frame embeddings and labels.

Reads what the other functions wrote: the frame embeddings of `compute_frame_embeddings`, the
ground truth (users' summaries as TemporalDetections, e.g. from `add_video_annotations`, or a
per-frame importance field) and the text (a per-video query field, one query for all, or none:
the video's captions with a captioner, else the caption-free stand-in, as `score_frames` reads
them). Shots for the validation F1 come from KTS on the embeddings, as
`create_summary` makes them. The checkpoint is a folder (safetensors weights, config.json, model
card) that `score_frames(samples, scorer=PATH)` loads. The card compares the scorer with
zero-shot and a query-blind twin on the validation videos, and warns when it does not beat
zero-shot (`fiftyone_clipit.baselines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.baselines import baseline_card_lines, validation_baselines
from fiftyone_clipit.defaults import FALLBACK_FRAME_RATE
from fiftyone_clipit.captions import (
    CAPTION_FREE,
    DEFAULT_CAPTIONS,
    QUERY,
    Captioner,
    load_captioner,
    text_source,
    video_text,
)
from fiftyone_clipit.encoders import ClipEncoder, load_clip
from fiftyone_clipit.errors import ClipItError, ItemFailure
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    Progress,
    check_field_name,
    dataset_name,
    embedding_store,
    ensure_iterable,
    finish,
    iterate,
    record_run,
    root_dataset,
    video_collection,
)
from fiftyone_clipit.fo.protocols import user_masks
from fiftyone_clipit.checkpoints import check_checkpoint_folder, save_checkpoint
from fiftyone_clipit.scorer import DEFAULT_PRESET, load_preset
from fiftyone_clipit.examples import training_example
from fiftyone_clipit.options import ShotOptions
from fiftyone_clipit.protocols import importance_keyshot_summary
from fiftyone_clipit.training import (
    TrainingOptions,
    checkpoint_metadata,
    model_card,
    train,
)

DEFAULT_TRAIN_RUN = "clipit_train"


@dataclass
class TrainReport:
    """What `train_scorer` did: where the checkpoint is and how it was selected."""

    checkpoint: str
    best_epoch: int
    criterion: str
    validation_value: float
    n_train: int
    n_validation: int
    failures: list[ItemFailure] = field(default_factory=list)
    baselines: dict = field(default_factory=dict)

    @property
    def warning(self) -> str | None:
        """Why this checkpoint should not replace the default scorer (see `baseline_warning`), or None."""
        return self.baselines.get("warning")


def _ground_truth_kind(samples: foc.SampleCollection, names: list[str]) -> str:
    """"summaries" (TemporalDetections fields) or "importance" (one numeric frame field)."""
    kinds = []
    for name in names:
        check_field_name(name, "ground-truth field")
        sample_field = samples.get_field(name)
        frame_field = samples.get_field(f"frames.{name}")
        if isinstance(sample_field, fo.EmbeddedDocumentField) and sample_field.document_type is fo.TemporalDetections:
            kinds.append("summaries")
        elif isinstance(frame_field, (fo.FloatField, fo.IntField, fo.BooleanField)):
            kinds.append("importance")
        else:
            raise ClipItError(
                f"Ground-truth field '{name}' of '{dataset_name(samples)}' is neither users' summaries "
                f"(a TemporalDetections sample field) nor a per-frame importance (a numeric frame field)"
            )
    if "importance" in kinds and len(kinds) > 1:
        raise ClipItError(f"Give one per-frame importance field or any number of summary fields, not {names}")
    return kinds[0]


def _text_source(samples, query_field: str | None, query) -> str:
    if query_field is not None and query is not None:
        raise ClipItError("Pass query_field (a query per video) or query (one for all videos), not both")
    if query_field is not None:
        check_field_name(query_field, "query field")
        if not isinstance(samples.get_field(query_field), (fo.StringField, fo.ListField)):
            raise ClipItError(
                f"Query field '{query_field}' does not exist on '{dataset_name(samples)}' as text "
                f"(a string or a list of strings per video)"
            )
        return "query field"
    if query is not None:
        sentences = ensure_iterable(query)
        if not sentences or any(not isinstance(s, str) or not s.strip() for s in sentences):
            raise ClipItError(f"The query must be non-empty text, got {query!r}")
        return "query"
    return CAPTION_FREE


@dataclass(frozen=True)
class TrainingData:
    """What a scorer learns from: the ground truth, and the text each video is read against.

    Attributes:
        gt_field: users' summaries (one or more TemporalDetections fields; users in one field
            are told apart by a `user` attribute) or one per-frame importance field, whose
            protocol keyshot summary (budget `proportion`) becomes the keyframes. Needed for
            supervised training and for model selection on validation F1.
        query_field: a string (or list of sentences) field with each video's query.
        query: one query for every video. Neither: generic summaries, read against the video's
            captions (with `captioner`) or the caption-free stand-in.
        captioner: generic training: frames -> sentences, or the folder / hub id of a
            transformers image-to-text model; the captions are kept beside the embeddings, so
            `score_frames` with the same captioner reads the same text. The checkpoint records
            it, and scoring with other text is refused.
        n_captions: frames captioned per video.
        model: a loaded ClipEncoder of the embeddings' model for the text (None: loaded).
    """

    gt_field: str | list[str] | None = None
    query_field: str | None = None
    query: str | list[str] | None = None
    captioner: Captioner | str | None = None
    n_captions: int = DEFAULT_CAPTIONS
    model: ClipEncoder | None = None


def _split_settings(data: TrainingData | None, options: TrainingOptions | None, settings: dict
                    ) -> tuple[TrainingData, TrainingOptions]:
    """The data and the recipe, with keyword `settings` replacing their fields."""
    data_names = {f.name for f in fields(TrainingData)}
    valid = sorted(f.name for f in fields(TrainingOptions))
    recipe = {k: v for k, v in settings.items() if k not in data_names}
    unknown = sorted(set(recipe) - set(valid))
    if unknown:
        raise ClipItError(f"Unknown training option(s) {unknown}; the valid options are {valid}")
    data = replace(data or TrainingData(), **{k: v for k, v in settings.items() if k in data_names})
    return data, replace(options or TrainingOptions(), **recipe)


def train_scorer(
    samples: foc.SampleCollection,
    output_dir: str,
    data: TrainingData | None = None,
    options: TrainingOptions | None = None,
    *,
    preset: str = DEFAULT_PRESET,
    run_key: str = DEFAULT_TRAIN_RUN,
    device: str | None = None,
    overwrite: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> TrainReport:
    """Trains a CLIP-It scorer on the videos of a collection and writes a checkpoint folder.

    Args:
        samples: a video dataset or view with frame embeddings (`compute_frame_embeddings`).
        output_dir: the checkpoint folder to write (model.safetensors, config.json, MODEL_CARD.md).
        data (None): a `TrainingData`: the ground truth and the text (gt_field, query_field,
            query, captioner, n_captions, model).
        options (None): a `fiftyone_clipit.options.TrainingOptions`: the recipe (mode
            "supervised" or "unsupervised", epochs, batch_size, learning_rate (None: scaled
            with width), warmup_epochs, weight_decay, the loss weights, validation_fraction,
            patience, seed, proportion, f1_mode, attention, max_segment).
        preset ("paper"): scorer shapes (`fiftyone_clipit.scorer.list_presets()`); feature_dim
            follows the embeddings.
        run_key ("clipit_train"): the FiftyOne run that records the training.
        device (None): torch device; None picks cuda when available, else cpu.
        overwrite (False): replace an existing checkpoint folder; without it an existing
            `output_dir` is refused before anything is read or trained.
        skip_failures (False): leave out and log videos that cannot be used instead of raising.
        progress (None): True for progress bars, or a callback(fraction, label).
        **settings: fields of `TrainingData` or `TrainingOptions`, replacing those of `data`
            and `options`: ``train_scorer(ds, "scorer/", gt_field="gt", query_field="query",
            epochs=30)``.

    Returns:
        a TrainReport with the checkpoint's path, the selected epoch and, on the validation
        videos, the F1 of the scorer, of zero-shot and of a query-blind twin trained alike
        (`fiftyone_clipit.baselines`; this doubles the training time); `report.warning` says
        when the scorer does not beat zero-shot (the model card says it too).

    Raises:
        ClipItError: `output_dir` exists (without `overwrite`), bad fields or options, no
            embeddings, too few usable videos, or a video without any positive frame (named,
            before any epoch runs).
        BatchError: some videos cannot be used (each is named, before any epoch runs and with
            nothing written); with skip_failures=True they are logged and left out instead.
    """
    data, training_options = _split_settings(data, options, settings)
    gt_field, query_field, query, captioner = data.gt_field, data.query_field, data.query, data.captioner
    n_captions, model = data.n_captions, data.model
    samples = video_collection(samples)
    gt_fields = ensure_iterable(gt_field) if gt_field is not None else []
    gt_kind = _ground_truth_kind(samples, gt_fields) if gt_fields else None
    if training_options.mode == "supervised" and not gt_fields:
        raise ClipItError("Supervised training needs gt_field (users' summaries or a per-frame importance)")
    check_checkpoint_folder(output_dir, overwrite)  # after the arguments, before any work
    source = _text_source(samples, query_field, query)
    if source != CAPTION_FREE and captioner is not None:
        raise ClipItError("A captioner gives the text of generic scorers; train with a query or a captioner, not both")
    captioner = load_captioner(captioner, device)
    if captioner is not None:
        source = text_source(None, captioner)
    dataset = root_dataset(samples)
    if not dataset.has_run(EMBEDDINGS_RUN):
        raise ClipItError(f"Dataset '{dataset.name}' has no frame embeddings; run compute_frame_embeddings first")
    run = dataset.get_run_info(EMBEDDINGS_RUN).config
    if model is not None and model.name != run.model:
        raise ClipItError(f"Frames were embedded with '{run.model}', not '{model.name}'; pass that model")
    encoder = None
    if source != CAPTION_FREE:
        encoder = model or load_clip(run.model, getattr(run, "pretrained", None), device)
    videos, failures = _training_videos(
        samples, gt_fields, gt_kind, query_field, query, encoder, run, training_options, progress,
        captioner, n_captions,
    )
    if len(videos) < 2:
        raise ClipItError(f"Only {len(videos)} usable video(s); training needs at least two. Problems: {failures[:5]}")
    finish("Preparing training videos", failures, len(videos), skip_failures)
    result = train(videos, load_preset(preset), training_options, device=device, progress=progress)
    baselines = validation_baselines(result, videos, load_preset(preset), training_options, device, progress)
    data = {
        "dataset": dataset.name,
        "clip_model": run.model,
        "fps": run.fps,
        "ground_truth": f"{gt_kind}: {gt_fields}" if gt_fields else "none",
        "text": source if source != "query field" else f"query field '{query_field}'",
        "text_source": QUERY if source in (QUERY, "query field") else source,
        "n_captions": n_captions if captioner is not None else None,
        "videos": len(videos),
    }
    metadata = {**checkpoint_metadata(result, data), "baselines": baselines}
    card = model_card(result.model.config, metadata, baseline_card_lines(baselines))
    path = save_checkpoint(output_dir, result.model, metadata, card, overwrite)
    _record_training(dataset, run_key, path, preset, training_options, gt_fields, data, result, baselines)
    return TrainReport(path, result.best_epoch, result.criterion, result.best_value,
                       len(result.train_names), len(result.validation_names), failures, baselines)


def _record_training(dataset, run_key: str, path: str, preset: str, training_options: TrainingOptions,
                     gt_fields: list[str], data: dict, result, baselines: dict) -> None:
    """Records the training as the FiftyOne run `run_key`: the checkpoint, what it learnt from,
    the epoch kept, and the validation figures beside zero-shot's and the query-blind twin's."""
    record_run(
        dataset,
        run_key,
        checkpoint=path,
        preset=preset,
        mode=training_options.mode,
        gt_fields=gt_fields,
        text=data["text"],
        text_source=data["text_source"],
        n_captions=data["n_captions"],
        best_epoch=result.best_epoch,
        criterion=result.criterion,
        validation_value=result.best_value,
        n_train=len(result.train_names),
        n_validation=len(result.validation_names),
        baselines=baselines,
    )


def _training_videos(
    samples, gt_fields, gt_kind, query_field, query, encoder, run, options, progress, captioner, n_captions
):
    """One TrainingVideo per usable sample, and a failure for each other one."""
    store = embedding_store(samples)
    columns = ["id", "filepath", "metadata"]
    if gt_kind == "summaries":
        columns += gt_fields
    elif gt_kind == "importance":
        columns += ["frames.frame_number", f"frames.{gt_fields[0]}"]
    if query_field:
        columns.append(query_field)
    table = dict(zip(columns, samples.values(columns)))
    fixed_text = encoder.encode_text(ensure_iterable(query)) if query is not None else None
    text_cache: dict[tuple, np.ndarray] = {}
    videos, failures = [], []
    for i in iterate(range(len(table["id"])), progress, "Preparing training videos"):
        row = {column: table[column][i] for column in columns}
        sample_id, path, meta = row["id"], row["filepath"], row["metadata"]
        try:
            item = store.get(sample_id)
            if item is None or item.info.get("model") != run.model:
                raise ClipItError(f"no frame embeddings by '{run.model}'; run compute_frame_embeddings")
            if meta is None or not meta.total_frame_count:
                raise ClipItError("no video metadata; add it with add_videos")
            n_frames = int(meta.total_frame_count)
            users = None
            if gt_kind == "summaries":
                users = user_masks([row[name] for name in gt_fields], n_frames)
                if not len(users):
                    raise ClipItError(f"no ground truth in {gt_fields}")
            elif gt_kind == "importance":
                users = importance_keyshot_summary(
                    row["frames.frame_number"], row[f"frames.{gt_fields[0]}"], n_frames,
                    meta.frame_rate or FALLBACK_FRAME_RATE, gt_fields[0], options.proportion,
                )
            query_text = fixed_text
            if query_field:
                sentences = tuple(ensure_iterable(row[query_field] or []))
                if not sentences or any(not isinstance(s, str) or not s.strip() for s in sentences):
                    raise ClipItError(f"no query in field '{query_field}'")
                if sentences not in text_cache:
                    text_cache[sentences] = encoder.encode_text(list(sentences))
                query_text = text_cache[sentences]
            text, _ = video_text(query_text, captioner, encoder, item.embeddings, n_captions, store, sample_id, path)
            videos.append(training_example(
                path, item, n_frames, meta.frame_rate or FALLBACK_FRAME_RATE, text, users, options.proportion,
                ShotOptions(max_segment=options.max_segment),
            ))
        except (ClipItError, ValueError) as e:
            failures.append(ItemFailure(path, str(e)))
    return videos, failures

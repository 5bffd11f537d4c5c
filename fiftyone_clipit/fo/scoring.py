"""Per-frame relevance of a text query (or of the video's own captions), written in bulk.

Two scorers: "zero-shot" (CLIP frame-query similarity, smoothed over time; the default) and a
trained CLIP-It scorer checkpoint (`train_scorer`), which replaces it. Without a query the
summary is generic: the text is the video's captions (a pluggable captioner) or, without a
captioner, the caption-free stand-in of `fiftyone_clipit.captions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np
from fiftyone import ViewField as F

from fiftyone_clipit.captions import (
    Captioner,
    check_text_source,
    load_captioner,
    text_source,
    video_text,
)
from fiftyone_clipit.checkpoints import Checkpoint, checkpoint_for
from fiftyone_clipit.defaults import (
    DEFAULT_SCORE_FIELD,
    ZERO_SHOT,
)
from fiftyone_clipit.encoders import ClipEncoder, load_clip
from fiftyone_clipit.errors import ClipItError, ItemFailure, VideoError
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    FRAMES_PER_BATCH,
    Progress,
    check_field_name,
    check_field_type,
    check_output_field,
    embedding_store,
    ensure_iterable,
    finish,
    iterate,
    record_run,
    root_dataset,
    samples_info,
    video_collection,
    write_in_chunks,
)
from fiftyone_clipit.fo.embeddings import embedding_failures, failed_to_embed
from fiftyone_clipit.fo.fieldlock import field_lock
from fiftyone_clipit.fo.lineage import (
    GO_AHEAD,
    embeddings_entry,
    merged_lineage,
    new_run_id,
    recorded_videos,
    source_problem,
)
from fiftyone_clipit.fo.shards import current_shard_run, run_fields, run_record_lock
from fiftyone_clipit.options import ScoringOptions
from fiftyone_clipit.relevance import frame_relevance
from fiftyone_clipit.scorer import predict_scores
from fiftyone_clipit.store import EmbeddingStore
from fiftyone_clipit.summary import upsample_scores


def score_run_key(score_field: str) -> str:
    """The custom run that records how `frames.<score_field>` was made."""
    return f"clipit_score_{score_field}"


def score_label_fields(score_field: str = DEFAULT_SCORE_FIELD) -> tuple[str, str, str]:
    """The frame label field and the per-video max and mean fields of `score_field`."""
    return f"{score_field}_label", f"{score_field}_max", f"{score_field}_mean"


def scored_at_steps(samples: foc.SampleCollection, score_field: str) -> bool:
    """Whether CLIP-It's score run wrote `frames.<score_field>` at the sampled steps only, so
    that every frame's score is the step function of those (`frame_scores_array(steps=True)`)."""
    dataset, key = root_dataset(samples), score_run_key(score_field)
    return dataset.has_run(key) and getattr(dataset.get_run_info(key).config, "frames", "every") == "steps"


def score_written_fields(score_field: str) -> list[str]:
    """Every field a score run of `score_field` owns: the scores and their App labels."""
    label_field, max_field, mean_field = score_label_fields(score_field)
    return [f"frames.{score_field}", f"frames.{label_field}", max_field, mean_field]


@dataclass
class ScoreReport:
    """What `score_frames` did; `captions` maps each captioned video's path to its sentences.

    `n_resumed` counts the videos an interrupted run with the same settings had finished, which
    this call left as they were.
    """

    n_scored: int = 0
    n_resumed: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    captions: dict[str, list[str]] = field(default_factory=dict)


def _check_query(query: str | list[str] | None) -> list[str] | None:
    if query is None:
        return None
    sentences = ensure_iterable(query)
    if not sentences or any(not isinstance(s, str) or not s.strip() for s in sentences):
        raise ClipItError(f"The query must be non-empty text, got {query!r} (or None for a generic summary)")
    return sentences


def score_frames(
    samples: foc.SampleCollection,
    query: str | list[str] | None = None,
    options: ScoringOptions | None = None,
    *,
    score_field: str = DEFAULT_SCORE_FIELD,
    model: str | ClipEncoder | None = None,
    overwrite: bool = False,
    allow_stale: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> ScoreReport:
    """Scores every frame of every video for a text query, or generically without one.

    Needs the frame embeddings of `compute_frame_embeddings`; text is embedded by the same
    model. Scores go to `frames.<score_field>` at the sampled steps (`frames="steps"`: a step's
    score holds until the next step, as the evaluation protocol upsamples, and every reader
    rebuilds each frame's score exactly; 15 times fewer documents at 2 fps of 30 fps video, see
    docs/scale.md) or at every frame (`frames="every"`), video by video, and the run `clipit_score_<score_field>` records
    the query, the scorer, where the text came from and, once every video is written,
    `complete=True`. Running the same call again after an interrupted one (killed, say) skips
    the videos it finished, so at most the video in flight is redone. The run also records,
    per video, what its scores were made from (the source file's fingerprint and the stamp of
    the embeddings read, see `fiftyone_clipit.fo.lineage`) and which videos failed; a video
    whose file changed since it was embedded, whose stored features hold NaN or infinity, or
    whose scores come out NaN or infinite fails, named, and nothing is written for it. One
    run at a time writes a field: a second one is refused naming the first
    (`fiftyone_clipit.fo.fieldlock`).

    Args:
        samples: a video dataset or view with frame embeddings.
        query (None): the text, or several sentences; None makes a generic summary's scores
            from the video's captions (with a `captioner`) or from the caption-free stand-in.
        options (None): a `ScoringOptions`; keyword `settings` build or replace them:
            `scorer` ("zero-shot", or the path of a checkpoint written by train_scorer),
            `smoothing_seconds` (zero-shot only: Gaussian smoothing over time), `attention` (a
            trained scorer's temporal attention: "full" over the whole video, "windowed",
            memory linear in length, or "auto", full up to 2,048 steps), `batch_size` (videos
            scored together by a trained scorer), `frames` ("steps" writes the sampled frames'
            scores only, "every" every frame's), `captioner` (generic summaries: frames ->
            sentences, see fiftyone_clipit.captions, or the folder / hub id of a transformers
            image-to-text model; captions are kept beside the embeddings and reused while the
            captioner and the file stay the same), `n_captions` (frames captioned per video),
            `captions_field` (the sample field that keeps the captions), `pretrained` (weights
            of the embeddings' model for the text; None: those the embeddings run recorded),
            `device` (torch device of the text encoder, the captioner and the scorer).
        score_field ("clipit_score"): the frame field to write.
        model (None): the embeddings' model (default) or a loaded ClipEncoder of it.
        overwrite (False): write into an existing frame field that CLIP-It did not score
            (users' scores, say); FiftyOne's built-in frame fields are refused regardless.
        allow_stale (False): score videos whose file changed since they were embedded anyway.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Called as a shard of a scheduled run (`fiftyone_clipit.fo.shards.shard_of`), the shards
    share the run's id: they hold the field's lock together, keep the videos of this run's
    finished shards (a shard whose worker died is scored again whole), and leave `complete` to
    the shard plan, which sets it when every shard is done.

    Raises:
        ClipItError: empty query, a field not free to write (another type, built in, or not
            CLIP-It's without `overwrite`), no embeddings run, a model other than the
            embeddings' one, an unknown / mismatched scorer, or another run writing the field.
        BatchError: some videos could not be scored (the others were written).
    """
    options = ScoringOptions.of(options, **settings)
    scorer, attention, device, frames = options.scorer, options.attention, options.device, options.frames
    captioner, n_captions, captions_field = options.captioner, options.n_captions, options.captions_field
    run_id = current_shard_run()
    samples = video_collection(samples)
    sentences = _check_query(query)
    check_field_name(score_field, "score field")
    check_output_field(samples, f"frames.{score_field}", score_run_key(score_field), fo.FloatField, overwrite=overwrite)
    if captioner is not None:
        check_field_name(captions_field, "captions field")
        check_field_type(samples, captions_field, fo.ListField)
    dataset = root_dataset(samples)
    if not dataset.has_run(EMBEDDINGS_RUN):
        raise ClipItError(
            f"Dataset '{dataset.name}' has no frame embeddings; run compute_frame_embeddings first"
        )
    embedded_with = dataset.get_run_info(EMBEDDINGS_RUN).config.model
    name = model.name if isinstance(model, ClipEncoder) else model
    if name is not None and name != embedded_with:
        raise ClipItError(
            f"Frames of '{dataset.name}' were embedded with '{embedded_with}', not '{name}'; "
            f"score with model='{embedded_with}' or re-embed the frames with '{name}'"
        )
    checkpoint = checkpoint_for(scorer, embedded_with, device)
    captioner = load_captioner(captioner, device) if sentences is None else None
    source = text_source(sentences, captioner)
    if checkpoint is not None:
        check_text_source(checkpoint.metadata.get("data", {}).get("text_source"), source, scorer)
    encoder = None
    if sentences is not None or captioner is not None:
        pretrained = options.pretrained or getattr(dataset.get_run_info(EMBEDDINGS_RUN).config, "pretrained", None)
        encoder = model if isinstance(model, ClipEncoder) else load_clip(embedded_with, pretrained, device)
    query_text = encoder.encode_text(sentences) if sentences is not None else None
    config = {
        "query": None if sentences is None else sentences[0] if len(sentences) == 1 else sentences,
        "text": source,
        "n_captions": n_captions if captioner is not None else None,
        "scorer": ZERO_SHOT if checkpoint is None else "checkpoint",
        "checkpoint": None if checkpoint is None else checkpoint.path,
        "scorer_preset": None if checkpoint is None else checkpoint.config.name,
        "attention": None if checkpoint is None else attention,
        "model": embedded_with,
        "smoothing_seconds": options.smoothing_seconds if checkpoint is None else None,
        "score_field": score_field,
        "frames": frames,
        "embedded_at": str(dataset.get_run_info(EMBEDDINGS_RUN).timestamp),
    }
    what = f"score_frames for {config['query']!r}" if sentences is not None else f"score_frames ({source})"
    with field_lock(dataset, f"frames.{score_field}", what, shared_by=run_id) as beat:
        writer = _ScoreWriter(
            samples, config, checkpoint, encoder, query_text, captioner, embedding_store(dataset), beat,
            options, allow_stale, run_id, not_embedded=embedding_failures(dataset),
        )
        report = writer.run(dataset, progress)
    finish("Scoring frames", report.failures, report.n_scored + report.n_resumed, skip_failures)
    return report


@dataclass
class _ScoreWriter:
    """One run of `score_frames` once it holds the field: reads, scores and writes video by
    video, and records what each video's scores were made from."""

    samples: foc.SampleCollection
    config: dict
    checkpoint: Checkpoint | None
    encoder: ClipEncoder | None
    query_text: np.ndarray | None
    captioner: Captioner | None
    store: EmbeddingStore
    beat: Callable[[], None]
    options: ScoringOptions
    allow_stale: bool
    shared_run: str | None = None
    not_embedded: dict[str, dict] = field(default_factory=dict)  # why videos failed to embed
    report: ScoreReport = field(default_factory=ScoreReport)
    entries: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    batch: list = field(default_factory=list)

    def run(self, dataset: fo.Dataset, progress: Progress) -> ScoreReport:
        """Scores every video, then records the run with its per-video lineage."""
        score_field, key = self.config["score_field"], score_run_key(self.config["score_field"])
        ids = self.samples.values("id")
        if self.shared_run is not None:  # a shard: the videos this run scored stay, the others start afresh
            run_id = self.shared_run
            finished = {i for i, e in (recorded_videos(dataset, key) or {}).items() if e.get("run") == run_id}
            todo = [i for i in ids if i not in finished]
            if todo and self.samples.get_field(f"frames.{score_field}") is not None:
                self.samples.select(todo).clear_frame_field(score_field)
        else:
            finished = _finished_by_interrupted_run(self.samples, dataset, self.config)
            resumed = getattr(dataset.get_run_info(key).config, "run_id", None) if finished is not None else None
            run_id = resumed or new_run_id()
            if finished is None:  # a new run: no score of an earlier one may pass for this one's
                finished = set()
                if self.samples.get_field(f"frames.{score_field}") is not None:
                    self.samples.clear_frame_field(score_field)
            todo = ids
        self.record(dataset, run_id, todo, {}, {}, complete=False)
        for sample_id, path, metadata in iterate(samples_info(self.samples), progress, "Scoring frames"):
            self.beat()
            if sample_id in finished:
                self.report.n_resumed += 1
                self.entries[sample_id] = {"run": run_id, **embeddings_entry(self.store, sample_id, self.store.info(sample_id))}
                continue
            self.read(sample_id, path, metadata)
            if len(self.batch) == self.options.batch_size:
                self.score_batch(run_id)
        if self.batch:
            self.score_batch(run_id)
        self.record(dataset, run_id, ids, self.entries, self.failed, complete=True)
        return self.report

    def record(self, dataset: fo.Dataset, run_id: str, ids: list[str], entries: dict, failed: dict,
               complete: bool) -> None:
        """Records the run with the lineage of `ids` replaced by `entries` / `failed`, under the
        run's record lock (a shard's `complete` and counts come from its shard plan)."""
        key = score_run_key(self.config["score_field"])
        with run_record_lock(dataset, key):
            dataset.reload()
            shards = run_fields(dataset, key) if self.shared_run is not None else {"complete": complete}
            record_run(dataset, key, **self.config, run_id=run_id, **shards,
                       written_fields=score_written_fields(self.config["score_field"]),
                       **merged_lineage(dataset, key, ids, entries, failed))

    def fail(self, sample_id: str, path: str, reason: str) -> None:
        self.report.failures.append(ItemFailure(path, reason))
        self.failed[sample_id] = reason

    def read(self, sample_id: str, path: str, metadata) -> None:
        """Reads one video's embeddings and text into the batch, or records why it fails."""
        embedded_with = self.config["model"]
        item = self.store.get(sample_id)
        if item is None and sample_id in self.not_embedded:
            return self.fail(sample_id, path, failed_to_embed(self.not_embedded[sample_id]))
        if item is None or item.info.get("model") != embedded_with:
            return self.fail(sample_id, path, f"no frame embeddings by '{embedded_with}'; run compute_frame_embeddings")
        problem = item.non_finite_problem()
        if problem is None and not self.allow_stale:
            problem = source_problem(path, item.info.get("fingerprint"), "embedded")
            problem = problem and f"{problem}, {GO_AHEAD}"
        if problem:
            return self.fail(sample_id, path, problem)
        dim = self.checkpoint.config.feature_dim if self.checkpoint is not None else None
        if dim is not None and item.embeddings.shape[1] != dim:
            return self.fail(sample_id, path, f"{item.embeddings.shape[1]}-d embeddings; the scorer reads {dim}-d")
        n_frames = metadata.total_frame_count if metadata else int(item.frame_numbers[-1])
        lie = _frame_count_mismatch(n_frames, item.info) if metadata else None
        if lie:
            return self.fail(sample_id, path, lie)
        try:
            text, sentences_of_video = video_text(
                self.query_text, self.captioner, self.encoder, item.embeddings, self.options.n_captions, self.store,
                sample_id, path,
            )
        except (ClipItError, VideoError, ValueError) as e:
            return self.fail(sample_id, path, str(e))
        if sentences_of_video:
            self.report.captions[path] = sentences_of_video
        self.batch.append((sample_id, path, n_frames, item, text, sentences_of_video))

    def score_batch(self, run_id: str) -> None:
        """Scores the batch and writes each video's scores (and captions) that are finite."""
        options, done = self.options, []
        step_scores = [None] * len(self.batch)
        if self.checkpoint is not None:
            def predict(part: list) -> list[np.ndarray]:
                return predict_scores(
                    self.checkpoint.model, [b[3].embeddings for b in part], [b[4] for b in part],
                    attention=options.attention,
                )

            step_scores = predict(self.batch)
            if len(self.batch) > 1 and not all(np.isfinite(steps).all() for steps in step_scores):
                # one video overflowing to NaN spoils its batch: score each on its own
                step_scores = [predict([b])[0] for b in self.batch]
        for (sample_id, path, n_frames, item, text, sentences_of_video), steps in zip(self.batch, step_scores):
            try:
                if steps is None:
                    scores = frame_relevance(
                        item.embeddings, item.frame_numbers, text, n_frames, item.info["fps"], options.smoothing_seconds
                    )
                else:
                    scores = upsample_scores(steps, np.asarray(item.frame_numbers) - 1, n_frames)
            except (ClipItError, ValueError) as e:
                self.fail(sample_id, path, str(e))
                continue
            n_bad = int((~np.isfinite(scores)).sum())
            if n_bad:
                self.fail(sample_id, path, (
                    f"the scorer gave {n_bad} of {n_frames} frames a NaN or infinite score (are its stored "
                    f"features sound?); nothing was written for it: re-embed it, or use another scorer"
                ))
                continue
            if self.config["frames"] == "steps":
                numbers = [int(n) for n in item.frame_numbers if 1 <= n <= n_frames]
                by_frame = {n: float(scores[n - 1]) for n in numbers}
            else:
                by_frame = {i + 1: float(s) for i, s in enumerate(scores)}
            done.append((sample_id, item.info, by_frame, sentences_of_video))
            if sum(len(d[2]) for d in done) >= FRAMES_PER_BATCH:
                self._write(run_id, done)
        self._write(run_id, done)
        self.batch.clear()

    def _write(self, run_id: str, done: list) -> None:
        """Writes the scores (and captions) of the videos scored so far in one bulk write a field
        (a dozen short videos cost one round trip, not one each), then counts them done."""
        if not done:
            return
        captions = {sample_id: sentences for sample_id, _, _, sentences in done if sentences}
        if captions:
            write_in_chunks(self.samples, self.options.captions_field, captions)
        scores = {sample_id: by_frame for sample_id, _, by_frame, _ in done}
        write_in_chunks(self.samples, f"frames.{self.config['score_field']}", scores)
        for sample_id, info, _, _ in done:
            self.entries[sample_id] = {"run": run_id, **embeddings_entry(self.store, sample_id, info)}
            self.report.n_scored += 1
        done.clear()

def _finished_by_interrupted_run(
    samples: foc.SampleCollection, dataset: fo.Dataset, config: dict
) -> set[str] | None:
    """Ids of the videos whose every frame holds a score from an unfinished run of this very
    config (which this call then resumes), or None when there is no such run to resume."""
    key = score_run_key(config["score_field"])
    if not dataset.has_run(key):
        return None
    previous = dataset.get_run_info(key).config
    if getattr(previous, "complete", True) or any(getattr(previous, k, None) != v for k, v in config.items()):
        return None
    field = config["score_field"]
    if samples.get_field(f"frames.{field}") is None:
        return set()
    scored = F("frames").filter(F(field) != None).length()
    ids, n_frames, n_scored = samples.values(["id", "metadata.total_frame_count", scored])
    if config["frames"] == "steps":  # as many scores as the video has sampled steps
        results = dataset.load_run_results(EMBEDDINGS_RUN, cache=False)
        steps = dict(getattr(results, "frames_per_video", None) or {})
        n_frames = [steps.get(i) for i in ids]
    return {i for i, want, have in zip(ids, n_frames, n_scored) if want and have == want}


def _frame_count_mismatch(n_frames: int, info: dict) -> str | None:
    """Why the sample's frame count disagrees with what the file decoded (None when it agrees).

    Scores are written for frames 1..n_frames, so metadata claiming frames the file does not have
    would make phantom frames (and too few would leave real ones unscored).
    """
    decoded = [int(n) for n in (info.get("n_decoded"), info.get("n_expected")) if n]
    if not decoded or min(abs(n_frames - n) for n in decoded) <= max(2, n_frames // 100):
        return None
    return (
        f"its metadata says {n_frames} frames but the file decodes {decoded[0]}; refresh the metadata "
        f"(dataset.compute_metadata(overwrite=True)) and score again"
    )

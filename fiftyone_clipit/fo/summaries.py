"""Summaries: shots, the best of them under a budget, a clips view and a keyframe storyboard."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.runs as fors
from fiftyone import ViewField as F
from PIL import Image

from fiftyone_clipit.cursor import frame_seconds
from fiftyone_clipit.defaults import DEFAULT_SUMMARY_FIELD, FALLBACK_FRAME_RATE
from fiftyone_clipit.errors import ClipItError, ItemFailure, VideoError
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    check_field_type,
    check_output_field,
    dataset_name,
    embedding_store,
    finish,
    frame_rows,
    iterate,
    record_run,
    retry_frame_inserts,
    root_dataset,
    store_root,
    video_collection,
    write_declared,
    write_in_chunks,
)
from fiftyone_clipit.fo.embeddings import embedding_failures, failed_to_embed
from fiftyone_clipit.fo.fieldlock import field_lock
from fiftyone_clipit.fo.lineage import (
    GO_AHEAD,
    current_fingerprint,
    embeddings_entry,
    merged_lineage,
    new_run_id,
    recorded_failures,
    recorded_videos,
    scores_problem,
    source_problem,
)
from fiftyone_clipit.fo.scoring import DEFAULT_SCORE_FIELD, score_run_key, scored_at_steps
from fiftyone_clipit.options import SummaryOptions
from fiftyone_clipit.reels import read_frames
from fiftyone_clipit.shots import (
    SummaryPlan,
    frame_scores_array,
    plan_video,
    summary_keyframes,
)
from fiftyone_clipit.store import FrameEmbeddings
from fiftyone_clipit.summary import Budget


@dataclass
class SummaryReport:
    """What `create_summary` did: the saved views to browse and what was chosen.

    Attributes:
        view_name: the saved clips view (one sample per segment).
        storyboard_view: the saved frames view of the keyframes.
        n_summarized: videos summarised.
        n_segments: segments written over all videos.
        n_shots: shots the knapsack chose from, over all videos.
        n_split_shots: shots longer than their video's budget, cut into pieces that fit.
        failures: the videos that could not be summarised, and why.
    """

    view_name: str | None = None
    storyboard_view: str | None = None
    n_summarized: int = 0
    n_segments: int = 0
    n_shots: int = 0
    n_split_shots: int = 0
    failures: list[ItemFailure] = field(default_factory=list)

    def add(self, plan: SummaryPlan) -> None:
        """Counts one video's summary."""
        self.n_summarized += 1
        self.n_segments += len(plan.segments)
        self.n_shots += plan.n_shots
        self.n_split_shots += plan.n_split_shots


def summary_run_key(summary_field: str) -> str:
    """The custom run that records how `<summary_field>` was made."""
    return f"clipit_summary_{summary_field}"


def keyframe_field(summary_field: str) -> str:
    """The frame field that ranks a summary's keyframes (1 = best)."""
    return f"{summary_field}_keyframe"


class SummaryRunConfig(fors.RunConfig):
    """The `clipit_summary_<field>` run: the `SummaryOptions` it planned with (`options()`),
    the score field, the label, the fields it wrote, per-video budgets of the panel, and per
    video what each summary was made from (`fiftyone_clipit.fo.lineage`)."""

    def options(self) -> SummaryOptions:
        """The options recorded (records made before this class existed read the same)."""
        return SummaryOptions.from_dict(self.serialize())


class SummaryRun(fors.Run):
    """The run class FiftyOne builds from SummaryRunConfig."""


def create_summary(
    samples: foc.SampleCollection,
    options: SummaryOptions | None = None,
    *,
    score_field: str = DEFAULT_SCORE_FIELD,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    label: str | None = None,
    overwrite: bool = False,
    allow_stale: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> SummaryReport:
    """Summarises every video: shots, shot score = mean frame score, an exact 0/1 knapsack.

    Shots come from kernel temporal segmentation of the stored frame embeddings ("kts", see
    `fiftyone_clipit.segmentation`), fixed-length cuts ("uniform") or a TemporalDetections field
    of your own ("shots"). A shot longer than the whole budget is cut into pieces that fit
    (counted in `n_split_shots`), so a very short budget still gets its best moment. Adjacent
    chosen shots become one segment, written to `<summary_field>` as TemporalDetections
    (label = the query, confidence = the segment's mean frame score, support = [first, last]
    frame numbers). Two views are saved on the dataset: `<summary_field>_clips` (one clip per
    segment) and `<summary_field>_storyboard`, a frames view of each summary's keyframes: its
    highest-scoring frames that are not near-duplicates (cosine of their embeddings <= 0.9,
    at least 1 s apart; when fewer than `n_keyframes` differ, the best of the others make up
    the number), ranked in `frames.<summary_field>_keyframe`. A video embedded with
    on_broken="keep" is summarised within the frames that decoded. Each video is planned by
    the core's `fiftyone_clipit.shots.plan_video`, as the panel's preview is.

    Args:
        samples: a video dataset or view whose frames carry `score_field`.
        options (None): a `SummaryOptions` (budget, segmentation and its settings, rounding,
            keyframes); None takes the defaults. `settings` given as keyword arguments replace
            some of them: ``create_summary(ds, budget=Budget.parse("45s"), segmentation="uniform")``.
        score_field ("clipit_score"): the frame field with relevance scores.
        summary_field ("clipit_summary"): the sample field to write.
        label (None): the detections' label; None takes the query recorded by score_frames.
        overwrite (False): write into an existing `summary_field` that CLIP-It did not write
            (ground truth, say); FiftyOne's built-in fields are refused regardless.
        allow_stale (False): summarise videos whose inputs are stale anyway (see below).
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    The run `clipit_summary_<summary_field>` (a `SummaryRunConfig`) records the options when
    summaries are written (as in progress until the last one is); a run that writes none,
    refused or failed for every video, leaves the field and its run as they were. The run
    records per video what its summary was made from (the score run, the source file's
    fingerprint, the embeddings' stamp; see `fiftyone_clipit.fo.lineage`) and names the
    videos that failed: a video that fails keeps its old summary, known to be stale, so
    `export_summary` refuses it. A video whose file changed since it was embedded, whose
    scores are older than its embeddings, or whose stored features hold NaN or infinity fails
    with the remedy, unless `allow_stale` (features never). One run at a time writes a field
    (`fiftyone_clipit.fo.fieldlock`).

    Raises:
        ClipItError: not videos, no numeric `score_field`, `summary_field` is not free to
            write (another type, a built-in field, or not CLIP-It's without `overwrite`), or
            another run is writing it.
        ValueError: an option out of range (named with the valid values).
        BatchError: some videos could not be summarised (the others were written).
    """
    options = SummaryOptions.of(options, **settings)
    samples = video_collection(samples)
    check_field_name(score_field, "score field")
    check_field_name(summary_field, "summary field")
    run_key = summary_run_key(summary_field)
    check_output_field(samples, summary_field, run_key, fo.EmbeddedDocumentField, fo.TemporalDetections, overwrite)
    check_output_field(samples, f"frames.{keyframe_field(summary_field)}", run_key, fo.IntField, overwrite=overwrite)
    _check_shots_field(samples, options)
    _check_score_field(samples, score_field)
    dataset = root_dataset(samples)
    label = _summary_label(dataset, score_field) if label is None else label
    what = f"create_summary from 'frames.{score_field}' (budget {options.budget})"
    with field_lock(dataset, summary_field, what) as beat:
        inputs = _SummaryInputs.read(samples, options, score_field, allow_stale)
        report, made = SummaryReport(), _MadeSummaries()
        for row in iterate(frame_rows(samples, inputs.fields), progress, "Summarising", total=len(inputs.ids)):
            beat()
            try:
                plan, keyframes, entry = inputs.summarize(row)
            except (ValueError, VideoError) as e:
                made.failed[row[0]] = str(e)
                report.failures.append(ItemFailure(row[1], str(e)))
                continue
            made.add(row[0], plan, label, keyframes, entry)
            report.add(plan)
        if made.values:
            settings = dict(
                options.to_dict(), score_field=score_field, summary_field=summary_field, label=label,
                written_fields=[summary_field, f"frames.{keyframe_field(summary_field)}"], run_id=new_run_id(),
                **merged_lineage(dataset, run_key, inputs.ids, made.entries, made.failed),
            )
            _write_summaries(dataset, samples, summary_field, settings, made, report)
    finish("Summarising", report.failures, report.n_summarized, skip_failures)
    return report


def _summary_label(dataset: fo.Dataset, score_field: str) -> str:
    """The query score_frames recorded for `score_field`, else a label naming the field."""
    key = score_run_key(score_field)
    query = dataset.get_run_info(key).config.query if dataset.has_run(key) else None
    return str(query) if query is not None else f"summary ({score_field})"


@dataclass
class _SummaryInputs:
    """What `create_summary` reads once for the collection (its frames are read a run of videos
    at a time, `frame_rows`), and the plan of one video from a row of them."""

    fields: list[str]
    ids: list[str]
    options: SummaryOptions
    score_field: str
    allow_stale: bool
    dataset: fo.Dataset
    store: Any
    has_images: dict[str, set[int]]
    scores_made: dict
    not_embedded: dict[str, str]
    at_steps: bool

    @classmethod
    def read(cls, samples, options: SummaryOptions, score_field: str, allow_stale: bool) -> _SummaryInputs:
        fields = ["id", "filepath", "metadata", "frames.frame_number", f"frames.{score_field}"]
        fields += [options.shots_field] if options.shots_field else []
        dataset = root_dataset(samples)
        return cls(
            fields, samples.values("id"), options, score_field, allow_stale, dataset, embedding_store(samples),
            _frames_with_images(samples), recorded_videos(dataset, score_run_key(score_field)) or {},
            embedding_failures(dataset), scored_at_steps(dataset, score_field),
        )

    def summarize(self, row: tuple) -> tuple[SummaryPlan, tuple, dict]:
        """(plan, (keyframes, their new images), lineage entry) of the video of `row`.

        Raises:
            ValueError, VideoError: why the video cannot be summarised, with the remedy.
        """
        sample_id, path, meta, numbers, scores = row[:5]
        if meta is None or not meta.total_frame_count:
            raise ValueError("no video metadata; add it with add_videos")
        item = self.store.get(sample_id)
        if item is None and sample_id in self.not_embedded and all(s is None for s in scores):
            raise ValueError(failed_to_embed(self.not_embedded[sample_id]))  # not "run score_frames"
        _check_inputs(item, path, self.store, sample_id, self.scores_made.get(sample_id), self.score_field,
                      self.allow_stale)
        n_frames = item.frames_that_exist(meta.total_frame_count) if item else meta.total_frame_count
        frame_scores = frame_scores_array(numbers, scores, n_frames, self.score_field, self.at_steps)
        given = _supports(row[5]) if self.options.shots_field else None
        plan = plan_video(self.options, frame_scores, meta.frame_rate, item, given)
        n_keyframes = self.options.n_keyframes
        rate = meta.frame_rate or FALLBACK_FRAME_RATE
        seconds = frame_seconds(path, n_frames, rate) if n_keyframes else None
        chosen = summary_keyframes(frame_scores, plan.segments, item, seconds, n_keyframes)
        images = _save_keyframe_images(self.dataset, sample_id, path, [n for n, _ in chosen], self.has_images)
        return plan, (chosen, images), self._made_from(sample_id, path, item)

    def _made_from(self, sample_id: str, path: str, item: FrameEmbeddings | None) -> dict:
        """The lineage entry of one video: its score run, source and embeddings."""
        scored = self.scores_made.get(sample_id) or {}
        made_from = embeddings_entry(self.store, sample_id, item.info if item else None)
        made_from["source"] = made_from["source"] or scored.get("source") or current_fingerprint(path)
        return {"score_field": self.score_field, "scores": scored.get("run"), **made_from}


@dataclass
class _MadeSummaries:
    """The summaries planned so far: values to write, keyframes, lineage entries, failures."""

    values: dict[str, fo.TemporalDetections] = field(default_factory=dict)
    keyframes: dict[str, tuple] = field(default_factory=dict)
    entries: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def add(self, sample_id: str, plan: SummaryPlan, label: str, keyframes: tuple, entry: dict) -> None:
        self.values[sample_id] = _detections(plan.segments, label)
        self.keyframes[sample_id] = keyframes
        self.entries[sample_id] = entry


def _detections(segments, label: str | None) -> fo.TemporalDetections:
    """A summary's segments as TemporalDetections of 1-based inclusive frame supports."""
    return fo.TemporalDetections(detections=[
        fo.TemporalDetection(label=label, support=[first + 1, last + 1], confidence=score)
        for first, last, score in segments
    ])


def _write_summaries(dataset: fo.Dataset, samples, summary_field: str, settings: dict, made: _MadeSummaries,
                     report: SummaryReport) -> None:
    """Writes the summaries, their clips view and storyboard, recording the run as in progress
    until the last of them is written."""
    run_key = summary_run_key(summary_field)
    record_run(dataset, run_key, config_class=SummaryRunConfig, **settings, complete=False)
    write_in_chunks(samples, summary_field, made.values)
    dataset.reload()  # another process (the App's server) may hold an older schema
    report.view_name = f"{summary_field}_clips"
    dataset.save_view(report.view_name, dataset.to_clips(summary_field), overwrite=True)
    report.storyboard_view = _write_storyboard(dataset, samples, summary_field, made.keyframes)
    record_run(dataset, run_key, config_class=SummaryRunConfig, **settings, complete=True)


def _check_score_field(samples: foc.SampleCollection, score_field: str) -> None:
    """Refuses a score field that does not exist or does not hold numbers, before any work."""
    field = samples.get_field(f"frames.{score_field}")
    if field is None:
        raise ClipItError(
            f"'{dataset_name(samples)}' has no frame field 'frames.{score_field}'; run score_frames "
            f"(--score-field {score_field}) or name the frame field that holds the scores"
        )
    if not isinstance(field, (fo.FloatField, fo.IntField)) or isinstance(field, fo.FrameNumberField):
        raise ClipItError(
            f"'frames.{score_field}' is a {type(field).__name__}, not scores; name the FloatField "
            f"written by score_frames (or another numeric frame field)"
        )


def _check_inputs(item: FrameEmbeddings | None, path: str, store, sample_id: str, scored: dict | None,
                  score_field: str, allow_stale: bool) -> None:
    """Refuses one video's inputs when its features are not finite, or (unless `allow_stale`)
    its file changed since it was embedded or scored, or its scores predate its embeddings.

    Raises:
        ValueError: naming what is stale and the remedy.
    """
    problem = item.non_finite_problem() if item is not None else None
    if problem is None and not allow_stale:
        recorded = item.info.get("fingerprint") if item is not None else (scored or {}).get("source")
        problem = source_problem(path, recorded, "embedded" if item is not None else "scored")
        problem = problem or scores_problem(scored, store, sample_id, score_field)
        problem = problem and f"{problem}, {GO_AHEAD}"
    if problem:
        raise ValueError(problem)


def stale_summaries(samples: foc.SampleCollection, summary_field: str) -> dict[str, str]:
    """Sample id -> why its summary in `summary_field` may not be shipped as current, for each
    video of `samples` whose summary is stale.

    Stale: the last summary run failed for the video (its old summary was kept), its source
    file changed since it was summarised, or its scores changed since (scored again, or
    scoring it again failed). Summaries without records (made by hand, or by a version of
    CLIP-It that recorded none) are not checked.
    """
    dataset = root_dataset(samples)
    run_key = summary_run_key(summary_field)
    made = recorded_videos(dataset, run_key)
    if made is None:
        return {}
    failed = recorded_failures(dataset, run_key)
    scores_made: dict[str, dict | None] = {}
    stale = {}
    for sample_id, path, summary in zip(*samples.values(["id", "filepath", summary_field])):
        if summary is None:
            continue
        entry = made.get(sample_id)
        if entry is None:
            why = f"summarising it again failed: {failed[sample_id]}" if sample_id in failed else "no run of create_summary wrote it"
            stale[sample_id] = f"its '{summary_field}' is left from an earlier run ({why}); summarize it again"
            continue
        problem = source_problem(path, entry.get("source"), "summarised")
        score_field = entry.get("score_field")
        if problem is None and score_field:
            if score_field not in scores_made:
                scores_made[score_field] = recorded_videos(dataset, score_run_key(score_field))
            scored = scores_made[score_field]
            if scored is not None and (scored.get(sample_id) or {}).get("run") != entry.get("scores"):
                problem = (
                    f"its scores 'frames.{score_field}' changed after it was summarised (scored again, "
                    f"or scoring it again failed); summarize it again (create_summary, fiftyone-clipit summarize)"
                )
        if problem:
            stale[sample_id] = problem
    return stale

def _check_shots_field(samples: foc.SampleCollection, options: SummaryOptions) -> None:
    """Refuses a shots field that is not a TemporalDetections field of the collection."""
    if options.segmentation != "shots":
        return
    check_field_name(options.shots_field, "shots field")
    if samples.get_field(options.shots_field) is None:
        raise ValueError(f"shots_field '{options.shots_field}' does not exist on this collection")
    check_field_type(samples, options.shots_field, fo.EmbeddedDocumentField, fo.TemporalDetections)


def _supports(detections) -> list[tuple[int, int]]:
    """The [first, last] frames of a TemporalDetections field's value (none: empty)."""
    return [tuple(d.support) for d in (detections.detections if detections is not None else [])]


def _frames_with_images(samples) -> dict[str, set[int]]:
    """Frame numbers that already have an image (`frames.filepath`), per sample id."""
    if samples.get_field("frames.filepath") is None:
        return {}
    ids, numbers = samples.match_frames(F("filepath") != None).values(["id", "frames.frame_number"])
    return {sample_id: set(frames) for sample_id, frames in zip(ids, numbers)}


def _save_keyframe_images(dataset, sample_id: str, path: str, numbers: list[int], has_images) -> dict[int, str]:
    """JPEGs of the keyframes that have no frame image yet, kept beside the embeddings."""
    numbers = [n for n in numbers if n not in has_images.get(sample_id, ())]
    if not numbers:
        return {}
    folder = os.path.join(store_root(dataset), "keyframes", sample_id)
    os.makedirs(folder, exist_ok=True)
    written = {}
    for number, image in zip(numbers, read_frames(path, numbers, width=480)):
        target = os.path.join(folder, f"{number:06d}.jpg")
        Image.fromarray(image).save(target, quality=90)
        written[number] = target
    return written


def _write_storyboard(dataset: fo.Dataset, samples, summary_field: str, keyframes: dict) -> str | None:
    """Ranks the keyframes in a frame field (clearing earlier ranks) and saves their frames view."""
    rank_field = keyframe_field(summary_field)
    updates: dict[str, dict[int, int | None]] = {sample_id: {} for sample_id in keyframes}
    if dataset.get_field(f"frames.{rank_field}") is not None:
        old = samples.select(list(keyframes)).match_frames(F(rank_field) != None)
        for sample_id, numbers in zip(*old.values(["id", "frames.frame_number"])):
            updates[sample_id] = {number: None for number in numbers}
    for sample_id, (chosen, _) in keyframes.items():
        updates[sample_id].update({number: rank for number, rank in chosen})
    updates = {sample_id: ranks for sample_id, ranks in updates.items() if ranks}
    if updates:  # none without keyframes (n_keyframes=0) and no earlier ranks to clear
        write_declared(
            dataset,
            f"frames.{rank_field}",
            lambda: retry_frame_inserts(lambda: dataset.set_values(f"frames.{rank_field}", updates, key_field="id")),
        )
    images = {sample_id: paths for sample_id, (_, paths) in keyframes.items() if paths}
    if images:
        dataset.set_values("frames.filepath", images, key_field="id")
    if not any(chosen for chosen, _ in keyframes.values()):
        return None
    name = f"{summary_field}_storyboard"
    view = dataset.match_frames(F(rank_field) != None).to_frames()
    dataset.save_view(name, view, overwrite=True)
    return name


def summary_options(samples: foc.SampleCollection, summary_field: str = DEFAULT_SUMMARY_FIELD) -> SummaryOptions:
    """The `SummaryOptions` the run of `summary_field` recorded (also from records made before
    the options existed).

    Raises:
        ClipItError: no summary run for `summary_field`.
    """
    return SummaryOptions.from_dict(_summary_config(samples, summary_field).serialize())


def summary_settings(samples: foc.SampleCollection, summary_field: str = DEFAULT_SUMMARY_FIELD) -> dict:
    """The `create_summary` keyword arguments its run recorded for `summary_field`: the options,
    the score field and the label.

    Raises:
        ClipItError: no summary run for `summary_field`.
    """
    config = _summary_config(samples, summary_field)
    options = SummaryOptions.from_dict(config.serialize())
    return {**vars(options), "score_field": config.score_field, "label": getattr(config, "label", None)}


def _summary_config(samples: foc.SampleCollection, summary_field: str) -> fors.RunConfig:
    dataset = root_dataset(samples)
    run_key = summary_run_key(summary_field)
    if not dataset.has_run(run_key):
        raise ClipItError(f"'{dataset.name}' has no summary in '{summary_field}'; run create_summary first")
    return dataset.get_run_info(run_key).config


def video_budget(samples: foc.SampleCollection, sample_id: str, summary_field: str = DEFAULT_SUMMARY_FIELD) -> Budget:
    """The budget one video's summary was planned with: its own (`replan_video_summary`) or the run's."""
    config = _summary_config(samples, summary_field)
    own = (getattr(config, "video_budgets", None) or {}).get(sample_id)
    return SummaryOptions.from_dict(config.serialize()).budget if own is None else Budget.from_record(*own)


def plan_video_summary(
    samples: foc.SampleCollection, sample_id: str, budget: Budget | float, summary_field: str = DEFAULT_SUMMARY_FIELD
) -> fo.TemporalDetections:
    """One video's summary re-planned in memory under `budget` with its run's other settings.

    Nothing is written: the CLIP-It panel previews a budget with this. Shots are made as the
    run made them (`fiftyone_clipit.shots.plan_video`, as `create_summary` plans), so the
    preview is what `replan_video_summary` writes.

    Raises:
        ClipItError: no summary run, or the sample is not in the dataset.
        ValueError: a bad budget, missing scores, or a budget that keeps nothing.
    """
    return _planned(samples, sample_id, budget, summary_field)[0]


def replan_video_summary(
    samples: foc.SampleCollection, sample_id: str, budget: Budget | float, summary_field: str = DEFAULT_SUMMARY_FIELD
) -> fo.TemporalDetections:
    """Re-plans one video's summary under `budget` and writes it, with its keyframes.

    The run keeps its own budget for the other videos and records this one's in
    `video_budgets` (a later `create_summary` replaces both).

    Raises:
        ClipItError, ValueError: as `plan_video_summary`; nothing is written then.
    """
    detections, frame_scores, segments, item, (path, rate) = _planned(samples, sample_id, budget, summary_field)
    dataset = root_dataset(samples)
    config = _summary_config(dataset, summary_field)
    n_keyframes = SummaryOptions.from_dict(config.serialize()).n_keyframes
    seconds = frame_seconds(path, len(frame_scores), rate) if n_keyframes else None
    chosen = summary_keyframes(frame_scores, segments, item, seconds, n_keyframes)
    images = _save_keyframe_images(dataset, sample_id, path, [n for n, _ in chosen],
                                   _frames_with_images(dataset.select(sample_id)))
    recorded = {k: v for k, v in config.serialize().items() if k not in ("cls", "type", "method", "video_budgets")}
    budgets = dict(getattr(config, "video_budgets", None) or {}, **{sample_id: list(Budget.of(budget).record())})
    write_in_chunks(dataset, summary_field, {sample_id: detections})
    _write_storyboard(dataset, dataset.select(sample_id), summary_field, {sample_id: (chosen, images)})
    record_run(dataset, summary_run_key(summary_field), config_class=SummaryRunConfig, **recorded, video_budgets=budgets)
    return detections


def _planned(samples, sample_id: str, budget, summary_field: str):
    """(detections, frame scores, segments, embeddings item, (path, frame rate)) of one re-planned video."""
    dataset = root_dataset(samples)
    config = _summary_config(dataset, summary_field)
    options = SummaryOptions.from_dict(config.serialize())
    options = SummaryOptions.of(options, budget=Budget.of(budget))
    view = dataset.select(sample_id)
    if len(view) == 0:
        raise ClipItError(f"Sample '{sample_id}' is not in '{dataset.name}'")
    score_field, shots_field = config.score_field, options.shots_field
    fields = ["filepath", "metadata", "frames.frame_number", f"frames.{score_field}"] + ([shots_field] if shots_field else [])
    path, meta, numbers, scores, *given = (values[0] for values in view.values(fields))
    if meta is None or not meta.total_frame_count:
        raise ClipItError(f"Video '{path}' has no metadata; add it with add_videos")
    item = embedding_store(dataset).get(sample_id)
    n_frames = item.frames_that_exist(meta.total_frame_count) if item else meta.total_frame_count
    frame_scores = frame_scores_array(numbers, scores, n_frames, score_field, scored_at_steps(dataset, score_field))
    plan = plan_video(options, frame_scores, meta.frame_rate, item, _supports(given[0]) if given else None)
    detections = _detections(plan.segments, getattr(config, "label", None))
    return detections, frame_scores, plan.segments, item, (path, meta.frame_rate or FALLBACK_FRAME_RATE)

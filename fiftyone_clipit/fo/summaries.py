"""Summaries: shots, the best of them under a budget, a clips view and a keyframe storyboard."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.core.collections as foc
from fiftyone import ViewField as F
from PIL import Image

from fiftyone_clipit.defaults import DEFAULT_BUDGET, DEFAULT_SUMMARY_FIELD, FALLBACK_FRAME_RATE
from fiftyone_clipit.cursor import frame_seconds
from fiftyone_clipit.errors import ClipItError, ItemFailure, VideoError
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    check_field_type,
    check_number,
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
from fiftyone_clipit.reels import read_frames
from fiftyone_clipit.store import FrameEmbeddings
from fiftyone_clipit.shots import (
    SEGMENTATIONS,
    ShotOptions,
    frame_scores_array,
    shots_for_video,
    summary_keyframes,
)
from fiftyone_clipit.summary import (
    ROUNDING_MODES,
    Budget,
    budget_capacity,
    select_segments,
    split_long_shots,
)

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


def summary_run_key(summary_field: str) -> str:
    """The custom run that records how `<summary_field>` was made."""
    return f"clipit_summary_{summary_field}"


def keyframe_field(summary_field: str) -> str:
    """The frame field that ranks a summary's keyframes (1 = best)."""
    return f"{summary_field}_keyframe"


def create_summary(
    samples: foc.SampleCollection,
    score_field: str = DEFAULT_SCORE_FIELD,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    budget: Budget | float = DEFAULT_BUDGET,
    segmentation: str = "kts",
    min_segment: float | None = None,
    max_segment: float = 60.0,
    segment_seconds: float = 2.0,
    shots_field: str | None = None,
    rounding: str = "floor",
    n_keyframes: int = 8,
    label: str | None = None,
    overwrite: bool = False,
    allow_stale: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
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
    on_broken="keep" is summarised within the frames that decoded.

    Args:
        samples: a video dataset or view whose frames carry `score_field`.
        score_field ("clipit_score"): the frame field with relevance scores.
        summary_field ("clipit_summary"): the sample field to write.
        budget (0.15): a `Budget` (``Budget(seconds=45)``, ``Budget.parse("45s")``) or a number,
            the fraction of each video in (0, 1].
        segmentation ("kts"): "kts", "uniform" or "shots".
        min_segment (None): "kts" only: the shortest shot in seconds; None = one sampled step.
        max_segment (60.0): "kts" only: the longest shot in seconds (bounds KTS's memory).
        segment_seconds (2.0): "uniform" only: the shot length.
        shots_field (None): "shots" only: a TemporalDetections field holding each video's shots.
        rounding ("floor"): how a fractional budget is rounded: one of `ROUNDING_MODES`.
        n_keyframes (8): keyframes per video in the storyboard (0 for none).
        label (None): the detections' label; None takes the query recorded by score_frames.
        overwrite (False): write into an existing `summary_field` that CLIP-It did not write
            (ground truth, say); FiftyOne's built-in fields are refused regardless.
        allow_stale (False): summarise videos whose inputs are stale anyway (see below).
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    The run `clipit_summary_<summary_field>` records the settings when summaries are written
    (as in progress until the last one is); a run that writes none, refused or failed for
    every video, leaves the field and its run as they were. The run records per video what
    its summary was made from (the score run, the source file's fingerprint, the embeddings'
    stamp; see `fiftyone_clipit.fo.lineage`) and names the videos that failed: a video that
    fails keeps its old summary, known to be stale, so `export_summary` refuses it. A video
    whose file changed since it was embedded, whose scores are older than its embeddings, or
    whose stored features hold NaN or infinity fails with the remedy, unless `allow_stale`
    (features never). One run at a time writes a field (`fiftyone_clipit.fo.fieldlock`).

    Raises:
        ClipItError: not videos, no numeric `score_field`, `summary_field` is not free to
            write (another type, a built-in field, or not CLIP-It's without `overwrite`), or
            another run is writing it.
        ValueError: an option out of range (named with the valid values).
        BatchError: some videos could not be summarised (the others were written).
    """
    samples = video_collection(samples)
    check_field_name(score_field, "score field")
    check_field_name(summary_field, "summary field")
    run_key = summary_run_key(summary_field)
    check_output_field(samples, summary_field, run_key, fo.EmbeddedDocumentField, fo.TemporalDetections, overwrite)
    check_output_field(samples, f"frames.{keyframe_field(summary_field)}", run_key, fo.IntField, overwrite=overwrite)
    budget = Budget.of(budget)
    shots = _check_options(samples, segmentation, min_segment, max_segment, segment_seconds,
                           shots_field, rounding, n_keyframes)
    _check_score_field(samples, score_field)
    dataset = root_dataset(samples)
    if label is None:
        key = score_run_key(score_field)
        query = dataset.get_run_info(key).config.query if dataset.has_run(key) else None
        label = str(query) if query is not None else f"summary ({score_field})"
    fields = ["id", "filepath", "metadata", "frames.frame_number", f"frames.{score_field}"]
    if shots.shots_field:
        fields.append(shots.shots_field)
    what = f"create_summary from 'frames.{score_field}' (budget {budget})"
    with field_lock(dataset, summary_field, what) as beat:
        ids = samples.values("id")
        at_steps = scored_at_steps(dataset, score_field)
        store = embedding_store(samples)
        has_images = _frames_with_images(samples)
        scores_made = recorded_videos(dataset, score_run_key(score_field)) or {}
        not_embedded = embedding_failures(dataset)
        report, values, keyframes, entries, failed = SummaryReport(), {}, {}, {}, {}
        for row in iterate(frame_rows(samples, fields), progress, "Summarising", total=len(ids)):
            beat()
            sample_id, path, meta = row[:3]
            if meta is None or not meta.total_frame_count:
                failed[sample_id] = "no video metadata; add it with add_videos"
                report.failures.append(ItemFailure(path, failed[sample_id]))
                continue
            try:
                item = store.get(sample_id)
                if item is None and sample_id in not_embedded and all(s is None for s in row[4]):
                    raise ValueError(failed_to_embed(not_embedded[sample_id]))  # not "run score_frames"
                _check_inputs(item, path, store, sample_id, scores_made.get(sample_id), score_field, allow_stale)
                n_frames = item.frames_that_exist(meta.total_frame_count) if item else meta.total_frame_count
                frame_scores = frame_scores_array(row[3], row[4], n_frames, score_field, at_steps)
                capacity = budget_capacity(n_frames, meta.frame_rate or 0.0, budget, rounding)
                if capacity < 1:
                    raise ValueError(f"the budget {budget} gives 0 frames of this video; raise it")
                given = _supports(row[5]) if shots.shots_field else None
                change_points = shots_for_video(shots, n_frames, meta.frame_rate or FALLBACK_FRAME_RATE, item, capacity, given)
                fitting = split_long_shots(change_points, capacity)
                segments = select_segments(frame_scores, fitting, capacity=capacity)
                if not segments:
                    raise ValueError("no shot has a positive mean score, so the knapsack keeps nothing")
                seconds = frame_seconds(path, n_frames, meta.frame_rate or FALLBACK_FRAME_RATE) if n_keyframes else None
                chosen = summary_keyframes(frame_scores, segments, item, seconds, n_keyframes)
                images = _save_keyframe_images(dataset, sample_id, path, [n for n, _ in chosen], has_images)
            except (ValueError, VideoError) as e:
                failed[sample_id] = str(e)
                report.failures.append(ItemFailure(path, str(e)))
                continue
            scored = scores_made.get(sample_id) or {}
            made_from = embeddings_entry(store, sample_id, item.info if item else None)
            made_from["source"] = made_from["source"] or scored.get("source") or current_fingerprint(path)
            entries[sample_id] = {"score_field": score_field, "scores": scored.get("run"), **made_from}
            values[sample_id] = fo.TemporalDetections(
                detections=[
                    fo.TemporalDetection(label=label, support=[first + 1, last + 1], confidence=score)
                    for first, last, score in segments
                ]
            )
            keyframes[sample_id] = (chosen, images)
            report.n_summarized += 1
            report.n_segments += len(segments)
            report.n_shots += len(fitting)
            report.n_split_shots += len(fitting) - len(change_points)
        if values:
            amount, kind = budget.record()
            settings = dict(
                score_field=score_field,
                summary_field=summary_field,
                written_fields=[summary_field, f"frames.{keyframe_field(summary_field)}"],
                budget=amount,
                budget_unit=kind,
                rounding=rounding,
                segmentation=segmentation,
                min_segment=min_segment,
                max_segment=max_segment,
                segment_seconds=segment_seconds,
                shots_field=shots_field,
                n_keyframes=n_keyframes,
                label=label,
                run_id=new_run_id(),
                **merged_lineage(dataset, run_key, ids, entries, failed),
            )
            record_run(dataset, run_key, **settings, complete=False)
            write_in_chunks(samples, summary_field, values)
            dataset.reload()  # another process (the App's server) may hold an older schema
            report.view_name = f"{summary_field}_clips"
            dataset.save_view(report.view_name, dataset.to_clips(summary_field), overwrite=True)
            report.storyboard_view = _write_storyboard(dataset, samples, summary_field, keyframes)
            record_run(dataset, run_key, **settings, complete=True)
    finish("Summarising", report.failures, report.n_summarized, skip_failures)
    return report


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

def _check_options(samples, segmentation, min_segment, max_segment, segment_seconds,
                   shots_field, rounding, n_keyframes) -> ShotOptions:
    if segmentation not in SEGMENTATIONS:
        raise ValueError(f"Unknown segmentation {segmentation!r}. Valid ones are {list(SEGMENTATIONS)}")
    if rounding not in ROUNDING_MODES[:2]:
        raise ValueError(f"Unknown rounding {rounding!r}. Valid ones are {list(ROUNDING_MODES[:2])}")
    if min_segment is not None and segmentation != "kts":
        raise ValueError(
            f"min_segment applies to segmentation='kts'; for {segmentation!r} use "
            f"{'segment_seconds' if segmentation == 'uniform' else 'the shots you give'}"
        )
    if min_segment is not None:
        check_number(min_segment, "min_segment")
    check_number(max_segment, "max_segment")
    if min_segment is not None and max_segment < 2 * min_segment:
        raise ValueError(f"max_segment must be at least twice min_segment, got {max_segment!r} (min_segment {min_segment!r})")
    check_number(segment_seconds, "segment_seconds")
    check_number(n_keyframes, "n_keyframes", integer=True, inclusive=True)
    if segmentation == "shots":
        if not shots_field:
            raise ValueError("segmentation='shots' needs shots_field, a TemporalDetections field")
        check_field_name(shots_field, "shots field")
        if samples.get_field(shots_field) is None:
            raise ValueError(f"shots_field '{shots_field}' does not exist on this collection")
        check_field_type(samples, shots_field, fo.EmbeddedDocumentField, fo.TemporalDetections)
    elif shots_field:
        raise ValueError(f"shots_field is only used with segmentation='shots', not {segmentation!r}")
    return ShotOptions(segmentation, min_segment, max_segment, segment_seconds, shots_field)


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


def summary_settings(samples: foc.SampleCollection, summary_field: str = DEFAULT_SUMMARY_FIELD) -> dict:
    """The `create_summary` keyword arguments its run recorded for `summary_field` (budget included).

    Raises:
        ClipItError: no summary run for `summary_field`.
    """
    dataset = root_dataset(samples)
    run_key = summary_run_key(summary_field)
    if not dataset.has_run(run_key):
        raise ClipItError(f"'{dataset.name}' has no summary in '{summary_field}'; run create_summary first")
    config = dataset.get_run_info(run_key).config
    names = ("score_field", "segmentation", "min_segment", "max_segment", "segment_seconds", "shots_field",
             "rounding", "n_keyframes", "label")
    settings = {name: getattr(config, name) for name in names if getattr(config, name, None) is not None}
    settings["budget"] = Budget.from_record(config.budget, getattr(config, "budget_unit", "fraction"))
    return settings


def video_budget(samples: foc.SampleCollection, sample_id: str, summary_field: str = DEFAULT_SUMMARY_FIELD) -> Budget:
    """The budget one video's summary was planned with: its own (`replan_video_summary`) or the run's."""
    settings = summary_settings(samples, summary_field)
    config = root_dataset(samples).get_run_info(summary_run_key(summary_field)).config
    own = (getattr(config, "video_budgets", None) or {}).get(sample_id)
    return settings["budget"] if own is None else Budget.from_record(*own)


def plan_video_summary(
    samples: foc.SampleCollection, sample_id: str, budget: Budget | float, summary_field: str = DEFAULT_SUMMARY_FIELD
) -> fo.TemporalDetections:
    """One video's summary re-planned in memory under `budget` with its run's other settings.

    Nothing is written: the CLIP-It panel previews a budget with this. Shots are made as the
    run made them (`fiftyone_clipit.replan.replan_segments`), so the preview is what
    `replan_video_summary` writes.

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
    settings = summary_settings(dataset, summary_field)
    run_info = dataset.get_run_info(summary_run_key(summary_field)).config.serialize()
    n_keyframes = settings.get("n_keyframes", 0)
    seconds = frame_seconds(path, len(frame_scores), rate) if n_keyframes else None
    chosen = summary_keyframes(frame_scores, segments, item, seconds, n_keyframes)
    images = _save_keyframe_images(dataset, sample_id, path, [n for n, _ in chosen],
                                   _frames_with_images(dataset.select(sample_id)))
    budgets = dict(run_info.get("video_budgets") or {}, **{sample_id: list(Budget.of(budget).record())})
    recorded = {k: v for k, v in run_info.items() if k not in ("cls", "type", "method", "video_budgets")}
    write_in_chunks(dataset, summary_field, {sample_id: detections})
    _write_storyboard(dataset, dataset.select(sample_id), summary_field, {sample_id: (chosen, images)})
    record_run(dataset, summary_run_key(summary_field), **recorded, video_budgets=budgets)
    return detections


def _planned(samples, sample_id: str, budget, summary_field: str):
    """(detections, frame scores, segments, embeddings item, (path, frame rate)) of one re-planned video."""
    from fiftyone_clipit.replan import replan_segments

    dataset = root_dataset(samples)
    settings = summary_settings(dataset, summary_field)
    view = dataset.select(sample_id)
    if len(view) == 0:
        raise ClipItError(f"Sample '{sample_id}' is not in '{dataset.name}'")
    score_field, shots_field = settings["score_field"], settings.get("shots_field")
    fields = ["filepath", "metadata", "frames.frame_number", f"frames.{score_field}"] + ([shots_field] if shots_field else [])
    path, meta, numbers, scores, *given = (values[0] for values in view.values(fields))
    if meta is None or not meta.total_frame_count:
        raise ClipItError(f"Video '{path}' has no metadata; add it with add_videos")
    item = embedding_store(dataset).get(sample_id)
    n_frames = item.frames_that_exist(meta.total_frame_count) if item else meta.total_frame_count
    frame_scores = frame_scores_array(numbers, scores, n_frames, score_field, scored_at_steps(dataset, score_field))
    options = ShotOptions(settings.get("segmentation", "kts"), settings.get("min_segment"),
                          settings.get("max_segment", 60.0), settings.get("segment_seconds", 2.0), shots_field)
    rate = meta.frame_rate or FALLBACK_FRAME_RATE
    segments = replan_segments(
        frame_scores, meta.frame_rate or 0.0, budget,
        lambda capacity: shots_for_video(options, n_frames, rate, item, capacity, _supports(given[0]) if given else None),
        settings.get("rounding", "floor"),
    )
    label = settings.get("label")
    detections = fo.TemporalDetections(detections=[
        fo.TemporalDetection(label=label, support=[first + 1, last + 1], confidence=score)
        for first, last, score in segments
    ])
    return detections, frame_scores, segments, item, (path, rate)

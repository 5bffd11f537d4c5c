"""Summaries people can watch: per-segment clips, a summary reel and a storyboard per video.

Each video's files are planned and written by `fiftyone_clipit.summary_files` (cut by
`fiftyone_clipit.reels`: PyAV, frame-exact, re-encoded, audio kept); `export_summary_dataset`
is the FiftyOne route, the clips view exported as a labelled video dataset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import av
import fiftyone as fo
import fiftyone.core.collections as foc
from fiftyone import ViewField as F

from fiftyone_clipit.errors import OVERWRITE_HINT, ClipItError, ItemFailure
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    check_field_type,
    dataset_name,
    finish,
    iterate,
    root_dataset,
    video_collection,
)
from fiftyone_clipit.fo.lineage import GO_AHEAD, recorded_videos
from fiftyone_clipit.fo.summaries import DEFAULT_SUMMARY_FIELD, keyframe_field, stale_summaries, summary_run_key
from fiftyone_clipit.options import ExportOptions
from fiftyone_clipit.summary_files import (
    WrittenFiles,
    already_exported,
    check_targets,
    export_path,
    plan_files,
    recipe,
    safe_name,
    video_stem,
    writable_dir,
    write_manifest,
    write_video_files,
)



@dataclass
class ExportReport:
    """The files written, per source video, and how much summary video they hold.

    Attributes:
        export_dir: where everything went.
        clips: source path -> one mp4 per segment, in time order.
        reels: source path -> the summary reel (segments joined in time order).
        storyboards: source path -> the storyboard PNG.
        seconds_written: seconds of summary video written by this call (each segment once).
        up_to_date: videos whose folder already held this very export, left as they were.
        failures: the videos that could not be exported, and why.
    """

    export_dir: str
    clips: dict[str, list[str]] = field(default_factory=dict)
    reels: dict[str, str] = field(default_factory=dict)
    storyboards: dict[str, str] = field(default_factory=dict)
    seconds_written: float = 0.0
    up_to_date: list[str] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)


def default_export_dir(samples: foc.SampleCollection) -> str:
    """Where exports made from the App go: ``<FiftyOne's dataset folder>/clipit-exports/<dataset>``
    (``~/fiftyone/clipit-exports/<dataset>`` unless FIFTYONE_DEFAULT_DATASET_DIR says otherwise)."""
    name = safe_name(dataset_name(samples)) or "dataset"
    return os.path.join(os.path.expanduser(fo.config.default_dataset_dir), "clipit-exports", name)


def app_export_dir(samples: foc.SampleCollection, typed: str | None) -> str:
    """The folder an export typed in the App goes to: empty, the default (`default_export_dir`);
    a relative folder, inside the default (the App's server runs in FiftyOne's install folder,
    so a relative path must not be read against it); an absolute one or ``~/...``, as typed."""
    text = str(typed or "").strip()
    default = default_export_dir(samples)
    if not text:
        return default
    path = os.path.expanduser(text)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(default, path))


def export_summary(
    samples: foc.SampleCollection,
    export_dir: str,
    options: ExportOptions | None = None,
    *,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    overwrite: bool = False,
    allow_stale: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> ExportReport:
    """Writes each video's summary as files: clips, a reel and a storyboard.

    Per video, in `<export_dir>/<name>/`: `<name>_seg001_f<first>-<last>.mp4` per segment,
    `<name>_summary.mp4` with the segments joined in time order, and `<name>_storyboard.png`,
    a grid of the summary's keyframes (from `create_summary`; without them, the middle frame of
    each segment) captioned with their time and score. Cuts are frame-exact and re-encoded
    (H.264 + AAC); audio is kept where the source has it (see `fiftyone_clipit.reels`). Each
    file is written under a hidden temporary name and renamed when complete, and a video that
    fails (a full disk, a broken video, a keyframe it lacks) loses the files written for it, so
    a failure leaves no file that looks complete; finished files of other videos stay. Frames
    are read as embedding reads them (`fiftyone_clipit.cursor`): upright, numbered by timestamp.
    A video's folder records what its files were made from (source file, segments,
    keyframes, encoding) once they are all written, so running the same export again (after a
    kill, say) skips the videos already done and redoes at most the one in flight. A summary
    that is stale (its source file replaced since it was summarised, its scores changed since,
    or kept from an earlier run after summarising it again failed; see `stale_summaries`) is
    refused for that video with the remedy, unless `allow_stale`; the folder's record keeps
    what the summary was made from.

    Args:
        samples: a video dataset or view with `summary_field`.
        export_dir: the folder to write to (created if needed).
        options (None): an `ExportOptions`; keyword `settings` build or replace them: `clips`,
            `reel`, `storyboard` (which files to write, each True by default), `name_field` (a
            sample field whose value names each video's folder and files, made safe: letters,
            digits, '-', '_', '.'; a value with none of them falls back to the file name; None
            uses the video's file name), and the encoding (`crf`, `preset`, `audio_bitrate`).
        summary_field ("clipit_summary"): the TemporalDetections field of the summary.
        overwrite (False): replace existing files (and clips of an earlier export of the video)
            unless they are this very export.
        allow_stale (False): export stale summaries anyway.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Raises:
        ClipItError: the export directory cannot be created or written, or a field is missing.
        BatchError: some videos could not be exported (the others were written).
    """
    wanted = ExportOptions.of(options, **settings)
    name_field, storyboard = wanted.name_field, wanted.storyboard
    samples = video_collection(samples)
    _check_summary_field(samples, summary_field)
    if name_field is not None:
        check_field_name(name_field, "name field")
        if samples.get_field(name_field) is None:
            raise ClipItError(f"Name field '{name_field}' does not exist on '{dataset_name(samples)}'")
    export_dir = writable_dir(export_dir)
    encoding = wanted.encoding
    report = ExportReport(export_dir=export_dir)
    names = [name_field] if name_field else []
    rows = list(zip(*samples.values(["id", "filepath", "metadata", summary_field, *names])))
    keyframes = _keyframes(samples, summary_field) if storyboard else {}
    stale = {} if allow_stale else stale_summaries(samples, summary_field)
    made_from = recorded_videos(root_dataset(samples), summary_run_key(summary_field)) or {}
    taken: set[str] = set()
    n_exported = 0
    for row in iterate(rows, progress, "Exporting summaries"):
        sample_id, path, meta, summary = row[:4]
        try:
            stem = video_stem(path, row[4] if name_field else None, name_field)
            if stem in taken:
                stem = f"{stem}_{sample_id}"
            taken.add(stem)
            if summary is None or not summary.detections:
                raise ClipItError(f"no segments in '{summary_field}'; run create_summary")
            if sample_id in stale:
                raise ClipItError(f"{stale[sample_id]}, {GO_AHEAD}")
            segments = [(int(d.support[0]), int(d.support[1]), float(d.confidence or 0.0)) for d in summary.detections]
            plan = plan_files(export_dir, stem, segments, wanted.clips, wanted.reel, storyboard, overwrite)
            made_of = recipe(path, plan, keyframes.get(sample_id), encoding, made_from.get(sample_id))
            if already_exported(plan, made_of):
                _report_files(report, path, WrittenFiles(plan.clips or [], plan.reel, plan.storyboard))
                report.up_to_date.append(path)
            else:
                check_targets(plan)
                written = write_video_files(path, meta.frame_rate if meta else None, plan, keyframes.get(sample_id), encoding)
                _report_files(report, path, written)
                report.seconds_written += written.seconds
                write_manifest(plan.folder, made_of)
            n_exported += 1
        except (ClipItError, ValueError, OSError, av.error.FFmpegError) as e:
            report.failures.append(ItemFailure(path, str(e)))
    finish("Exporting summaries", report.failures, n_exported, skip_failures)
    return report


def export_summary_dataset(
    samples: foc.SampleCollection,
    export_dir: str,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    overwrite: bool = False,
    allow_stale: bool = False,
) -> str:
    """The FiftyOne route: exports the summary's clips view as a labelled video dataset.

    Uses FiftyOne's own exporter (`fo.types.FiftyOneVideoLabelsDataset`): `data/` holds one mp4
    per segment (cut by FiftyOne with ffmpeg, to within a frame), `labels/` one JSON per clip with
    its label (the query) and confidence (the segment score). Load it back with
    `fo.Dataset.from_dir(export_dir, dataset_type=fo.types.FiftyOneVideoLabelsDataset)`. The
    dataset is written to a hidden folder beside `export_dir` and renamed when complete.
    Nothing is written when a summary is stale (see `stale_summaries`), unless `allow_stale`.

    Returns:
        The export directory.

    Raises:
        ClipItError: the directory exists and is not empty (without `overwrite`), cannot be
            written, the summary field is missing, a summary is stale, or FiftyOne's export failed.
    """
    samples = video_collection(samples)
    _check_summary_field(samples, summary_field)
    stale = {} if allow_stale else stale_summaries(samples, summary_field)
    if stale:
        paths = dict(zip(*samples.select(list(stale)).values(["id", "filepath"])))
        named = "; ".join(f"'{paths[i]}': {why}" for i, why in stale.items())
        raise ClipItError(f"{len(stale)} summaries of '{summary_field}' are stale, {GO_AHEAD}: {named}")
    export_dir = export_path(export_dir)
    if os.path.exists(export_dir) and not overwrite and (not os.path.isdir(export_dir) or os.listdir(export_dir)):
        raise ClipItError(f"Export directory '{export_dir}' exists and is not empty; {OVERWRITE_HINT}")
    parent = os.path.dirname(export_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        partial = tempfile.mkdtemp(prefix=f".partial-{os.path.basename(export_dir)}-", dir=parent)
    except OSError as e:
        raise ClipItError(f"Cannot write beside '{export_dir}' ({e}); choose another directory") from e
    try:
        clips = samples.to_clips(summary_field)
        clips.export(
            export_dir=partial,
            dataset_type=fo.types.FiftyOneVideoLabelsDataset,
            label_field=summary_field,
            progress=False,
        )
        if os.path.isdir(export_dir):
            shutil.rmtree(export_dir)
        elif os.path.exists(export_dir):
            os.remove(export_dir)
        os.replace(partial, export_dir)
    except Exception as e:  # FiftyOne/ffmpeg/disk errors: nothing half-written stays behind
        shutil.rmtree(partial, ignore_errors=True)
        raise ClipItError(f"Exporting the clips of '{summary_field}' to '{export_dir}' failed: {e}") from e
    return export_dir


def _check_summary_field(samples, summary_field: str) -> None:
    check_field_name(summary_field, "summary field")
    if samples.get_field(summary_field) is None:
        raise ClipItError(
            f"Field '{summary_field}' does not exist on '{dataset_name(samples)}'; run create_summary first"
        )
    check_field_type(samples, summary_field, fo.EmbeddedDocumentField, fo.TemporalDetections)


def _report_files(report: ExportReport, path: str, files: WrittenFiles) -> None:
    if files.clips:
        report.clips[path] = list(files.clips)
    if files.reel:
        report.reels[path] = files.reel
    if files.storyboard:
        report.storyboards[path] = files.storyboard


def _keyframes(samples, summary_field: str) -> dict[str, list[tuple[int, int, float | None]]]:
    """Per sample id: (frame number, rank, score) of the summary's keyframes, by rank."""
    rank = keyframe_field(summary_field)
    if samples.get_field(f"frames.{rank}") is None:
        return {}
    dataset = root_dataset(samples)
    run = summary_run_key(summary_field)
    score = dataset.get_run_info(run).config.score_field if dataset.has_run(run) else None
    fields = ["id", "frames.frame_number", f"frames.{rank}"]
    if score and samples.get_field(f"frames.{score}") is not None:
        fields.append(f"frames.{score}")
    columns = samples.match_frames(F(rank) != None).values(fields)
    result = {}
    for row in zip(*columns):
        scores = row[3] if len(row) > 3 else [None] * len(row[1])
        result[row[0]] = sorted(zip(row[1], row[2], scores), key=lambda item: item[1])
    return result

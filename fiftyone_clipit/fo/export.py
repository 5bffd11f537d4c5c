"""Summaries people can watch: per-segment clips, a summary reel and a storyboard per video.

The files are cut by `fiftyone_clipit.reels` (PyAV, frame-exact, re-encoded, audio kept) and
drawn by `fiftyone_clipit.storyboard`; `export_summary_dataset` is the FiftyOne route, the
clips view exported as a labelled video dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

import av
import fiftyone as fo
import fiftyone.core.collections as foc
from fiftyone import ViewField as F

from fiftyone_clipit.defaults import FALLBACK_FRAME_RATE
from fiftyone_clipit.cursor import frame_seconds
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
from fiftyone_clipit.reels import EncodeOptions, read_frames, write_segments
from fiftyone_clipit.store import file_fingerprint
from fiftyone_clipit.storyboard import format_time, render_storyboard

_CLIP_NAME = re.compile(r"_seg\d{3,}_f\d{6,}-\d{6,}\.mp4$")
#: Written last in each video's folder: what its files were made from (see `_recipe`).
_MANIFEST = ".clipit-export.json"


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


def safe_stem(path: str) -> str:
    """A file-name stem that cannot leave its folder: letters, digits, '-', '_' and '.' only."""
    return safe_name(os.path.splitext(os.path.basename(path))[0]) or "video"


def safe_name(text: str) -> str:
    """`text` as a file name of letters, digits, '-', '_' and '.' ('' when nothing is left).

    Path separators and '..' cannot survive, so a name never leads out of its folder.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._-")[:100]


def clip_name(stem: str, index: int, first: int, last: int) -> str:
    """`<stem>_seg<index>_f<first>-<last>.mp4`, frame numbers 1-based and inclusive."""
    return f"{stem}_seg{index:03d}_f{first:06d}-{last:06d}.mp4"


def export_summary(
    samples: foc.SampleCollection,
    export_dir: str,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    clips: bool = True,
    reel: bool = True,
    storyboard: bool = True,
    name_field: str | None = None,
    overwrite: bool = False,
    crf: int = 20,
    preset: str = "veryfast",
    allow_stale: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
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
        summary_field ("clipit_summary"): the TemporalDetections field of the summary.
        clips (True): write one mp4 per segment.
        reel (True): write the summary reel.
        storyboard (True): write the storyboard PNG.
        name_field (None): a sample field whose value names each video's folder and files
            (made safe: letters, digits, '-', '_', '.'; a value with none of them falls back to
            the file name); None uses the video's file name.
        overwrite (False): replace existing files (and clips of an earlier export of the video)
            unless they are this very export.
        crf (20), preset ("veryfast"): x264 quality and speed.
        allow_stale (False): export stale summaries anyway.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Raises:
        ClipItError: the export directory cannot be created or written, or a field is missing.
        BatchError: some videos could not be exported (the others were written).
    """
    samples = video_collection(samples)
    _check_summary_field(samples, summary_field)
    if not (clips or reel or storyboard):
        raise ValueError("Nothing to export: clips, reel and storyboard are all False")
    if name_field is not None:
        check_field_name(name_field, "name field")
        if samples.get_field(name_field) is None:
            raise ClipItError(f"Name field '{name_field}' does not exist on '{dataset_name(samples)}'")
    export_dir = _writable_dir(export_dir)
    options = EncodeOptions(crf=crf, preset=preset)
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
            stem = _stem(path, row[4] if name_field else None, name_field)
            if stem in taken:
                stem = f"{stem}_{sample_id}"
            taken.add(stem)
            if summary is None or not summary.detections:
                raise ClipItError(f"no segments in '{summary_field}'; run create_summary")
            if sample_id in stale:
                raise ClipItError(f"{stale[sample_id]}, {GO_AHEAD}")
            plan = _plan(export_dir, stem, summary.detections, clips, reel, storyboard, overwrite)
            recipe = _recipe(path, plan, keyframes.get(sample_id), options, made_from.get(sample_id))
            if _already_exported(plan, recipe):
                _report_files(report, path, plan)
                report.up_to_date.append(path)
            else:
                _check_targets(plan)
                _export_video(path, meta, plan, keyframes.get(sample_id), options, report)
                _write_manifest(plan.folder, recipe)
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
    export_dir = _export_path(export_dir)
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


def _export_path(export_dir: str) -> str:
    """The absolute export folder; an empty name is refused (it would mean the working directory)."""
    if not isinstance(export_dir, (str, os.PathLike)) or not str(export_dir).strip():
        raise ClipItError(f"The export directory is empty ({export_dir!r}); give a folder, e.g. ~/clipit-export")
    return os.path.abspath(os.path.expanduser(str(export_dir)))


def _writable_dir(export_dir: str) -> str:
    export_dir = _export_path(export_dir)
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ClipItError(f"Export directory '{export_dir}' is a file; choose a directory")
    try:
        os.makedirs(export_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=export_dir):
            pass
    except OSError as e:
        raise ClipItError(f"Cannot write to export directory '{export_dir}' ({e}); choose another") from e
    return export_dir


def _stem(path: str, name_value, name_field: str | None) -> str:
    """The name of one video's folder and files: from `name_field`, else from the file name.

    A value with no usable character ("ü ï", "..") falls back to the file name as default
    naming does; a missing value is refused, since the field names no video then.
    """
    if name_field is None:
        return safe_stem(path)
    if name_value is None:
        raise ClipItError(
            f"name field '{name_field}' has no value for this video; set it, or leave name_field out"
        )
    return safe_name(name_value) or safe_stem(path)


@dataclass(frozen=True)
class _Plan:
    folder: str
    stem: str
    segments: list[tuple[int, int, float]]
    clips: list[str] | None
    reel: str | None
    storyboard: str | None
    overwrite: bool


def _plan(export_dir, stem, detections, clips, reel, storyboard, overwrite) -> _Plan:
    """Where one video's files go; refuses names that lead outside `export_dir`."""
    folder = os.path.join(export_dir, stem)
    root = os.path.realpath(export_dir)
    if not os.path.realpath(folder).startswith(root + os.sep):
        raise ClipItError(f"'{folder}' leads outside the export directory '{export_dir}'")
    segments = sorted((int(d.support[0]), int(d.support[1]), float(d.confidence or 0.0)) for d in detections)
    plan = _Plan(
        folder=folder,
        stem=stem,
        segments=segments,
        clips=[os.path.join(folder, clip_name(stem, i, a, b)) for i, (a, b, _) in enumerate(segments, 1)]
        if clips else None,
        reel=os.path.join(folder, f"{stem}_summary.mp4") if reel else None,
        storyboard=os.path.join(folder, f"{stem}_storyboard.png") if storyboard else None,
        overwrite=overwrite,
    )
    return plan


def _targets(plan: _Plan) -> list[str]:
    return [t for t in (*(plan.clips or []), plan.reel, plan.storyboard) if t]


def _check_targets(plan: _Plan) -> None:
    """Refuses to replace files of another export without overwrite; forgets the old record."""
    existing = [t for t in _targets(plan) if os.path.lexists(t)]
    if existing and not plan.overwrite:
        raise ClipItError(f"'{existing[0]}' exists; {OVERWRITE_HINT} to replace it")
    manifest = os.path.join(plan.folder, _MANIFEST)
    if os.path.lexists(manifest):
        os.remove(manifest)


def _recipe(path: str, plan: _Plan, keyframes, options: EncodeOptions, summary: dict | None) -> dict:
    """What one video's files are made from (with what its summary was made from, see
    `fiftyone_clipit.fo.lineage`), as it reads back from JSON."""
    recipe = {
        "source": file_fingerprint(path),
        "summary": summary,
        "segments": plan.segments,
        "files": [os.path.basename(t) for t in _targets(plan)],
        "keyframes": keyframes if plan.storyboard else None,
        "encoding": dataclasses.asdict(options),
    }
    return json.loads(json.dumps(recipe))


def _already_exported(plan: _Plan, recipe: dict) -> bool:
    """Whether the folder holds every file of this very recipe, recorded when they were done."""
    try:
        with open(os.path.join(plan.folder, _MANIFEST)) as f:
            done = json.load(f)
    except (OSError, ValueError):
        return False
    return done == recipe and all(os.path.isfile(t) for t in _targets(plan))


def _write_manifest(folder: str, recipe: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest-", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(recipe, f)
    os.replace(tmp, os.path.join(folder, _MANIFEST))


def _report_files(report: ExportReport, path: str, plan: _Plan) -> None:
    if plan.clips:
        report.clips[path] = list(plan.clips)
    if plan.reel:
        report.reels[path] = plan.reel
    if plan.storyboard:
        report.storyboards[path] = plan.storyboard


def _export_video(path, meta, plan: _Plan, keyframes, options: EncodeOptions, report: ExportReport) -> None:
    """Writes one video's files; when one fails, the others written for it are removed too, so a
    video reported failed leaves no clip or reel that looks complete."""
    os.makedirs(plan.folder, exist_ok=True)
    try:
        written = write_segments(
            path, [(a, b) for a, b, _ in plan.segments], reel_path=plan.reel, clip_paths=plan.clips, options=options
        )
        storyboard = _storyboard(path, meta, plan, keyframes) if plan.storyboard else None
    except BaseException:
        for target in _targets(plan):
            if os.path.lexists(target):
                os.remove(target)
        raise
    if plan.clips:
        report.clips[path] = [clip.path for clip in written.clips]
        if plan.overwrite:
            _remove_stale_clips(plan.folder, plan.stem, set(report.clips[path]))
    if written.reel:
        report.reels[path] = written.reel.path
    if storyboard:
        report.storyboards[path] = storyboard
    videos = [written.reel] if written.reel else written.clips
    report.seconds_written += sum(video.duration for video in videos)


def _remove_stale_clips(folder: str, stem: str, keep: set[str]) -> None:
    """Clips an earlier export of this video left behind (other segments): they would mislead."""
    for name in os.listdir(folder):
        target = os.path.join(folder, name)
        if name.startswith(f"{stem}_seg") and _CLIP_NAME.search(name) and target not in keep:
            os.remove(target)


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


def _storyboard(path: str, meta, plan: _Plan, keyframes) -> str:
    if keyframes:
        frames = sorted((number, score) for number, _, score in keyframes)
    else:  # no keyframes recorded: the middle frame of each segment, with the segment score
        frames = [((a + b) // 2, score) for a, b, score in plan.segments[:12]]
    numbers = [number for number, _ in frames]
    images = read_frames(path, numbers, width=320)
    seconds = frame_seconds(path, max(numbers), (meta.frame_rate if meta else None) or FALLBACK_FRAME_RATE)
    captions = [
        format_time(seconds[number - 1]) + ("" if score is None else f"  score {score:.2f}")
        for number, score in frames
    ]
    title = f"{os.path.basename(path)}: {len(plan.segments)} segments"
    return render_storyboard(images, captions, plan.storyboard, columns=4, title=title)

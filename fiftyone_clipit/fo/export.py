"""Export of summary segments as playable mp4 clips, cut by FiftyOne's ffmpeg helper."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import fiftyone.core.collections as foc
import fiftyone.utils.video as fouv

from fiftyone_clipit.errors import ClipItError, ItemFailure
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    dataset_name,
    finish,
    iterate,
    video_collection,
)
from fiftyone_clipit.fo.summaries import DEFAULT_SUMMARY_FIELD


@dataclass
class ExportReport:
    """The clips written, per source video."""

    export_dir: str
    clips: dict[str, list[str]] = field(default_factory=dict)
    failures: list[ItemFailure] = field(default_factory=list)


def safe_stem(path: str) -> str:
    """A file-name stem that cannot leave its folder: letters, digits, '-', '_' and '.' only."""
    stem = os.path.splitext(os.path.basename(path))[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "video"
    return stem[:100]


def clip_name(stem: str, index: int, first: int, last: int) -> str:
    """`<stem>_seg<index>_f<first>-<last>.mp4`, frame numbers 1-based and inclusive."""
    return f"{stem}_seg{index:03d}_f{first:06d}-{last:06d}.mp4"


def export_summary(
    samples: foc.SampleCollection,
    export_dir: str,
    summary_field: str = DEFAULT_SUMMARY_FIELD,
    overwrite: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
) -> ExportReport:
    """Writes each summary segment as an mp4 (re-encoded, so cuts are not limited to keyframes).

    A segment [first, last] is cut from time (first - 1) / fps to last / fps, so the clip holds
    exactly its frames (ffmpeg seeks before decoding and re-encodes; audio is kept).

    Clips go to `<export_dir>/<video stem>/`, one per segment. Each clip is written under a
    temporary name and renamed when complete, so a clip that exists is whole. Two videos with the
    same stem get distinct folders (the sample id is appended).

    Raises:
        ClipItError: the export directory cannot be created, or the summary field is missing.
        BatchError: some videos could not be exported (the others were written).
    """
    video_collection(samples)
    check_field_name(summary_field, "summary field")
    if samples.get_field(summary_field) is None:
        raise ClipItError(
            f"Field '{summary_field}' does not exist on '{dataset_name(samples)}'; run create_summary first"
        )
    export_dir = os.path.abspath(export_dir)
    try:
        os.makedirs(export_dir, exist_ok=True)
    except OSError as e:
        raise ClipItError(f"Cannot create export directory '{export_dir}' ({e}); choose another") from e
    report = ExportReport(export_dir=export_dir)
    ids, paths, metadata, summaries = samples.values(["id", "filepath", "metadata", summary_field])
    stems: dict[str, int] = {}
    rows = list(zip(ids, paths, metadata, summaries))
    for sample_id, path, meta, summary in iterate(rows, progress, "Exporting clips"):
        stem = safe_stem(path)
        stems[stem] = stems.get(stem, 0) + 1
        folder = os.path.join(export_dir, stem if stems[stem] == 1 else f"{stem}_{sample_id}")
        if summary is None or not summary.detections:
            report.failures.append(ItemFailure(path, f"no segments in '{summary_field}'"))
            continue
        try:
            report.clips[path] = _export_video(path, meta, summary.detections, folder, stem, overwrite)
        except Exception as e:  # ffmpeg and disk errors are this video's failure, reported below
            report.failures.append(ItemFailure(path, f"export failed ({e})"))
    finish("Exporting clips", report.failures, len(report.clips), skip_failures)
    return report


def _export_video(path, meta, detections, folder: str, stem: str, overwrite: bool) -> list[str]:
    if not os.path.exists(path):
        raise ClipItError(f"source video '{path}' not found")
    os.makedirs(folder, exist_ok=True)
    written = []
    ordered = sorted(detections, key=lambda d: d.support[0])
    for index, detection in enumerate(ordered, start=1):
        first, last = detection.support
        target = os.path.join(folder, clip_name(stem, index, first, last))
        if os.path.exists(target) and not overwrite:
            raise ClipItError(f"'{target}' exists; pass overwrite=True to replace it")
        partial = os.path.join(folder, f".partial-{os.path.basename(target)}")
        try:
            rate = meta.frame_rate or meta.total_frame_count / meta.duration
            span = [(first - 1) / rate, last / rate]
            fouv.extract_clip(path, partial, timestamps=span, fast=False)
            if not os.path.exists(partial) or os.path.getsize(partial) == 0:
                raise ClipItError(f"ffmpeg wrote nothing for frames {first}-{last}")
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        written.append(target)
    return written

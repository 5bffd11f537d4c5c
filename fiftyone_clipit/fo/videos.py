"""Videos in: files or folders into a FiftyOne dataset, with metadata read by PyAV."""

from __future__ import annotations

import mimetypes
import os
from typing import Iterable

import fiftyone as fo
import fiftyone.core.media as fom

from fiftyone_clipit.decode import VideoInfo, probe_video
from fiftyone_clipit.errors import ClipItError, ItemFailure, VideoError
from fiftyone_clipit.fo.common import (
    Progress,
    ensure_iterable,
    finish,
    iterate,
)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts")


def video_metadata(info: VideoInfo) -> fo.VideoMetadata:
    """FiftyOne's VideoMetadata from what PyAV read (no ffprobe needed)."""
    return fo.VideoMetadata(
        size_bytes=info.size_bytes,
        mime_type=mimetypes.guess_type(info.path)[0] or "video/mp4",
        frame_width=info.width,
        frame_height=info.height,
        frame_rate=info.frame_rate,
        total_frame_count=info.n_frames,
        duration=info.duration,
        encoding_str=info.codec,
    )


def expand_video_paths(paths: str | Iterable[str]) -> list[str]:
    """Files as given; folders expanded (recursively, sorted) to the video files inside.

    A path that does not exist is kept so that it is reported with the other failures.
    """
    expanded = []
    for path in ensure_iterable(paths):
        if os.path.isdir(path):
            for folder, _, names in sorted(os.walk(path)):
                expanded += [
                    os.path.join(folder, n)
                    for n in sorted(names)
                    if n.lower().endswith(VIDEO_EXTENSIONS)
                ]
        else:
            expanded.append(path)
    return [os.path.abspath(p) for p in expanded]


def add_videos(
    dataset: fo.Dataset,
    paths: str | Iterable[str],
    skip_failures: bool = False,
    progress: Progress = None,
) -> list[str]:
    """Adds video files (or every video in the given folders) with their metadata.

    Each file is opened with PyAV first; files that are missing, empty or not videos are not
    added, and are named together in one error after the good ones were added.

    Args:
        dataset: a video dataset (or an empty one).
        paths: files and/or folders.
        skip_failures (False): log bad files instead of raising.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Returns:
        The ids of the added samples.

    Raises:
        ClipItError: no paths, or the dataset holds images.
        BatchError: some files could not be added (the others were).
    """
    files = expand_video_paths(paths)
    if not files:
        raise ClipItError(f"No video files found in {ensure_iterable(paths)!r}")
    if dataset.media_type not in (None, fom.VIDEO):
        raise ClipItError(f"Dataset '{dataset.name}' holds {dataset.media_type}s, not videos")
    known = set(dataset.values("filepath")) if len(dataset) else set()
    samples, failures = [], []
    for path in iterate(files, progress, "Reading videos"):
        if path in known:
            continue
        try:
            info = probe_video(path)
        except VideoError as e:
            failures.append(ItemFailure(path, e.reason))
            continue
        samples.append(fo.Sample(filepath=path, metadata=video_metadata(info)))
        known.add(path)
    ids = dataset.add_samples(samples, progress=False) if samples else []
    finish("Adding videos", failures, len(ids), skip_failures)
    return ids


def load_videos_dataset(
    name: str,
    paths: str | Iterable[str],
    overwrite: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
    made_by: str | None = None,
) -> fo.Dataset:
    """Creates (or reuses) a persistent video dataset `name` holding the given videos.

    Args:
        made_by (None): who makes it (e.g. "fiftyone-clipit demo"), kept in
            `dataset.info["clipit_made_by"]`. With it, an existing dataset of that name is
            replaced only when the same maker made it, or when `overwrite` is True; any other
            dataset is refused, so a user's own dataset is never deleted unasked.
    """
    if fo.dataset_exists(name) and made_by is not None and not overwrite:
        existing = fo.load_dataset(name)
        if existing.info.get("clipit_made_by") != made_by:
            raise ClipItError(
                f"Dataset '{name}' already exists and was not made by the {made_by}; choose another "
                f"name (--dataset NAME) or replace it on purpose (--overwrite)"
            )
        overwrite = True
    if fo.dataset_exists(name) and overwrite:
        fo.delete_dataset(name)
    dataset = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name)
    dataset.persistent = True
    if made_by is not None:
        dataset.info["clipit_made_by"] = made_by
        dataset.save()
    add_videos(dataset, paths, skip_failures=skip_failures, progress=progress)
    return dataset

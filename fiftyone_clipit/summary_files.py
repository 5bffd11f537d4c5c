"""One video's summary as files: their names, where they go, what they were made from, writing them.

`fiftyone_clipit.fo.export.export_summary` reads the summaries and keyframes from FiftyOne and
calls these per video. The clips and the reel are cut by `fiftyone_clipit.reels` (PyAV,
frame-exact), the storyboard drawn by `fiftyone_clipit.storyboard`. A video's folder records
what its files were made from (`MANIFEST`) once they are all written, so an export run again
skips the videos already done.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from dataclasses import dataclass, field

from fiftyone_clipit.cursor import frame_seconds
from fiftyone_clipit.defaults import FALLBACK_FRAME_RATE
from fiftyone_clipit.errors import OVERWRITE_HINT, ClipItError
from fiftyone_clipit.options import EncodeOptions
from fiftyone_clipit.reels import read_frames, write_segments
from fiftyone_clipit.store import file_fingerprint, write_atomically
from fiftyone_clipit.storyboard import format_time, render_storyboard

_CLIP_NAME = re.compile(r"_seg\d{3,}_f\d{6,}-\d{6,}\.mp4$")
#: Written last in each video's folder: what its files were made from (see `recipe`).
MANIFEST = ".clipit-export.json"


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


def export_path(export_dir: str) -> str:
    """The absolute export folder; an empty name is refused (it would mean the working directory)."""
    if not isinstance(export_dir, (str, os.PathLike)) or not str(export_dir).strip():
        raise ClipItError(f"The export directory is empty ({export_dir!r}); give a folder, e.g. ~/clipit-export")
    return os.path.abspath(os.path.expanduser(str(export_dir)))


def writable_dir(export_dir: str) -> str:
    """The absolute export folder, created, once a file could be written in it."""
    export_dir = export_path(export_dir)
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ClipItError(f"Export directory '{export_dir}' is a file; choose a directory")
    try:
        os.makedirs(export_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=export_dir):
            pass
    except OSError as e:
        raise ClipItError(f"Cannot write to export directory '{export_dir}' ({e}); choose another") from e
    return export_dir


def video_stem(path: str, name_value, name_field: str | None) -> str:
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
class VideoFiles:
    """Where one video's files go (None: not asked for) and the segments they hold."""

    folder: str
    stem: str
    segments: list[tuple[int, int, float]]
    clips: list[str] | None
    reel: str | None
    storyboard: str | None
    overwrite: bool


def plan_files(
    export_dir: str, stem: str, segments: list[tuple[int, int, float]], clips: bool, reel: bool, storyboard: bool,
    overwrite: bool,
) -> VideoFiles:
    """Where one video's files go (segments: 1-based inclusive (first, last, score)); refuses
    names that lead outside `export_dir`."""
    folder = os.path.join(export_dir, stem)
    root = os.path.realpath(export_dir)
    if not os.path.realpath(folder).startswith(root + os.sep):
        raise ClipItError(f"'{folder}' leads outside the export directory '{export_dir}'")
    segments = sorted(segments)
    plan = VideoFiles(
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


def targets(plan: VideoFiles) -> list[str]:
    """Every file of the plan."""
    return [t for t in (*(plan.clips or []), plan.reel, plan.storyboard) if t]


def check_targets(plan: VideoFiles) -> None:
    """Refuses to replace files of another export without overwrite; forgets the old record."""
    existing = [t for t in targets(plan) if os.path.lexists(t)]
    if existing and not plan.overwrite:
        raise ClipItError(f"'{existing[0]}' exists; {OVERWRITE_HINT} to replace it")
    manifest = os.path.join(plan.folder, MANIFEST)
    if os.path.lexists(manifest):
        os.remove(manifest)


def recipe(path: str, plan: VideoFiles, keyframes, options: EncodeOptions, summary: dict | None) -> dict:
    """What one video's files are made from (with what its summary was made from, see
    `fiftyone_clipit.fo.lineage`), as it reads back from JSON."""
    made_of = {
        "source": file_fingerprint(path),
        "summary": summary,
        "segments": plan.segments,
        "files": [os.path.basename(t) for t in targets(plan)],
        "keyframes": keyframes if plan.storyboard else None,
        "encoding": dataclasses.asdict(options),
    }
    return json.loads(json.dumps(made_of))


def already_exported(plan: VideoFiles, made_of: dict) -> bool:
    """Whether the folder holds every file of this very recipe, recorded when they were done."""
    try:
        with open(os.path.join(plan.folder, MANIFEST)) as f:
            done = json.load(f)
    except (OSError, ValueError):
        return False
    return done == made_of and all(os.path.isfile(t) for t in targets(plan))


def write_manifest(folder: str, recipe: dict) -> None:
    """Records that the folder holds every file of `recipe` (written last, atomically)."""
    write_atomically(os.path.join(folder, MANIFEST), lambda f: json.dump(recipe, f), mode="w")


@dataclass
class WrittenFiles:
    """What `write_video_files` wrote for one video, and the seconds of summary video it holds."""

    clips: list[str] = field(default_factory=list)
    reel: str | None = None
    storyboard: str | None = None
    seconds: float = 0.0


def write_video_files(
    path: str, frame_rate: float | None, plan: VideoFiles, keyframes, options: EncodeOptions
) -> WrittenFiles:
    """Writes one video's files (keyframes: (frame number, rank, score) by rank, or None); when one fails, the others written for it are removed too, so a
    video reported failed leaves no clip or reel that looks complete."""
    os.makedirs(plan.folder, exist_ok=True)
    try:
        written = write_segments(
            path, [(a, b) for a, b, _ in plan.segments], reel_path=plan.reel, clip_paths=plan.clips, options=options
        )
        storyboard = _storyboard(path, frame_rate, plan, keyframes) if plan.storyboard else None
    except BaseException:
        for target in targets(plan):
            if os.path.lexists(target):
                os.remove(target)
        raise
    result = WrittenFiles(clips=[clip.path for clip in written.clips], storyboard=storyboard)
    if plan.clips and plan.overwrite:
        _remove_stale_clips(plan.folder, plan.stem, set(result.clips))
    if written.reel:
        result.reel = written.reel.path
    videos = [written.reel] if written.reel else written.clips
    result.seconds = sum(video.duration for video in videos)
    return result


def _remove_stale_clips(folder: str, stem: str, keep: set[str]) -> None:
    """Clips an earlier export of this video left behind (other segments): they would mislead."""
    for name in os.listdir(folder):
        target = os.path.join(folder, name)
        if name.startswith(f"{stem}_seg") and _CLIP_NAME.search(name) and target not in keep:
            os.remove(target)


def _storyboard(path: str, frame_rate: float | None, plan: VideoFiles, keyframes) -> str:
    if keyframes:
        frames = sorted((number, score) for number, _, score in keyframes)
    else:  # no keyframes recorded: the middle frame of each segment, with the segment score
        frames = [((a + b) // 2, score) for a, b, score in plan.segments[:12]]
    numbers = [number for number, _ in frames]
    images = read_frames(path, numbers, width=320)
    seconds = frame_seconds(path, max(numbers), frame_rate or FALLBACK_FRAME_RATE)
    captions = [
        format_time(seconds[number - 1]) + ("" if score is None else f"  score {score:.2f}")
        for number, score in frames
    ]
    title = f"{os.path.basename(path)}: {len(plan.segments)} segments"
    return render_storyboard(images, captions, plan.storyboard, columns=4, title=title)

"""One highlight reel for a query across many videos: the best moments within a length in seconds.

Per-video summaries keep a share of each video; a reel keeps the best seconds of an archive. The
plan (`plan_reel`) takes each candidate video's per-frame relevance and shots, weighs every shot
by the reel frames it would fill and values it by its total relevance (mean x length, so the reel
holds the most relevant seconds, whichever video they are in), and picks shots with the exact
0/1 knapsack the summaries use (`summary.knapsack`). One video fills the reel only when its
moments are the best; `per_video_seconds` caps any one video's share. Adjacent chosen shots of a
video join into one moment.

The reel (`write_reel`) has one frame rate and one size: the highest rate and the largest source
among the moments (rate conformed by time: reel frame j of a moment shows the source frame at
time j / rate, so equal rates copy frames one for one; sizes letterboxed, aspect kept), with AAC
audio at 48 kHz stereo when any source has audio (silence for those without). FiftyOne-free.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Callable, Sequence

import av
import numpy as np

from fiftyone_clipit.cursor import VideoCursor
from fiftyone_clipit.defaults import HIGHLIGHT_ORDERS
from fiftyone_clipit.errors import VideoError
from fiftyone_clipit.options import EncodeOptions
from fiftyone_clipit.reels import AudioCursor, Mp4Writer, OutputFormat, read_frames
from fiftyone_clipit.storyboard import format_time, render_storyboard
from fiftyone_clipit.summary import knapsack, shot_scores

ORDERS = HIGHLIGHT_ORDERS
#: the reel's audio, when any source has audio
AUDIO_RATE = 48_000
AUDIO_LAYOUT = "stereo"
#: the highest frame rate a reel is given
MAX_FRAME_RATE = Fraction(60)


@dataclass(frozen=True)
class Candidate:
    """A video that may give moments to the reel.

    Attributes:
        key: its id (a FiftyOne sample id).
        path: its file.
        frame_rate: its frames per second.
        frame_scores: float (n_frames,) relevance of every frame to the query.
        shots: int (n_shots, 2) inclusive 0-based frame bounds of its shots.
    """

    key: str
    path: str
    frame_rate: float
    frame_scores: np.ndarray
    shots: np.ndarray


@dataclass(frozen=True)
class Moment:
    """A stretch of one source in the reel: frames ``first..last`` (1-based, inclusive), its mean
    relevance `score` and its most relevant frame `best`."""

    key: str
    path: str
    first: int
    last: int
    frame_rate: float
    score: float
    best: int

    @property
    def start_seconds(self) -> float:
        return (self.first - 1) / self.frame_rate

    @property
    def end_seconds(self) -> float:
        return self.last / self.frame_rate


def reel_frames(n_source_frames: int, source_rate: float, reel_rate: Fraction) -> int:
    """How many reel frames `n_source_frames` at `source_rate` fill at `reel_rate` (>= 1)."""
    return max(1, round(n_source_frames * float(reel_rate) / source_rate))


def plan_reel(
    candidates: Sequence[Candidate],
    seconds: float,
    reel_rate: Fraction,
    order: str = "relevance",
    per_video_seconds: float | None = None,
) -> list[Moment]:
    """The reel's moments: the shots of most total relevance that fit in `seconds`.

    Args:
        candidates: the videos and their scores and shots.
        seconds: the reel's length at most, in seconds.
        reel_rate: the reel's frame rate (the budget is counted in its frames).
        order ("relevance"): "relevance" (best moment first) or "source" (by video, then time).
        per_video_seconds (None): the most seconds any one video may give; None: no cap.

    Returns:
        The moments, in reel order; [] when no shot fits.

    Raises:
        ValueError: an unknown order, or a budget or cap that is not a positive number.
    """
    if order not in ORDERS:
        raise ValueError(f"Unknown order '{order}'. Valid orders are {list(ORDERS)}")
    for name, value in (("seconds", seconds), ("per_video_seconds", per_video_seconds)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    capacity = math.floor(seconds * reel_rate)
    items = []  # (candidate index, shot bounds, value, weight)
    for index, candidate in enumerate(candidates):
        shots = _capped_shots(candidate, reel_rate, per_video_seconds)
        lengths = shots[:, 1] - shots[:, 0] + 1
        means = shot_scores(candidate.frame_scores, shots)
        for bounds, length, mean in zip(shots, lengths, means):
            weight = reel_frames(int(length), candidate.frame_rate, reel_rate)
            items.append((index, bounds, float(mean) * weight, weight))
    if not items:
        return []
    chosen = knapsack(np.array([i[2] for i in items]), np.array([i[3] for i in items]), capacity)
    return _moments(candidates, [items[c] for c in chosen], order)


def plan_reel_and_rate(
    candidates: Sequence[Candidate],
    source_rates: dict[str, Fraction],
    seconds: float,
    order: str = "relevance",
    per_video_seconds: float | None = None,
) -> tuple[list[Moment], Fraction]:
    """The moments (`plan_reel`) and the reel's frame rate: the highest of the sources chosen
    (at most MAX_FRAME_RATE).

    The budget is counted in reel frames, so the plan is made at the highest rate of the
    candidates (`source_rates`: key -> rate), then made again at the highest rate of the
    sources it chose when that is lower, and kept when its own sources agree: a 60 fps
    candidate left out does not make the reel 60 fps.
    """

    def top_rate(keys) -> Fraction:
        return min(max(source_rates[key] for key in keys), MAX_FRAME_RATE)

    rate = top_rate(c.key for c in candidates)
    moments = plan_reel(candidates, seconds, rate, order, per_video_seconds)
    if moments and top_rate(m.key for m in moments) < rate:
        lower = top_rate(m.key for m in moments)
        again = plan_reel(candidates, seconds, lower, order, per_video_seconds)
        if again and top_rate(m.key for m in again) == lower:
            return again, lower
    return moments, rate


def _capped_shots(candidate: Candidate, reel_rate: Fraction, per_video_seconds: float | None) -> np.ndarray:
    """The video's shots, or, under a cap, its best shots within the cap (the same knapsack)."""
    shots = np.asarray(candidate.shots, dtype=np.int64).reshape(-1, 2)
    if per_video_seconds is None or len(shots) == 0:
        return shots
    lengths = shots[:, 1] - shots[:, 0] + 1
    weights = np.array([reel_frames(int(n), candidate.frame_rate, reel_rate) for n in lengths])
    values = shot_scores(candidate.frame_scores, shots) * weights
    return shots[knapsack(values, weights, math.floor(per_video_seconds * reel_rate))]


def _moments(candidates: Sequence[Candidate], chosen: list, order: str) -> list[Moment]:
    by_video: dict[int, list] = {}
    for index, bounds, _, _ in chosen:
        by_video.setdefault(index, []).append((int(bounds[0]), int(bounds[1])))
    moments = []
    for index, spans in sorted(by_video.items()):
        candidate = candidates[index]
        joined: list[list[int]] = []
        for first, last in sorted(spans):
            if joined and joined[-1][1] + 1 == first:
                joined[-1][1] = last
            else:
                joined.append([first, last])
        for first, last in joined:
            scores = candidate.frame_scores[first : last + 1]
            best = first + 1 + int(np.argmax(scores))
            moments.append(
                Moment(candidate.key, candidate.path, first + 1, last + 1, candidate.frame_rate, float(scores.mean()), best)
            )
    if order == "relevance":
        moments.sort(key=lambda m: -m.score)
    return moments


@dataclass(frozen=True)
class SourceFormat:
    """What the reel needs to know of a source: its rate, upright size and whether it has audio."""

    frame_rate: Fraction
    width: int
    height: int
    has_audio: bool


def source_format(path: str) -> SourceFormat:
    """Reads a source's frame rate, upright size and audio (decodes its first frame).

    Raises:
        VideoError: unreadable, or it states no frame rate.
    """
    with VideoCursor(path) as video:
        if not video.frame_rate:
            raise VideoError(path, "states no frame rate; a reel cannot be timed")
        return SourceFormat(video.frame_rate, video.width, video.height, video.has_audio)


def reel_format(sources: Sequence[SourceFormat]) -> OutputFormat:
    """One rate and size for a reel of these sources: the highest rate (at most 60) and the
    largest source by area (sizes made even); AAC audio when any source has audio."""
    rate = min(max(s.frame_rate for s in sources), MAX_FRAME_RATE)
    largest = max(sources, key=lambda s: s.width * s.height)
    any_audio = any(s.has_audio for s in sources)
    return OutputFormat(
        rate, largest.width - largest.width % 2, largest.height - largest.height % 2,
        AUDIO_RATE if any_audio else None, AUDIO_LAYOUT,
    )


def letterboxed(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(height, width, 3)`` uint8: `image` scaled to fit, aspect kept, centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    fit_w, fit_h = max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
    fit_w, fit_h = min(fit_w, width), min(fit_h, height)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    scaled = frame.to_ndarray(width=fit_w, height=fit_h, format="rgb24", interpolation="BICUBIC")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    canvas[top : top + fit_h, left : left + fit_w] = scaled
    return canvas


@dataclass(frozen=True)
class ReelPart:
    """Where a moment sits in the written reel: reel frames ``first..last`` (1-based, inclusive)
    show the source frames `source_frames` (one per reel frame, in order)."""

    first: int
    last: int
    source_frames: list[int]


def conformed_numbers(moment: Moment, reel_rate: Fraction) -> list[int]:
    """The source frame each reel frame of `moment` shows: the one on screen at reel time j / rate."""
    n = reel_frames(moment.last - moment.first + 1, moment.frame_rate, reel_rate)
    ratio = Fraction(moment.frame_rate).limit_denominator(1001000) / reel_rate
    return [min(moment.last, moment.first + math.floor(j * ratio)) for j in range(n)]


def write_reel(
    moments: Sequence[Moment],
    path: str,
    output: OutputFormat,
    options: EncodeOptions = EncodeOptions(),
    progress: Callable[[int], None] | None = None,
) -> list[ReelPart]:
    """Writes the moments, in order, into one mp4 at `output`'s rate and size (see the module).

    Written under a temporary name and renamed when complete (a failure leaves nothing).

    Args:
        moments: what to show, in reel order.
        path: the mp4 to write.
        output: the reel's format (`reel_format`).
        options: how to encode.
        progress (None): called with the index of each moment when it is done.

    Returns:
        One ReelPart per moment, in order.

    Raises:
        VideoError: a source cannot be read, or holds fewer frames than a moment needs.
    """
    writer = Mp4Writer(path, output, options)
    parts = []
    # one reader per source for the whole reel: opening one reads its packet index, and the
    # moments of a source come in relevance order, not one after the other
    videos: dict[str, VideoCursor] = {}
    audios: dict[str, AudioCursor] = {}
    try:
        for index, moment in enumerate(moments):
            numbers = conformed_numbers(moment, output.frame_rate)
            start = writer.n_frames + 1
            if moment.path not in videos:
                videos[moment.path] = VideoCursor(moment.path)
            video = videos[moment.path]
            repeats = Counter(numbers)  # frames in order, streamed: a long moment is never held
            for item in video.frames(moment.first, moment.last):
                if repeats[item.number]:
                    image = letterboxed(video.rgb(item.frame), output.width, output.height)
                    for _ in range(repeats[item.number]):
                        writer.add_frame(av.VideoFrame.from_ndarray(image, format="rgb24"))
            if writer.n_frames - start + 1 != len(numbers):
                raise VideoError(moment.path, f"holds fewer frames than its moment {moment.first}-{moment.last}")
            if output.audio_rate and video.has_audio:
                if moment.path not in audios:
                    audios[moment.path] = AudioCursor(moment.path, output.audio_rate, output.audio_layout)
                writer.add_audio(audios[moment.path].samples(video.clock_time(moment.first), video.clock_time(moment.last + 1)))
            writer.end_segment((moment.first, moment.last))
            parts.append(ReelPart(start, writer.n_frames, numbers))
            if progress is not None:
                progress(index)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        for reader in (*videos.values(), *audios.values()):
            reader.close()
    return parts


def reel_storyboard(moments: Sequence[Moment], path: str, title: str, size: tuple[int, int] = (320, 180)) -> str:
    """A PNG with each moment's best frame, in reel order, captioned with the source's name,
    the moment's times and its score (frames letterboxed to one `size`)."""
    images, captions = [], []
    for moment in moments:
        images.append(letterboxed(read_frames(moment.path, [moment.best])[0], *size))
        captions.append(
            f"{os.path.basename(moment.path)} {format_time(moment.start_seconds)}-"
            f"{format_time(moment.end_seconds)} ({moment.score:.3f})"
        )
    return render_storyboard(images, captions, path, title=title)


def moment_record(moment: Moment, part: ReelPart, reel_rate: Fraction) -> dict:
    """A moment as the manifest keeps it: source, frames, seconds, score and its place in the reel."""
    return {
        **asdict(moment),
        "start_seconds": moment.start_seconds,
        "end_seconds": moment.end_seconds,
        "reel_frames": [part.first, part.last],
        "reel_seconds": [(part.first - 1) / float(reel_rate), part.last / float(reel_rate)],
        "source_frames": part.source_frames,
    }

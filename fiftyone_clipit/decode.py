"""Video probing and frame sampling with PyAV: streamed, threaded, resized in the decoder.

Frames are read through :class:`fiftyone_clipit.cursor.VideoCursor`, the one reader that
storyboards and exports use too: a frame's time is its presentation timestamp in seconds from
the start of the stream; frame numbers are 1-based (FiftyOne's convention) and rank the frame's
timestamp, so they index the same frames FiftyOne shows and exports cut. Frames are turned
upright (the container's display rotation, as players and the App apply it) before they are
resized.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator, TypeVar

import av
import numpy as np

from fiftyone_clipit.cursor import VideoCursor, open_video, video_stream
from fiftyone_clipit.errors import BrokenVideoError, VideoError

T = TypeVar("T")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its container (no full decode)."""

    path: str
    width: int
    height: int
    frame_rate: float
    n_frames: int
    duration: float
    codec: str
    has_audio: bool
    size_bytes: int


@dataclass(frozen=True)
class FrameBatch:
    """A batch of sampled frames.

    Attributes:
        frames: uint8 array (b, h, w, 3), RGB.
        frame_numbers: int64 array (b,), 1-based frame numbers in the source video.
        times: float64 array (b,), presentation times in seconds.
    """

    frames: np.ndarray
    frame_numbers: np.ndarray
    times: np.ndarray


@dataclass(frozen=True)
class ResizeSpec:
    """How the decoder shapes frames for a model: shortest side to `size`, then a centre crop.

    Mirrors torchvision's Resize(int) + CenterCrop(size), which open_clip's "shortest" resize
    mode uses, so decoder-side resizing matches the model's own transform.
    """

    size: int
    interpolation: str = "BICUBIC"
    center_crop: bool = True


@dataclass
class DecodeStatus:
    """How far decoding of one video got; `iter_sampled_frames` fills it in as it runs.

    Attributes:
        n_decoded: frames decoded so far.
        n_expected: frames the container says it holds (0 when it does not say).
        broken: why decoding stopped before the end, when it did and the frames before were kept.
    """

    n_decoded: int = 0
    n_expected: int = 0
    broken: str | None = None


def probe_video(path: str) -> VideoInfo:
    """Reads a video's size, frame rate, frame count and duration.

    The frame count comes from the container when it states one, else from counting video
    packets (demuxing without decoding), so it is exact for the streams FiftyOne reads.

    Raises:
        VideoError: the file is missing, empty, not a video, or has no video stream.
    """
    with open_video(path) as container:
        stream = video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        frame_rate = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        n_frames = stream.frames
        if not n_frames:
            try:
                n_frames = sum(1 for packet in container.demux(stream) if packet.size)
            except av.error.FFmpegError as e:
                raise VideoError(path, f"cannot be demuxed ({e})") from e
        if n_frames <= 0 or stream.width <= 0:
            raise VideoError(path, "has a video stream with no frames")
        if not frame_rate and duration > 0:
            frame_rate = n_frames / duration
        if not duration and frame_rate:
            duration = n_frames / frame_rate
        return VideoInfo(
            path=path,
            width=stream.width,
            height=stream.height,
            frame_rate=frame_rate,
            n_frames=int(n_frames),
            duration=duration,
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
            size_bytes=os.path.getsize(path),
        )


def resized_shape(width: int, height: int, spec: ResizeSpec) -> tuple[int, int]:
    """(width, height) after scaling the shortest side to spec.size, as torchvision computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(spec.size * long / short)
    return (spec.size, new_long) if width <= height else (new_long, spec.size)


def _center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return image[top : top + size, left : left + size]


def iter_sampled_frames(
    path: str,
    fps: float,
    resize: ResizeSpec | None = None,
    batch_size: int = 32,
    keep_partial: bool = False,
    status: DecodeStatus | None = None,
    codec_threads: int = 0,
) -> Iterator[FrameBatch]:
    """Decodes a video once and yields the frames sampled at `fps`, in batches.

    Sampling follows the real timestamps (so variable frame rate works): the first frame at or
    after each time k / fps, k = 0, 1, ... is kept; a target with no frame of its own (frames
    sparser than fps) is skipped rather than repeating a frame. Rotated videos (a display
    matrix in the container) come out upright, as players show them.

    Args:
        path: the video file.
        fps: samples per second; must be > 0.
        resize (None): shape frames in the decoder for a model; None keeps the full size.
        batch_size (32): frames per yielded batch.
        keep_partial (False): when the video breaks off mid-stream, end with the frames that
            decoded (and say why in `status.broken`) instead of raising BrokenVideoError.
        status (None): a DecodeStatus to fill in: frames decoded, expected, why it broke off.
        codec_threads (0): decoder threads; 0 lets FFmpeg choose (frame and slice threads, as
            many as cores), 1 decodes in the calling thread only (best when a CPU model needs
            every core, see fo/embeddings.py).

    Raises:
        ValueError: fps or batch_size not positive.
        VideoError: the file cannot be opened or no frame decodes.
        BrokenVideoError: decoding broke off mid-stream (unless keep_partial).
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    with VideoCursor(path, codec_threads=codec_threads) as cursor:
        status = status if status is not None else DecodeStatus()
        status.n_expected = cursor.n_expected
        broke_off = lambda why: record_break(path, status, why, keep_partial)
        yield from sampled_batches(cursor, fps, resize, batch_size, status, broke_off)
        check_whole(path, status, keep_partial)


def check_whole(path: str, status: DecodeStatus, keep_partial: bool) -> None:
    """Once a video is read to its end: records (or raises, see record_break) that it broke off
    where it decoded fewer frames than its container states (frame-threaded decoders end quietly
    where the data ends)."""
    if status.broken is None and status.n_decoded < status.n_expected - max(2, status.n_expected // 100):
        record_break(path, status, "the data ends there", keep_partial)


def sample_step(fps: float) -> Fraction:
    """Seconds between sampling times: the times sampled at `fps` are k * sample_step(fps)."""
    return Fraction(1) / Fraction(fps).limit_denominator(10**6)


def sampled_batches(
    cursor: VideoCursor,
    fps: float,
    resize: ResizeSpec | None,
    batch_size: int,
    status: DecodeStatus,
    broke_off: Callable[[str], None],
    start: Fraction = Fraction(0),
    end: Fraction | None = None,
) -> Iterator[FrameBatch]:
    """The frames of `cursor` sampled at `fps` whose times fall in [start, end), in batches (see
    iter_sampled_frames for the rule). `start` is a sampling time, so a video read window by
    window gives the frames it gives read whole. Frames decoded in the window are counted in
    `status.n_decoded`; where decoding fails, `broke_off(why)` is called (it may raise) and the
    frames before are yielded."""
    eps = 1e-6
    step = sample_step(fps)
    next_time = start
    frames, numbers, times = [], [], []
    try:
        for item in cursor.frames(cursor.number_near(float(start)) if start else 1):
            if start and item.time + eps < start:  # before the window: decoded from a keyframe on
                continue
            if end is not None and item.time + eps >= end:
                break
            status.n_decoded += 1
            if item.time + eps < next_time:
                continue
            frames.append(_to_rgb(cursor, item.frame, resize))
            numbers.append(item.number)
            times.append(item.time)
            next_time = step * (math.floor(Fraction(item.time + eps) / step) + 1)
            if len(frames) == batch_size:
                yield FrameBatch(np.stack(frames), np.asarray(numbers), np.asarray(times))
                frames, numbers, times = [], [], []
    except av.error.FFmpegError as e:
        broke_off(str(e))
    if frames:
        yield FrameBatch(np.stack(frames), np.asarray(numbers), np.asarray(times))


def record_break(path: str, status: DecodeStatus, why: str, keep_partial: bool) -> None:
    """Records where a video broke off, or raises BrokenVideoError when that is not to be kept."""
    expected = f" of {status.n_expected}" if status.n_expected else ""
    reason = f"decoding broke off after {status.n_decoded}{expected} frames ({why})"
    if not keep_partial:
        raise BrokenVideoError(path, reason, status.n_decoded)
    status.broken = reason


def _to_rgb(cursor: VideoCursor, frame: av.VideoFrame, resize: ResizeSpec | None) -> np.ndarray:
    """An upright RGB frame: scaled by swscale (sized for the upright shape), turned, cropped."""
    if resize is None:
        return cursor.rgb(frame)
    size = resized_shape(cursor.width, cursor.height, resize)
    image = cursor.rgb(frame, size, resize.interpolation)
    return _center_crop(image, resize.size) if resize.center_crop else image


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Runs `items` in a background thread, `depth` items ahead, so a consumer never waits on it.

    Exceptions raised by the producer are re-raised in the consumer at the point they occurred.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((item, None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            buffer.put((None, e))
        buffer.put((done, None))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)

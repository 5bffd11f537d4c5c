"""One way to read a video's frames: opened, turned upright, numbered by timestamp, sought, read.

Embedding, storyboards and exports all read frames through :class:`VideoCursor`, so "frame
number N" is the same picture in embeddings, scores, summaries, keyframes and exported files:

- Numbers are 1-based (FiftyOne's convention) and rank a frame's presentation timestamp among
  the timestamps of the stream's packets, read by demuxing (no decoding) when the video opens.
  For constant and variable frame rates alike, frame N is the N-th frame shown; a frame reached
  after a seek gets the number it gets when decoding from the start; a file cut short simply
  has fewer frames. A stream without timestamps numbers frames in decode order and is read
  from its start again instead of seeking.
- Time is the presentation timestamp: ``NumberedFrame.time`` in seconds from the stream's
  start, :meth:`VideoCursor.clock_time` on the container's clock (the one audio shares), exact.
- Frames are turned upright by the container's display rotation, as players and the App show
  them, before they are scaled (:meth:`VideoCursor.rgb`) or encoded (:meth:`VideoCursor.upright`).
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from fiftyone_clipit.errors import VideoError


@dataclass(frozen=True)
class NumberedFrame:
    """A decoded frame and where it sits in its video.

    Attributes:
        number: 1-based frame number (rank of its timestamp, see the module docstring).
        time: presentation time in seconds from the start of the stream.
        frame: the decoded frame as stored (not yet turned upright).
    """

    number: int
    time: float
    frame: av.VideoFrame


def open_video(path: str) -> av.container.InputContainer:
    """Opens a media file for reading.

    Raises:
        VideoError: the file is missing, empty, or not something FFmpeg can read.
    """
    if not os.path.exists(path):
        raise VideoError(path, "file not found; check the path")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "file is empty (0 bytes); re-copy or re-download it")
    try:
        return av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError(path, f"not a readable video ({e}); is it really a video file?") from e


#: FFmpeg demuxers that read one still image (PNG, JPEG, WebP, BMP, TIFF, ...), not a video
IMAGE_DEMUXERS = ("image2", "image2pipe")


def is_still_image(container: av.container.InputContainer) -> bool:
    """Whether FFmpeg reads the file as a still image, whatever its extension: its demuxer is
    an image one (`image2`, `image2pipe` or an `*_pipe` one such as `png_pipe`, `jpeg_pipe`),
    or it is a GIF of one frame. A video of one frame (an mp4 holding one H.264 frame, say) is a
    video: the decision is the container's, not the number of frames."""
    name = container.format.name
    if name in IMAGE_DEMUXERS or name.endswith("_pipe"):
        return True
    return name == "gif" and container.streams.video[0].frames <= 1


def video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    """The first video stream of an open container.

    Raises:
        VideoError: there is none (audio-only or not a video), or the file is a still image
            (see `is_still_image`), so that an image renamed `.mp4` is never taken as a
            one-frame video.
    """
    if not container.streams.video:
        raise VideoError(path, "has no video stream (audio-only or not a video)")
    if is_still_image(container):
        name = container.format.name
        kind = container.streams.video[0].codec_context.name if name in IMAGE_DEMUXERS else name.removesuffix("_pipe")
        raise VideoError(
            path,
            f"is a still {kind.upper()} image (FFmpeg reads it as '{name}'), not a video, "
            "whatever its extension; give the video file instead, or leave it out",
        )
    return container.streams.video[0]


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (0-3) that show a decoded frame upright (np.rot90's k)."""
    return int(round((frame.rotation or 0) / 90.0)) % 4


def packet_timestamps(path: str) -> list[int] | None:
    """Sorted presentation timestamps of the first video stream's packets (demuxed, not decoded).

    Packets the container marks to be discarded (before an edit list's start) and empty ones
    are left out. Where the data ends early, the packets read up to there are kept.

    Returns:
        The timestamps in the stream's time base, or None when a packet has none.
    """
    timestamps = []
    with open_video(path) as container:
        stream = video_stream(container, path)
        try:
            for packet in container.demux(stream):
                if not packet.size or packet.is_discard:
                    continue
                if packet.pts is None:
                    return None
                timestamps.append(packet.pts)
        except av.error.FFmpegError:  # a cut file: the packets before the cut are the frames
            pass
    return sorted(timestamps)


def frame_seconds(path: str, n_frames: int, frame_rate: float) -> np.ndarray:
    """``(n_frames,)`` float64 times, in seconds from the stream's start, of frames 1..n_frames as
    :class:`VideoCursor` numbers them: their timestamps (demuxed, not decoded), or
    ``(number - 1) / frame_rate`` where the stream has none.

    Raises:
        VideoError: the file cannot be read or has no video stream.
    """
    seconds = np.arange(n_frames, dtype=np.float64) / frame_rate
    timestamps = packet_timestamps(path)
    with open_video(path) as container:
        stream = video_stream(container, path)
        if timestamps and stream.time_base is not None:
            start = stream.start_time or 0
            known = [float((t - start) * stream.time_base) for t in timestamps[:n_frames]]
            seconds[: len(known)] = known
    return seconds


class VideoCursor:
    """Upright frames of one video by frame number, decoded forward, seeking over long gaps.

    Opening decodes the first frame (so `width`, `height` and `turns` are known, and a file with
    no decodable frame fails here). Use as a context manager, or call :meth:`close`.

    Attributes:
        path: the video file.
        width, height: size of the frames upright (as shown).
        turns: counter-clockwise quarter turns that make a stored frame upright.
        frame_rate: the stream's average (else guessed) frame rate; None when it states none.
        n_expected: frames the container says the stream holds (0 when it does not say).
        has_audio: whether the file has an audio stream.
    """

    #: Keep decoding instead of seeking when the next frame wanted is at most this many seconds on.
    seek_gap_seconds = 2.0

    def __init__(self, path: str, codec_threads: int = 0):
        """Opens `path` and decodes its first frame.

        Args:
            path: the video file.
            codec_threads (0): decoder threads; 0 lets FFmpeg choose, 1 decodes in this thread.

        Raises:
            VideoError: unreadable, no video stream, or no frame decodes.
        """
        self.path = path
        self.codec_threads = codec_threads
        self._timestamps = packet_timestamps(path)
        self._open()
        try:
            stream = self.stream
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.frame_rate: Fraction | None = Fraction(rate) if rate else None
            self.n_expected = int(stream.frames or 0)
            self.has_audio = bool(self.container.streams.audio)
            try:
                first = self._next()
            except av.error.FFmpegError as e:
                raise VideoError(path, f"no frame could be decoded ({e})") from e
            if first is None:
                raise VideoError(path, "has a video stream but no frame could be decoded")
        except BaseException:
            self.container.close()
            raise
        self._pending: NumberedFrame | None = first
        self.turns = quarter_turns(first.frame)
        stored = (first.frame.width, first.frame.height)
        self.width, self.height = stored[::-1] if self.turns % 2 else stored

    def _open(self) -> None:
        """(Re)opens the container at its start."""
        self.container = open_video(self.path)
        self.stream = video_stream(self.container, self.path)
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = self.codec_threads
        self.time_base = Fraction(self.stream.time_base) if self.stream.time_base else None
        self.start_pts = self.stream.start_time or 0
        self._decoder: Iterator[av.VideoFrame] | None = self.container.decode(self.stream)
        self._count = 0  # frames decoded since the container was opened (decode-order numbers)
        self._from_start = True
        self._pending = None
        self._last_number = 0

    def __enter__(self) -> VideoCursor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file."""
        self.container.close()

    @property
    def n_indexed(self) -> int | None:
        """Frames the packet index holds (the largest frame number there can be), None without one."""
        return None if self._timestamps is None else len(self._timestamps)

    def number_near(self, seconds: float) -> int:
        """A frame number at or just before the first frame `seconds` into the stream (1 without
        timestamps): where to start reading to meet every frame from that time on."""
        if self._timestamps is None or self.time_base is None:
            return 1
        pts = self.start_pts + math.floor(Fraction(seconds) / self.time_base)
        return max(1, bisect.bisect_left(self._timestamps, pts))

    def clock_time(self, number: int) -> Fraction:
        """Container-clock time (seconds) at which frame `number` starts; one past the last frame
        gives where the last one ends (its timestamp plus one frame at `frame_rate`).

        Raises:
            VideoError: neither timestamps nor a frame rate say when the frame is.
        """
        if number < 1:
            raise ValueError(f"frame numbers start at 1, got {number}")
        if self._timestamps and self.time_base is not None:
            index = min(number, len(self._timestamps)) - 1
            beyond = number - 1 - index
            if beyond and not self.frame_rate:
                raise VideoError(self.path, "states no frame rate; frames past the last cannot be timed")
            extra = Fraction(beyond) / self.frame_rate if beyond else Fraction(0)
            return self._timestamps[index] * self.time_base + extra
        if not self.frame_rate:
            raise VideoError(self.path, "has neither timestamps nor a frame rate; remux it (ffmpeg -c copy)")
        return Fraction(self.start_pts) * (self.time_base or 0) + Fraction(number - 1) / self.frame_rate

    def frames(self, first: int = 1, last: int | None = None) -> Iterator[NumberedFrame]:
        """Yields frames `first..last` (inclusive; None = to the end) in order, fewer where the
        video has none of those numbers; seeks when `first` is behind or well ahead.

        Raises:
            ValueError: `first` < 1.
            av.error.FFmpegError: decoding failed mid-stream (the frames before were yielded).
        """
        if first < 1:
            raise ValueError(f"frame numbers start at 1, got {first}")
        if self._timestamps is not None and first > len(self._timestamps):
            return
        self._go_to(first)
        while True:
            item, self._pending = self._pending, None
            if item is None:
                item = self._next()
            if item is None:
                self._decoder = None
                return
            if item.number < first:
                continue
            if last is not None and item.number > last:
                self._pending = item
                return
            yield item

    def rgb(self, frame: av.VideoFrame, size: tuple[int, int] | None = None,
            interpolation: str | None = None) -> np.ndarray:
        """``(h, w, 3)`` uint8 RGB of `frame` upright, scaled by swscale before it is turned.

        Args:
            frame: a frame of this video.
            size (None): ``(width, height)`` of the upright image; None keeps the stored size.
            interpolation (None): swscale's method ("BILINEAR", "BICUBIC", ...); None = bilinear.
        """
        if size is None:
            image = frame.to_ndarray(format="rgb24")
        else:
            width, height = size[::-1] if self.turns % 2 else size
            image = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation=interpolation)
        return np.ascontiguousarray(np.rot90(image, self.turns)) if self.turns else image

    def upright(self, frame: av.VideoFrame) -> av.VideoFrame:
        """`frame` turned upright, for encoding (turned in YUV 4:4:4, so colours are not converted)."""
        if not self.turns:
            return frame
        planes = np.rot90(frame.to_ndarray(format="yuv444p"), self.turns, axes=(1, 2))
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv444p")

    def _next(self) -> NumberedFrame | None:
        """The decoder's next frame, numbered; None at the end of the stream."""
        frame = next(self._decoder, None) if self._decoder is not None else None
        if frame is None:
            return None
        self._count += 1
        number = self._number(frame)
        self._last_number = number
        if frame.pts is not None and self.time_base is not None:
            time = float((frame.pts - self.start_pts) * self.time_base)
        elif self.frame_rate:
            time = float((number - 1) / self.frame_rate)
        else:
            time = float(number - 1)
        return NumberedFrame(number, time, frame)

    def _number(self, frame: av.VideoFrame) -> int:
        if self._timestamps is not None and frame.pts is not None:
            return max(1, bisect.bisect_right(self._timestamps, frame.pts))
        if not self._from_start:
            raise VideoError(self.path, "has frames without timestamps; remux it (ffmpeg -c copy)")
        return self._count

    def _go_to(self, first: int) -> None:
        """Places the decoder so that frame `first` comes next (or the first one after it)."""
        upcoming = self._pending.number if self._pending is not None else self._last_number + 1
        if self._decoder is not None and first >= upcoming:
            if self._timestamps is None or first == upcoming:
                return
            if self.clock_time(first) - self.clock_time(upcoming) <= self.seek_gap_seconds:
                return
        self._seek(first)

    def _seek(self, number: int) -> None:
        """Seeks to the keyframe before frame `number`, further back while a seek lands past it."""
        if self._timestamps is None or self.time_base is None or number == 1:
            self.container.close()
            self._open()
            return
        target = self._timestamps[number - 1]
        back = 0
        while True:
            pts = target - back
            if pts <= self._timestamps[0]:
                self.container.close()
                self._open()
                return
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
            self._decoder = self.container.decode(self.stream)
            self._from_start = False
            self._pending = self._next()
            # a seek may land after the frame wanted (inexact indexes): go back further
            if self._pending is not None and self._pending.number <= number:
                return
            back = max(2 * back, int(1 / self.time_base))

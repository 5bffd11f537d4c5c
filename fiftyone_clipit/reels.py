"""Summary videos cut with PyAV: frame-exact segments, re-encoded, audio kept and in sync.

Cutting a compressed video at an arbitrary frame means decoding from the keyframe before it and
encoding again; copying packets would start a clip on a keyframe, seconds off. So every output
is re-encoded (H.264 + AAC in mp4, which every player plays), and the frames are chosen by their
frame number, not by a rounded time:

- video: frames are read through :class:`fiftyone_clipit.cursor.VideoCursor`, the reader that
  embedding uses: numbered by timestamp (constant or variable frame rate, or a file cut short)
  and turned upright by the display rotation, so a segment ``[first, last]`` is exactly the
  frames ``first..last`` the embeddings and scores were computed from, as the App shows them.
  Outputs run at the source's average frame rate.
- audio: the samples of the same stretch of time, from frame ``first``'s timestamp to frame
  ``last + 1``'s, on the source's clock, cut to the sample; each segment adds exactly as many
  samples as its frames last, so audio and video stay in sync however many segments a reel joins.

One pass per video feeds both the summary reel (all segments, in time order) and the per-segment
clips; seeks skip the gaps between segments. Outputs are written under a hidden temporary name
and renamed when complete, so a file with the final name is always whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence

import av
import numpy as np

from fiftyone_clipit.cursor import VideoCursor, open_video
from fiftyone_clipit.errors import VideoError
from fiftyone_clipit.options import EncodeOptions


@dataclass(frozen=True)
class WrittenVideo:
    """One video written by :func:`write_segments`.

    Attributes:
        path: the file.
        segments: the ``(first, last)`` source frame numbers it holds, in order.
        n_frames: frames written (the sum of the segment lengths unless the source ended early).
        duration: seconds of video written.
        has_audio: whether it has an audio stream.
    """

    path: str
    segments: tuple[tuple[int, int], ...]
    n_frames: int
    duration: float
    has_audio: bool


@dataclass(frozen=True)
class SummaryVideos:
    """The reel and the clips of one source video."""

    reel: WrittenVideo | None
    clips: list[WrittenVideo]


def partial_path(path: str) -> str:
    """Where `path` is written until it is complete: hidden, and not ending in its extension."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".partial-{name}.part")


def check_segments(segments: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Checks 1-based inclusive ``(first, last)`` frame ranges: ordered, disjoint, first >= 1."""
    checked = [(int(first), int(last)) for first, last in segments]
    for index, (first, last) in enumerate(checked):
        if first < 1 or last < first:
            raise ValueError(f"Segment {index} = [{first}, {last}] must have 1 <= first <= last")
        if index and first <= checked[index - 1][1]:
            raise ValueError(
                f"Segments must be in time order and disjoint; segment {index} = [{first}, {last}] "
                f"starts before segment {index - 1} = {list(checked[index - 1])} ends"
            )
    return checked


def write_segments(
    source: str,
    segments: Sequence[Sequence[int]],
    reel_path: str | None = None,
    clip_paths: Sequence[str] | None = None,
    options: EncodeOptions = EncodeOptions(),
) -> SummaryVideos:
    """Writes a summary reel (segments joined) and/or one clip per segment, in one pass.

    Args:
        source: the video file.
        segments: ``(first, last)`` 1-based inclusive frame numbers, in time order, disjoint.
        reel_path (None): where to write the reel; None for no reel.
        clip_paths (None): one path per segment; None for no clips.
        options: how to encode.

    Returns:
        The :class:`SummaryVideos` written. Clips finished before an error stay (they are whole);
        the reel and the clip in progress are removed.

    Raises:
        ValueError: segments out of order, or as many clip paths as segments not given.
        VideoError: the source cannot be read, or a segment lies past its last frame.
        OSError / av.error.FFmpegError: writing failed (e.g. the disk is full).
    """
    segments = check_segments(segments)
    if clip_paths is not None and len(clip_paths) != len(segments):
        raise ValueError(f"{len(clip_paths)} clip paths for {len(segments)} segments")
    video = VideoCursor(source)
    audio = None
    writers: list[Mp4Writer] = []
    try:
        if not video.frame_rate:
            raise VideoError(source, "states no frame rate; the summary cannot be timed")
        audio = AudioCursor(source) if video.has_audio else None
        output = OutputFormat.of(video, audio)
        reel = Mp4Writer(reel_path, output, options) if reel_path else None
        writers = [reel] if reel else []
        clips = []
        for index, (first, last) in enumerate(segments):
            clip = Mp4Writer(clip_paths[index], output, options) if clip_paths else None
            targets = [w for w in (reel, clip) if w is not None]
            writers = targets
            numbers = []
            for item in video.frames(first, last):
                upright = video.upright(item.frame)
                for writer in targets:
                    writer.add_frame(upright)
                numbers.append(item.number)
            if not numbers:
                raise VideoError(source, f"segment [{first}, {last}] lies past the last frame")
            if audio is not None:
                start, stop = video.clock_time(numbers[0]), video.clock_time(numbers[-1] + 1)
                samples = audio.samples(start, stop)
                for writer in targets:
                    writer.add_audio(samples)
            for writer in targets:
                writer.end_segment((numbers[0], numbers[-1]))
            if clip is not None:
                clips.append(clip.close())
                writers = [reel] if reel else []
        written_reel = reel.close() if reel else None
        writers = []
        return SummaryVideos(written_reel, clips)
    finally:
        for writer in writers:
            writer.abort()
        video.close()
        if audio is not None:
            audio.close()


def read_frames(source: str, frame_numbers: Sequence[int], width: int = 320) -> list[np.ndarray]:
    """Decodes single frames (e.g. keyframes for a storyboard) upright, scaled to `width` pixels wide.

    Returns:
        One ``(h, width, 3)`` uint8 RGB array per frame number, in the order asked.

    Raises:
        VideoError: the source cannot be read or has no frame of a number asked.
    """
    with VideoCursor(source) as cursor:
        height = max(2, round(cursor.height * width / cursor.width / 2) * 2)
        images = {}
        for number in sorted(set(int(n) for n in frame_numbers)):
            item = next(iter(cursor.frames(number, number)), None)
            if item is None:
                holds = f"; it holds {cursor.n_indexed} frames" if cursor.n_indexed else ""
                raise VideoError(source, f"has no frame number {number}{holds}")
            images[number] = cursor.rgb(item.frame, (width, height))
        return [images[int(n)] for n in frame_numbers]


class AudioCursor:
    """Audio samples by source-clock time, decoded to planar float and kept in sync.

    `rate` and `layout` (None: the source's) resample on decoding, so sources of other rates
    and channel layouts can share one output (a highlight reel).
    """

    def __init__(self, path: str, rate: int | None = None, layout: str | None = None):
        self.container = open_video(path)
        self.stream = self.container.streams.audio[0]
        self.rate = rate or self.stream.rate
        self.layout = layout or self.stream.layout.name
        self.channels = av.AudioLayout(self.layout).nb_channels
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self._frames: Iterator[av.AudioFrame] | None = None
        self._buffer = np.zeros((self.channels, 0), dtype=np.float32)
        self._buffer_start = 0  # source sample index of self._buffer[:, 0]

    def _seek(self, sample: int) -> None:
        seconds = max(Fraction(sample, self.rate) - Fraction(1, 10), 0)
        self.container.seek(int(seconds / self.stream.time_base), stream=self.stream, backward=True)
        self._frames = self.container.decode(self.stream)
        self._buffer = np.zeros((self.channels, 0), dtype=np.float32)
        self._buffer_start = sample

    def _fill(self) -> bool:
        """Appends the next decoded frame to the buffer; False at the end of the stream."""
        frame = next(self._frames, None)
        if frame is None:
            return False
        start = round(frame.pts * self.stream.time_base * self.rate) if frame.pts is not None else None
        data = np.concatenate([f.to_ndarray() for f in self._resampler.resample(frame)], axis=1)
        end = self._buffer_start + self._buffer.shape[1]
        if self._buffer.shape[1] == 0 and start is not None:
            self._buffer_start = end = start
        if start is not None and start > end:  # a hole in the audio: silence
            data = np.concatenate([np.zeros((self.channels, start - end), np.float32), data], axis=1)
        elif start is not None and start < end:  # overlap: keep what is new
            data = data[:, end - start :]
        self._buffer = np.concatenate([self._buffer, data.astype(np.float32)], axis=1)
        return True

    def samples(self, start: Fraction, stop: Fraction) -> np.ndarray:
        """``(channels, n)`` float32 samples of ``[start, stop)`` seconds; silence where none."""
        first, last = round(start * self.rate), round(stop * self.rate)
        end = self._buffer_start + self._buffer.shape[1]
        if self._frames is None or first < self._buffer_start or first > end + self.rate:
            self._seek(first)
        while self._buffer_start + self._buffer.shape[1] < last and self._fill():
            pass
        out = np.zeros((self.channels, last - first), dtype=np.float32)
        lo, hi = max(first, self._buffer_start), min(last, self._buffer_start + self._buffer.shape[1])
        if hi > lo:
            out[:, lo - first : hi - first] = self._buffer[:, lo - self._buffer_start : hi - self._buffer_start]
        keep = max(0, last - self._buffer_start)
        self._buffer, self._buffer_start = self._buffer[:, keep:], self._buffer_start + keep
        return out

    def close(self) -> None:
        self.container.close()


@dataclass(frozen=True)
class OutputFormat:
    """The frame rate, size and audio of an output; `audio_rate` None: no audio stream."""

    frame_rate: Fraction
    width: int
    height: int
    audio_rate: int | None = None
    audio_layout: str = "stereo"

    @classmethod
    def of(cls, video: VideoCursor, audio: AudioCursor | None) -> OutputFormat:
        """A source's own format (sizes made even, as H.264 in yuv420p needs)."""
        return cls(
            video.frame_rate, video.width - video.width % 2, video.height - video.height % 2,
            audio.rate if audio is not None else None, audio.layout if audio is not None else "stereo",
        )


class Mp4Writer:
    """One H.264 (+ AAC) mp4 written under a temporary name, renamed by `close`.

    Frames go in with `add_frame` (any size: they are scaled to the output's), their audio with
    `add_audio`; `end_segment` then pads or trims the audio to the frames, so any number of
    segments, from any number of sources, stay in sync.
    """

    def __init__(self, path: str, output: OutputFormat, options: EncodeOptions):
        self.path = path
        self.partial = partial_path(path)
        self.rate = output.frame_rate
        self.width, self.height = output.width, output.height
        self.segments: list[tuple[int, int]] = []
        self.n_frames = 0
        self._container = av.open(self.partial, "w", format="mp4", options={"movflags": "+faststart"})
        try:
            self._video = self._container.add_stream("libx264", rate=self.rate)
            self._video.width, self._video.height = self.width, self.height
            self._video.pix_fmt = "yuv420p"
            self._video.options = {"crf": str(options.crf), "preset": options.preset}
            self._audio = None
            if output.audio_rate:
                self._audio = self._container.add_stream("aac", rate=output.audio_rate, layout=output.audio_layout)
                self._audio.bit_rate = options.audio_bitrate
                self._audio_rate, self._audio_layout = output.audio_rate, output.audio_layout
                self._pending = np.zeros((av.AudioLayout(output.audio_layout).nb_channels, 0), dtype=np.float32)
                self._n_samples = 0
        except BaseException:
            self.abort()
            raise

    def add_frame(self, frame: av.VideoFrame) -> None:
        out = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        out.pts = self.n_frames
        out.time_base = 1 / self.rate
        out.pict_type = av.video.frame.PictureType.NONE  # let x264 place its own keyframes
        for packet in self._video.encode(out):
            self._container.mux(packet)
        self.n_frames += 1

    def add_audio(self, samples: np.ndarray) -> None:
        if self._audio is not None:
            self._pending = np.concatenate([self._pending, samples], axis=1)
            self._emit_audio(final=False)

    def end_segment(self, segment: tuple[int, int]) -> None:
        """Pads or trims audio so that it lasts exactly as long as the frames written so far."""
        self.segments.append(segment)
        if self._audio is None:
            return
        wanted = round(Fraction(self.n_frames) / self.rate * self._audio_rate) - self._n_samples
        have = self._pending.shape[1]
        if have < wanted:
            pad = np.zeros((self._pending.shape[0], wanted - have), dtype=np.float32)
            self._pending = np.concatenate([self._pending, pad], axis=1)
        else:
            self._pending = self._pending[:, : max(wanted, 0)]
        self._emit_audio(final=False)

    def _emit_audio(self, final: bool) -> None:
        size = 1024  # AAC frame; the last one may be shorter
        while self._pending.shape[1] >= size or (final and self._pending.shape[1]):
            chunk, self._pending = self._pending[:, :size], self._pending[:, size:]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=self._audio_layout)
            frame.sample_rate = self._audio_rate
            frame.pts = self._n_samples
            frame.time_base = Fraction(1, self._audio_rate)
            self._n_samples += chunk.shape[1]
            for packet in self._audio.encode(frame):
                self._container.mux(packet)

    def close(self) -> WrittenVideo:
        """Flushes the encoders, closes the file and gives it its final name."""
        try:
            for packet in self._video.encode():
                self._container.mux(packet)
            if self._audio is not None:
                self._emit_audio(final=True)
                for packet in self._audio.encode():
                    self._container.mux(packet)
            self._container.close()
            os.replace(self.partial, self.path)
        except BaseException:
            self.abort()
            raise
        return WrittenVideo(
            path=self.path,
            segments=tuple(self.segments),
            n_frames=self.n_frames,
            duration=float(Fraction(self.n_frames) / self.rate),
            has_audio=self._audio is not None,
        )

    def abort(self) -> None:
        """Closes and removes the temporary file (a failed write leaves nothing behind)."""
        try:
            self._container.close()
        except Exception:  # closing a broken file may fail again; the file is removed below
            pass
        if os.path.exists(self.partial):
            os.remove(self.partial)

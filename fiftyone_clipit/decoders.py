"""Decoders for the ingest: one background thread, or a pool of decoder processes.

Either way the model gets, for every video in the order given, its sampled frames in batches and
then how decoding went (or why it failed). With one decoder, a thread of this process decodes the
videos one after the other (the CPU model takes the other cores). With several, every video is
cut into chunks of sampling times (a few batches each) and each chunk goes to the decoder
process with the fewest chunks left, each decoding into its own bounded queue: n chunks decode at
once, of one long video or of many short ones, memory stays at n queues of two chunks, and the results
still come out in order, the frames those one decoder gives. A video that fails in a decoder (an
unreadable file, a crash of the process) fails alone, named; a crashed decoder is started again
for the chunks after it. The processes are spawned (no copy of a parent holding a model, threads
or a database connection) and import only PyAV and numpy. They end with the run, and on their
own when the process that started them dies (their pipes close: a killed run leaves no decoder
behind).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import queue
import sys
import threading
import types
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Iterator, Sequence

import av
import numpy as np

from fiftyone_clipit.cursor import VideoCursor, open_video, video_stream
from fiftyone_clipit.decode import (
    DecodeStatus,
    FrameBatch,
    ResizeSpec,
    check_whole,
    iter_sampled_frames,
    prefetch,
    record_break,
    sample_step,
    sampled_batches,
)
from fiftyone_clipit.errors import BrokenVideoError, VideoError

#: what a decoder hands on for a video: a batch, then its status or its error
Event = FrameBatch | DecodeStatus | VideoError

_FIRST_BATCH = 8
_POLL_SECONDS = 1.0


def _merged(parts: list[FrameBatch]) -> FrameBatch:
    if len(parts) == 1:
        return parts[0]
    return FrameBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("frames", "frame_numbers", "times")))


def _rebatched(parts: Iterator[FrameBatch], batch_size: int, first: bool) -> Iterator[FrameBatch]:
    """Small decoded parts gathered into batches of `batch_size`; the first batch of a decoder's
    run (`first`) is the first part alone, so the model starts as soon as a few frames are decoded
    (a full first batch kept it idle ~0.25 s, 5% of a 70-second-footage run); after that the
    decoder is ahead and batches are full."""
    gathered, n = [], 0
    for part in parts:
        gathered.append(part)
        n += len(part.frame_numbers)
        if n >= batch_size or first:
            yield _merged(gathered)
            gathered, n, first = [], 0, False
    if gathered:
        yield _merged(gathered)


def _part_size(batch_size: int) -> int:
    """The decoded part: the largest divisor of `batch_size` up to `_FIRST_BATCH`."""
    return max(d for d in range(1, min(_FIRST_BATCH, batch_size) + 1) if batch_size % d == 0)


def _video_events(
    path: str, fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool, codec_threads: int,
    first: bool,
) -> Iterator[Event]:
    """One video's batches, then its DecodeStatus, or a VideoError where it fails."""
    status = DecodeStatus()
    parts = iter_sampled_frames(
        path, fps, resize=resize, batch_size=_part_size(batch_size), keep_partial=keep_partial, status=status,
        codec_threads=codec_threads,
    )
    try:
        yield from _rebatched(parts, batch_size, first)
    except VideoError as e:
        yield e
        return
    yield status


def decode_in_thread(
    videos: Sequence[tuple[str, str]], fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool,
    codec_threads: int, depth: int,
) -> Iterator[tuple[str, Event]]:
    """(key, event) for every video in order, decoded by one thread at most `depth` batches ahead."""

    def events() -> Iterator[tuple[str, Event]]:
        for i, (key, path) in enumerate(videos):
            for event in _video_events(path, fps, resize, batch_size, keep_partial, codec_threads, i == 0):
                yield key, event

    return prefetch(events(), depth=depth)


@dataclass(frozen=True)
class _Chunk:
    """A window of one video's sampling times, decoded by one decoder: [start, end) seconds
    (end None: to the end of the video)."""

    video: int
    index: int
    n_chunks: int
    start: Fraction
    end: Fraction | None


def _stated_seconds(path: str) -> float | None:
    """The duration the container states (its header only), None when it states none or the
    file cannot be opened (its decoder then says why)."""
    try:
        with open_video(path) as container:
            stream = video_stream(container, path)
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration is not None else None
    except (VideoError, av.error.FFmpegError, OSError):
        return None


def _chunks(videos: Sequence[tuple[str, str]], fps: float, samples: int) -> Iterator[_Chunk]:
    """Every video cut into windows of `samples` sampling times, the last one open-ended."""
    length = samples * sample_step(fps)
    for v, (_, path) in enumerate(videos):
        seconds = _stated_seconds(path)
        n = max(1, math.ceil(Fraction(seconds) / length)) if seconds else 1
        for j in range(n):
            yield _Chunk(v, j, n, j * length, (j + 1) * length if j + 1 < n else None)


class _OpenVideo:
    """The video a decoder process is on, kept open from one of its chunks to the next."""

    cursor: VideoCursor | None = None

    def at(self, path: str) -> VideoCursor:
        if self.cursor is None or self.cursor.path != path:
            self.close()
            self.cursor = VideoCursor(path, codec_threads=1)
        return self.cursor

    def close(self) -> None:
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None


def _chunk_messages(
    video: _OpenVideo, path: str, fps: float, resize: ResizeSpec | None, batch_size: int, chunk: _Chunk, first: bool,
) -> Iterator[object]:
    """One chunk's batches, then ("end", frames decoded, frames stated, why it broke off or None);
    ("error", reason) where the video fails."""
    try:
        cursor = video.at(path)
        status = DecodeStatus(n_expected=cursor.n_expected)
        broken: list[str] = []
        parts = sampled_batches(
            cursor, fps, resize, _part_size(batch_size), status, broken.append, chunk.start, chunk.end
        )
        yield from _rebatched(parts, batch_size, first)
        yield ("end", status.n_decoded, status.n_expected, broken[0] if broken else None)
    except VideoError as e:
        video.close()
        yield ("error", e.reason)
    except Exception as e:
        video.close()
        yield ("error", f"its decoder failed ({type(e).__name__}: {e})")


def _decoder_process(
    paths: list[str], fps: float, resize: ResizeSpec | None, batch_size: int, jobs: Connection, out: Connection,
) -> None:
    """A decoder process: decodes each chunk it is sent into `out`; ends when the run closes its
    end of either pipe (the run ended, or died)."""
    video, first = _OpenVideo(), True
    try:
        while True:
            chunk = jobs.recv()
            for message in _chunk_messages(video, paths[chunk.video], fps, resize, batch_size, chunk, first):
                out.send(message)
            first = False
    except (EOFError, OSError):  # a pipe closed: the run is gone
        video.close()


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """A bare __main__ while a decoder starts: a fresh process would import the caller's main
    script again (a script importing torch and FiftyOne: ~10 s per decoder on 2 cores), and the
    decoder needs only this module."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_DIED = object()


class _Decoder:
    """One decoder process: chunks go to it down one pipe, its messages come back up another and
    wait in a bounded queue (a thread of this process reads them) that holds two chunks, so a
    decoder finishes its chunks without waiting for the model to reach them."""

    def __init__(self, paths: list[str], args: tuple, depth: int, name: str):
        context = mp.get_context("spawn")
        jobs_out, jobs_in = context.Pipe(duplex=False)
        messages_in, messages_out = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_decoder_process, args=(paths, *args, jobs_out, messages_out), daemon=True, name=name
        )
        with _bare_main():
            self.process.start()
        jobs_out.close()  # the decoder's ends: once it dies, reading its messages ends (no hang)
        messages_out.close()
        self.jobs, self.messages = jobs_in, messages_in
        # two whole chunks' messages (each `depth` batches and its end; a decoder's small first
        # batch): a decoder on quick chunks finishes the next one while the model is still
        # behind on another decoder's slow one
        self.queue: queue.Queue = queue.Queue(maxsize=2 * (depth + 1) + 1)
        self.stopped = threading.Event()
        self.n_sent = self.n_ended = 0  # chunks sent to it, and those whose end it sent back
        self.reader = threading.Thread(target=self._read, daemon=True, name=f"{name}-reader")
        self.reader.start()

    def _read(self) -> None:
        while not self.stopped.is_set():
            try:
                message = self.messages.recv()
            except (EOFError, OSError):  # the process ended, or died mid-message
                message = _DIED
            if isinstance(message, tuple):  # a chunk's end or error: the decoder is done with it
                self.n_ended += 1
            while not self.stopped.is_set():
                try:
                    self.queue.put(message, timeout=_POLL_SECONDS)
                    break
                except queue.Full:
                    pass
            if message is _DIED:
                return

    @property
    def unfinished(self) -> int:
        """Chunks sent to it that it has not finished decoding."""
        return self.n_sent - self.n_ended

    def send(self, chunk: _Chunk) -> None:
        self.n_sent += 1
        try:
            self.jobs.send(chunk)
        except OSError:  # it died: its reader says so where its next message was due
            pass

    def get(self) -> object:
        """The next message, or _DIED once the process has died."""
        return self.queue.get()

    def stop(self) -> None:
        self.stopped.set()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.jobs.close()
        self.reader.join()
        self.messages.close()


class _VideoOutcome:
    """What a video's chunks add up to: frames decoded, why it broke off, whether it failed."""

    def __init__(self, path: str, keep_partial: bool):
        self.path, self.keep_partial = path, keep_partial
        self.status = DecodeStatus()
        self.failed = False

    def add(self, n_decoded: int, n_expected: int, why: str | None) -> None:
        """Adds a chunk's end; raises BrokenVideoError where the video broke off and that is not kept."""
        self.status.n_expected = n_expected
        if self.status.broken is not None:  # after a break: read whole, these frames never came
            return
        self.status.n_decoded += n_decoded
        if why is not None:
            record_break(self.path, self.status, why, self.keep_partial)

    def finish(self) -> DecodeStatus:
        """The video's status once its last chunk ended (raises BrokenVideoError as `add`)."""
        check_whole(self.path, self.status, self.keep_partial)
        return self.status


def decode_in_processes(
    videos: Sequence[tuple[str, str]], fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool,
    decoders: int, depth: int,
) -> Iterator[tuple[str, Event]]:
    """(key, event) for every video in order, `decoders` processes decoding at once.

    Each video is cut into chunks of `depth` batches of sampling times, and each chunk goes to
    the decoder with the fewest chunks left to decode (a decoder on easy videos takes more): a
    long video decodes on every decoder at once, and memory stays at two chunks a decoder. A chunk
    starts at a sampling time, so the frames are those one decoder reading the whole video gives. A decoder that dies
    fails the video of the chunk it was on, alone; it is started again for the chunks after it.
    """
    n = max(1, decoders)
    paths = [path for _, path in videos]
    args = (fps, resize, batch_size)
    pool = [_Decoder(paths, args, depth, f"clipit-decoder-{w}") for w in range(n)]
    sent: list[deque[_Chunk]] = [deque() for _ in range(n)]  # sent to each decoder, not yet read back
    plan = _chunks(videos, fps, depth * batch_size)
    due: deque[tuple[_Chunk, int]] = deque()  # every chunk sent, in order, with its decoder

    def send_ahead() -> None:
        while len(due) < 3 * n:
            chunk = next(plan, None)
            if chunk is None:
                return
            w = min(range(n), key=lambda d: pool[d].unfinished)
            pool[w].send(chunk)
            sent[w].append(chunk)
            due.append((chunk, w))

    try:
        outcome = None
        while True:
            send_ahead()
            if not due:
                return
            chunk, w = due.popleft()
            key, path = videos[chunk.video]
            if chunk.index == 0:
                outcome = _VideoOutcome(path, keep_partial)
            while True:
                message = pool[w].get()
                if message is _DIED:  # killed, out of memory: this video fails alone
                    pool[w].stop()
                    code = pool[w].process.exitcode
                    pool[w] = _Decoder(paths, args, depth, f"clipit-decoder-{w}")
                    for later in list(sent[w])[1:]:
                        pool[w].send(later)
                    if not outcome.failed:
                        outcome.failed = True
                        yield key, VideoError(path, f"its decoder process died (exit code {code}); embed it again")
                    break
                if isinstance(message, FrameBatch):
                    if not outcome.failed and outcome.status.broken is None:
                        yield key, message
                    continue
                if message[0] == "error":
                    if not outcome.failed:
                        outcome.failed = True
                        yield key, VideoError(path, message[1])
                    break
                try:
                    outcome.add(*message[1:])
                except BrokenVideoError as e:
                    outcome.failed = True
                    yield key, e
                break
            sent[w].popleft()
            if chunk.index + 1 == chunk.n_chunks and not outcome.failed:
                try:
                    yield key, outcome.finish()
                except BrokenVideoError as e:
                    yield key, e
    finally:
        for decoder in pool:
            decoder.stop()


def decode_videos(
    videos: Sequence[tuple[str, str]], fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool,
    decoders: int, codec_threads: int, depth: int,
) -> Iterator[tuple[str, Event]]:
    """(key, event) for every video in order: batches, then DecodeStatus or VideoError; one
    decoder thread (`codec_threads` FFmpeg threads) when `decoders` is 1, else a process pool."""
    if decoders <= 1:
        return decode_in_thread(videos, fps, resize, batch_size, keep_partial, codec_threads, depth)
    return decode_in_processes(videos, fps, resize, batch_size, keep_partial, decoders, depth)

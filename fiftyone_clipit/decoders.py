"""Decoders for the ingest: one background thread, or a pool of decoder processes.

Either way the model gets, for every video in the order given, its sampled frames in batches and
then how decoding went (or why it failed). With one decoder, a thread of this process decodes the
videos one after the other (the CPU model takes the other cores). With several, video i goes to
decoder process i mod n, which decodes its videos in turn into its own bounded queue, a few
batches ahead of the model: n videos decode at once, memory stays at n queues of batches, and the
results still come out in order. A video that fails in a decoder (an unreadable file, a crash of
the process) fails alone, named; the decoder of a crashed process is started again for the videos
after it. The processes are spawned (no copy of a parent holding a model, threads or a database
connection) and import only PyAV and numpy. They end with the run, and on
their own when the process that started them dies (a killed run leaves no decoder behind).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import sys
import types
from typing import Iterator, Sequence

import numpy as np

from fiftyone_clipit.decode import (
    DecodeStatus,
    FrameBatch,
    ResizeSpec,
    iter_sampled_frames,
    prefetch,
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


def _video_events(
    path: str, fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool, codec_threads: int,
    first: bool,
) -> Iterator[Event]:
    """One video's batches, then its DecodeStatus, or a VideoError where it fails.

    The first batch of a decoder's run (`first`) holds at most `_FIRST_BATCH` frames, so the model
    starts as soon as a few frames are decoded (a full first batch kept it idle ~0.25 s, 5% of a
    70-second-footage run); after that the decoder is ahead and batches are full.
    """
    step = max(d for d in range(1, min(_FIRST_BATCH, batch_size) + 1) if batch_size % d == 0)
    status = DecodeStatus()
    parts, n = [], 0
    try:
        for part in iter_sampled_frames(
            path, fps, resize=resize, batch_size=step, keep_partial=keep_partial, status=status,
            codec_threads=codec_threads,
        ):
            parts.append(part)
            n += len(part.frame_numbers)
            if n >= batch_size or first:
                yield _merged(parts)
                parts, n, first = [], 0, False
    except VideoError as e:
        yield e
        return
    if parts:
        yield _merged(parts)
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


def _as_message(event: Event) -> object:
    """A VideoError as plain values (its constructor does not take its pickled args back)."""
    if isinstance(event, VideoError):
        return ("error", event.reason, getattr(event, "n_decoded", None))
    return event


def _decoder_process(
    videos: list[str], fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool, out: mp.Queue,
) -> None:
    """A decoder process: each of `videos` in turn into `out`; ends when its parent is gone."""
    parent = os.getppid()  # the run: once it is gone, this process is an orphan
    for i, path in enumerate(videos):
        try:
            for event in _video_events(path, fps, resize, batch_size, keep_partial, 1, i == 0):
                _put(out, _as_message(event), parent)
        except Exception as e:  # noqa: BLE001 -- a bug or a library failure: this video fails, named; the next ones go on
            _put(out, ("error", f"its decoder failed ({type(e).__name__}: {e})", None), parent)


def _put(out: mp.Queue, message: object, parent: int) -> None:
    """Puts `message` on `out`, waiting while it is full; exits when the run is gone (orphaned)."""
    while True:
        try:
            out.put(message, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            if os.getppid() != parent:
                os._exit(0)


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


class _Decoder:
    """One decoder process with its queue, for the videos `videos[start:]`."""

    def __init__(self, videos: list[str], start: int, args: tuple, depth: int, name: str):
        context = mp.get_context("spawn")
        self.videos, self.start, self.args = videos, start, args
        self.queue = context.Queue(maxsize=depth)
        self.process = context.Process(
            target=_decoder_process, args=(videos[start:], *args, self.queue), daemon=True, name=name
        )
        with _bare_main():
            self.process.start()

    def get(self) -> object | None:
        """The next message, or None once the process has died without sending one."""
        while True:
            try:
                return self.queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not self.process.is_alive():
                    try:
                        return self.queue.get_nowait()
                    except queue.Empty:
                        return None

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.queue.cancel_join_thread()
        self.queue.close()


def decode_in_processes(
    videos: Sequence[tuple[str, str]], fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool,
    decoders: int, depth: int,
) -> Iterator[tuple[str, Event]]:
    """(key, event) for every video in order, `decoders` processes decoding at once (each one
    thread, at most `depth` batches ahead); a process that dies fails its video in flight only."""
    n = max(1, min(decoders, len(videos)))
    args = (fps, resize, batch_size, keep_partial)
    shares = [[path for _, path in videos[w::n]] for w in range(n)]
    pool = [_Decoder(shares[w], 0, args, depth, f"clipit-decoder-{w}") for w in range(n)]
    done = [0] * n  # videos of each share finished
    try:
        for i, (key, path) in enumerate(videos):
            w = i % n
            while True:
                message = pool[w].get()
                if message is None:  # the process died (killed, out of memory): this video fails alone
                    code = pool[w].process.exitcode
                    pool[w].stop()
                    yield key, VideoError(path, f"its decoder process died (exit code {code}); embed it again")
                    if done[w] + 1 < len(shares[w]):
                        pool[w] = _Decoder(shares[w], done[w] + 1, args, depth, f"clipit-decoder-{w}")
                    break
                if isinstance(message, tuple):
                    _, reason, n_decoded = message
                    error = VideoError(path, reason) if n_decoded is None else BrokenVideoError(path, reason, n_decoded)
                    yield key, error
                    break
                yield key, message
                if isinstance(message, DecodeStatus):
                    break
            done[w] += 1
    finally:
        for decoder in pool:
            decoder.stop()


def decode_videos(
    videos: Sequence[tuple[str, str]], fps: float, resize: ResizeSpec | None, batch_size: int, keep_partial: bool,
    decoders: int, codec_threads: int, depth: int,
) -> Iterator[tuple[str, Event]]:
    """(key, event) for every video in order: batches, then DecodeStatus or VideoError; one
    decoder thread (`codec_threads` FFmpeg threads) when `decoders` is 1, else a process pool."""
    if decoders <= 1 or len(videos) <= 1:
        return decode_in_thread(videos, fps, resize, batch_size, keep_partial, codec_threads, depth)
    return decode_in_processes(videos, fps, resize, batch_size, keep_partial, decoders, depth)

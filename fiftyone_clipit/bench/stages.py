"""Timing one stage of a benchmark: seconds, the share spent in the FiftyOne-free core, peak memory.

A thread samples the main thread's stack every few milliseconds: a sample whose innermost
`fiftyone_clipit` frame is a core module (`fiftyone_clipit/*.py`) counts as core work (numpy,
FAISS and the store's reads included), any other (`fiftyone_clipit/fo/`, FiftyOne, pymongo,
MongoDB round trips) as the FiftyOne layer and its database. The same thread keeps the peak
resident memory, reported above what the process held when the stage began.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LAYERS = (os.path.join(_PACKAGE, "fo") + os.sep, os.path.join(_PACKAGE, "bench") + os.sep)


def _in_core(frame) -> bool | None:
    """True / False when the innermost package frame is core / layer; None outside the package."""
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_PACKAGE + os.sep):
            return not path.startswith(_LAYERS)
        frame = frame.f_back
    return None


@dataclass
class Stage:
    """One timed stage: wall seconds, sampled core share, peak memory above its start (MB)."""

    seconds: float = 0.0
    core_share: float = 0.0
    peak_mb: float = 0.0
    _samples: list[bool] = field(default_factory=list, repr=False)

    def figures(self, hours: float) -> dict:
        """The stage's figures, seconds also per hour of video."""
        return {
            "seconds": round(self.seconds, 3),
            "seconds_per_hour": round(self.seconds / hours, 3),
            "core_share": round(self.core_share, 3),
            "layer_share": round(1 - self.core_share, 3),
            "peak_mb": round(self.peak_mb, 1),
        }


class timed:
    """``with timed() as stage: ...`` fills `stage` (a `Stage`) when the block ends."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.stage = Stage()
        self._stop = threading.Event()

    def __enter__(self) -> Stage:
        self._main = threading.main_thread().ident
        self._process = psutil.Process()
        self._base = self._peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._start = time.perf_counter()
        self._thread.start()
        return self.stage

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._process.memory_info().rss)
            where = _in_core(sys._current_frames().get(self._main))
            if where is not None:
                self.stage._samples.append(where)

    def __exit__(self, *exc) -> None:
        self.stage.seconds = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        samples = self.stage._samples
        self.stage.core_share = sum(samples) / len(samples) if samples else 0.0
        self.stage.peak_mb = (self._peak - self._base) / 2**20

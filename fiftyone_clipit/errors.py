"""Errors that name the bad input and say what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

#: How an error says "replace it on purpose"; the CLI shows its own flag instead (`--overwrite`).
OVERWRITE_HINT = "pass overwrite=True"
ALLOW_STALE_HINT = "pass allow_stale=True"
#: How an error says "embed what decodes of a broken video"; the CLI shows `--on-broken keep`.
ON_BROKEN_HINT = "pass on_broken='keep'"


class ClipItError(Exception):
    """Base class of every error this package raises on purpose."""


class OptionError(ClipItError, ValueError):
    """A setting out of range or unknown, named with the values it takes (a ValueError too, as
    Python's own functions raise for a bad argument)."""


class VideoError(ClipItError):
    """One video could not be read or processed; other videos are unaffected."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"Video '{path}': {reason}")


class BrokenVideoError(VideoError):
    """A video that breaks off mid-stream: its first `n_decoded` frames decoded, then it failed."""

    def __init__(self, path: str, reason: str, n_decoded: int):
        self.n_decoded = n_decoded
        super().__init__(path, reason)


class WeightsNotFoundError(ClipItError):
    """The weights of a CLIP model could not be loaded."""


@dataclass(frozen=True)
class ItemFailure:
    """What went wrong for one item (a video or a sample) of a batch job."""

    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


class BatchError(ClipItError):
    """Some items of a batch failed; the others were processed and their results kept."""

    def __init__(self, action: str, failures: list[ItemFailure], n_ok: int):
        self.failures = failures
        self.n_ok = n_ok
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(
            f"{action} failed for {len(failures)} item(s) ({n_ok} succeeded and were kept):\n{lines}"
        )

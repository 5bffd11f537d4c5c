"""Kernel temporal segmentation (KTS): shots from the Gram matrix of L2-normalised frame embeddings.

KTS (Potapov, Douze, Harchaoui, Schmid, "Category-specific video summarization", ECCV 2014) is the
shot segmentation behind the change points of TVSum / SumMe summaries. With the kernel
``K = X X^T`` of the L2-normalised step embeddings ``X`` (n, d), the scatter of a segment
``[i, j)`` is ``sum_t K[t, t] - sum_{s, t} K[s, t] / (j - i)``, i.e. the sum of squared distances
of its embeddings to their mean. A dynamic programme finds, for every number ``m`` of change
points, the segmentation with the least total scatter ``D(m)``; KTS keeps the ``m`` minimising
``D(m) / n + vmax * m / (2 n) * (log(n / m) + 1)``.

The same objective as ``ruptures.KernelCPD(kernel="linear")`` (tests check they agree), which
needs O(m n^2 d) time and no maximum segment length. Here memory and time are bounded:

- the Gram matrix is never formed: for the linear kernel the block sum ``sum_{s, t in [i, j)}
  K[s, t]`` equals ``||P[j] - P[i]||^2`` with ``P`` the prefix sums of ``X``, computed for the
  allowed ``(i, j)`` only, in row blocks;
- segments are ``min_length..max_length`` steps long, so the costs form a band of
  ``(n + 1) x (max_length - min_length + 1)`` floats (n = 14,400 steps, 60 s at 2 fps: 14 MB,
  where an n x n float64 Gram matrix would take 1.66 GB);
- the DP keeps one row of costs and a back-pointer table of int16 offsets,
  ``2 (m + 1) (n + 1)`` bytes after m rows, and stops as soon as a lower bound of the penalised
  cost of every larger number of change points exceeds the best cost found (the bound comes
  from Lagrangian duality: ``D(m) >= min_S [scatter(S) + w |S|] - w (m + 1)`` for any w >= 0,
  one extra O(n x band) pass), typically a few rows after the optimum.

Pure numpy: no FiftyOne, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Default limit on the cost band's size; see :func:`kts`.
DEFAULT_MAX_BAND_BYTES = 512 * 2**20
#: Per-segment weights of the Lagrangian bounds that end the search over numbers of change points.
LAGRANGE_WEIGHTS = np.concatenate([[0.0], np.logspace(-3, 1, 13)])


@dataclass(frozen=True)
class Segmentation:
    """The outcome of :func:`kts`.

    Attributes:
        change_points: ``(n_segments, 2)`` int64 inclusive ``[first, last]`` step indices.
        scatters: ``(m_max + 1,)`` least total scatter ``D(m)`` with ``m`` change points
            (``inf`` where no segmentation with ``m`` change points fits the length limits).
        costs: ``(m_max + 1,)`` penalised costs ``D(m) / n + penalty(m)``; the chosen ``m`` is
            the first minimum.
    """

    change_points: np.ndarray
    scatters: np.ndarray
    costs: np.ndarray

    @property
    def n_change_points(self) -> int:
        """Number of change points kept (segments - 1)."""
        return len(self.change_points) - 1


def kts_penalty(n_change_points: np.ndarray | int, n_steps: int, vmax: float = 1.0) -> np.ndarray:
    """KTS's penalty ``vmax * m / (2 n) * (log(n / m) + 1)`` for ``m`` change points (0 for m = 0).

    Increasing in ``m`` for ``m < n``, which is what lets the search stop early.
    """
    m = np.asarray(n_change_points, dtype=np.float64)
    safe = np.maximum(m, 1.0)
    return np.where(m > 0, vmax * m / (2.0 * n_steps) * (np.log(n_steps / safe) + 1.0), 0.0)


def kts(
    embeddings: np.ndarray,
    min_length: int = 1,
    max_length: int | None = None,
    max_change_points: int | None = None,
    vmax: float = 1.0,
    max_band_bytes: int = DEFAULT_MAX_BAND_BYTES,
) -> Segmentation:
    """Segment a video into shots by KTS, choosing the number of shots by KTS's penalised cost.

    Args:
        embeddings: ``(n, d)`` step embeddings (e.g. CLIP frame embeddings at 2 fps); rows are
            L2-normalised here, so the kernel is the cosine similarity.
        min_length (1): fewest steps in a segment.
        max_length (None): most steps in a segment; None = no limit (classic KTS, whose cost band
            is then n x n: fine for a few thousand steps, refused past ``max_band_bytes``).
        max_change_points (None): most change points considered; None = as many as fit.
        vmax (1.0): weight of the penalty; larger gives fewer, longer shots.
        max_band_bytes (512 MiB): refuse a cost band larger than this instead of swapping.

    Returns:
        A :class:`Segmentation`. A video shorter than ``min_length`` steps is one segment.

    Raises:
        ValueError: embeddings not 2-D, empty, non-finite or with an all-zero row; lengths out of
            range or impossible to tile ``n`` steps with; ``vmax`` negative; band too large.
    """
    if not vmax >= 0:
        raise ValueError(f"vmax must be >= 0; got {vmax!r}")
    problem = _Problem(embeddings, min_length, max_length, max_band_bytes)
    n = problem.n
    if n < problem.min_length:
        one = np.array([[0, n - 1]], dtype=np.int64)
        return Segmentation(one, np.array([problem.whole_scatter()]), np.array([problem.whole_scatter() / n]))
    limit = n // problem.min_length - 1
    if max_change_points is not None:
        limit = min(limit, _non_negative_int(max_change_points, "max_change_points"))
    penalties = problem.penalised_minima()
    scatters, costs = [], []
    best = math.inf
    for m, row in enumerate(problem.rows(limit)):
        scatters.append(row[n])
        costs.append(row[n] / n + float(kts_penalty(m, n, vmax)))
        best = min(best, costs[-1])
        if m < limit and _lower_bound(penalties, m + 1, limit, n, vmax) >= best:
            break  # no number of change points past m can beat the best cost found
    costs_array = np.asarray(costs)
    if not np.isfinite(costs_array).any():
        raise ValueError(
            f"No segmentation of {n} steps into segments of {problem.min_length}-"
            f"{problem.max_length} steps with at most {limit} change points; raise max_length "
            f"or max_change_points"
        )
    chosen = int(np.argmin(costs_array))
    return Segmentation(problem.backtrack(chosen), np.asarray(scatters), costs_array)


def kts_fixed(
    embeddings: np.ndarray,
    n_change_points: int,
    min_length: int = 1,
    max_length: int | None = None,
    max_band_bytes: int = DEFAULT_MAX_BAND_BYTES,
) -> tuple[np.ndarray, float]:
    """The segmentation with exactly ``n_change_points`` change points and the least scatter.

    Args: as :func:`kts`, with ``n_change_points`` the number of change points wanted.

    Returns:
        ``((n_change_points + 1, 2) inclusive [first, last] step indices, total scatter)``.

    Raises:
        ValueError: as :func:`kts`, or no segmentation with that many change points exists.
    """
    problem = _Problem(embeddings, min_length, max_length, max_band_bytes)
    m = _non_negative_int(n_change_points, "n_change_points")
    scatter = math.inf
    if problem.n >= problem.min_length:
        for count, scatter_row in enumerate(problem.rows(m)):
            scatter = scatter_row[problem.n] if count == m else math.inf
    if not math.isfinite(scatter):
        raise ValueError(
            f"{problem.n} steps cannot be cut into {m + 1} segments of {problem.min_length}-"
            f"{problem.max_length} steps"
        )
    return problem.backtrack(m), float(scatter)


def segment_scatter(embeddings: np.ndarray, change_points: np.ndarray) -> float:
    """Total within-segment scatter of a segmentation, straight from the Gram matrix (for tests).

    Args:
        embeddings: ``(n, d)``; rows are L2-normalised here.
        change_points: ``(n_segments, 2)`` inclusive ``[first, last]`` step indices.
    """
    x = _normalised(embeddings)
    total = 0.0
    for first, last in np.asarray(change_points):
        block = x[first : last + 1]
        gram = block @ block.T
        total += float(np.trace(gram) - gram.sum() / len(block))
    return total


def steps_to_frames(change_points: np.ndarray, picks: np.ndarray, n_frames: int) -> np.ndarray:
    """Map step segments to frame segments the way scores are upsampled.

    Step ``i`` stands for frames ``[picks[i], picks[i + 1])`` (the last step runs to the end of the
    video, the first also covers frames before ``picks[0]``), so a segment of steps ``[a, b]``
    covers frames ``[picks[a], picks[b + 1] - 1]``.

    Args:
        change_points: ``(n_segments, 2)`` inclusive step indices covering ``[0, len(picks))``.
        picks: ``(n_steps,)`` 0-based frame index of each step, strictly increasing.
        n_frames: frames in the video.

    Returns:
        ``(n_segments, 2)`` int64 inclusive ``[first, last]`` frame indices covering the video.

    Raises:
        ValueError: if the segments do not tile the steps, or picks are out of order or range.
    """
    change_points = np.asarray(change_points, dtype=np.int64)
    picks = np.asarray(picks, dtype=np.int64)
    if picks.ndim != 1 or picks.size == 0 or np.any(np.diff(picks) <= 0):
        raise ValueError("picks must be a non-empty, strictly increasing 1-D array")
    if picks[0] < 0 or picks[-1] >= n_frames:
        raise ValueError(f"picks must lie in [0, n_frames={n_frames}); got [{picks[0]}, {picks[-1]}]")
    if (
        change_points.ndim != 2
        or change_points.shape[1] != 2
        or change_points[0, 0] != 0
        or change_points[-1, 1] != len(picks) - 1
        or np.any(change_points[1:, 0] != change_points[:-1, 1] + 1)
    ):
        raise ValueError(f"change_points must tile steps [0, {len(picks) - 1}] in order")
    starts = picks[change_points[:, 0]].copy()
    starts[0] = 0
    lasts = np.append(starts[1:] - 1, n_frames - 1)
    return np.stack([starts, lasts], axis=1)


class _Problem:
    """The cost band and the DP over numbers of change points for one sequence."""

    block_rows = 512

    def __init__(self, embeddings, min_length, max_length, max_band_bytes):
        x = _normalised(embeddings)
        self.n = n = len(x)
        self.min_length = _positive_int(min_length, "min_length")
        self.max_length = max(n, self.min_length) if max_length is None else _positive_int(max_length, "max_length")
        if self.max_length < self.min_length:
            raise ValueError(
                f"max_length ({self.max_length}) must be >= min_length ({self.min_length})"
            )
        self.max_length = min(self.max_length, max(n, self.min_length))
        self.width = self.max_length - self.min_length + 1
        band_bytes = 8 * (n + 1) * self.width
        if band_bytes > max_band_bytes:
            raise ValueError(
                f"KTS on {n} steps with segments up to {self.max_length} steps needs a "
                f"{band_bytes / 2**20:.0f} MiB cost band (limit {max_band_bytes / 2**20:.0f} MiB); "
                f"pass a smaller max_length"
            )
        # Scatter is translation invariant: centring keeps the prefix sums small and exact.
        x = x - x.mean(axis=0)
        self._prefix = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
        self._prefix_sq = np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->i", x, x))])
        self._band = self._cost_band() if n >= self.min_length else None
        self._back: list[tuple[int, np.ndarray]] = []

    def whole_scatter(self) -> float:
        p = self._prefix[self.n]
        return float(max(self._prefix_sq[self.n] - p @ p / self.n, 0.0))

    def _cost_band(self) -> np.ndarray:
        """``band[j, c]``: scatter of steps ``[j - l, j)`` with ``l = max_length - c``; inf if j < l."""
        n, lmax, width = self.n, self.max_length, self.width
        prefix, prefix_sq = self._prefix, self._prefix_sq
        norms = np.einsum("ij,ij->i", prefix, prefix)
        lengths = lmax - np.arange(width)
        band = np.empty((n + 1, width))
        for j0 in range(0, n + 1, self.block_rows):
            rows = np.arange(j0, min(j0 + self.block_rows, n + 1))
            starts = rows[:, None] - lengths[None, :]
            valid = starts >= 0
            starts = np.maximum(starts, 0)
            base = int(starts.min())
            dots = prefix[rows] @ prefix[base : int(starts.max()) + 1].T
            dot = np.take_along_axis(dots, starts - base, axis=1)
            block_sums = norms[rows][:, None] + norms[starts] - 2.0 * dot
            cost = prefix_sq[rows][:, None] - prefix_sq[starts] - block_sums / lengths[None, :]
            band[rows] = np.where(valid, np.maximum(cost, 0.0), np.inf)
        return band

    def penalised_minima(self, weights: np.ndarray = LAGRANGE_WEIGHTS) -> tuple[np.ndarray, np.ndarray]:
        """``F(w) = min over segmentations of scatter + w * n_segments``, for each weight ``w``.

        For every m, ``D(m) >= F(w) - w (m + 1)`` (Lagrangian duality), which bounds the
        scatter of numbers of change points not computed yet. One O(n x width) pass.
        """
        best = np.full((self.n + 1, len(weights)), np.inf)
        best[0] = 0.0
        offsets = self.max_length - np.arange(self.width)
        for j in range(self.min_length, self.n + 1):
            starts = j - offsets
            ok = starts >= 0
            best[j] = np.min(best[starts[ok]] + self._band[j, ok][:, None], axis=0) + weights
        return weights, best[self.n]

    def rows(self, max_change_points: int):
        """Yields ``D_m[0..n]`` (least scatter of the first j steps with m change points), m = 0.."""
        n, lmin, lmax, width = self.n, self.min_length, self.max_length, self.width
        offset_dtype = np.int16 if width <= np.iinfo(np.int16).max else np.int32
        self._back = []
        row = np.full(n + 1, np.inf)
        row[lmin : lmax + 1] = self._band[np.arange(lmin, lmax + 1), lmax - np.arange(lmin, lmax + 1)]
        yield row
        padded = np.full(n + 1 + lmax, np.inf)
        for m in range(1, max_change_points + 1):
            lo, hi = (m + 1) * lmin, min(n, (m + 1) * lmax)
            if lo > n:
                return
            padded[lmax:] = row
            windows = np.lib.stride_tricks.sliding_window_view(padded, width)
            new = np.full(n + 1, np.inf)
            back = np.empty(hi - lo + 1, dtype=offset_dtype)
            for start in range(lo, hi + 1, 2048):
                stop = min(start + 2048, hi + 1)
                # windows[j] holds row[j - lmax .. j - lmin], aligned with band[j]'s columns.
                candidates = windows[start:stop] + self._band[start:stop]
                best = candidates.argmin(axis=1)
                back[start - lo : stop - lo] = best
                new[start:stop] = candidates[np.arange(stop - start), best]
            self._back.append((lo, back))
            row = new
            yield row

    def backtrack(self, n_change_points: int) -> np.ndarray:
        """Segments of the DP's optimum with ``n_change_points`` change points (after ``rows``)."""
        bounds = [self.n]
        j = self.n
        for m in range(n_change_points, 0, -1):
            lo, back = self._back[m - 1]
            j -= self.max_length - int(back[j - lo])
            bounds.append(j)
        bounds.append(0)
        bounds = bounds[::-1]
        return np.array([[a, b - 1] for a, b in zip(bounds[:-1], bounds[1:])], dtype=np.int64)


def _lower_bound(penalties: tuple[np.ndarray, np.ndarray], first: int, last: int, n: int, vmax: float) -> float:
    """A lower bound of the penalised cost of every m in ``[first, last]`` change points.

    ``(F(w) - w (m + 1)) / n + penalty(m)`` is concave in m (the penalty is), so its minimum
    over the range is at an end; the best weight w gives the bound.
    """
    weights, minima = penalties
    ends = np.array([first, last])
    bounds = (minima[:, None] - weights[:, None] * (ends[None, :] + 1)) / n + kts_penalty(ends, n, vmax)
    return float(np.max(np.min(bounds, axis=1)))


def _normalised(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (n, d) array; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values; recompute them")
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"embedding rows {np.flatnonzero(norms == 0)[:5].tolist()} are all zeros")
    return x / norms[:, None]


def _positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def _non_negative_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)

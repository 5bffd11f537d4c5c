"""Keyshot summaries from frame scores: the TVSum / SumMe generic-summary protocol.

The steps behind every published TVSum / SumMe number (DESIGN.md, "Evaluation protocols"): step
scores at sampled frames are spread over all frames, shots are scored by their mean frame score, and
a 0/1 knapsack keeps the shots worth the most within a frame budget (15% of the video by default).
Pure numpy: no FiftyOne, no torch.
"""

from __future__ import annotations

import math

import numpy as np

from fiftyone_clipit.budget import Budget
from fiftyone_clipit.defaults import DEFAULT_BUDGET
from fiftyone_clipit.options import ShotOptions

ROUNDING_MODES = ("floor", "round", "last_change_point")
#: how optimal knapsack ties are broken: as the reference evaluation code, or lightest subset
TIE_BREAKS = ("reference", "least_weight")


def knapsack(values: np.ndarray, weights: np.ndarray, capacity: int, tie_break: str = "reference") -> list[int]:
    """Solve the 0/1 knapsack exactly: which items give the most value within ``capacity``.

    A dynamic programme over capacities ``0..capacity``, vectorised with numpy: one pass per
    item, the take / leave decision of every (item, capacity) kept as one bit (``np.packbits``), so
    memory is about ``n_items * (capacity + 1) / 8`` bytes (5,000 shots, 400,000-frame budget:
    250 MB, about 2 s).

    Items with value <= 0 never help and are left out; items heavier than ``capacity`` cannot fit.
    Items of weight 0 and positive value are always taken (they are free).

    An item enters a cell of the table only when it strictly raises the value there, and the
    choice is read back from the last item to the first. Where several subsets reach the maximum
    value, `tie_break` says where the read-back starts:

    - ``"reference"`` (default): at the full capacity, as the reference evaluation code every
      paper copies does (DR-DSN's ``vsum_tools``, PGL-SUM, DSNet), so summaries equal theirs bit
      for bit (values ``[1, 1]``, weights ``[2, 1]``, capacity 2 gives ``[0]``);
    - ``"least_weight"``: at the least weight that reaches the maximum, so the lightest optimal
      subset wins (the same case gives ``[1]``).

    Either way, among subsets of equal value and weight the earlier items win (values
    ``[1, 1]``, weights ``[1, 1]``, capacity 1 gives ``[0]``). Values are compared exactly as
    float64, so "equal" means bit-equal sums.

    Args:
        values: ``(n_items,)`` finite floats, the worth of each item.
        weights: ``(n_items,)`` non-negative integers (floats holding whole numbers are accepted).
        capacity: non-negative integer, the most total weight allowed.
        tie_break ("reference"): ``"reference"`` or ``"least_weight"`` (see above).

    Returns:
        Indices of the chosen items, ascending; ``[]`` when nothing is worth taking.

    Raises:
        ValueError: if the shapes differ or are not 1-D, a value is NaN or infinite, a weight is
            negative or not a whole number, ``capacity`` is negative or not an integer, or
            ``tie_break`` is unknown.
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"Unknown tie_break {tie_break!r}. Valid tie breaks are {list(TIE_BREAKS)}")
    values = np.asarray(values, dtype=np.float64)
    weights_int = _as_int_array(weights, "weights")
    capacity = _as_non_negative_int(capacity, "capacity")
    if values.ndim != 1 or values.shape != weights_int.shape:
        raise ValueError(
            f"values and weights must be 1-D arrays of the same length; got shapes "
            f"{values.shape} and {weights_int.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"values must be finite; got {values[~np.isfinite(values)][:5].tolist()}")
    if np.any(weights_int < 0):
        raise ValueError(f"weights must be >= 0; got {weights_int[weights_int < 0][:5].tolist()}")

    useful = values > 0
    free = np.flatnonzero(useful & (weights_int == 0))
    items = np.flatnonzero(useful & (weights_int > 0) & (weights_int <= capacity))
    if items.size == 0:
        return free.tolist()

    n_cells = capacity + 1
    best = np.zeros(n_cells, dtype=np.float64)  # best[c]: most value within weight c so far
    candidate = np.empty(n_cells, dtype=np.float64)
    take = np.zeros(n_cells, dtype=bool)
    take_bits = np.empty((items.size, (n_cells + 7) // 8), dtype=np.uint8)
    for row, item in enumerate(items):
        w, v = int(weights_int[item]), values[item]
        np.add(best[:-w], v, out=candidate[w:])
        take[:w] = False
        # Strictly greater: on a tie the item is left out.
        np.greater(candidate[w:], best[w:], out=take[w:])
        np.maximum(best[w:], candidate[w:], out=best[w:])
        take_bits[row] = np.packbits(take)

    # best is non-decreasing; its first maximum is the least weight reaching the optimum.
    c = capacity if tie_break == "reference" else int(np.argmax(best))
    chosen = []
    for row in range(items.size - 1, -1, -1):
        if (take_bits[row, c >> 3] >> (7 - (c & 7))) & 1:
            chosen.append(int(items[row]))
            c -= int(weights_int[items[row]])
    return sorted(chosen + free.tolist())


def upsample_scores(step_scores: np.ndarray, picks: np.ndarray, n_frames: int) -> np.ndarray:
    """Spread scores given at sampled frames (``picks``) over every frame of the video.

    Frames ``[picks[i], picks[i + 1])`` get ``step_scores[i]``, the last pick's score runs to the
    end of the video, and frames before ``picks[0]`` get ``step_scores[0]`` (the protocol's step 1).

    Args:
        step_scores: ``(n_steps,)`` scores, one per sampled frame.
        picks: ``(n_steps,)`` frame indices of the samples, strictly increasing, in
            ``[0, n_frames)``.
        n_frames: number of frames in the video.

    Returns:
        ``(n_frames,)`` float64 frame scores.

    Raises:
        ValueError: if the lengths differ, or ``picks`` is empty, unsorted or out of range.
    """
    step_scores = np.asarray(step_scores, dtype=np.float64)
    picks = _as_int_array(picks, "picks")
    n_frames = _as_non_negative_int(n_frames, "n_frames")
    if step_scores.ndim != 1 or step_scores.shape != picks.shape:
        raise ValueError(
            f"step_scores and picks must be 1-D arrays of the same length; got shapes "
            f"{step_scores.shape} and {picks.shape}"
        )
    if picks.size == 0:
        raise ValueError("picks is empty; at least one sampled frame is needed")
    if np.any(np.diff(picks) <= 0):
        bad = int(np.flatnonzero(np.diff(picks) <= 0)[0])
        raise ValueError(
            f"picks must be strictly increasing; got picks[{bad}]={picks[bad]} then "
            f"picks[{bad + 1}]={picks[bad + 1]}"
        )
    if picks[0] < 0 or picks[-1] >= n_frames:
        raise ValueError(
            f"picks must lie in [0, n_frames={n_frames}); got range [{picks[0]}, {picks[-1]}]"
        )
    step_of_frame = np.searchsorted(picks, np.arange(n_frames), side="right") - 1
    return step_scores[np.maximum(step_of_frame, 0)]


def shot_scores(frame_scores: np.ndarray, change_points: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Score each shot by the mean score of its frames (the protocol's step 2).

    Args:
        frame_scores: ``(n_frames,)`` per-frame scores.
        change_points: ``(n_shots, 2)`` integer ``[first, last]`` frame indices, both inclusive.
        dtype (float64): the precision of the frame scores and their means. ``np.float32`` is
            what the reference code computes (frame scores in a float32 array, each shot's
            ``.mean()`` taken there), so near-ties are decided as there.

    Returns:
        ``(n_shots,)`` float64 mean frame score of each shot.

    Raises:
        ValueError: if ``change_points`` is malformed or reaches past the last frame.
    """
    frame_scores = np.asarray(frame_scores, dtype=dtype)
    if frame_scores.ndim != 1:
        raise ValueError(f"frame_scores must be 1-D; got shape {frame_scores.shape}")
    change_points = _check_change_points(change_points, frame_scores.size)
    if frame_scores.dtype != np.float64:
        return np.array([float(frame_scores[first : last + 1].mean()) for first, last in change_points])
    sums = np.concatenate([[0.0], np.cumsum(frame_scores)])
    first, last = change_points[:, 0], change_points[:, 1]
    return (sums[last + 1] - sums[first]) / (last - first + 1)


def summary_capacity(
    n_frames: int,
    proportion: float = DEFAULT_BUDGET,
    rounding: str = "floor",
    change_points: np.ndarray | None = None,
) -> int:
    """Frame budget of a summary (the protocol's step 3); papers disagree on the rounding.

    Args:
        n_frames: number of frames in the video.
        proportion (0.15): share of the video the summary may keep, in ``[0, 1]``.
        rounding ("floor"): ``"floor"``: ``floor(n_frames * proportion)`` (DR-DSN, DSNet);
            ``"round"``: Python's ``round`` (halves to even) of the same product (A2Summ);
            ``"last_change_point"``: ``floor((change_points[-1, 1] + 1) * proportion)`` (PGL-SUM).
            Products are float64, as in the reference code.
        change_points (None): ``(n_shots, 2)`` inclusive shot bounds; needed only for
            ``"last_change_point"``.

    Returns:
        The budget in frames.

    Raises:
        ValueError: if ``rounding`` is unknown, ``proportion`` is outside ``[0, 1]``, or
            ``"last_change_point"`` is asked for without change points.
    """
    n_frames = _as_non_negative_int(n_frames, "n_frames")
    if not 0.0 <= proportion <= 1.0:
        raise ValueError(f"proportion must be in [0, 1]; got {proportion}")
    if rounding == "floor":
        return math.floor(n_frames * proportion)
    if rounding == "round":
        return round(n_frames * proportion)
    if rounding == "last_change_point":
        if change_points is None or len(change_points) == 0:
            raise ValueError("rounding='last_change_point' needs non-empty change_points")
        return math.floor((int(np.asarray(change_points)[-1, 1]) + 1) * proportion)
    raise ValueError(f"Unknown rounding {rounding!r}. Valid roundings are {list(ROUNDING_MODES)}")


def generate_summary(
    step_scores: np.ndarray,
    change_points: np.ndarray,
    n_frames: int,
    n_frame_per_seg: np.ndarray,
    picks: np.ndarray,
    proportion: float = DEFAULT_BUDGET,
    rounding: str = "floor",
    tie_break: str = "reference",
) -> np.ndarray:
    """Turn step scores into a keyshot summary, as TVSum / SumMe evaluation code does.

    Upsamples the step scores to frames, scores shots by their mean, and keeps the shots a 0/1
    knapsack picks within the budget (weights = shot lengths). See :func:`knapsack` for ties.

    Args:
        step_scores: ``(n_steps,)`` scores at the sampled frames.
        change_points: ``(n_shots, 2)`` inclusive ``[first, last]`` frame indices of the shots.
        n_frames: number of frames in the video.
        n_frame_per_seg: ``(n_shots,)`` shot lengths; must equal ``last - first + 1``.
        picks: ``(n_steps,)`` frame indices of the samples, strictly increasing.
        proportion (0.15): share of the video the summary may keep.
        rounding ("floor"): how the budget is rounded; see :func:`summary_capacity`.
        tie_break ("reference"): the reference code's choices bit for bit (float32 shot means,
            read back from the full capacity), or ``"least_weight"``; see :func:`keyshot_summary`.

    Returns:
        ``(n_frames,)`` bool mask, True on frames of the chosen shots.

    Raises:
        ValueError: on NaN or infinite step scores, mismatched lengths, shot lengths that disagree
            with ``change_points``, or an unknown ``rounding``.
    """
    step_scores = np.asarray(step_scores, dtype=np.float64)
    if not np.all(np.isfinite(step_scores)):
        raise ValueError(
            f"step_scores contains {int(np.isnan(step_scores).sum())} NaN and "
            f"{int(np.isinf(step_scores).sum())} infinite value(s); shots cannot be ranked on them"
        )
    n_frames = _as_non_negative_int(n_frames, "n_frames")
    change_points = _check_change_points(change_points, n_frames)
    n_frame_per_seg = _as_int_array(n_frame_per_seg, "n_frame_per_seg")
    lengths = change_points[:, 1] - change_points[:, 0] + 1
    if n_frame_per_seg.shape != lengths.shape:
        raise ValueError(
            f"n_frame_per_seg has shape {n_frame_per_seg.shape} but change_points has "
            f"{len(lengths)} shots"
        )
    if np.any(n_frame_per_seg != lengths):
        bad = int(np.flatnonzero(n_frame_per_seg != lengths)[0])
        raise ValueError(
            f"n_frame_per_seg[{bad}]={n_frame_per_seg[bad]} but change_points[{bad}]="
            f"{change_points[bad].tolist()} spans {lengths[bad]} frames"
        )
    frame_scores = upsample_scores(step_scores, picks, n_frames)
    capacity = summary_capacity(n_frames, proportion, rounding, change_points)
    return keyshot_summary(frame_scores, change_points, capacity, tie_break)


def keyshot_summary(
    frame_scores: np.ndarray, change_points: np.ndarray, capacity: int, tie_break: str = "reference"
) -> np.ndarray:
    """The frames of the shots a 0/1 knapsack keeps within `capacity`: bool ``(n_frames,)``.

    With ``tie_break="reference"`` the shot means are float32 and the knapsack reads back from
    the full capacity, as the reference evaluation code does; ``"least_weight"`` takes float64
    means and the lightest optimal subset (see :func:`knapsack`).
    """
    dtype = np.float32 if tie_break == "reference" else np.float64
    lengths = change_points[:, 1] - change_points[:, 0] + 1
    chosen = knapsack(shot_scores(frame_scores, change_points, dtype), lengths, capacity, tie_break)
    summary = np.zeros(len(frame_scores), dtype=bool)
    for shot in chosen:
        summary[change_points[shot, 0] : change_points[shot, 1] + 1] = True
    return summary


def uniform_change_points(n_frames: int, segment_frames: int) -> np.ndarray:
    """Cut a video into consecutive fixed-length shots: a caption-free stand-in for KTS.

    Args:
        n_frames: number of frames in the video.
        segment_frames: frames per shot (>= 1); the last shot may be shorter.

    Returns:
        ``(n_shots, 2)`` int64 inclusive ``[first, last]`` frame indices covering ``[0, n_frames)``;
        ``(0, 2)`` when ``n_frames`` is 0.

    Raises:
        ValueError: if ``n_frames`` is negative or ``segment_frames`` is below 1.
    """
    n_frames = _as_non_negative_int(n_frames, "n_frames")
    segment_frames = _as_non_negative_int(segment_frames, "segment_frames")
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be >= 1; got {segment_frames}")
    first = np.arange(0, n_frames, segment_frames, dtype=np.int64)
    last = np.minimum(first + segment_frames, n_frames) - 1
    return np.stack([first, last], axis=1)


def _as_int_array(array: np.ndarray, name: str) -> np.ndarray:
    """Return ``array`` as int64, refusing values that are not whole numbers."""
    array = np.asarray(array)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.integer):
        whole = np.isfinite(array) & (array == np.round(array))
        if not np.all(whole):
            raise ValueError(f"{name} must hold integers; got {array[~whole][:5].tolist()}")
    return array.astype(np.int64)


def _as_non_negative_int(value: int, name: str) -> int:
    """Return ``value`` as an int, refusing negatives and non-whole numbers."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if not (isinstance(value, (float, np.floating)) and float(value).is_integer()):
            raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return int(value)


def _check_change_points(change_points: np.ndarray, n_frames: int) -> np.ndarray:
    """Check ``(n_shots, 2)`` inclusive shot bounds: ordered, disjoint, inside ``[0, n_frames)``."""
    change_points = _as_int_array(change_points, "change_points")
    if change_points.ndim != 2 or change_points.shape[1] != 2:
        raise ValueError(
            f"change_points must have shape (n_shots, 2); got shape {change_points.shape}"
        )
    first, last = change_points[:, 0], change_points[:, 1]
    if np.any(first > last):
        bad = int(np.flatnonzero(first > last)[0])
        raise ValueError(f"change_points[{bad}]={change_points[bad].tolist()} has first > last")
    if np.any(first[1:] <= last[:-1]):
        bad = int(np.flatnonzero(first[1:] <= last[:-1])[0])
        raise ValueError(
            f"change_points must be sorted and disjoint; shot {bad} "
            f"{change_points[bad].tolist()} overlaps shot {bad + 1} "
            f"{change_points[bad + 1].tolist()}"
        )
    if change_points.size and (first[0] < 0 or last[-1] >= n_frames):
        raise ValueError(
            f"change_points must lie in [0, n_frames={n_frames}); got range "
            f"[{first[0]}, {last[-1]}]"
        )
    return change_points


def select_segments(
    frame_scores: np.ndarray,
    change_points: np.ndarray,
    proportion: float = DEFAULT_BUDGET,
    rounding: str = "floor",
    capacity: int | None = None,
) -> list[tuple[int, int, float]]:
    """Pick the best shots under the budget and join adjacent ones into segments.

    The selection is the protocol's (shot means, capacity, exact knapsack); joining adjacent
    chosen shots gives one clip per continuous moment, which is what people watch and export.

    Args:
        frame_scores: float array (n_frames,), one score per frame, all finite.
        change_points: int array (n_shots, 2), inclusive [first, last] frame indices.
        proportion (0.15): the budget as a fraction of the video's frames, in (0, 1].
        rounding ("floor"): how the capacity is rounded (see `summary_capacity`).
        capacity (None): the budget in frames; when given, `proportion` and `rounding` are unused.

    Returns:
        [(first, last, score), ...] in time order: inclusive 0-based frame indices and the mean
        frame score of the segment.

    Raises:
        ValueError: proportion outside (0, 1], a negative capacity, or non-finite scores.
    """
    if not 0 < proportion <= 1:
        raise ValueError(f"The budget proportion must be in (0, 1], got {proportion!r}")
    scores = np.asarray(frame_scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("Frame scores contain NaN or infinite values; re-score the video")
    change_points = _check_change_points(change_points, len(scores))
    if capacity is None:
        capacity = summary_capacity(len(scores), proportion, rounding, change_points)
    capacity = _as_non_negative_int(capacity, "capacity")
    lengths = change_points[:, 1] - change_points[:, 0] + 1
    chosen = knapsack(shot_scores(scores, change_points), lengths, capacity)
    segments: list[list[int]] = []
    for index in chosen:
        first, last = (int(v) for v in change_points[index])
        if segments and segments[-1][1] + 1 == first:
            segments[-1][1] = last
        else:
            segments.append([first, last])
    return [(first, last, float(scores[first : last + 1].mean())) for first, last in segments]


def split_long_shots(change_points: np.ndarray, max_frames: int) -> np.ndarray:
    """Cut every shot longer than ``max_frames`` into equal pieces that are not.

    A shot longer than the whole budget could never be chosen; cut into near-equal pieces of at
    most ``max_frames`` frames, its best part still can.

    Args:
        change_points: ``(n_shots, 2)`` inclusive ``[first, last]`` frame indices.
        max_frames: the longest shot allowed, >= 1.

    Returns:
        ``(n_shots', 2)`` int64 change points, ``n_shots' >= n_shots``, covering the same frames.

    Raises:
        ValueError: if ``max_frames`` < 1.
    """
    max_frames = _as_non_negative_int(max_frames, "max_frames")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1; got {max_frames}")
    pieces = []
    for first, last in _as_int_array(change_points, "change_points").reshape(-1, 2):
        length = last - first + 1
        n_pieces = -(-length // max_frames)
        edges = first + (np.arange(n_pieces + 1) * length) // n_pieces
        pieces.extend(zip(edges[:-1], edges[1:] - 1))
    return np.array(pieces, dtype=np.int64).reshape(-1, 2)


def kts_summary_shots(
    embeddings: np.ndarray,
    picks: np.ndarray,
    n_frames: int,
    step_rate: float,
    frame_rate: float,
    capacity: int,
    options: ShotOptions,
) -> np.ndarray:
    """The KTS shots a summary of a video is planned over, kept under the budget where they can be.

    `create_summary` and the model selection of training both call this and then
    `split_long_shots(shots, capacity)`, so the epoch kept is chosen on the shots its summaries
    will use. KTS keeps shots under the budget where the minimum length allows it.

    Args:
        embeddings: (n_steps, d) step embeddings; picks: (n_steps,) their 0-based frames.
        n_frames: frames in the video; step_rate: steps per second; frame_rate: frames per second.
        capacity: the summary budget in frames (>= 1).
        options: its `min_segment` and `max_segment` (shortest and longest shot in seconds) and
            `vmax` (KTS's penalty scale).

    Returns:
        (n_shots, 2) int64 inclusive [first, last] frame bounds covering the video; a shot may
        still be longer than `capacity` when `min_segment` asks for it.
    """
    from fiftyone_clipit.segmentation import kts, steps_to_frames

    min_steps = max(1, round((options.min_segment or 0) * step_rate))
    max_steps = max(2 * min_steps - 1, round(options.max_segment * step_rate))
    budget_steps = int(capacity * step_rate / frame_rate)
    if budget_steps >= 2 * min_steps - 1:
        max_steps = min(max_steps, budget_steps)
    step_shots = kts(embeddings, min_length=min_steps, max_length=max_steps, vmax=options.vmax)
    return steps_to_frames(step_shots.change_points, picks, n_frames)


def budget_capacity(
    n_frames: int,
    frame_rate: float,
    budget: Budget | float,
    rounding: str = "floor",
    change_points: np.ndarray | None = None,
) -> int:
    """The frame budget of one video for a fraction (see :func:`summary_capacity`) or seconds.

    Seconds give ``floor(seconds * frame_rate)`` frames, at most the whole video.

    Raises:
        ValueError: not a budget (see :meth:`Budget.of`), or a non-positive frame rate with a
            budget in seconds.
    """
    budget = Budget.of(budget)
    if budget.fraction is not None:
        return summary_capacity(n_frames, budget.fraction, rounding, change_points)
    if not frame_rate > 0:
        raise ValueError(f"A budget in seconds needs the frame rate; got {frame_rate!r}")
    return min(_as_non_negative_int(n_frames, "n_frames"), math.floor(budget.seconds * frame_rate + 1e-9))

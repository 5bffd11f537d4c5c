"""FiftyOne's stored values as the arrays the evaluation protocols read.

``evaluate_summary`` reads the fields of each sample once; these turn TemporalDetections into
frame masks (one per user) for ``fiftyone_clipit.protocols``, which holds the protocols.
"""

from __future__ import annotations

from typing import Any, Sequence

import fiftyone as fo
import numpy as np


def summary_mask(detections: fo.TemporalDetections | None, n_frames: int) -> np.ndarray:
    """The frames a TemporalDetections summary selects, as a bool array (n_frames,)."""
    mask = np.zeros(n_frames, dtype=bool)
    for detection in detections.detections if detections is not None else []:
        first, last = detection.support
        mask[max(first, 1) - 1 : min(last, n_frames)] = True
    return mask


def user_masks(fields: Sequence[fo.TemporalDetections | None], n_frames: int) -> np.ndarray:
    """One summary mask per user: each field is a user, or holds several told apart by ``user``.

    Detections carrying a ``user`` attribute (as ``add_video_annotations`` writes them) are grouped
    by it; a field without it is one user. Missing fields are skipped.

    Returns:
        ``(n_users, n_frames)`` bool; no rows when there is no ground truth.
    """
    masks = []
    for detections in fields:
        if detections is None:
            continue
        groups: dict[Any, list] = {}
        for detection in detections.detections:
            user = detection.get_field("user") if detection.has_field("user") else None
            groups.setdefault(user, []).append(detection)
        for user in sorted(groups, key=str) or [None]:
            masks.append(summary_mask(fo.TemporalDetections(detections=groups.get(user, [])), n_frames))
    return np.array(masks, dtype=bool).reshape(len(masks), n_frames)

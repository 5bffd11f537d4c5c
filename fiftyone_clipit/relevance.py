"""Zero-shot frame relevance: CLIP frame-query similarity, smoothed over time.

This is the honest baseline of the CLIP-It paper's setting and the default scorer until a trained
checkpoint replaces it: each sampled frame gets the cosine similarity between its CLIP embedding
and the query's, the best over the query's sentences, then a Gaussian smoothing over time so that
a single odd frame does not make a moment.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.summary import upsample_scores


def zero_shot_scores(
    frame_embeddings: np.ndarray, text_embeddings: np.ndarray, smoothing_steps: float = 1.0
) -> np.ndarray:
    """Per-step relevance of frames to a query.

    Args:
        frame_embeddings: float array (n, d), L2-normalised.
        text_embeddings: float array (m, d) or (d,), L2-normalised; one row per sentence.
        smoothing_steps (1.0): Gaussian sigma in sampled steps; 0 turns smoothing off.

    Returns:
        float32 array (n,): cosine similarities in [-1, 1], best sentence per frame, smoothed.

    Raises:
        ClipItError: dimensions differ, or the inputs hold NaN / infinite values.
    """
    frames = np.asarray(frame_embeddings, dtype=np.float32)
    texts = np.atleast_2d(np.asarray(text_embeddings, dtype=np.float32))
    if frames.ndim != 2 or frames.shape[1] != texts.shape[1]:
        raise ClipItError(
            f"Frame embeddings {frames.shape} and query embeddings {texts.shape} differ in "
            f"dimension; embed frames and query with the same model"
        )
    if not (np.isfinite(frames).all() and np.isfinite(texts).all()):
        raise ClipItError("Frame or query embeddings contain NaN or infinite values; re-embed them")
    if smoothing_steps < 0:
        raise ValueError(f"smoothing_steps must be >= 0, got {smoothing_steps!r}")
    similarity = (frames @ texts.T).max(axis=1)
    if smoothing_steps > 0 and len(similarity) > 1:
        similarity = gaussian_filter1d(similarity, sigma=smoothing_steps, mode="nearest")
    return similarity.astype(np.float32)


def frame_relevance(
    embeddings: np.ndarray,
    frame_numbers: np.ndarray,
    text_embeddings: np.ndarray,
    n_frames: int,
    fps: float,
    smoothing_seconds: float,
) -> np.ndarray:
    """Zero-shot relevance of every frame of a video in [0, 1]: (1 + smoothed cosine) / 2.

    The rescaling keeps the order and the comparability across videos of CLIP's similarity
    while giving the knapsack positive values and the App a [0, 1] range.
    """
    steps = zero_shot_scores(embeddings, text_embeddings, smoothing_steps=smoothing_seconds * fps)
    picks = np.asarray(frame_numbers) - 1
    return (1.0 + upsample_scores(steps, picks, n_frames)) / 2.0

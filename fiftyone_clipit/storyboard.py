"""Keyframes and storyboards: the highest-scoring frames that do not repeat each other.

A summary's storyboard is what people glance at before they watch: a few frames, each the best
of its kind. Frames are taken greedily by score, skipping any too similar (cosine of their CLIP
embeddings) to one already taken, or, without embeddings, too close in time. Pure numpy + Pillow.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def select_keyframes(
    scores: np.ndarray,
    embeddings: np.ndarray | None = None,
    times: np.ndarray | None = None,
    n_keyframes: int = 8,
    max_similarity: float = 0.9,
    min_gap: float = 0.0,
    fill: bool = False,
) -> np.ndarray:
    """Greedy choice of high-scoring, mutually different candidates.

    Candidates are visited by decreasing score (earlier first on ties); one is kept when its
    cosine similarity to every kept one is at most ``max_similarity`` (if ``embeddings``) and it
    is at least ``min_gap`` away from every kept one (if ``times``). With ``fill``, when fewer
    than ``n_keyframes`` pass, the best remaining candidates still ``min_gap`` apart are added
    however alike they look, so a storyboard asked for n frames gets n where its span allows.

    Args:
        scores: ``(n,)`` finite scores of the candidates.
        embeddings (None): ``(n, d)`` embeddings of the candidates (normalised here).
        times (None): ``(n,)`` times of the candidates, in any unit ``min_gap`` uses.
        n_keyframes (8): most keyframes returned.
        max_similarity (0.9): largest cosine similarity allowed between two keyframes.
        min_gap (0.0): smallest distance in time allowed between two keyframes.
        fill (False): drop the similarity check for a second pass when fewer than
            ``n_keyframes`` are kept.

    Returns:
        ``(k,)`` int64 candidate indices, best first in each pass, ``k <= n_keyframes``; with
        ``fill`` and no ``times``, ``k = min(n_keyframes, n)``.

    Raises:
        ValueError: non-finite scores, mismatched lengths, or ``n_keyframes`` < 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError("scores must be a 1-D array of finite values")
    if n_keyframes < 1:
        raise ValueError(f"n_keyframes must be >= 1; got {n_keyframes}")
    unit = None
    if embeddings is not None:
        unit = np.asarray(embeddings, dtype=np.float64)
        if unit.shape[0] != scores.size:
            raise ValueError(f"{unit.shape[0]} embeddings for {scores.size} scores")
        unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        if times.shape != scores.shape:
            raise ValueError(f"{times.size} times for {scores.size} scores")
    kept: list[int] = []
    passes = [unit, None] if fill and unit is not None else [unit]
    for looks in passes:
        for index in np.argsort(-scores, kind="stable"):
            if len(kept) == n_keyframes:
                return np.asarray(kept, dtype=np.int64)
            if index in kept:
                continue
            if looks is not None and kept and np.max(looks[kept] @ looks[index]) > max_similarity:
                continue
            if times is not None and kept and np.min(np.abs(times[kept] - times[index])) < min_gap:
                continue
            kept.append(int(index))
    return np.asarray(kept, dtype=np.int64)


def format_time(seconds: float) -> str:
    """``m:ss.s`` (or ``h:mm:ss.s``) for a caption."""
    minutes, rest = divmod(max(float(seconds), 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def render_storyboard(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str,
    columns: int = 4,
    title: str | None = None,
) -> str:
    """Writes a PNG grid of frames, each captioned (e.g. with its time and score).

    The file is written under a temporary name and renamed when complete.

    Args:
        images: ``(h, w, 3)`` uint8 RGB frames; shown at the size of the first one.
        captions: one line of text per frame.
        path: the PNG to write.
        columns (4): frames per row.
        title (None): a line above the grid.

    Returns:
        `path`.

    Raises:
        ValueError: no images, or not one caption per image.
        OSError: the file cannot be written (the temporary file is removed).
    """
    if not images or len(images) != len(captions):
        raise ValueError(f"{len(images)} images and {len(captions)} captions; need one caption each, >= 1")
    height, width = images[0].shape[:2]
    font = ImageFont.load_default(size=max(10, width // 20))
    line = font.size + 8
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    top = line if title else 0
    pad = 6
    sheet = Image.new("RGB", (columns * (width + pad) + pad, top + rows * (height + line + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 4), title, fill="black", font=font)
    for index, (image, caption) in enumerate(zip(images, captions)):
        row, column = divmod(index, columns)
        x, y = pad + column * (width + pad), top + pad + row * (height + line + pad)
        tile = Image.fromarray(np.ascontiguousarray(image[:, :, :3])).resize((width, height))
        sheet.paste(tile, (x, y))
        draw.text((x, y + height + 3), caption, fill="black", font=font)
    folder, name = os.path.split(path)
    partial = os.path.join(folder, f".partial-{name}.part")
    try:
        sheet.save(partial, format="PNG")
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path

"""Synthetic vectors shaped like CLIP frame embeddings, for index benchmarks and tests.

Uniform random unit vectors make every query's top 10 near-ties that no approximate index can
find, and they look nothing like video frames. Frames come in videos: they share what every
CLIP image embedding shares, each video has its own content, and within a video the scene
drifts over time. So each vector here is

    x = 0.70 g + 0.50 s_v + 0.45 z_v(t) + 0.20 n,        normalised,

with g one direction common to all images (CLIP image embeddings sit in a narrow cone), s_v a
random unit vector per video, z_v(t) an Ornstein-Uhlenbeck process per video (unit variance,
correlation time `drift_frames` frames) and n fresh noise per frame. This gives cosine ~0.50
between frames of unrelated videos, ~0.75 between distant frames of one video and ~0.95
between neighbouring frames (2 fps), as ViT-B/32 image embeddings of real footage do.

Queries come in two kinds:
- near ("an image or a frame as the query"): a new frame of a random video at a random time,
  with its own noise: close to the data, like an image query;
- text-like: CLIP text embeddings sit apart from every image embedding (the modality gap),
  with cosine ~0.3 to the best frames and ~0.15 to unrelated ones. So a text-like query is
  mostly a direction of its own (with a small part along g), plus a small part of one video's
  content and of its scene at one moment.

Everything is a deterministic function of (seed, video number), so vectors can be generated
in chunks (the whole set never has to be held twice) and queries re-derive their videos.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy.signal import lfilter

_COMMON, _CONTENT, _DRIFT, _NOISE = 0.70, 0.50, 0.45, 0.20
_TOPIC = 0.8


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class FrameLikeVectors:
    """A reproducible collection of videos' frame embeddings (see the module docstring).

    Args:
        n_vectors: how many frame vectors in all.
        dim (512): dimension.
        frames_per_video (600): frames per video (5 minutes at 2 fps); the last video may be
            shorter.
        drift_frames (60.0): correlation time of the scene drift, in frames.
        seed (0): everything follows from it.
    """

    def __init__(
        self,
        n_vectors: int,
        dim: int = 512,
        frames_per_video: int = 600,
        drift_frames: float = 60.0,
        n_topics: int = 64,
        seed: int = 0,
    ):
        if n_vectors < 1 or dim < 2 or frames_per_video < 1:
            raise ValueError(
                f"need n_vectors >= 1, dim >= 2, frames_per_video >= 1; got {n_vectors}, {dim}, "
                f"{frames_per_video}"
            )
        self.n_vectors = n_vectors
        self.dim = dim
        self.frames_per_video = frames_per_video
        self.rho = float(np.exp(-1.0 / drift_frames))
        self.seed = seed
        rng = np.random.default_rng((seed, 2**31))
        self.common = _unit(rng.standard_normal(dim))
        text = rng.standard_normal(dim)
        text -= (text @ self.common) * self.common
        self.text_common = _unit(text)
        self.topics = _unit(rng.standard_normal((n_topics, dim)))

    @property
    def n_videos(self) -> int:
        return -(-self.n_vectors // self.frames_per_video)

    def video_length(self, video: int) -> int:
        return min(self.frames_per_video, self.n_vectors - video * self.frames_per_video)

    def _content_and_drift(self, video: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, video))
        n = self.video_length(video)
        own = _unit(rng.standard_normal(self.dim))
        content = _unit(_TOPIC * self.topics[video % len(self.topics)] + np.sqrt(1 - _TOPIC**2) * own)
        shocks = rng.standard_normal((n, self.dim)) / np.sqrt(self.dim)
        shocks[0] /= np.sqrt(1 - self.rho**2)  # start in the stationary distribution
        drift = lfilter([np.sqrt(1 - self.rho**2)], [1.0, -self.rho], shocks, axis=0)
        return content, drift

    def video(self, video: int) -> np.ndarray:
        """The frames of one video: float32 (video_length(video), dim), unit rows."""
        content, drift = self._content_and_drift(video)
        noise = np.random.default_rng((self.seed, video, 1)).standard_normal(drift.shape)
        x = _COMMON * self.common + _CONTENT * content + _DRIFT * drift + _NOISE * noise / np.sqrt(self.dim)
        return _unit(x).astype(np.float32)

    def chunks(self, videos_per_chunk: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(vectors, video numbers) in order, `videos_per_chunk` videos at a time."""
        for start in range(0, self.n_videos, videos_per_chunk):
            stop = min(start + videos_per_chunk, self.n_videos)
            vectors = np.concatenate([self.video(v) for v in range(start, stop)])
            owners = np.concatenate([np.full(self.video_length(v), v) for v in range(start, stop)])
            yield vectors, owners

    def all(self) -> np.ndarray:
        """Every vector at once: float32 (n_vectors, dim), filled video by video (no second copy)."""
        out = np.empty((self.n_vectors, self.dim), np.float32)
        for video in range(self.n_videos):
            start = video * self.frames_per_video
            out[start : start + self.video_length(video)] = self.video(video)
        return out

    def near_queries(self, n: int, seed: int = 1) -> np.ndarray:
        """New frames of random videos at random times (not in the set): float32 (n, dim)."""
        rng = np.random.default_rng((self.seed, seed, 7))
        out = np.empty((n, self.dim), np.float32)
        for i in range(n):
            video = int(rng.integers(self.n_videos))
            content, drift = self._content_and_drift(video)
            t = int(rng.integers(len(drift)))
            noise = rng.standard_normal(self.dim) / np.sqrt(self.dim)
            out[i] = _unit(_COMMON * self.common + _CONTENT * content + _DRIFT * drift[t] + _NOISE * noise)
        return out

    def text_queries(self, n: int, seed: int = 2) -> np.ndarray:
        """Text-like queries: far from every frame, cosine ~0.3 to the best: float32 (n, dim)."""
        rng = np.random.default_rng((self.seed, seed, 11))
        out = np.empty((n, self.dim), np.float32)
        own = 0.25 * self.common + np.sqrt(1 - 0.25**2) * self.text_common
        for i in range(n):
            video = int(rng.integers(self.n_videos))
            content, drift = self._content_and_drift(video)
            moment = _unit(drift[int(rng.integers(len(drift)))])
            noise = _unit(rng.standard_normal(self.dim))
            out[i] = _unit(0.80 * own + 0.20 * content + 0.13 * moment + 0.45 * noise)
        return out

"""Text for generic summaries: the pluggable captioner and the caption-free stand-in."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import write_video
from fiftyone_clipit.captions import TransformersCaptioner, caption_free_text, caption_video
from fiftyone_clipit.errors import ClipItError


def test_caption_free_text_is_the_videos_cluster_centres_largest_first():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    sizes = [30, 10, 5]
    steps = np.concatenate([c + 0.01 * rng.normal(size=(n, 8)) for c, n in zip(centres, sizes)])
    text = caption_free_text(steps, n_sentences=3)
    assert text.shape == (3, 8) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-6)
    assert np.all(np.diag(text @ centres.T) > 0.99)  # found each cluster, the largest first
    assert np.array_equal(text, caption_free_text(steps, n_sentences=3))
    assert caption_free_text(steps[:2], n_sentences=7).shape[0] <= 2
    with pytest.raises(ClipItError, match=r"\(n_steps >= 1, d\)"):
        caption_free_text(np.zeros((0, 8)))


def test_caption_video_asks_the_captioner_about_frames_spread_over_the_video(tmp_path):
    path = str(write_video(tmp_path / "v.mp4", 90, fps=30))
    seen = []

    def captioner(frames):
        seen.append([int(f[0, 0, 0]) for f in frames])
        return ["a red screen", " ", "a red screen", "a blue screen"]

    assert caption_video(path, captioner, n_captions=4) == ["a red screen", "a blue screen"]
    assert len(seen[0]) == 4 and len(set(seen[0])) == 4  # four different frames
    with pytest.raises(ClipItError, match="one sentence per frame"):
        caption_video(path, lambda frames: ["just one"], n_captions=4)
    with pytest.raises(ClipItError, match="no non-empty sentence"):
        caption_video(path, lambda frames: [""] * len(frames), n_captions=2)


@pytest.mark.skipif(importlib.util.find_spec("transformers") is not None, reason="transformers is installed")
def test_the_transformers_captioner_says_how_to_get_transformers():
    with pytest.raises(ClipItError, match=r"optional package transformers \(pip install transformers\)"):
        TransformersCaptioner("Salesforce/blip-image-captioning-base")

"""A video's evaluation figure drawn from plain arrays (`fiftyone_clipit.plots`), without a database."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fiftyone_clipit.plots import VideoCurves, mask_segments, plotly_figure, rescale, save_png


def curves() -> VideoCurves:
    times = np.arange(60) / 30.0
    return VideoCurves("clip.mp4 (tvsum): f1 0.500", times, rescale(np.sin(times)), np.linspace(0, 1, 60),
                       "share of users", mask_segments(np.arange(60) < 15, 30.0), [(1.0, 2.0)])


def test_runs_of_a_mask_become_seconds_and_curves_are_rescaled():
    mask = np.array([0, 1, 1, 0, 0, 1], dtype=bool)
    assert mask_segments(mask, 2.0) == [(0.5, 1.5), (2.5, 3.0)]
    assert mask_segments(None, 2.0) == []
    np.testing.assert_allclose(rescale(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(rescale(np.ones(4)), np.zeros(4))


def test_the_png_and_the_interactive_figure_show_both_curves_and_both_summaries(tmp_path):
    path = save_png(curves(), str(tmp_path / "figs" / "clip.png"))
    with Image.open(path) as image:
        assert image.size == (1000, 350)
    figure = plotly_figure(curves())
    assert [trace.name for trace in figure.data] == ["predicted score", "share of users"]
    assert len(figure.layout.shapes) == 2 and figure.layout.title.text.startswith("clip.mp4")

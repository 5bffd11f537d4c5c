"""PyAV decoding on real files: exact frames, sampled frame numbers, metadata, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import frame_color, write_video
from fiftyone_clipit.decode import ResizeSpec, iter_sampled_frames, prefetch, probe_video, resized_shape
from fiftyone_clipit.errors import VideoError


def test_probe_reads_rate_count_duration(video_dir):
    info = probe_video(str(video_dir / "colors_a.mp4"))
    assert (info.width, info.height) == (96, 64)
    assert info.n_frames == 90
    assert info.frame_rate == pytest.approx(30.0)
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert not info.has_audio
    assert probe_video(str(video_dir / "colors_b.mp4")).has_audio


def test_sampling_follows_timestamps_and_returns_exact_frames(video_dir):
    batches = list(iter_sampled_frames(str(video_dir / "colors_a.mp4"), fps=2.0, batch_size=4))
    numbers = np.concatenate([b.frame_numbers for b in batches])
    times = np.concatenate([b.times for b in batches])
    np.testing.assert_array_equal(numbers, [1, 16, 31, 46, 61, 76])
    np.testing.assert_allclose(times, np.arange(6) * 0.5, atol=1e-6)
    frames = np.concatenate([b.frames for b in batches])
    for frame, number in zip(frames, numbers):
        expected = np.array(frame_color(number - 1))
        assert np.abs(frame[10, 10].astype(int) - expected).max() <= 2


def test_sampling_at_native_rate_keeps_every_frame(video_dir):
    batches = list(iter_sampled_frames(str(video_dir / "colors_b.mp4"), fps=25.0, batch_size=64))
    numbers = np.concatenate([b.frame_numbers for b in batches])
    np.testing.assert_array_equal(numbers, np.arange(1, 151))
    assert [len(b.frame_numbers) for b in batches] == [64, 64, 22]


def test_decoder_resizes_and_crops_to_model_input(video_dir):
    spec = ResizeSpec(size=32)
    batch = next(iter_sampled_frames(str(video_dir / "colors_a.mp4"), 1.0, resize=spec))
    assert batch.frames.shape == (3, 32, 32, 3) and batch.frames.dtype == np.uint8
    assert resized_shape(640, 360, ResizeSpec(224)) == (398, 224)
    assert resized_shape(360, 640, ResizeSpec(224)) == (224, 398)


@pytest.mark.parametrize(
    "kind, message",
    [("missing", "not found"), ("empty", "empty"), ("text", "not a readable video"), ("audio_only", "no video stream")],
)
def test_bad_files_raise_video_error_naming_the_file(bad_files, kind, message):
    path = str(bad_files[kind])
    with pytest.raises(VideoError, match=message) as error:
        probe_video(path)
    assert path in str(error.value)
    with pytest.raises(VideoError):
        list(iter_sampled_frames(path, 2.0))


def test_truncated_video_without_moov_atom_is_a_video_error(tmp_path):
    path = write_video(tmp_path / "whole.mp4", 60)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # PyAV writes the moov atom last: now it is gone
    with pytest.raises(VideoError, match="cut.mp4"):
        probe_video(str(cut))
    with pytest.raises(VideoError, match="cut.mp4"):
        list(iter_sampled_frames(str(cut), 2.0))


def test_invalid_fps_is_rejected(video_dir):
    with pytest.raises(ValueError, match="fps"):
        next(iter_sampled_frames(str(video_dir / "colors_a.mp4"), 0))


def test_prefetch_keeps_order_and_reraises():
    assert list(prefetch(iter(range(10)), depth=2)) == list(range(10))

    def broken():
        yield 1
        raise RuntimeError("decoder died")

    got = []
    with pytest.raises(RuntimeError, match="decoder died"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1]

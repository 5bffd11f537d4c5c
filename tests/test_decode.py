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


def write_frames(path, images, fps=10, times_ms=None, rotation=0, faststart=False):
    """Writes RGB images losslessly; optional presentation times (ms) and display rotation."""
    from fractions import Fraction

    import av

    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def corner_image(height=64, width=96):
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = 255  # white top-left quarter
    return image


@pytest.mark.parametrize("rotation, turns", [(90, 1), (-90, 3), (180, 2)])
def test_rotated_video_comes_out_upright(tmp_path, rotation, turns):
    image = corner_image()
    path = write_frames(tmp_path / "rotated.mp4", [image] * 3, rotation=rotation)
    (batch,) = iter_sampled_frames(str(path), 10.0)
    upright = np.rot90(image, turns)
    assert batch.frames.shape[1:3] == upright.shape[:2]
    assert np.abs(batch.frames[0].astype(int) - upright).max() <= 2
    (small,) = iter_sampled_frames(str(path), 10.0, resize=ResizeSpec(size=32))
    assert small.frames.shape == (3, 32, 32, 3)


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path):
    times = [0, 100, 150, 900, 1000, 1010, 1600, 2500]
    images = [np.full((32, 32, 3), 20 * i, np.uint8) for i in range(len(times))]
    path = write_frames(tmp_path / "vfr.mp4", images, times_ms=times)
    batches = list(iter_sampled_frames(str(path), fps=2.0))
    numbers = np.concatenate([b.frame_numbers for b in batches])
    # first frame at or after 0, 0.5, 1.0, 1.5, 2.0 s: 0 s, 0.9 s, 1.0 s, 1.6 s, 2.5 s
    np.testing.assert_array_equal(numbers, [1, 4, 5, 7, 8])
    np.testing.assert_allclose(np.concatenate([b.times for b in batches]), [0, 0.9, 1.0, 1.6, 2.5], atol=1e-6)
    frames = np.concatenate([b.frames for b in batches])
    np.testing.assert_allclose([int(f[5, 5, 0]) for f in frames], [20 * (n - 1) for n in numbers], atol=2)


def test_one_frame_video(tmp_path):
    path = write_frames(tmp_path / "one.mp4", [corner_image()])
    (batch,) = iter_sampled_frames(str(path), 2.0)
    assert batch.frame_numbers.tolist() == [1] and probe_video(str(path)).n_frames == 1


@pytest.mark.reliability("bad_input")
@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_still_image_renamed_mp4_is_not_a_one_frame_video(tmp_path, image_format):
    from PIL import Image

    path = tmp_path / f"{image_format.lower()}_still.mp4"
    Image.fromarray(corner_image()).save(path, image_format)
    message = f"{path.name}': is a still {image_format} image .*not a video, whatever its extension"
    with pytest.raises(VideoError, match=message):
        probe_video(str(path))
    with pytest.raises(VideoError, match=message):
        list(iter_sampled_frames(str(path), 2.0))


def test_video_breaking_off_mid_stream_fails_or_keeps_what_decodes(tmp_path):
    from fiftyone_clipit.decode import DecodeStatus
    from fiftyone_clipit.errors import BrokenVideoError

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(60)]
    whole = write_frames(tmp_path / "whole.mp4", images, fps=30, faststart=True)  # moov first
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BrokenVideoError, match=r"cut.mp4.*broke off after \d+ of 60 frames") as error:
        list(iter_sampled_frames(str(cut), 30.0))
    assert 0 < error.value.n_decoded < 60
    status = DecodeStatus()
    kept = list(iter_sampled_frames(str(cut), 30.0, keep_partial=True, status=status))
    numbers = np.concatenate([b.frame_numbers for b in kept])
    assert status.broken and f"after {status.n_decoded} of 60 frames" in status.broken
    np.testing.assert_array_equal(numbers, np.arange(1, status.n_decoded + 1))
    assert status.n_decoded == error.value.n_decoded

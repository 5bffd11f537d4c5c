"""The one video cursor: embedding, storyboards and exports see the same frames by frame number.

Real files written by PyAV in the test (rotated, variable frame rate, B-frames, cut short); the
exported mp4s are decoded again with plain PyAV and compared with the frames the embedding
decoder gives for the same frame numbers.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from fiftyone_clipit.cursor import VideoCursor, frame_seconds
from fiftyone_clipit.decode import DecodeStatus, iter_sampled_frames
from fiftyone_clipit.errors import VideoError
from fiftyone_clipit.reels import read_frames, write_segments
from test_decode import write_frames

#: Mean absolute difference (0-255) that H.264 at crf 20 in 4:2:0 stays under on these frames.
CODEC_ERROR = 6.0


def marked_images(n: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Frames told apart by colour, with a white top-left quarter that shows which way is up."""
    images = []
    for i in range(n):
        image = np.empty((height, width, 3), np.uint8)
        image[:] = ((i * 37) % 200 + 30, (i * 91) % 200 + 30, (i * 53) % 200 + 30)
        image[: height // 2, : width // 2] = 255
        images.append(image)
    return images


def embedding_frames(path) -> dict[int, np.ndarray]:
    """Frame number -> the full-size frame the embedding decoder gives (every frame sampled)."""
    batches = list(iter_sampled_frames(str(path), fps=1000.0, keep_partial=True))
    return {int(n): f for b in batches for n, f in zip(b.frame_numbers, b.frames)}


def decoded(path) -> list[np.ndarray]:
    """Every frame of a written file, with plain PyAV; the file must carry no rotation of its own."""
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.video[0]))
    assert all(not frame.rotation for frame in frames)
    return [frame.to_ndarray(format="rgb24") for frame in frames]


def assert_same_pictures(written: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(written) == len(expected)
    for index, (got, want) in enumerate(zip(written, expected)):
        assert got.shape == want.shape, f"frame {index}: {got.shape} written, {want.shape} expected"
        error = np.abs(got.astype(int) - want.astype(int)).mean()
        assert error < CODEC_ERROR, f"frame {index} differs by {error:.1f} on average"


@pytest.mark.parametrize("rotation, turns", [(90, 1), (-90, 3), (180, 2)])
def test_rotated_exports_are_upright_and_match_the_embedded_frames(tmp_path, rotation, turns):
    images = marked_images(30)
    source = write_frames(tmp_path / "rotated.mp4", images, fps=10, rotation=rotation)
    embedded = embedding_frames(source)
    assert sorted(embedded) == list(range(1, 31))
    for number, frame in embedded.items():  # the embedding decoder shows the video upright
        assert np.abs(frame.astype(int) - np.rot90(images[number - 1], turns)).max() <= 2
    segments = [(3, 8), (15, 21)]
    clips = [tmp_path / "clip1.mp4", tmp_path / "clip2.mp4"]
    written = write_segments(str(source), segments, reel_path=str(tmp_path / "reel.mp4"), clip_paths=clips)
    assert [clip.segments for clip in written.clips] == [((3, 8),), ((15, 21),)]
    for clip, (first, last) in zip(clips, segments):
        assert_same_pictures(decoded(clip), [embedded[n] for n in range(first, last + 1)])
    numbers = [n for first, last in segments for n in range(first, last + 1)]
    assert_same_pictures(decoded(tmp_path / "reel.mp4"), [embedded[n] for n in numbers])
    upright_width = embedded[1].shape[1]
    storyboard = read_frames(str(source), [20, 4, 11], width=upright_width)
    for image, number in zip(storyboard, [20, 4, 11]):
        assert image.shape == embedded[number].shape
        assert np.abs(image.astype(int) - embedded[number].astype(int)).max() <= 2


def test_variable_frame_rate_is_cut_and_read_with_exactly_the_frames_asked(tmp_path):
    times = [0, 40, 80, 900, 950, 1000, 1010, 1600, 2500, 2540, 2580, 3900, 3940, 4000, 5200, 5230]
    images = marked_images(len(times))
    source = write_frames(tmp_path / "vfr.mp4", images, times_ms=times)
    embedded = embedding_frames(source)
    assert sorted(embedded) == list(range(1, len(times) + 1))
    np.testing.assert_allclose(frame_seconds(str(source), len(times), 10.0), np.array(times) / 1000)
    np.testing.assert_allclose(frame_seconds(str(source), 18, 10.0)[-3:], [5.23, 1.6, 1.7])  # none past 16
    sampled = np.concatenate([b.frame_numbers for b in iter_sampled_frames(str(source), fps=1.0)])
    # first frames at or after 0, 1, 2 (2.5 s), 3 (3.9 s: 3.5 s has none of its own), 4 and 5 s
    np.testing.assert_array_equal(sampled, [1, 6, 9, 12, 14, 15])
    segments = [(2, 5), (9, 13)]
    clips = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    written = write_segments(str(source), segments, reel_path=str(tmp_path / "reel.mp4"), clip_paths=clips)
    assert [c.n_frames for c in written.clips] == [4, 5] and written.reel.n_frames == 9
    for clip, (first, last) in zip(clips, segments):
        assert_same_pictures(decoded(clip), [embedded[n] for n in range(first, last + 1)])
    keyframes = [14, 3, 9, 7]
    storyboard = read_frames(str(source), keyframes, width=64)
    assert len(storyboard) == 4
    for image, number in zip(storyboard, keyframes):
        assert np.abs(image.astype(int) - embedded[number].astype(int)).max() <= 2


def test_a_cut_video_gives_the_frames_it_has_and_names_those_it_lacks(tmp_path):
    images = marked_images(60)
    whole = write_frames(tmp_path / "whole.mp4", images, fps=30, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    status = DecodeStatus()
    batches = list(iter_sampled_frames(str(cut), fps=1000.0, keep_partial=True, status=status))
    embedded = {int(n): f for b in batches for n, f in zip(b.frame_numbers, b.frames)}
    n = status.n_decoded
    assert status.broken and 10 < n < 60 and sorted(embedded) == list(range(1, n + 1))
    written = write_segments(str(cut), [(2, 6), (n - 4, n)], reel_path=str(tmp_path / "reel.mp4"))
    assert written.reel.segments == ((2, 6), (n - 4, n)) and written.reel.n_frames == 10
    expected = [embedded[k] for k in [*range(2, 7), *range(n - 4, n + 1)]]
    assert_same_pictures(decoded(tmp_path / "reel.mp4"), expected)
    (last,) = read_frames(str(cut), [n], width=64)
    assert np.abs(last.astype(int) - embedded[n].astype(int)).max() <= 2
    with pytest.raises(VideoError, match=f"has no frame number {n + 1}"):
        read_frames(str(cut), [2, n + 1])
    with pytest.raises(VideoError, match="lies past the last frame"):
        write_segments(str(cut), [(n + 1, n + 5)], reel_path=str(tmp_path / "past.mp4"))
    assert not list(tmp_path.glob("*past*"))  # nothing half-written stays


def write_with_b_frames(path, n_frames: int = 90) -> list[np.ndarray]:
    """An mp4 with B-frames (packets out of presentation order) and a keyframe every 10 frames."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n_frames)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "18", "x264-params": "keyint=10:min-keyint=10:bframes=2:b-adapt=0:scenecut=0"}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return images


def test_frames_reached_by_seeking_have_the_numbers_they_have_from_the_start(tmp_path):
    path = tmp_path / "bframes.mp4"
    write_with_b_frames(path)
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        assert any(a.pts > b.pts for a, b in zip(packets, packets[1:]))  # really out of order
    reference = decoded(path)
    assert len(reference) == 90
    with VideoCursor(str(path)) as cursor:
        assert [item.number for item in cursor.frames()] == list(range(1, 91))
        cursor.seek_gap_seconds = 0.0  # seek for every jump, backward and forward
        for first, last in [(55, 57), (12, 12), (80, 90), (1, 3), (33, 40), (89, 200)]:
            items = list(cursor.frames(first, last))
            assert [item.number for item in items] == list(range(first, min(last, 90) + 1))
            for item in items:
                assert np.array_equal(item.frame.to_ndarray(format="rgb24"), reference[item.number - 1])
        assert list(cursor.frames(91)) == []

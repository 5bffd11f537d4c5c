"""Rotated, variable-frame-rate and cut videos through the whole chain, in the real database.

Each video is embedded (a cut one with on_broken="keep"), scored, summarised with 4 keyframes
and exported; the exported clips, reels and keyframe images are decoded again and compared, by
frame number, with the frames the embedding decoder gives. Videos are written by PyAV here.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

from fiftyone_clipit import add_videos, compute_frame_embeddings, create_summary, export_summary, score_frames
from fiftyone_clipit.errors import BatchError
from fiftyone_clipit.fo.common import embedding_store
from test_cursor import assert_same_pictures, decoded, embedding_frames, marked_images
from test_decode import write_frames

pytestmark = pytest.mark.slow

VFR_TIMES = [0, 40, 80, 120, 900, 950, 1000, 1010, 1600, 1650, 2500, 2540, 2580, 2620, 3900, 3940,
             4000, 4500, 5200, 5230, 5900, 6000, 6100, 6900, 7000, 7050, 7800, 7850, 8500, 8600]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """A video with a 90-degree rotation flag, a variable-frame-rate one and one cut short."""
    folder = tmp_path_factory.mktemp("timestamps")
    whole = write_frames(folder / "whole.mp4", marked_images(240), fps=15, faststart=True)
    cut = folder / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(len(whole.read_bytes()) * 0.55)])
    whole.unlink()
    return {
        "rotated": write_frames(folder / "rotated.mp4", marked_images(120), fps=10, rotation=90),
        "vfr": write_frames(folder / "vfr.mp4", marked_images(len(VFR_TIMES)), times_ms=VFR_TIMES),
        "cut": cut,
    }


@pytest.fixture(scope="module")
def summarised(videos, tiny_encoder) -> fo.Dataset:
    """The three videos embedded at 4 fps (the cut one as far as it decodes), scored and
    summarised with 4 keyframes each. Tests export it; none changes it."""
    dataset = fo.Dataset(f"clipit-timestamps-{uuid.uuid4().hex[:8]}")
    add_videos(dataset, [str(p) for p in videos.values()])
    report = compute_frame_embeddings(dataset, model=tiny_encoder, fps=4.0, on_broken="keep")
    assert [note.item for note in report.partial] == [str(videos["cut"])]
    score_frames(dataset, "a white square", model=tiny_encoder)
    create_summary(dataset, budget=0.6, segmentation="uniform", segment_seconds=2.0, n_keyframes=4)
    return dataset


def sample_of(dataset: fo.Dataset, path: Path) -> fo.Sample:
    return dataset.match(fo.ViewField("filepath") == str(path)).first()


def keyframes_of(sample: fo.Sample) -> dict[int, int]:
    """Frame number -> rank of the summary's keyframes."""
    return {n: f["clipit_summary_keyframe"] for n, f in sample.frames.items() if f["clipit_summary_keyframe"]}


def check_export(sample: fo.Sample, report, embedded: dict[int, np.ndarray]) -> None:
    """Every clip and the reel hold exactly their segments' frames, equal to the embedded ones."""
    segments = sorted(tuple(d.support) for d in sample["clipit_summary"].detections)
    clips = report.clips[sample.filepath]
    assert len(clips) == len(segments)
    for clip, (first, last) in zip(clips, segments):
        assert clip.endswith(f"_f{first:06d}-{last:06d}.mp4")
        assert_same_pictures(decoded(clip), [embedded[n] for n in range(first, last + 1)])
    numbers = [n for first, last in segments for n in range(first, last + 1)]
    assert_same_pictures(decoded(report.reels[sample.filepath]), [embedded[n] for n in numbers])
    assert Path(report.storyboards[sample.filepath]).is_file()


@pytest.mark.reliability("bad_input")
def test_rotated_video_exports_upright_frames_equal_to_the_embedded_ones(summarised, videos, tmp_path):
    sample = sample_of(summarised, videos["rotated"])
    embedded = embedding_frames(videos["rotated"])
    assert embedded[1].shape == (64, 48, 3)  # stored 64 wide and 48 high, shown turned
    report = export_summary(summarised.select(sample.id), str(tmp_path))
    check_export(sample, report, embedded)
    keyframes = keyframes_of(sample)
    assert len(keyframes) == 4
    for number in keyframes:  # the storyboard's images, saved upright beside the embeddings
        image = np.asarray(Image.open(sample.frames[number].filepath).convert("RGB"))
        want = np.asarray(Image.fromarray(embedded[number]).resize(image.shape[1::-1], Image.BILINEAR))
        assert image.shape[0] > image.shape[1]
        assert np.abs(image.astype(int) - want.astype(int)).mean() < 6


@pytest.mark.reliability("bad_input")
def test_variable_frame_rate_video_is_summarised_and_exported_with_exactly_the_frames_asked(
    summarised, videos, tmp_path
):
    sample = sample_of(summarised, videos["vfr"])
    embedded = embedding_frames(videos["vfr"])
    assert sorted(embedded) == list(range(1, len(VFR_TIMES) + 1))
    keyframes = keyframes_of(sample)
    assert sorted(keyframes.values()) == [1, 2, 3, 4]
    seconds = sorted(VFR_TIMES[n - 1] / 1000 for n in keyframes)  # at least 1 s apart by timestamp
    assert min(b - a for a, b in zip(seconds, seconds[1:])) >= 1.0
    report = export_summary(summarised.select(sample.id), str(tmp_path))
    check_export(sample, report, embedded)


@pytest.mark.reliability("bad_input")
def test_cut_video_kept_as_far_as_it_decodes_is_summarised_and_exported_within_its_frames(
    summarised, videos, tmp_path
):
    sample = sample_of(summarised, videos["cut"])
    info = embedding_store(summarised).info(sample.id)
    n_decoded = info["n_decoded"]
    assert info["broken"] and n_decoded < sample.metadata.total_frame_count
    embedded = embedding_frames(videos["cut"])
    assert sorted(embedded) == list(range(1, n_decoded + 1))
    segments = [tuple(d.support) for d in sample["clipit_summary"].detections]
    assert segments and max(last for _, last in segments) <= n_decoded
    keyframes = keyframes_of(sample)
    assert len(keyframes) == 4 and max(keyframes) <= n_decoded
    report = export_summary(summarised.select(sample.id), str(tmp_path))
    check_export(sample, report, embedded)


@pytest.mark.reliability("bad_input")
def test_a_video_failing_in_export_leaves_none_of_its_files(summarised, videos, tmp_path):
    """A keyframe ranked on a frame the cut file lacks: that video fails, named, and its folder
    holds no clip or reel that looks complete; the other videos are exported."""
    dataset = summarised.clone()
    cut = sample_of(dataset, videos["cut"])
    phantom = cut.metadata.total_frame_count
    cut.frames[phantom]["clipit_summary_keyframe"] = 1
    cut.save()
    with pytest.raises(BatchError) as raised:
        export_summary(dataset, str(tmp_path))
    (failure,) = raised.value.failures
    assert failure.item == str(videos["cut"]) and f"has no frame number {phantom}" in failure.reason
    assert raised.value.n_ok == 2
    assert not list((tmp_path / "cut").iterdir())
    for kind in ("rotated", "vfr"):
        assert len(list((tmp_path / kind).glob("*.mp4"))) >= 2

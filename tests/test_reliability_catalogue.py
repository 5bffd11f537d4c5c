"""A catalogue of bad inputs, each with its expected outcome.

Every case is one test marked `reliability("bad_input")`: either a clear error naming the item
and what to do, or a documented outcome (kept, skipped, refused before any work), while every
other item of the same batch is processed. Videos are made with PyAV in the test; the FiftyOne
cases run against the session's real MongoDB, the real decoder and the tiny random CLIP model.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

from conftest import write_audio_only, write_video
from fiftyone_clipit import add_videos, compute_frame_embeddings, create_summary, export_summary, score_frames
from fiftyone_clipit.cli import cli_message
from fiftyone_clipit.decode import iter_sampled_frames
from fiftyone_clipit.errors import BatchError, BrokenVideoError, ClipItError, VideoError
from fiftyone_clipit.fo.common import embedding_store
from fiftyone_clipit.store import FrameEmbeddings
from fiftyone_clipit.summary import generate_summary
from test_decode import write_frames

pytestmark = [pytest.mark.slow, pytest.mark.reliability("bad_input")]

GOOD = "good.mp4"


def cut(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """One file per kind of bad (or unusual) video, and one good video."""
    folder = tmp_path_factory.mktemp("zoo")
    images = [np.full((48, 64, 3), 40 * i % 256, np.uint8) for i in range(30)]
    write_video(folder / GOOD, 30, fps=15)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("definitely not a video\n" * 50)
    Image.fromarray(images[3]).save(folder / "still_png.mp4", "PNG")  # a PNG renamed .mp4
    whole_moov_last = write_frames(folder / "moov_last.mp4", images, fps=15)
    whole_faststart = write_frames(folder / "faststart.mp4", images, fps=15, faststart=True)
    files = {
        "good": folder / GOOD,
        "missing": folder / "missing.mp4",
        "empty": folder / "empty.mp4",
        "text": folder / "text.mp4",
        "still_png": folder / "still_png.mp4",
        "audio_only": write_audio_only(folder / "audio_only.mp4"),
        "no_moov": cut(whole_moov_last, folder / "no_moov.mp4", 0.5),
        "cut_mid_stream": cut(whole_faststart, folder / "cut_mid_stream.mp4", 0.45),
        "one_frame": write_frames(folder / "one_frame.mp4", images[:1]),
        "vfr": write_frames(folder / "vfr.mp4", images[:6], times_ms=[0, 40, 80, 900, 950, 2000]),
        "rotated": write_frames(folder / "rotated.mp4", [np.zeros((48, 64, 3), np.uint8)] * 4, rotation=90),
        "huge": write_frames(folder / "huge.mp4", [np.zeros((2160, 3840, 3), np.uint8)] * 2, fps=2),
    }
    whole_moov_last.unlink()
    whole_faststart.unlink()
    return files


# ---- the decoder, one file at a time -------------------------------------------------------

REFUSED = [
    ("missing", VideoError, "file not found; check the path"),
    ("empty", VideoError, r"file is empty \(0 bytes\); re-copy or re-download it"),
    ("text", VideoError, "not a readable video .*is it really a video file"),
    ("audio_only", VideoError, r"has no video stream \(audio-only or not a video\)"),
    ("still_png", VideoError, r"is a still PNG image \(FFmpeg reads it as 'png_pipe'\), not a video"),
    ("no_moov", VideoError, "not a readable video"),
    ("cut_mid_stream", BrokenVideoError, "decoding broke off after"),
]


@pytest.mark.parametrize("kind, error, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_decoder_names_the_bad_file_and_what_to_do(zoo, kind, error, message):
    with pytest.raises(error, match=message) as raised:
        list(iter_sampled_frames(str(zoo[kind]), fps=2.0))
    assert raised.value.path == str(zoo[kind]) and str(zoo[kind]) in str(raised.value)


def test_video_cut_mid_stream_is_kept_as_far_as_it_decodes_on_request(zoo):
    batches = list(iter_sampled_frames(str(zoo["cut_mid_stream"]), fps=100.0, keep_partial=True))
    n = sum(len(b.frame_numbers) for b in batches)
    assert 0 < n < 30


def test_one_frame_video_gives_one_frame(zoo):
    (batch,) = list(iter_sampled_frames(str(zoo["one_frame"]), fps=2.0))
    assert batch.frame_numbers.tolist() == [1]


def test_variable_frame_rate_is_sampled_by_timestamp(zoo):
    (batch,) = list(iter_sampled_frames(str(zoo["vfr"]), fps=1.0))
    assert batch.frame_numbers.tolist() == [1, 6]  # first frames at/after 0 s and 1 s; 2 s has none of its own
    assert np.allclose(batch.times, [0.0, 2.0], atol=0.01)


def test_rotated_video_comes_out_upright(zoo):
    (batch,) = list(iter_sampled_frames(str(zoo["rotated"]), fps=100.0))
    assert batch.frames.shape[1:3] == (64, 48)  # 64x48 stored, shown turned by 90 degrees


def test_very_large_resolution_is_shrunk_in_the_decoder(zoo, tiny_encoder):
    (batch,) = list(iter_sampled_frames(str(zoo["huge"]), fps=2.0, resize=tiny_encoder.resize))
    side = tiny_encoder.resize.size
    assert batch.frames.shape == (2, side, side, 3)


# ---- a whole batch through FiftyOne: the bad ones named, every other one processed ----------

def new_dataset(media_samples: list[fo.Sample]) -> fo.Dataset:
    dataset = fo.Dataset(f"clipit-catalogue-{uuid.uuid4().hex[:8]}")
    dataset.add_samples(media_samples)
    return dataset


@pytest.fixture(scope="module")
def batch(zoo, tiny_encoder):
    """Every file of the zoo in one dataset (bypassing add_videos' checks), embedded once."""
    dataset = new_dataset([fo.Sample(filepath=str(p)) for p in zoo.values()])
    with pytest.raises(BatchError) as raised:
        compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    return dataset, raised.value


FAILED_IN_BATCH = ["missing", "empty", "text", "still_png", "audio_only", "no_moov", "cut_mid_stream"]
DONE_IN_BATCH = ["good", "one_frame", "vfr", "rotated", "huge"]


def test_batch_names_exactly_the_bad_videos(batch, zoo):
    dataset, error = batch
    assert sorted(f.item for f in error.failures) == sorted(str(zoo[k]) for k in FAILED_IN_BATCH)
    assert error.n_ok == len(DONE_IN_BATCH)
    assert "on_broken='keep'" in next(f.reason for f in error.failures if "cut_mid" in f.item)


def test_batch_embeds_every_other_video_completely(batch, zoo):
    dataset, _ = batch
    store = embedding_store(dataset)
    by_path = dict(zip(dataset.values("filepath"), dataset.values("id")))
    for kind in DONE_IN_BATCH:
        item = store.get(by_path[str(zoo[kind])])
        assert item is not None and len(item.frame_numbers) == len(item.embeddings) >= 1, kind
    for kind in FAILED_IN_BATCH:
        assert store.get(by_path[str(zoo[kind])]) is None, kind


def test_metadata_lying_about_the_frame_count_is_refused_for_that_video_only(batch, zoo, tiny_encoder):
    """The sample's metadata claims 10x the frames the file holds: no phantom frames are scored."""
    dataset, _ = batch
    done = dataset.select_by("filepath", [str(zoo[k]) for k in DONE_IN_BATCH])
    liar = done.match(fo.ViewField("filepath") == str(zoo["good"])).first()
    liar.metadata = fo.VideoMetadata(total_frame_count=300, frame_rate=15.0, duration=20.0)
    liar.save()
    with pytest.raises(BatchError) as raised:
        score_frames(done, "a red square", model=tiny_encoder, score_field="lying")
    (failure,) = raised.value.failures
    assert failure.item == str(zoo["good"]) and "says 300 frames but the file decodes 30" in failure.reason
    assert "compute_metadata(overwrite=True)" in failure.reason
    assert raised.value.n_ok == len(DONE_IN_BATCH) - 1
    liar.reload()
    assert all(frame.get_field("lying") is None for frame in liar.frames.values())


def test_image_renamed_mp4_is_not_added_as_a_one_frame_video(zoo, tmp_path):
    dataset = new_dataset([])
    with pytest.raises(BatchError) as raised:
        add_videos(dataset, [str(zoo["good"]), str(zoo["still_png"]), str(zoo["one_frame"])])
    (failure,) = raised.value.failures
    assert failure.item == str(zoo["still_png"]) and "is a still PNG image" in failure.reason
    assert sorted(dataset.values("filepath")) == sorted([str(zoo["good"]), str(zoo["one_frame"])])
    assert dataset.match(fo.ViewField("filepath") == str(zoo["one_frame"])).first().metadata.total_frame_count == 1
    dataset.delete()


def test_video_that_failed_to_embed_is_named_with_its_cause_when_scored_and_summarised(zoo, tiny_encoder):
    """A video cut mid-stream fails to embed; scoring and summarising name that failure and its
    remedy (re-embed keeping what decodes, or replace the file), not "run score_frames"."""
    dataset = new_dataset([])
    add_videos(dataset, [str(zoo["good"]), str(zoo["cut_mid_stream"])])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0, skip_failures=True)
    remedy = r"failed to embed \(decoding broke off after \d+ of 30 frames.*re-embed it \(pass on_broken='keep'"
    with pytest.raises(BatchError) as raised:
        score_frames(dataset, "a square", model=tiny_encoder)
    (failure,) = raised.value.failures
    assert failure.item == str(zoo["cut_mid_stream"]) and re.search(remedy, failure.reason)
    assert "or replace the file" in failure.reason and raised.value.n_ok == 1
    assert "re-embed it (pass --on-broken keep to keep the frames that decode)" in cli_message(raised.value)
    with pytest.raises(BatchError) as raised:
        create_summary(dataset, segmentation="uniform", segment_seconds=1.0, budget=0.5)
    (failure,) = raised.value.failures
    assert failure.item == str(zoo["cut_mid_stream"]) and re.search(remedy, failure.reason)
    assert "score_frames" not in failure.reason
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0, on_broken="keep")
    assert score_frames(dataset, "a square", model=tiny_encoder).n_scored == 2
    assert create_summary(dataset, segmentation="uniform", segment_seconds=1.0, budget=0.5).n_summarized == 2
    dataset.delete()


@pytest.fixture(scope="module")
def scored(zoo, tiny_encoder):
    dataset = new_dataset([fo.Sample(filepath=str(zoo["good"])), fo.Sample(filepath=str(zoo["vfr"]))])
    dataset.compute_metadata()
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    return dataset


QUERIES = {
    "very_long": "a red square moving slowly " * 400,
    "non_latin": "赤い四角がゆっくり動く",
    "emoji": "🐶🏃‍♂️🔥",
    "rtl_and_combining": "مربع أحمر e\u0301",
}


@pytest.mark.parametrize("kind", QUERIES)
def test_unusual_queries_score_every_frame_in_range(scored, tiny_encoder, kind):
    field = f"q_{kind}"
    report = score_frames(scored, QUERIES[kind], model=tiny_encoder, score_field=field, frames="every")
    assert report.n_scored == 2
    for sample in scored:
        values = np.array([frame[field] for frame in sample.frames.values()])
        assert len(values) == sample.metadata.total_frame_count and np.isfinite(values).all()
        assert values.min() >= 0.0 and values.max() <= 1.0


@pytest.mark.parametrize("query", ["", "   \n", [], ["ok", ""]], ids=["empty", "blank", "no_sentences", "one_empty"])
def test_empty_queries_are_refused_before_any_work(scored, tiny_encoder, query):
    with pytest.raises(ClipItError, match="The query must be non-empty text"):
        score_frames(scored, query, model=tiny_encoder, score_field="never_written")
    assert not scored.has_frame_field("never_written")


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_nan_or_infinite_features_fail_that_video_only(scored, tiny_encoder, bad):
    dataset = new_dataset([fo.Sample(filepath=s.filepath) for s in scored])
    dataset.compute_metadata()
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    store = embedding_store(dataset)
    poisoned, clean = dataset.values("id")
    item = store.get(poisoned)
    embeddings = item.embeddings.copy()
    embeddings[0, 0] = bad
    store.put(poisoned, FrameEmbeddings(item.frame_numbers, embeddings, item.info))
    with pytest.raises(BatchError, match="NaN or infinite values; re-embed them") as raised:
        score_frames(dataset, "a square", model=tiny_encoder)
    assert [f.item for f in raised.value.failures] == [dataset[poisoned].filepath]
    assert raised.value.n_ok == 1 and len(dataset[clean].frames) > 0
    dataset.delete()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nan_or_infinite_scores_are_refused_by_the_summariser(bad):
    scores = np.linspace(0, 1, 10)
    scores[3] = bad
    with pytest.raises(ValueError, match="NaN and .* infinite value"):
        generate_summary(scores, np.array([[0, 4], [5, 9]]), 10, 10, np.arange(0, 100, 10))


def test_store_dimension_not_matching_the_model_fails_that_video_only(scored, tiny_encoder):
    dataset = new_dataset([fo.Sample(filepath=s.filepath) for s in scored])
    dataset.compute_metadata()
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    store = embedding_store(dataset)
    wrong, right = dataset.values("id")
    item = store.get(wrong)
    store.put(wrong, FrameEmbeddings(item.frame_numbers, item.embeddings[:, :16], {**item.info, "dim": 16}))
    with pytest.raises(BatchError) as raised:
        score_frames(dataset, "a square", model=tiny_encoder)
    (failure,) = raised.value.failures
    assert failure.item == dataset[wrong].filepath and "dimension" in failure.reason.lower()
    assert raised.value.n_ok == 1 and len(dataset[right].frames) > 0
    dataset.delete()


def test_field_of_another_type_is_refused_before_any_work(scored, tiny_encoder):
    sample = scored.first()
    sample.frames[1]["taken_as_text"] = "not a score"
    sample.save()
    with pytest.raises(ClipItError, match="Field 'frames.taken_as_text' already exists as .*choose another field name"):
        score_frames(scored, "a square", model=tiny_encoder, score_field="taken_as_text")
    assert sample.reload() is None and sample.frames[1]["taken_as_text"] == "not a score"


def test_image_dataset_instead_of_videos_is_refused(tmp_path, tiny_encoder):
    from PIL import Image

    image = tmp_path / "still.png"
    Image.new("RGB", (8, 8)).save(image)
    dataset = new_dataset([fo.Sample(filepath=str(image))])
    with pytest.raises(ClipItError, match="holds image samples; CLIP-It works on video datasets"):
        compute_frame_embeddings(dataset, model=tiny_encoder)
    dataset.delete()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions; see the file case")
def test_read_only_export_directory_is_refused(scored, tmp_path):
    out = tmp_path / "read_only"
    out.mkdir()
    out.chmod(0o555)
    with pytest.raises(ClipItError, match="Cannot write to export directory .*read_only.*choose another"):
        export_summary(scored, str(out))
    assert list(out.iterdir()) == []


def test_export_directory_below_a_file_is_refused(scored, tmp_path, tiny_encoder):
    score_frames(scored, "a square", model=tiny_encoder)
    create_summary(scored, segmentation="uniform", segment_seconds=1.0, budget=0.5)
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    with pytest.raises(ClipItError, match="Cannot write to export directory .*a_file/out.*choose another"):
        export_summary(scored, str(blocker / "out"))
    assert blocker.read_text() == "keep me"

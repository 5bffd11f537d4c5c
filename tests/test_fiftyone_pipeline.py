"""The whole chain against FiftyOne's real database and real video files.

Every test here uses the mongod that FiftyOne starts on this session's temporary directory,
PyAV on real mp4s (generated ones with known frames, and the shared real footage), the real
open_clip loading code with the tiny random model, and ffmpeg for the exported clips.
"""

from __future__ import annotations

import uuid

import av
import fiftyone as fo
import numpy as np
import pytest

from fiftyone_clipit import (
    add_videos,
    compute_frame_embeddings,
    create_summary,
    evaluate_summary,
    export_summary,
    score_frames,
)
from fiftyone_clipit.errors import BatchError, ClipItError
from fiftyone_clipit.fo.common import embedding_store, record_run
from fiftyone_clipit.fo.curves import sample_curves
from fiftyone_clipit.fo.score_labels import label_scores

pytestmark = pytest.mark.slow


def new_dataset() -> fo.Dataset:
    return fo.Dataset(f"clipit-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def scored(video_dir, real_videos, tiny_encoder):
    """Generated and real videos, embedded at 2 fps and scored for 'a person'."""
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir), *map(str, real_videos)])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    score_frames(dataset, "a person", model=tiny_encoder)
    return dataset


@pytest.fixture
def scored_copy(scored):
    """A copy of `scored` for a test that writes to it (same sample ids: same embeddings)."""
    copy = scored.clone()
    yield copy
    copy.delete()


def decoded_frame_count(path: str) -> int:
    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


def test_add_videos_reads_metadata_with_pyav(scored, real_videos):
    assert len(scored) == 2 + len(real_videos)
    sample = scored.match(fo.ViewField("filepath").ends_with("colors_a.mp4")).first()
    assert sample.metadata.total_frame_count == 90
    assert sample.metadata.frame_rate == pytest.approx(30.0)
    assert sample.metadata.duration == pytest.approx(3.0, abs=0.05)


def test_bad_files_are_named_and_the_good_ones_added(video_dir, bad_files):
    dataset = new_dataset()
    paths = [str(p) for p in bad_files.values()] + [str(video_dir / "colors_a.mp4")]
    with pytest.raises(BatchError) as error:
        add_videos(dataset, paths)
    message = str(error.value)
    for path in bad_files.values():
        assert str(path) in message
    assert error.value.n_ok == 1 and len(error.value.failures) == 4
    assert dataset.values("filepath") == [str(video_dir / "colors_a.mp4")]


def test_embeddings_live_outside_frame_documents_and_resume(scored, tiny_encoder):
    store = embedding_store(scored)
    for sample_id, fps_frames in zip(scored.values("id"), scored.values("metadata.total_frame_count")):
        item = store.get(sample_id)
        assert item.embeddings.shape[1] == 32
        assert item.frame_numbers[0] == 1 and item.frame_numbers[-1] <= fps_frames
    assert "clipit_embeddings" in scored.list_runs()
    assert scored.get_run_info("clipit_embeddings").config.model == "tiny-random"
    again = compute_frame_embeddings(scored, model=tiny_encoder, fps=2.0)
    assert again.n_embedded == 0 and again.n_up_to_date == len(scored)


def test_scores_are_written_at_the_sampled_steps_in_unit_range(scored):
    store = embedding_store(scored)
    n_steps = sum(len(store.get(i).frame_numbers) for i in scored.values("id"))
    assert scored.count("frames") == scored.count("frames.clipit_score") == n_steps
    low, high = scored.bounds("frames.clipit_score")
    assert 0.0 <= low < high <= 1.0
    config = scored.get_run_info("clipit_score_clipit_score").config
    assert config.query == "a person" and config.frames == "steps"


def test_scores_at_the_steps_read_back_as_scores_at_every_frame(scored_copy, tiny_encoder):
    """The two write policies agree: the curve, the summary and the evaluation read each frame's
    score from the steps exactly as from a score written to every frame."""
    scored = scored_copy
    score_frames(scored, "a person", model=tiny_encoder, score_field="every_score", frames="every")
    assert scored.count("frames.every_score") == sum(scored.values("metadata.total_frame_count"))
    for sample_id, meta in zip(*scored.values(["id", "metadata"])):
        stepped = sample_curves(scored, sample_id, "clipit_score").pred_scores
        np.testing.assert_array_equal(stepped, sample_curves(scored, sample_id, "every_score").pred_scores)
        assert stepped.shape == (meta.total_frame_count,) and np.isfinite(stepped).all()
    create_summary(scored, summary_field="from_steps", n_keyframes=0)
    create_summary(scored, score_field="every_score", summary_field="from_every", n_keyframes=0)
    for name in ("support", "confidence"):
        assert scored.values(f"from_steps.detections.{name}") == scored.values(f"from_every.detections.{name}")
    runs = [evaluate_summary(scored, "from_every", pred_field=pred, eval_key=key, score_field=field)
            for pred, key, field in (("from_steps", "e_steps", "clipit_score"), ("from_every", "e_every", "every_score"))]
    assert runs[0].metrics() == runs[1].metrics()
    assert label_scores(scored) == label_scores(scored, "every_score") == len(scored)
    assert scored.count("frames.clipit_score_label.classifications") == scored.count("frames.clipit_score")
    assert scored.values("clipit_score_max") == scored.values("every_score_max")
    np.testing.assert_allclose(scored.values("clipit_score_mean"), scored.values("every_score_mean"), rtol=1e-12)


def test_different_queries_give_different_scores(scored_copy, tiny_encoder):
    scored = scored_copy
    score_frames(scored, "a red car on a road", score_field="other_score", model=tiny_encoder)
    a = np.array(scored.values("frames.clipit_score", unwind=True))
    b = np.array(scored.values("frames.other_score", unwind=True))
    assert a.shape == b.shape and not np.allclose(a, b)


def test_an_interrupted_scoring_run_is_resumed_and_a_new_one_starts_clean(scored, tiny_encoder):
    # writes only its own field and run; on a clone of `scored` nothing resumes (config differs?)
    first = score_frames(scored, "a dog", score_field="resumable", model=tiny_encoder)
    assert (first.n_scored, first.n_resumed) == (len(scored), 0)
    run = scored.get_run_info("clipit_score_resumable").config
    assert run.complete is True
    settings = {k: v for k, v in run.serialize().items() if k not in ("cls", "type", "method")}
    record_run(scored, "clipit_score_resumable", **{**settings, "complete": False})
    unfinished = scored.first()
    second_step = int(embedding_store(scored).get(unfinished.id).frame_numbers[1])
    unfinished.frames[second_step]["resumable"] = None  # the video in flight when the run was killed
    unfinished.save()
    kept = scored.exclude(unfinished.id).values("frames.resumable")
    again = score_frames(scored, "a dog", score_field="resumable", model=tiny_encoder)
    assert (again.n_scored, again.n_resumed) == (1, len(scored) - 1)
    assert scored.exclude(unfinished.id).values("frames.resumable") == kept
    assert scored.count("frames.resumable") == scored.count("frames")
    record_run(scored, "clipit_score_resumable", **{**settings, "complete": False})
    other = score_frames(scored, "a cat", score_field="resumable", model=tiny_encoder)
    assert (other.n_scored, other.n_resumed) == (len(scored), 0)  # another query: nothing kept
    assert scored.get_run_info("clipit_score_resumable").config.query == "a cat"


def test_summary_respects_budget_and_makes_clips(scored_copy):
    scored = scored_copy
    report = create_summary(scored, budget=0.15)
    assert report.n_summarized == len(scored)
    for sample in scored:
        segments = sample.clipit_summary.detections
        assert segments and all(d.label == "a person" for d in segments)
        n_selected = sum(d.support[1] - d.support[0] + 1 for d in segments)
        assert 0 < n_selected <= int(sample.metadata.total_frame_count * 0.15)
        assert all(0 <= d.confidence <= 1 for d in segments)
    clips = scored.load_saved_view("clipit_summary_clips")
    assert len(clips) == report.n_segments


def test_summary_picks_the_highest_scoring_segment(video_dir):
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir / "colors_a.mp4")])
    scores = np.full(90, 0.1)
    scores[60:75] = 0.9  # frames 61-75 stand out: the 5th of the 15-frame shots, 18 frames of budget
    dataset.set_values("frames.planted", [{i + 1: float(s) for i, s in enumerate(scores)}])
    create_summary(
        dataset, score_field="planted", summary_field="planted_summary", budget=0.2,
        segmentation="uniform", segment_seconds=0.5,
    )
    (segment,) = dataset.first().planted_summary.detections
    assert segment.support == [61, 75]
    assert segment.confidence == pytest.approx(0.9)


def test_f1_against_a_ground_truth_field(scored_copy):
    scored = scored_copy
    create_summary(scored)
    truth = {}
    for sample in scored:
        first, last = sample.clipit_summary.detections[0].support
        truth[sample.id] = fo.TemporalDetections(
            detections=[fo.TemporalDetection(label="gt", support=[first, last + (last - first + 1)])]
        )
    scored.set_values("gt", truth, key_field="id")
    report = evaluate_summary(scored, gt_field="gt", eval_key="demo_eval")
    assert scored.bounds("demo_eval_f1")[1] <= 1.0
    assert report.f1 == pytest.approx(np.mean(scored.values("demo_eval_f1")))
    assert 0.0 < report.f1 < 1.0
    assert "demo_eval" in scored.list_runs()


def test_export_writes_playable_clips_of_the_right_length(scored_copy, tmp_path):
    scored = scored_copy
    create_summary(scored)
    report = export_summary(scored, str(tmp_path / "out"))
    assert len(report.clips) == len(scored)
    for sample in scored.select_fields(["metadata", "clipit_summary"]):
        clips = report.clips[sample.filepath]
        segments = sorted(sample.clipit_summary.detections, key=lambda d: d.support[0])
        assert len(clips) == len(segments)
        for clip, segment in zip(clips, segments):
            assert str(tmp_path / "out") in clip
            expected = segment.support[1] - segment.support[0] + 1
            assert abs(decoded_frame_count(clip) - expected) <= 1
    assert not list((tmp_path / "out").rglob(".partial-*"))
    assert len(export_summary(scored, str(tmp_path / "out")).up_to_date) == len(scored)
    with pytest.raises(BatchError, match="exists; pass overwrite=True"):
        export_summary(scored, str(tmp_path / "out"), crf=28)


def test_export_keeps_audio(video_dir, tiny_encoder, tmp_path):
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir / "colors_b.mp4")])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    score_frames(dataset, "a person", model=tiny_encoder)
    create_summary(dataset)
    (clips,) = export_summary(dataset, str(tmp_path)).clips.values()
    with av.open(clips[0]) as container:
        assert container.streams.audio


def test_empty_query_and_image_dataset_are_refused(scored, tiny_encoder, tmp_path):
    with pytest.raises(ClipItError, match="non-empty"):
        score_frames(scored, "  ", model=tiny_encoder)
    images = fo.Dataset()
    images.add_sample(fo.Sample(filepath=str(tmp_path / "x.jpg")))
    with pytest.raises(ClipItError, match="video"):
        compute_frame_embeddings(images, model=tiny_encoder)


def test_field_of_another_type_is_refused_before_any_work(scored_copy):
    scored = scored_copy
    scored.set_values("clipit_string", ["x"] * len(scored))
    with pytest.raises(ClipItError, match="already exists"):
        create_summary(scored, summary_field="clipit_string")
    assert scored.distinct("clipit_string") == ["x"]


def test_score_without_embeddings_says_what_to_run(video_dir):
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir / "colors_a.mp4")])
    with pytest.raises(ClipItError, match="compute_frame_embeddings"):
        score_frames(dataset, "a person")


def test_a_broken_video_fails_alone(video_dir, tmp_path, tiny_encoder):
    dataset = new_dataset()
    victim = tmp_path / "victim.mp4"
    victim.write_bytes((video_dir / "colors_a.mp4").read_bytes())
    add_videos(dataset, [str(victim), str(video_dir / "colors_b.mp4")])
    victim.write_text("overwritten with text")
    with pytest.raises(BatchError, match="victim.mp4") as error:
        compute_frame_embeddings(dataset, model=tiny_encoder)
    assert error.value.n_ok == 1
    good = dataset.match(fo.ViewField("filepath").ends_with("colors_b.mp4")).first()
    assert embedding_store(dataset).get(good.id) is not None

"""Runs that tell the truth and write only where they may (issue 14), as catalogue entries.

A failed or refused run leaves the previous field and run record as they were; a field that is
not this plugin's own output (ground truth, FiftyOne's built-in fields) is never written without
overwrite=True; every parameter is checked before any write, with an error naming it and what
to do; names from a field fall back as default naming does; the CLI speaks in its own flags.
The real MongoDB of the session, videos written by PyAV, the tiny random CLIP model, and the
CLI in subprocesses.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest

from conftest import write_video
from fiftyone_clipit import compute_frame_embeddings, create_summary, evaluate_summary, export_summary, score_frames
from fiftyone_clipit.errors import BatchError, ClipItError
from fiftyone_clipit.fo.common import embedding_store
from fiftyone_clipit.fo.scoring import score_run_key
from test_decode import write_frames
from test_plugin import form, invalid

pytestmark = [pytest.mark.slow, pytest.mark.reliability("bad_input")]

CLI = [sys.executable, "-m", "fiftyone_clipit.cli"]
SUMMARY_RUN = "clipit_summary_clipit_summary"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("runs-videos")
    return [write_video(folder / "first.mp4", 60, fps=15), write_video(folder / "second.mp4", 45, fps=15)]


@pytest.fixture(scope="module")
def summarised(videos, tiny_encoder) -> fo.Dataset:
    """Two videos embedded, scored and summarised with the whole video as budget."""
    dataset = fo.Dataset(f"clipit-runs-{uuid.uuid4().hex[:8]}", persistent=True)
    dataset.add_samples([fo.Sample(filepath=str(p)) for p in videos])
    dataset.compute_metadata()
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    score_frames(dataset, "a red square", model=tiny_encoder)
    create_summary(dataset, segmentation="uniform", segment_seconds=1.0, budget=1.0)
    yield dataset
    dataset.delete()


def run_record(dataset: fo.Dataset, run_key: str) -> tuple[dict, str]:
    """A run's recorded settings and when it was recorded."""
    dataset.reload()
    info = dataset.get_run_info(run_key)
    return info.config.serialize(), str(info.timestamp)


def run_state(dataset: fo.Dataset, run_key: str, field: str) -> tuple[dict, str, list]:
    """A run's record, and the values of the field it made."""
    values = [None if v is None else v.to_dict() for v in dataset.values(field)]
    return (*run_record(dataset, run_key), values)


# ---- a failed or refused run leaves the previous field and run record as they were ----------

def test_summary_from_a_text_frame_field_is_refused_and_export_keeps_working(summarised, tmp_path):
    before = run_state(summarised, SUMMARY_RUN, "clipit_summary")
    sample = summarised.first()
    sample.frames[1]["note"] = "not a score"
    sample.save()
    with pytest.raises(ClipItError, match=r"'frames.note' is a StringField, not scores; .*score_frames"):
        create_summary(summarised, score_field="note", segmentation="uniform", budget=1.0)
    assert run_state(summarised, SUMMARY_RUN, "clipit_summary") == before
    report = export_summary(summarised, str(tmp_path / "out"), clips=False)
    assert len(report.reels) == len(report.storyboards) == 2


def test_summary_run_that_fails_for_every_video_keeps_the_record_of_what_is_written(summarised):
    before = run_state(summarised, SUMMARY_RUN, "clipit_summary")
    assert before[0]["budget"] == 1.0
    with pytest.raises(BatchError, match="gives 0 frames of this video; raise it"):
        create_summary(summarised, segmentation="uniform", segment_seconds=1.0, budget=0.0001)
    assert run_state(summarised, SUMMARY_RUN, "clipit_summary") == before


def test_summary_from_a_missing_score_field_is_refused_before_any_work(summarised):
    before = run_state(summarised, SUMMARY_RUN, "clipit_summary")
    with pytest.raises(ClipItError, match=r"no frame field 'frames.never_scored'; run score_frames"):
        create_summary(summarised, score_field="never_scored", segmentation="uniform")
    assert run_state(summarised, SUMMARY_RUN, "clipit_summary") == before


# ---- only this plugin's own outputs are overwritten, and only when asked --------------------

@pytest.fixture
def hand_made(summarised) -> str:
    """A TemporalDetections field made by hand (ground truth): not CLIP-It's output."""
    truth = fo.TemporalDetections(detections=[fo.TemporalDetection(label="user", support=[5, 20])])
    summarised.set_values("hand_made", [truth.copy() for _ in range(len(summarised))])
    return "hand_made"


def test_ground_truth_summary_field_is_not_overwritten_without_overwrite(summarised):
    truth = fo.TemporalDetections(detections=[fo.TemporalDetection(label="user", support=[5, 20])])
    summarised.set_values("user1", [truth.copy() for _ in range(len(summarised))])
    with pytest.raises(ClipItError, match=r"'user1' exists and was not written by CLIP-It.*pass overwrite=True"):
        create_summary(summarised, summary_field="user1", segmentation="uniform", budget=1.0)
    assert [v.detections[0].support for v in summarised.values("user1")] == [[5, 20]] * len(summarised)
    assert not summarised.has_run("clipit_summary_user1")
    assert summarised.get_field("frames.user1_keyframe") is None
    report = create_summary(summarised, summary_field="user1", segmentation="uniform", budget=1.0, overwrite=True)
    assert report.n_summarized == len(summarised) and summarised.has_run("clipit_summary_user1")
    assert all(v.detections[0].label == "a red square" for v in summarised.values("user1"))


def test_ground_truth_frame_scores_are_not_overwritten_without_overwrite(summarised, tiny_encoder):
    sample = summarised.first()
    for frame in sample.frames.values():
        frame["user_scores"] = 0.25
    sample.save()
    with pytest.raises(ClipItError, match=r"'frames.user_scores' exists and was not written by CLIP-It"):
        score_frames(summarised, "a dog", model=tiny_encoder, score_field="user_scores")
    assert set(summarised.values("frames.user_scores", unwind=True)) <= {0.25, None}
    assert not summarised.has_run(score_run_key("user_scores"))


@pytest.mark.parametrize("field", ["filepath", "metadata", "tags"])
def test_built_in_fields_are_never_written_even_with_overwrite(summarised, field):
    before = summarised.values(field)
    with pytest.raises(ClipItError, match=f"'{field}' is a field FiftyOne keeps on every sample; choose another"):
        create_summary(summarised, summary_field=field, segmentation="uniform", overwrite=True)
    assert summarised.values(field) == before


def test_built_in_frame_field_is_never_scored_into(summarised, tiny_encoder):
    with pytest.raises(ClipItError, match="'frames.frame_number' is a field FiftyOne keeps on every frame"):
        score_frames(summarised, "a dog", model=tiny_encoder, score_field="frame_number", overwrite=True)


def test_an_input_of_the_wrong_type_is_named_without_advising_to_delete_it(summarised):
    with pytest.raises(ClipItError) as raised:
        evaluate_summary(summarised, gt_field="filepath", eval_key="gt_is_filepath")
    message = str(raised.value)
    assert "'filepath'" in message and "TemporalDetections" in message and "delete" not in message
    assert os.path.exists(summarised.first().filepath)


# ---- every parameter checked before any write ------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fps": math.inf}, r"fps must be a finite number > 0, got inf"),
        ({"fps": math.nan}, r"fps must be a finite number > 0, got nan"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
    ],
    ids=["fps_inf", "fps_nan", "batch_size_0"],
)
def test_embedding_parameters_are_checked_before_any_work(summarised, tiny_encoder, kwargs, message):
    store = embedding_store(summarised)
    stored = {key: store.info(key) for key in store.keys()}
    run_time = summarised.get_run_info("clipit_embeddings").timestamp
    with pytest.raises(ValueError, match=message):
        compute_frame_embeddings(summarised, model=tiny_encoder, overwrite=True, **kwargs)
    assert {key: store.info(key) for key in store.keys()} == stored
    assert summarised.get_run_info("clipit_embeddings").timestamp == run_time


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"segmentation": "uniform", "segment_seconds": math.inf}, "segment_seconds must be a finite number > 0"),
        ({"max_segment": math.inf}, "max_segment must be a finite number > 0"),
    ],
    ids=["segment_seconds_inf", "max_segment_inf"],
)
def test_summary_parameters_are_checked_before_any_work(summarised, kwargs, message):
    before = run_state(summarised, SUMMARY_RUN, "clipit_summary")
    with pytest.raises(ValueError, match=message):
        create_summary(summarised, budget=0.5, **kwargs)
    assert run_state(summarised, SUMMARY_RUN, "clipit_summary") == before


@pytest.mark.parametrize("smoothing", [math.inf, math.nan, -1.0], ids=["inf", "nan", "negative"])
def test_score_smoothing_is_checked_before_any_work(summarised, tiny_encoder, smoothing):
    before = run_record(summarised, score_run_key("clipit_score"))
    with pytest.raises(ValueError, match="smoothing_seconds must be a finite number >= 0"):
        score_frames(summarised, "a dog", model=tiny_encoder, smoothing_seconds=smoothing)
    assert run_record(summarised, score_run_key("clipit_score")) == before


def test_no_keyframes_gives_a_summary_without_a_storyboard(summarised, tmp_path):
    report = create_summary(
        summarised, summary_field="no_keyframes", segmentation="uniform", budget=0.5, n_keyframes=0
    )
    assert report.n_summarized == len(summarised) and report.storyboard_view is None
    assert all(v.detections for v in summarised.values("no_keyframes"))
    export = export_summary(summarised, str(tmp_path / "out"), summary_field="no_keyframes", clips=False)
    assert len(export.storyboards) == len(summarised)


def test_empty_export_folder_is_refused_and_nothing_lands_in_the_working_directory(summarised, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClipItError, match=r"The export directory is empty \(''\); give a folder"):
        export_summary(summarised, "")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "operator, params, bad, message, refused_with_overwrite",
    [
        ("score_frames", {"query": "a dog", "score_field": "frame_number", "smoothing_seconds": 1.0},
         "score_field", "a field FiftyOne keeps on every frame", True),
        ("create_summary", {"score_field": "clipit_score", "summary_field": "filepath", "budget": 0.15},
         "summary_field", "a field FiftyOne keeps on every sample", True),
        ("create_summary", {"score_field": "clipit_score", "summary_field": "hand_made", "budget": 0.15},
         "summary_field", "was not written by CLIP-It", False),
    ],
    ids=["score_into_frame_number", "summary_into_filepath", "summary_into_ground_truth"],
)
def test_operator_forms_refuse_fields_they_must_not_write(
    summarised, hand_made, operator, params, bad, message, refused_with_overwrite
):
    assert message in invalid(form(operator, summarised, params)).get(bad, "")
    assert (bad in invalid(form(operator, summarised, {**params, "overwrite": True}))) == refused_with_overwrite


# ---- names and the command line ----------------------------------------------------------

def test_a_name_field_without_usable_characters_falls_back_to_the_file_name(summarised, tmp_path):
    summarised.set_values("title", ["ü ï", "名前"])
    report = export_summary(summarised, str(tmp_path / "out"), name_field="title", clips=False, storyboard=False)
    assert sorted(Path(p).name for p in report.reels.values()) == ["first_summary.mp4", "second_summary.mp4"]


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["summarize", "{dataset}", "--summary-field", "hand_made", "--segmentation", "uniform"], 1, "pass --overwrite"),
        (["embed", "{dataset}", "--model", "tiny-random", "--fps", "inf"], 2, "fps must be a finite number > 0"),
        (["embed", "{dataset}", "--model", "tiny-random", "--batch-size", "0"], 2, "batch_size must be an integer >= 1"),
        (["export", "{dataset}", "--output", ""], 1, "The export directory is empty"),
    ],
    ids=["overwrite_flag", "fps_inf", "batch_size_0", "empty_output"],
)
def test_cli_refuses_in_one_line_with_its_own_flags(summarised, hand_made, tmp_path, args, status, message):
    before = summarised.values(hand_made)
    result = subprocess.run(
        [*CLI, *(a.format(dataset=summarised.name) for a in args)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert result.returncode == status, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "overwrite=True" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written where the command ran
    summarised.reload()
    assert summarised.values(hand_made) == before


def test_demo_with_a_video_that_fails_does_not_exit_0(videos, tmp_path):
    """A video cut mid-stream is added (its header reads) but fails to embed."""
    whole = write_frames(tmp_path / "whole.mp4", [np.full((48, 64, 3), 8 * i, np.uint8) for i in range(30)], fps=15, faststart=True)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.45)])
    result = subprocess.run(
        [*CLI, "demo", "--videos", str(videos[0]), str(broken), "--model", "tiny-random",
         "--dataset", f"clipit-demo-{uuid.uuid4().hex[:6]}", "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "broken.mp4" in result.stderr and "failed" in result.stderr
    assert "first.mp4" in result.stdout  # the video that worked is still summarised and shown

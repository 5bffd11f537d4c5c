"""Nothing stale passes for current (issue 14, items 1, 2 and the NaN part of 7), as catalogue
entries: every score and summary records what it was made from, video by video; a stage
refuses stale inputs per video with a remedy; a video that fails in a re-run keeps no value
passing for current; NaN and infinity are refused wherever they enter (features read from
the store, scores out of a scorer). The session's real MongoDB, videos written by PyAV, the
tiny random CLIP model and an untrained tiny scorer checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
import torch

from conftest import write_video
from fiftyone_clipit import compute_frame_embeddings, create_summary, export_summary, score_frames
from fiftyone_clipit.errors import BatchError, ClipItError
from fiftyone_clipit.fo import lineage
from fiftyone_clipit.fo.common import embedding_store
from fiftyone_clipit.fo.export import export_summary_dataset
from fiftyone_clipit.fo.scoring import score_run_key
from fiftyone_clipit.fo.summaries import summary_run_key
from fiftyone_clipit.checkpoints import save_checkpoint
from fiftyone_clipit.scorer import ClipItScorer, load_preset
from fiftyone_clipit.store import FrameEmbeddings

pytestmark = [pytest.mark.slow, pytest.mark.reliability("bad_input")]

CLI = [sys.executable, "-m", "fiftyone_clipit.cli"]
SUMMARY_RUN = summary_run_key("clipit_summary")
SCORE_RUN = score_run_key("clipit_score")


@pytest.fixture
def summarised(tmp_path, tiny_encoder) -> fo.Dataset:
    """Two videos of this test's own (their files get replaced), embedded, scored, summarised."""
    videos = [write_video(tmp_path / "first.mp4", 60, fps=15), write_video(tmp_path / "second.mp4", 45, fps=15)]
    dataset = fo.Dataset(f"clipit-lineage-{uuid.uuid4().hex[:8]}", persistent=True)
    dataset.add_samples([fo.Sample(filepath=str(p)) for p in videos])
    dataset.compute_metadata()
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    score_frames(dataset, "a red square", model=tiny_encoder)
    create_summary(dataset, segmentation="uniform", segment_seconds=1.0, budget=0.5)
    yield dataset
    dataset.delete()


def replace_file(path: str, n_frames: int = 90) -> None:
    """Another video put where `path` was (more frames, so old frame numbers mean other footage)."""
    other = write_video(Path(path).with_name("other.mp4"), n_frames, fps=15)
    os.replace(other, path)


def summaries(dataset: fo.Dataset) -> list:
    dataset.reload()
    return [None if v is None else v.to_dict() for v in dataset.values("clipit_summary")]


def failure_for(error: BatchError, path: str) -> str:
    (reason,) = [f.reason for f in error.failures if f.item == path]
    return reason


# ---- a replaced source file ------------------------------------------------------------------

def test_a_replaced_source_is_refused_by_export_with_a_remedy(summarised, tmp_path):
    replaced, kept = summarised.values("filepath")
    replace_file(replaced)
    with pytest.raises(BatchError) as raised:
        export_summary(summarised, str(tmp_path / "out"), clips=False, storyboard=False)
    reason = failure_for(raised.value, replaced)
    assert "source file was replaced or edited since it was summarised" in reason
    assert "re-embed with compute_frame_embeddings" in reason and "allow_stale=True" in reason
    assert raised.value.n_ok == 1 and not (tmp_path / "out" / "first").exists()
    assert (tmp_path / "out" / "second" / "second_summary.mp4").is_file()
    with pytest.raises(ClipItError, match="1 summaries of 'clipit_summary' are stale.*first.mp4.*re-embed"):
        export_summary_dataset(summarised, str(tmp_path / "as_dataset"))
    assert not (tmp_path / "as_dataset").exists()
    report = export_summary(summarised, str(tmp_path / "anyway"), clips=False, storyboard=False, allow_stale=True)
    assert len(report.reels) == 2


def test_a_replaced_source_is_refused_by_summarize_and_score_and_the_old_summary_is_kept(summarised, tiny_encoder):
    replaced, _ = summarised.values("filepath")
    before = summaries(summarised)
    replace_file(replaced)
    with pytest.raises(BatchError) as raised:
        create_summary(summarised, segmentation="uniform", segment_seconds=1.0, budget=0.3)
    reason = failure_for(raised.value, replaced)
    assert "replaced or edited since it was embedded; re-embed with compute_frame_embeddings" in reason
    assert "then score and summarize again" in reason
    assert summaries(summarised)[0] == before[0]  # kept, and recorded as stale:
    config = summarised.get_run_info(SUMMARY_RUN).config
    assert config.failed == {summarised.first().id: reason} and summarised.first().id not in config.videos
    with pytest.raises(BatchError) as raised:
        score_frames(summarised, "a red square", model=tiny_encoder)
    assert "replaced or edited since it was embedded" in failure_for(raised.value, replaced)


def test_after_re_embedding_a_replaced_source_summarize_asks_for_new_scores(summarised, tiny_encoder, tmp_path):
    """The issue's "has no frame number 326": old scores read against the new footage."""
    replaced, _ = summarised.values("filepath")
    replace_file(replaced)
    summarised.compute_metadata(overwrite=True)
    assert compute_frame_embeddings(summarised, model=tiny_encoder, fps=2.0).n_embedded == 1
    with pytest.raises(BatchError) as raised:
        create_summary(summarised, segmentation="uniform", segment_seconds=1.0, budget=0.5)
    reason = failure_for(raised.value, replaced)
    assert "embedded again after 'frames.clipit_score' was scored; score again with score_frames" in reason
    score_frames(summarised, "a red square", model=tiny_encoder)
    assert create_summary(summarised, segmentation="uniform", segment_seconds=1.0, budget=0.5).n_summarized == 2
    report = export_summary(summarised, str(tmp_path / "out"), clips=False, storyboard=False)
    assert len(report.reels) == 2


def test_the_cli_refuses_a_replaced_source_in_its_own_flags(summarised, tmp_path):
    replaced, _ = summarised.values("filepath")
    replace_file(replaced)
    result = subprocess.run(
        [*CLI, "export", summarised.name, "--output", str(tmp_path / "out"), "--no-clips", "--no-storyboard"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 1, result.stderr
    assert "first.mp4" in result.stderr and "re-embed with compute_frame_embeddings" in result.stderr
    assert "pass --allow-stale" in result.stderr and "allow_stale=True" not in result.stderr


# ---- a video that fails in a re-run keeps no value passing for current -----------------------

def test_a_failed_re_summarize_of_one_video_is_recorded_and_its_old_summary_not_exported(summarised, tmp_path):
    """Re-summarised from given shots that only one video has: the other fails and keeps its
    old summary, which the record names as failed and export refuses."""
    first, second = summarised.values("id")
    shots = fo.TemporalDetections(detections=[fo.TemporalDetection(label="shot", support=[1, 30]),
                                              fo.TemporalDetection(label="shot", support=[31, 60])])
    summarised.set_values("shots", {first: shots}, key_field="id")
    before = summaries(summarised)
    with pytest.raises(BatchError) as raised:
        create_summary(summarised, segmentation="shots", shots_field="shots", budget=0.5)
    second_path = summarised[second].filepath
    assert "the shots field has no shots for this video" in failure_for(raised.value, second_path)
    after = summaries(summarised)
    assert after[1] == before[1] and after[0] != before[0]
    config = summarised.get_run_info(SUMMARY_RUN).config
    assert config.segmentation == "shots" and list(config.failed) == [second] and list(config.videos) == [first]
    with pytest.raises(BatchError) as raised:
        export_summary(summarised, str(tmp_path / "out"), clips=False, storyboard=False)
    reason = failure_for(raised.value, second_path)
    assert "left from an earlier run (summarising it again failed: the shots field has no shots" in reason
    assert raised.value.n_ok == 1


def damage_features(dataset: fo.Dataset, sample_id: str, value: float, everywhere: bool = False) -> None:
    """Puts `value` into one video's stored features (one value, or every one)."""
    store = embedding_store(dataset)
    item = store.get(sample_id)
    embeddings = item.embeddings.copy()
    if everywhere:
        embeddings[:] = value
    else:
        embeddings[2, 3] = value
    store.put(sample_id, FrameEmbeddings(item.frame_numbers, embeddings, item.info))


def test_rescoring_that_fails_for_a_video_makes_its_summary_stale(summarised, tiny_encoder, tmp_path):
    """A new query, and one video's stored features damaged: it fails, named; its old scores
    are gone (the new run cleared them) and its summary, made from them, is refused."""
    first, second = summarised.values("id")
    damage_features(summarised, first, np.nan)
    with pytest.raises(BatchError) as raised:
        score_frames(summarised, "a rabbit in the grass", model=tiny_encoder)
    first_path = summarised[first].filepath
    assert "stored frame embeddings hold 1 NaN or infinite values; re-embed them" in failure_for(raised.value, first_path)
    config = summarised.get_run_info(SCORE_RUN).config
    assert config.query == "a rabbit in the grass" and list(config.failed) == [first] and list(config.videos) == [second]
    assert summarised.select(first).count("frames.clipit_score") == 0
    with pytest.raises(BatchError) as raised:
        export_summary(summarised, str(tmp_path / "out"), clips=False, storyboard=False)
    assert len(raised.value.failures) == 2  # the second was rescored too: its summary predates its scores
    assert all("changed after it was summarised" in f.reason for f in raised.value.failures)


# ---- NaN and infinity, wherever they enter ----------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path) -> str:
    """An untrained tiny scorer for the tiny random CLIP's 32-d embeddings (finite weights)."""
    torch.manual_seed(0)
    model = ClipItScorer(load_preset("tiny")).eval()
    return save_checkpoint(str(tmp_path / "scorer"), model, {"data": {"clip_model": "tiny-random"}}, "")


def test_nan_features_with_a_trained_scorer_fail_that_video_only(summarised, tiny_encoder, checkpoint):
    """pad_batch used to refuse the whole batch: one damaged video ended the run for all."""
    first, second = summarised.values("id")
    damage_features(summarised, first, np.inf)
    with pytest.raises(BatchError) as raised:
        score_frames(summarised, "a red square", model=tiny_encoder, scorer=checkpoint, score_field="trained",
                     frames="every")
    (failure,) = raised.value.failures
    assert failure.item == summarised[first].filepath and "NaN or infinite values; re-embed them" in failure.reason
    assert summarised.select(second).count("frames.trained") == summarised[second].metadata.total_frame_count
    assert summarised.select(first).count("frames.trained") == 0


def test_nan_scores_out_of_a_scorer_are_not_written(summarised, tiny_encoder, checkpoint):
    """Finite but absurd features (1e30) overflow the scorer into NaN: refused, nothing written."""
    first, second = summarised.values("id")
    damage_features(summarised, first, 1e30, everywhere=True)
    with pytest.raises(BatchError) as raised:
        score_frames(summarised, "a red square", model=tiny_encoder, scorer=checkpoint, score_field="trained",
                     frames="every")
    (failure,) = raised.value.failures
    assert failure.item == summarised[first].filepath and "a NaN or infinite score" in failure.reason
    assert summarised.select(first).count("frames.trained") == 0
    values = summarised.select(second).values("frames.trained", unwind=True)
    assert len(values) == summarised[second].metadata.total_frame_count and np.isfinite(values).all()


def test_nan_features_fail_a_summary_and_its_old_summary_stays_stale(summarised, tmp_path):
    """A uniform summary with keyframes used to read NaN features into the storyboard silently."""
    first, _ = summarised.values("id")
    before = summaries(summarised)
    damage_features(summarised, first, np.nan)
    with pytest.raises(BatchError) as raised:
        create_summary(summarised, segmentation="uniform", segment_seconds=1.0, budget=0.3)
    (failure,) = raised.value.failures
    assert failure.item == summarised[first].filepath and "NaN or infinite values; re-embed them" in failure.reason
    assert summaries(summarised)[0] == before[0]
    with pytest.raises(BatchError, match="summarising it again failed"):
        export_summary(summarised, str(tmp_path / "out"), clips=False, storyboard=False)


# ---- issue 22: content, not size and time; lineage wherever it is read; one write guard ------

def replace_keeping_size_and_time(path: str) -> None:
    """Other footage put where `path` was, padded to the same size (an mp4 `free` box) and
    with the old modification time restored, as copy and sync tools do."""
    before = os.stat(path)
    other = write_video(Path(path).with_name("other.mp4"), 40, fps=15)
    missing = before.st_size - other.stat().st_size
    assert missing >= 8, "the other footage must be smaller to pad it"
    with open(other, "ab") as f:
        f.write(missing.to_bytes(4, "big") + b"free" + bytes(missing - 8))
    os.replace(other, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_other_footage_of_the_same_size_and_time_is_refused_by_score_summarize_and_export(
    summarised, tiny_encoder, tmp_path
):
    replaced, _ = summarised.values("filepath")
    replace_keeping_size_and_time(replaced)
    for run in (
        lambda: score_frames(summarised, "a red square", model=tiny_encoder, score_field="again"),
        lambda: create_summary(summarised, segmentation="uniform", segment_seconds=1.0, budget=0.3,
                               summary_field="again_summary"),
        lambda: export_summary(summarised, str(tmp_path / "out"), clips=False, storyboard=False),
    ):
        with pytest.raises(BatchError) as raised:
            run()
        assert "source file was replaced or edited since it was" in failure_for(raised.value, replaced)


def add_ground_truth(dataset: fo.Dataset) -> None:
    truth = fo.TemporalDetections(detections=[fo.TemporalDetection(label="gt", support=[1, 20])])
    dataset.set_values("gt", [truth] * len(dataset))


def test_evaluate_refuses_a_stale_summary_unless_told_and_then_records_it(summarised, tmp_path):
    from fiftyone_clipit.fo.evaluation import evaluate_summary

    add_ground_truth(summarised)
    f1 = evaluate_summary(summarised, "gt", eval_key="fresh").metrics()["f1"]
    replaced, _ = summarised.values("filepath")
    replace_keeping_size_and_time(replaced)
    with pytest.raises(ClipItError) as raised:
        evaluate_summary(summarised, "gt", eval_key="after")
    message = str(raised.value)
    assert "1 of 2 video(s)" in message and "first.mp4: the source file was replaced" in message
    assert "allow_stale=True" in message and not summarised.has_run("after")
    result = subprocess.run([*CLI, "evaluate", summarised.name, "--gt-field", "gt", "--eval-key", "cli"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1 and "--allow-stale" in result.stderr and "Traceback" not in result.stderr
    results = evaluate_summary(summarised, "gt", eval_key="after", allow_stale=True)
    assert results.metrics()["f1"] == pytest.approx(f1)
    assert list(summarised.get_run_info("after").config.stale) == [summarised.first().id]


def test_index_drops_a_replaced_source_and_search_marks_one_it_still_holds(summarised, tiny_encoder):
    from fiftyone_clipit.fo.search import build_frame_index, search_frames

    first, second = summarised.values("id")
    replaced, _ = summarised.values("filepath")
    assert build_frame_index(summarised).n_videos == 2
    replace_keeping_size_and_time(replaced)
    # the sync before a search reads no source file: the old vectors are found, and said to be stale,
    # by a first search and by the next one (which replaces the first's matches)
    for _ in range(2):
        view = search_frames(summarised, "a red square", k=50, model=tiny_encoder)
        assert set(view.values("id")) == {first, second}
        summarised.reload()
        marks = {d.get_field("stale") if d.has_field("stale") else None for d in summarised[first].clipit_matches.detections}
        assert marks == {f"the source file was replaced or edited since it was embedded; {lineage.SOURCE_REMEDY}"}
        assert not any(d.has_field("stale") for d in summarised[second].clipit_matches.detections)
    assert list(summarised.get_run_info("clipit_search").config.stale) == [first]
    result = subprocess.run([*CLI, "index", summarised.name], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "1 added, 1 removed" not in result.stdout and "0 added, 1 removed" in result.stdout
    assert f"left out {replaced}: the source file was replaced" in result.stdout
    assert set(search_frames(summarised, "a red square", k=50, model=tiny_encoder).values("id")) == {second}
    summarised.compute_metadata(overwrite=True)
    compute_frame_embeddings(summarised, model=tiny_encoder, fps=2.0)
    report = build_frame_index(summarised)
    assert (report.n_added, report.n_videos, report.stale) == (1, 2, {})


def test_search_writes_only_its_own_fields(summarised, tiny_encoder):
    from fiftyone_clipit.fo.search import search_frames

    add_ground_truth(summarised)
    before = summaries(summarised)
    for field in ("clipit_summary", "gt"):
        with pytest.raises(ClipItError, match=f"Field '{field}' exists and was not written by CLIP-It as the output of 'clipit_search'"):
            search_frames(summarised, "a red square", model=tiny_encoder, matches_field=field)
    assert summaries(summarised) == before and summarised.first().gt.detections[0].label == "gt"
    result = subprocess.run([*CLI, "search", summarised.name, "--query", "a red square", "--matches-field", "clipit_summary"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1 and "--overwrite" in result.stderr and "Traceback" not in result.stderr
    assert summaries(summarised) == before
    # its own fields, again and again, and two of them in turn
    for field in ("clipit_matches", "other_matches", "clipit_matches"):
        search_frames(summarised, "a red square", model=tiny_encoder, matches_field=field)
    # a summary into a search's field is refused the same way
    with pytest.raises(ClipItError, match="was not written by CLIP-It as the output of 'clipit_summary_clipit_matches'"):
        create_summary(summarised, segmentation="uniform", segment_seconds=1.0, summary_field="clipit_matches")
    search_frames(summarised, "a red square", model=tiny_encoder, matches_field="gt", overwrite=True)
    assert summarised.first().gt.detections[0].label == "a red square"


def test_a_deleted_embedding_store_is_named_as_the_cause(summarised):
    """The remedy names what happened: not "embedded again after it was scored"."""
    import shutil

    store = embedding_store(summarised)
    shutil.rmtree(store.root)
    with pytest.raises(BatchError) as raised:
        create_summary(summarised, segmentation="uniform", segment_seconds=1.0, budget=0.3)
    for failure in raised.value.failures:
        assert f"frame embeddings are missing from '{store.root}' (the embedding store is gone)" in failure.reason
        assert "restore the store from a copy, or re-embed" in failure.reason
        assert "embedded again" not in failure.reason

"""Summary evaluation as a FiftyOne evaluation, end to end on the shared real videos.

The videos are the shared sample footage (a parking lot seen from above, bottles moved by a hand);
the ground truth is labelled here by looking at them: the seconds when a car is in view / a hand
moves a bottle. Three "users" score every 2-second segment of a video as TVSum users do, and their
summaries are built by the protocol. Everything runs in FiftyOne's real database; the figures
written by the evaluation are checked against the core metrics computed here independently.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import matplotlib.image
import numpy as np
import pytest

from conftest import every_frame_scores
from fiftyone_clipit import (
    add_highlight_annotations,
    add_qfvs_annotations,
    add_videos,
    add_video_annotations,
    compute_frame_embeddings,
    create_summary,
    evaluate_summary,
    evaluate_summary_segments,
    score_frames,
)
from fiftyone_clipit.errors import BatchError, ClipItError
from fiftyone_clipit.fo.evaluation import SummaryEvaluationResults
from fiftyone_clipit.metrics import (
    highlight_hit_at_1,
    highlight_map,
    qfvs_f1,
    rank_correlation,
    summary_f1,
    summary_precision_recall_f1,
)
from fiftyone_clipit.readers import (
    HighlightQuery,
    QFVSQuery,
    QFVSVideo,
    VideoAnnotation,
    tvsum_segments,
    user_keyshot_summaries,
)

pytestmark = pytest.mark.slow

# Seconds labelled by watching the videos.
EVENTS = {
    "car-detection": [(6, 9), (16, 21), (24, 27)],  # a car is in view
    "bottle-detection": [(5, 7), (11, 13), (15, 17), (21, 25), (27, 29), (35, 37)],  # a hand moves a bottle
}


def segment_scores(n_frames: int, fps: float, events, high: float, low: float, lag: float = 0.0) -> np.ndarray:
    """A user's TVSum-style scores: one value per 2-second segment, high where an event overlaps."""
    scores = np.full(n_frames, low)
    for start in np.arange(0, n_frames / fps, 2.0):
        if any(a + lag < start + 2 and start < b + lag for a, b in events):
            first, last = round(start * fps), min(round((start + 2) * fps), n_frames)
            scores[first:last] = high
    return scores


def labelled_annotation(name: str, n_frames: int, fps: float) -> VideoAnnotation:
    events = EVENTS[name]
    users = np.stack(
        [
            segment_scores(n_frames, fps, events, 5, 1),
            segment_scores(n_frames, fps, events, 4, 2),
            segment_scores(n_frames, fps, events, 5, 2, lag=1.0),  # a user who reacts a second late
        ]
    )
    summaries = user_keyshot_summaries(users, tvsum_segments(users))
    return VideoAnnotation(name, n_frames, fps, users, summaries, users.mean(axis=0))


def mask_of(detections, n_frames: int) -> np.ndarray:
    mask = np.zeros(n_frames, dtype=bool)
    for detection in detections.detections if detections else []:
        mask[detection.support[0] - 1 : detection.support[1]] = True
    return mask


@pytest.fixture(scope="module")
def labelled_once(real_videos, tiny_encoder):
    """The real videos, scored for 'a car', summarised, with the hand-made ground truth attached."""
    dataset = fo.Dataset(f"clipit-eval-{uuid.uuid4().hex[:8]}")
    add_videos(dataset, [str(p) for p in real_videos])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    score_frames(dataset, "a car", model=tiny_encoder)
    create_summary(dataset, budget=0.15)
    annotations = {
        Path(path).stem: labelled_annotation(Path(path).stem, meta.total_frame_count, meta.frame_rate)
        for path, meta in zip(dataset.values("filepath"), dataset.values("metadata"))
    }
    report = add_video_annotations(dataset, list(annotations.values()))
    assert report.n_labelled == len(real_videos) and report.unmatched == []
    return dataset, annotations


@pytest.fixture
def labelled(labelled_once):
    """A copy of `labelled_once` per test: every test evaluates, labels or renames on it."""
    dataset, annotations = labelled_once
    copy = dataset.clone()
    yield copy, annotations
    copy.delete()


def test_ground_truth_lands_in_frame_and_sample_fields(labelled):
    dataset, annotations = labelled
    for sample in dataset.select_fields(["gt_user_summaries", "metadata"]):
        annotation = annotations[Path(sample.filepath).stem]
        users = sorted({d["user"] for d in sample.gt_user_summaries.detections})
        assert users == [1, 2, 3]
        for user in users:
            detections = fo.TemporalDetections(detections=[d for d in sample.gt_user_summaries.detections if d["user"] == user])
            assert np.array_equal(mask_of(detections, annotation.n_frames), annotation.user_summaries[user - 1])
    scores = dataset.values("frames.gt_user_scores")
    for (stem, annotation), per_frame in zip(annotations.items(), scores):
        assert np.array_equal(np.array(per_frame).T, annotation.user_scores)


def test_evaluate_list_reload_plot_and_delete(labelled, tmp_path, capsys):
    """Scored, summarised (fixture), evaluated, listed, reloaded, plotted, renamed and deleted."""
    dataset, annotations = labelled
    results = evaluate_summary(
        dataset, gt_field="gt_user_summaries", eval_key="tvsum_eval", protocol="tvsum", gt_score_field="gt_user_scores"
    )
    assert "tvsum_eval" in dataset.list_runs() and "tvsum_eval" not in dataset.list_evaluations()  # not for the Model Evaluation panel
    config = dataset.get_run_info("tvsum_eval").config
    assert (config.protocol, config.mode, config.gt_fields, config.pred_field) == (
        "tvsum", "avg", ["gt_user_summaries"], "clipit_summary",
    )
    f1s = []
    for sample in dataset:
        annotation = annotations[Path(sample.filepath).stem]
        machine = mask_of(sample.clipit_summary, annotation.n_frames)
        per_user = np.array([summary_precision_recall_f1(machine, u) for u in annotation.user_summaries])
        assert sample.tvsum_eval_f1 == pytest.approx(summary_f1(machine, annotation.user_summaries, "avg"))
        assert sample.tvsum_eval_precision == pytest.approx(per_user[:, 0].mean())
        assert sample.tvsum_eval_recall == pytest.approx(per_user[:, 1].mean())
        frame_scores = every_frame_scores(dataset, sample.id)
        assert sample.tvsum_eval_kendall == pytest.approx(rank_correlation(frame_scores, annotation.user_scores, "kendall"))
        assert sample.tvsum_eval_spearman == pytest.approx(rank_correlation(frame_scores, annotation.user_scores, "spearman"))
        f1s.append(sample.tvsum_eval_f1)
    assert 0 < results.f1 == pytest.approx(np.mean(f1s))
    assert dataset.sort_by("tvsum_eval_f1", reverse=True).first().tvsum_eval_f1 == max(f1s)

    groups = {group.name: group.paths for group in dataset.app_config.sidebar_groups}
    assert groups["tvsum_eval"] == [f"tvsum_eval_{name}" for name in ("precision", "recall", "f1", "kendall", "spearman")]
    reloaded = dataset.load_run_results("tvsum_eval", cache=False)
    assert isinstance(reloaded, SummaryEvaluationResults) and reloaded is not results
    assert reloaded.per_sample == results.per_sample and reloaded.metrics() == results.metrics()
    reloaded.print_report()
    report = capsys.readouterr().out
    assert "protocol tvsum" in report and "car-detection.mp4" in report and "bottle-detection.mp4" in report
    assert f"{results.f1:.3f}" in report.splitlines()[-1]

    figure = reloaded.plot_video(dataset.first().filepath)
    assert [trace.name for trace in figure.data] == ["predicted score", "mean user score (rescaled)"]
    n_segments = len(dataset.first().clipit_summary.detections)
    assert len(figure.layout.shapes) >= n_segments + 1
    pngs = reloaded.save_figures(str(tmp_path / "figures"))
    assert len(pngs) == len(dataset)
    for png in pngs:
        assert matplotlib.image.imread(png).shape[:2] == (350, 1000)

    dataset.rename_run("tvsum_eval", "tvsum_renamed")
    assert dataset.has_sample_field("tvsum_renamed_f1") and not dataset.has_sample_field("tvsum_eval_f1")
    assert "tvsum_renamed_f1" in {group.name: group.paths for group in dataset.app_config.sidebar_groups}["tvsum_renamed"]
    dataset.delete_run("tvsum_renamed")
    assert "tvsum_renamed" not in dataset.list_runs()
    assert not [name for name in dataset.get_field_schema() if name.startswith("tvsum_")]
    assert not [group for group in dataset.app_config.sidebar_groups if group.name.startswith("tvsum_")]


def test_summe_protocol_keeps_the_best_user(labelled):
    dataset, annotations = labelled
    results = evaluate_summary(dataset, gt_field="gt_user_summaries", eval_key="summe_eval", protocol="summe")
    assert results.mode == "max"
    for sample in dataset:
        annotation = annotations[Path(sample.filepath).stem]
        machine = mask_of(sample.clipit_summary, annotation.n_frames)
        assert sample.summe_eval_f1 == pytest.approx(summary_f1(machine, annotation.user_summaries, "max"))
    assert not dataset.has_sample_field("summe_eval_kendall")  # no user scores given, no ranks


def test_empty_summary_scores_zero_not_nan(labelled):
    dataset, _ = labelled
    dataset.set_values("empty_summary", [fo.TemporalDetections(detections=[])] * len(dataset))
    results = evaluate_summary(dataset, gt_field="gt_user_summaries", pred_field="empty_summary", eval_key="empty_eval")
    assert dataset.values("empty_eval_f1") == [0.0] * len(dataset)
    assert dataset.values("empty_eval_precision") == [0.0] * len(dataset)
    assert results.f1 == 0.0


def test_a_video_without_ground_truth_fails_alone(labelled):
    dataset, _ = labelled
    first, second = dataset.values("id")
    dataset.set_values("partial_gt", {first: dataset[first].gt_user_summaries, second: None}, key_field="id")
    with pytest.raises(BatchError, match=r"no ground truth in \['partial_gt'\]") as error:
        evaluate_summary(dataset, gt_field="partial_gt", eval_key="partial_eval")
    assert error.value.n_ok == 1 and dataset[second].filepath in str(error.value)
    assert dataset[first].partial_eval_f1 is not None and dataset[second].partial_eval_f1 is None
    results = dataset.load_run_results("partial_eval")
    assert [path for path, _ in results.failures] == [dataset[second].filepath]
    quiet = evaluate_summary(dataset, gt_field="partial_gt", eval_key="partial_eval", skip_failures=True)
    assert len(quiet.per_sample) == 1


def clip_means(frame_scores: np.ndarray, fps: float, n_clips: int) -> np.ndarray:
    """Mean frame score of each 2-second clip, computed the plain way."""
    times = np.arange(frame_scores.size) / fps
    return np.array([frame_scores[(times >= 2 * k) & (times < 2 * k + 2)].mean() for k in range(n_clips)])


def test_qvhighlights_protocol(labelled):
    dataset, annotations = labelled
    queries = []
    for stem, annotation in annotations.items():
        n_clips = int(annotation.n_frames / annotation.fps / 2)
        times = np.arange(n_clips) * 2.0
        inside = np.array([any(a < t + 2 and t < b for a, b in EVENTS[stem]) for t in times])
        saliency = np.stack([np.where(inside, 4, 0), np.where(inside, 3, 1), np.where(inside, 2, 0)], axis=1)
        queries.append(HighlightQuery(len(queries), "a car", stem, n_clips * 2.0, saliency, tuple(EVENTS[stem])))
    report = add_highlight_annotations(dataset, queries)
    assert report.n_labelled == len(dataset) and dataset.distinct("query") == ["a car"]
    results = evaluate_summary(dataset, gt_field="gt_saliency", eval_key="hl_eval", protocol="qvhighlights")
    preds, truths = [], []
    for sample in dataset:
        scores = every_frame_scores(dataset, sample.id)
        saliency = np.array(sample.gt_saliency)
        pred = clip_means(scores, sample.metadata.frame_rate, len(saliency))
        assert sample.hl_eval_hit1_verygood == highlight_hit_at_1([pred], [saliency], 4)
        assert sample.hl_eval_ap_good == pytest.approx(highlight_map([pred], [saliency], 3))
        preds.append(pred)
        truths.append(saliency)
    metrics = results.metrics()
    assert metrics["map_verygood"] == pytest.approx(highlight_map(preds, truths, 4))
    assert metrics["hit1_fair"] == pytest.approx(highlight_hit_at_1(preds, truths, 2))
    assert len(dataset.first().gt_windows.detections) == len(EVENTS[Path(dataset.first().filepath).stem])


def test_qfvs_protocol(labelled):
    dataset, _ = labelled
    sample = dataset.match(fo.ViewField("filepath").ends_with("car-detection.mp4")).first()
    rate, n_frames = sample.metadata.frame_rate, sample.metadata.total_frame_count
    # 5-second shots of the 30 s car video, tagged by looking: cars in shots 1, 3, 4, 5.
    tags = [["Street"], ["Car", "Street"], ["Street"], ["Car", "Street"], ["Car", "Street", "Sign"], ["Car"], ["Street"]]
    dictionary = ("Car", "Sign", "Street")
    concepts = np.array([[c in shot for c in dictionary] for shot in tags])
    query = QFVSQuery(("Car", "Street"), np.array([1, 3, 4]), (np.array([1, 3]), np.array([3, 4, 5])))
    video = QFVSVideo("car-detection", dictionary, concepts, (query,), np.array([1]), (np.array([1]),))
    dataset.set_values("query", {sample.id: "car_street"}, key_field="id")
    report = add_qfvs_annotations(dataset.select(sample.id), [video])
    assert report.n_labelled == 1
    results = evaluate_summary(dataset.select(sample.id), gt_field="gt_oracle", eval_key="qfvs_eval", protocol="qfvs")
    machine = mask_of(sample.clipit_summary, n_frames)
    shot_of_frame = np.minimum((np.arange(n_frames) / rate // 5).astype(int), len(tags) - 1)
    chosen = [s for s in range(len(tags)) if 2 * machine[shot_of_frame == s].sum() >= (shot_of_frame == s).sum() and machine[shot_of_frame == s].any()]
    expected = qfvs_f1(chosen, [1, 3, 4], concepts)
    assert dataset[sample.id].qfvs_eval_f1 == pytest.approx(expected[2], abs=1e-9)
    assert results.metrics()["precision"] == pytest.approx(expected[0])


def test_summaries_through_fiftyone_temporal_evaluation(labelled):
    dataset, annotations = labelled
    reports = []
    results = evaluate_summary_segments(
        dataset, gt_field="gt_user_summaries", eval_key="segments",
        progress=lambda fraction, label: reports.append((fraction, label)),
    )
    assert reports and all(0.0 <= fraction <= 1.0 for fraction, _ in reports), reports
    assert reports[-1][0] == 1.0 and reports[-1][1].startswith("Evaluating segments")
    assert "segments" in dataset.list_evaluations()
    assert dataset.get_evaluation_info("segments").config.method == "activitynet"
    expected = []
    for sample in dataset:
        annotation = annotations[Path(sample.filepath).stem]
        expected.append(summary_f1(mask_of(sample.clipit_summary, annotation.n_frames), annotation.user_summaries, "avg"))
        assert sample.segments_frame_f1 == pytest.approx(expected[-1])
    assert results.metrics()["frame_f1"] == pytest.approx(np.mean(expected))
    # FiftyOne's own segment matching: every ground-truth segment is either matched or missed
    assert dataset.sum("segments_tp") + dataset.sum("segments_fn") == dataset.count("gt_user_summaries.detections")
    assert 0.0 <= results.mAP() <= 1.0
    dataset.delete_evaluation("segments")
    assert not dataset.has_sample_field("segments_frame_f1")


def test_operator_evaluates_with_a_protocol(labelled):
    dataset, _ = labelled
    params = {"gt_field": "gt_user_summaries", "eval_key": "op_eval", "protocol": "summe"}
    result = foo.execute_operator("@clipit/video-summarization/evaluate_summary", ctx={"dataset": dataset, "params": params})
    assert result.result["videos"] == len(dataset) and 0 <= result.result["f1"] <= 1
    assert dataset.get_run_info("op_eval").config.mode == "max"


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"gt_field": "gt_user_summaries", "protocol": "ovp"}, r"Unknown protocol 'ovp'. Valid ones are \['tvsum', 'summe', 'qfvs', 'qvhighlights'\]"),
        ({"gt_field": "nope"}, "Field 'nope' does not exist"),
        ({"gt_field": "gt_user_summaries", "mode": "mean"}, r"Unknown mode 'mean'"),
        ({"gt_field": "gt_user_summaries", "gt_score_field": "missing_scores"}, "Field 'frames.missing_scores' does not exist"),
        ({"gt_field": ["gt_saliency", "gt_user_summaries"], "protocol": "qvhighlights"}, "one saliency field"),
        ({"gt_field": "metadata"}, "already exists as"),
        ({"gt_field": "gt_user_summaries", "eval_key": "query"}, "already exists as"),
    ],
)
def test_bad_arguments_are_named(labelled, kwargs, error):
    dataset, _ = labelled
    kwargs = {"eval_key": "bad_eval", **kwargs}
    if kwargs["eval_key"] == "query":  # a string field query_f1 is in the way of the F1 field
        dataset.set_values("query_f1", ["x"] * len(dataset))
    with pytest.raises(ClipItError, match=error):
        evaluate_summary(dataset, **kwargs)
    assert kwargs["eval_key"] not in dataset.list_runs()


def test_eval_key_of_another_run_or_evaluation_is_refused(labelled):
    dataset, _ = labelled
    embeddings = dataset.get_run_info("clipit_embeddings").config.serialize()
    with pytest.raises(ClipItError, match="'clipit_embeddings' is the key of a FrameEmbeddingsRunConfig run"):
        evaluate_summary(dataset, gt_field="gt_user_summaries", eval_key="clipit_embeddings")
    assert dataset.get_run_info("clipit_embeddings").config.serialize() == embeddings
    evaluate_summary_segments(dataset, gt_field="gt_user_summaries", eval_key="segments")
    with pytest.raises(ClipItError, match="'segments' is the key of an evaluation"):
        evaluate_summary(dataset, gt_field="gt_user_summaries", eval_key="segments")
    assert dataset.get_evaluation_info("segments").config.method == "activitynet"
    assert "segments" not in dataset.list_runs()


def test_cli_evaluate_prints_the_report_and_writes_figures(labelled, tmp_path, capsys):
    from fiftyone_clipit.cli import main

    dataset, _ = labelled
    argv = ["evaluate", dataset.name, "--gt-field", "gt_user_summaries", "--protocol", "summe",
            "--gt-score-field", "gt_user_scores", "--eval-key", "cli_eval", "--figures", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Evaluation 'cli_eval': protocol summe, mode max" in out and "kendall" in out
    assert len(list(tmp_path.glob("*.png"))) == len(dataset)
    assert dataset.get_run_info("cli_eval").config.gt_score_field == "gt_user_scores"

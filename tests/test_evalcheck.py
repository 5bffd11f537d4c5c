"""`fiftyone-clipit eval-check`: reference figures from the real annotations, checked against papers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_VIDEOS
from fiftyone_clipit.cli import main
from fiftyone_clipit.evalcheck import (
    format_eval_check,
    qvhighlights_random_baseline,
    run_eval_check,
    tvsum_human_agreement,
)
from fiftyone_clipit.metrics import rank_correlation
from fiftyone_clipit.readers import read_qvhighlights, read_tvsum

DATA = SHARED_VIDEOS.parent


@pytest.fixture(scope="module")
def figures():
    if not (DATA / "tvsum" / "ydata-tvsum50.mat").exists():
        pytest.skip(f"no TVSum annotations under {DATA}")
    return run_eval_check(DATA)


def test_tvsum_human_agreement_reproduces_otani_et_al(figures):
    # Otani et al., CVPR 2019: Kendall tau 0.177, Spearman rho 0.204 (each user vs every other user).
    assert figures["tvsum"]["n_videos"] == 50
    assert abs(figures["tvsum"]["kendall"] - 0.177) < 0.0005
    assert abs(figures["tvsum"]["spearman"] - 0.204) < 0.0005


def test_fast_agreement_equals_scipy_per_user_on_real_videos():
    """The contingency-table correlations give what scipy gives, user by user (two real videos)."""
    if not (DATA / "tvsum" / "ydata-tvsum50.mat").exists():
        pytest.skip("no TVSum annotations")
    for annotation in read_tvsum(DATA / "tvsum" / "ydata-tvsum50.mat")[:2]:
        users = annotation.user_scores
        for method in ("kendall", "spearman"):
            slow = np.mean([rank_correlation(users[u], np.delete(users, u, axis=0), method) for u in range(len(users))])
            assert tvsum_human_agreement([annotation])[method] == pytest.approx(slow, abs=1e-12)


def test_summe_and_qfvs_figures_are_sane(figures):
    summe = figures["summe"]
    assert summe["n_videos"] == 25
    assert 0 < summe["f1_avg"] < summe["f1_max"] < 1
    qfvs = figures["qfvs"]
    assert set(qfvs) == {"P01", "P02", "P03", "P04", "mean"}
    for name in ("P01", "P02", "P03", "P04"):
        assert qfvs[name]["n_queries"] == 45
        assert 0 < qfvs[name]["f1"] < 1


def test_qvhighlights_random_baseline_is_seeded(figures):
    qvh = figures["qvhighlights"]
    # positives at >= 4 are a subset of those at >= 2: random ranking finds fewer
    assert qvh["Fair"]["map"] > qvh["Good"]["map"] > qvh["VeryGood"]["map"] > 0
    queries = read_qvhighlights(DATA / "qvhighlights" / "highlight_val_release.jsonl")[:200]
    again = qvhighlights_random_baseline(queries, seed=0)
    assert again == qvhighlights_random_baseline(queries, seed=0)
    assert again != qvhighlights_random_baseline(queries, seed=1)


def test_report_names_the_reference(figures):
    text = format_eval_check(figures)
    assert "Kendall tau = 0.177, Spearman rho = 0.204 (Otani et al. 2019: 0.177 / 0.204)" in text
    assert "QVHighlights val" in text and "P04" in text


def test_cli_prints_one_json_line(figures, capsys, tmp_path):
    (tmp_path / "summe").symlink_to(DATA / "summe")  # one dataset keeps the subprocess-free run short
    assert main(["eval-check", "--data", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["summe"]["f1_max"] == pytest.approx(figures["summe"]["f1_max"])
    assert "missing" in printed["tvsum"]


def test_cli_on_a_folder_without_annotations(tmp_path, capsys):
    assert main(["eval-check", "--data", str(tmp_path)]) == 1
    assert "No ground truth could be read" in capsys.readouterr().err


def test_a_missing_dataset_is_reported_not_fatal(tmp_path):
    if not (DATA / "summe").exists():
        pytest.skip("no shared data")
    (tmp_path / "summe").symlink_to(DATA / "summe")
    results = run_eval_check(tmp_path)
    assert "missing" in results["tvsum"] and results["summe"]["n_videos"] == 25
    assert "TVSum: skipped" in format_eval_check(results)


def _reference_keyshots(user_scores: np.ndarray, segments: np.ndarray, capacity: int) -> np.ndarray:
    """One user's keyshot summary as the published evaluation code computes it, written from it.

    Frame scores in a float32 array; a shot's value is ``float(frames[first:last + 1].mean())``;
    the 0/1 knapsack's table row i holds ``max`` over taking item i only when strictly better
    (rows computed a whole capacity axis at a time); the read-back starts at the full capacity.
    """
    frames = np.asarray(user_scores, dtype=np.float32)
    values = [float(frames[first : last + 1].mean()) for first, last in segments]
    weights = [int(last - first + 1) for first, last in segments]
    table = np.zeros((len(values) + 1, capacity + 1))
    keep = np.zeros((len(values) + 1, capacity + 1), dtype=bool)
    for i, (v, w) in enumerate(zip(values, weights), start=1):
        table[i] = table[i - 1]
        if w <= capacity:
            taken = table[i - 1, : capacity + 1 - w] + v
            better = taken > table[i - 1, w:]
            table[i, w:][better] = taken[better]
            keep[i, w:] = better
    summary = np.zeros(len(frames), dtype=bool)
    c = capacity
    for i in range(len(values), 0, -1):
        if keep[i, c]:
            first, last = segments[i - 1]
            summary[first : last + 1] = True
            c -= weights[i - 1]
    return summary


@pytest.mark.slow
def test_every_tvsum_users_keyshot_summary_equals_the_reference_algorithm():
    """0 of the 1,000 TVSum users differ; the lightest-subset tie break differs on many."""
    if not (DATA / "tvsum" / "ydata-tvsum50.mat").exists():
        pytest.skip("no TVSum annotations")
    from fiftyone_clipit.readers import tvsum_segments, user_keyshot_summaries
    from fiftyone_clipit.summary import keyshot_summary, summary_capacity

    users = differ = differ_least_weight = 0
    for annotation in read_tvsum(DATA / "tvsum" / "ydata-tvsum50.mat"):
        segments = tvsum_segments(annotation.user_scores)
        capacity = summary_capacity(annotation.n_frames, 0.15)
        ours = user_keyshot_summaries(annotation.user_scores, segments)
        for user, scores in enumerate(annotation.user_scores):
            reference = _reference_keyshots(scores, segments, capacity)
            users += 1
            differ += not np.array_equal(ours[user], reference)
            differ_least_weight += not np.array_equal(
                keyshot_summary(scores, segments, capacity, tie_break="least_weight"), reference
            )
    assert (users, differ) == (1000, 0)
    assert differ_least_weight > 100, differ_least_weight

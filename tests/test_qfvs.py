"""QFVS as the paper ran it: four rounds, one example per (video, concept pair), semantic F1.

The planted test keeps the real QFVS tags, queries and oracle summaries (the first shots of each
video, so that it runs in seconds) and plants features: each shot shows its tagged concepts, and
the shots of a query's oracle summary also carry that query's two concepts through a hidden
rotation, which only training can learn to read. The trained scorer must beat zero-shot and random
shots on the unseen test videos. A scorer trained with one text for every query comes as close:
oracle shots stand out here without their query, so this checks the QFVS protocol and training,
not language guidance (that is `fiftyone-clipit bench learning`'s job).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_VIDEOS
from fiftyone_clipit.bench.qfvs import plant_concept_features
from fiftyone_clipit.cli import main
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.options import TrainingOptions
from fiftyone_clipit.qfvs import format_qfvs_table, pool_shots, qfvs_rounds, run_qfvs, top_shots
from fiftyone_clipit.readers import read_qfvs

QFVS = SHARED_VIDEOS.parent / "qfvs"
N_SHOTS, N_QUERIES, DIM = 300, 10, 32


def _keep_shots(source: Path, target: Path, n_shots: int) -> int:
    """Copies a file of 1-based shot numbers, keeping those among the first `n_shots`."""
    kept = [v for v in source.read_text().split() if int(v) <= n_shots]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(kept) + "\n")
    return len(kept)


def write_qfvs_prefix(target: Path, n_shots: int = N_SHOTS, n_queries: int = N_QUERIES) -> Path:
    """The real QFVS folder cut to each video's first shots and first queries with 5+ oracle shots."""
    tags = QFVS / "Dense_per_shot_tags"
    (target / "Dense_per_shot_tags").mkdir(parents=True)
    shutil.copy(tags / "Dictionary.txt", target / "Dense_per_shot_tags" / "Dictionary.txt")
    focused = QFVS / "Query-Focused_Summaries"
    for video_dir in sorted(p for p in tags.iterdir() if p.is_dir()):
        name = video_dir.name
        lines = (video_dir / f"{name}.txt").read_text().rstrip("\n").split("\n")[:n_shots]
        (target / "Dense_per_shot_tags" / name).mkdir()
        (target / "Dense_per_shot_tags" / name / f"{name}.txt").write_text("\n".join(lines) + "\n")
        for summary in (QFVS / "Global_Summaries" / name).glob("*.txt"):
            _keep_shots(summary, target / "Global_Summaries" / name / summary.name, n_shots)
        kept = 0
        for oracle in sorted((focused / "Oracle_Summaries" / name).glob("*_oracle.txt")):
            if kept == n_queries or sum(int(v) <= n_shots for v in oracle.read_text().split()) < 5:
                continue
            kept += 1
            _keep_shots(oracle, target / "Query-Focused_Summaries" / "Oracle_Summaries" / name / oracle.name, n_shots)
            pair = oracle.name[: -len("_oracle.txt")]
            for user in (focused / "User_Summaries" / name).glob(f"{pair}_user*.txt"):
                _keep_shots(user, target / "Query-Focused_Summaries" / "User_Summaries" / name / user.name, n_shots)
    return target


def plant_features(qfvs_folder: Path, target: Path, seed: int = 0) -> Path:
    """Per-shot features and concept embeddings: tags in the open, oracle membership behind a rotation."""
    rng = np.random.default_rng(seed)
    videos = read_qfvs(qfvs_folder)
    concepts = rng.standard_normal((len(videos[0].dictionary), DIM))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    hidden = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0]
    index = {c: i for i, c in enumerate(videos[0].dictionary)}
    target.mkdir()
    np.savez(target / "concepts.npz", **{c: concepts[i] for c, i in index.items()})
    for video in videos:
        shown = video.shot_concepts.astype(float) @ concepts
        for query in video.queries:
            shown[query.oracle] += 1.5 * (concepts[index[query.concepts[0]]] + concepts[index[query.concepts[1]]]) @ hidden.T
        shown += 0.5 * rng.standard_normal(shown.shape)
        np.savez(target / f"{video.name}.npz", features=shown.astype(np.float32))
    return target


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    if not QFVS.is_dir():
        pytest.skip(f"shared data {QFVS} is absent")
    folder = tmp_path_factory.mktemp("qfvs")
    annotations = write_qfvs_prefix(folder / "origin_data")
    return annotations, plant_features(annotations, folder / "features")


def test_rounds_test_each_video_once_and_never_train_on_it():
    rounds = qfvs_rounds(["P01", "P02", "P03", "P04"])
    assert [r[2] for r in rounds] == ["P01", "P02", "P03", "P04"]
    assert [r[1] for r in rounds] == ["P04", "P01", "P02", "P03"]
    for train, validation, test in rounds:
        assert len(train) == 2 and validation not in train and test not in train and test != validation


def test_top_shots_and_pooling_into_five_second_shots():
    assert top_shots(np.array([0.1, 0.9, 0.5, 0.7]), 0.5).tolist() == [1, 3]
    assert top_shots(np.array([0.3, 0.2]), 0.01).tolist() == [0]  # at least one shot
    # 2 fps samples of a 10 fps video: frames 1, 6, 11, ... ; shot k holds seconds [5k, 5k + 5)
    frame_numbers = np.arange(1, 151, 5)
    embeddings = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    assert np.allclose(pool_shots(embeddings, frame_numbers, 10.0, 3), np.eye(3))
    with pytest.raises(ClipItError, match="1 of the 4 tagged 5-second shots have no sampled frame"):
        pool_shots(embeddings, frame_numbers, 10.0, 4)


@pytest.mark.slow
def test_trained_scorer_beats_zero_shot_and_random_on_each_unseen_video(planted, capsys, one_thread):
    annotations, features = planted
    result = run_qfvs(str(features), str(annotations), preset="tiny", options=TrainingOptions(epochs=15))
    trained, blind, zero_shot, random = (result.means[m]["f1"] for m in ("clipit", "query-blind", "zero-shot", "random"))
    assert trained > zero_shot + 0.05 and trained > random + 0.05, format_qfvs_table(result)
    # the planted oracle shots stand out without the query too: the query-blind scorer comes as
    # close, so this world checks the protocol and the training, not language guidance
    assert blind > zero_shot, format_qfvs_table(result)
    assert [r["test"] for r in result.rounds] == ["P01", "P02", "P03", "P04"]
    assert all(1 <= r["best_epoch"] <= 15 for r in result.rounds)
    table = format_qfvs_table(result)
    assert all(method in table for method in ("clipit", "query-blind", "zero-shot", "random", "mean"))


def test_benchmark_qfvs_command_prints_the_table(planted, capsys, one_thread):
    annotations, features = planted
    assert main(["benchmark", "qfvs", "--features", str(features), "--annotations", str(annotations),
                 "--preset", "tiny", "--epochs", "2", "--json"]) == 0
    out = capsys.readouterr().out
    assert "QFVS: semantic P / R / F1" in out and '"top_percent": 0.02' in out


def test_bad_qfvs_inputs_are_named_before_training(planted, tmp_path):
    annotations, features = planted
    partial = tmp_path / "partial"
    shutil.copytree(features, partial)
    (partial / "P03.npz").unlink()
    with pytest.raises(ClipItError, match=r"No features for QFVS video P03: expected .*P03\.npz"):
        run_qfvs(str(partial), str(annotations), preset="tiny")
    np.savez(partial / "P03.npz", features=np.ones((N_SHOTS + 7, DIM), dtype=np.float32))
    with pytest.raises(ClipItError, match=rf"shape \({N_SHOTS + 7}, {DIM}\), but P03's tags describe {N_SHOTS} shots"):
        run_qfvs(str(partial), str(annotations), preset="tiny")
    shutil.copy(features / "P03.npz", partial / "P03.npz")
    (partial / "concepts.npz").unlink()
    with pytest.raises(ClipItError, match=r"No text embeddings for QFVS's 48 concepts: put concepts\.npz"):
        run_qfvs(str(partial), str(annotations), preset="tiny")
    with pytest.raises(ClipItError, match=r"top_percent must be in \(0, 1\]"):
        run_qfvs(str(features), str(annotations), top_percent=0)


def test_bench_qfvs_diagnosis_and_planted_concept_features(planted, tmp_path, capsys):
    """`bench qfvs`: the oracle is the ceiling (1.0 at its own size), the selections are scored by the
    protocol's metric, and the planted-concept features hold each shot's real tags and nothing else."""
    annotations, _ = planted
    assert main(["bench", "qfvs", "--annotations", str(annotations), "--draws", "2",
                 "--write-features", str(tmp_path / "concepts")]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = figures["semantic_f1"]
    assert table["oracle_size"]["oracle"]["f1"] == 1.0 and table["top_2_percent"]["oracle"]["f1"] < 1.0
    assert set(table["top_2_percent"]) == {"matcher", "matcher_iou", "half_matcher_half_random", "query_free_oracle",
                                           "typicality", "oracle", "random"}
    for rows in table.values():
        assert all(0 <= row["f1"] <= 1 and set(row["f1_per_video"]) == {"P01", "P02", "P03", "P04"} for row in rows.values())
    assert [v["shots"] for v in figures["videos"]] == [N_SHOTS] * 4
    # what the query adds to a per-shot ranker of the tags (and of the query-free cue), fitted round by round
    for rankers in (figures["query_headroom"][k] for k in ("tags", "tags_and_query_free_cue")):
        blind, aware = rankers["query_blind_ranker"], rankers["query_aware_ranker"]
        assert set(blind["f1_per_video"]) == set(aware["f1_per_video"]) == {"P01", "P02", "P03", "P04"}
        assert all(0 <= f <= 1 for f in [*blind["f1_per_video"].values(), *aware["f1_per_video"].values()])
        assert rankers["difference"] == pytest.approx(aware["f1"] - blind["f1"], abs=1e-4)
    videos = read_qfvs(annotations)
    with np.load(tmp_path / "concepts" / "concepts.npz") as data:
        concepts = np.stack([data[c] for c in videos[0].dictionary])
    for video in videos:
        features = np.load(tmp_path / "concepts" / f"{video.name}.npz")["features"]
        # each feature is its own tags' embedding sum plus noise of norm about 0.3: the features carry the tags
        tag_sums = video.shot_concepts.astype(float) @ concepts
        assert np.linalg.norm(features - tag_sums, axis=1).max() < 0.6
    # --query-free W: one unit direction of weight W added to the query-free oracle's shots, nothing else
    cued = plant_concept_features(videos, tmp_path / "cued", query_free=2.0)
    for video in videos:
        difference = np.load(cued / f"{video.name}.npz")["features"] - np.load(tmp_path / "concepts" / f"{video.name}.npz")["features"]
        marked = np.zeros(len(difference), dtype=bool)
        marked[video.global_oracle] = True
        assert np.allclose(difference[~marked], 0) and np.allclose(np.linalg.norm(difference[marked], axis=1), 2.0, atol=1e-5)


def test_the_headroom_rankers_logistic_fit_recovers_known_weights():
    """`bench qfvs`'s per-shot rankers: the L-BFGS logistic regression finds the weights that drew the labels."""
    from fiftyone_clipit.bench.qfvs import _logistic_fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 3))
    truth = np.array([2.0, -1.0, 0.5, 0.3])
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(x @ truth[:3] + truth[3])))).astype(float)
    assert np.allclose(_logistic_fit(x, y, l2=1e-3), truth, atol=0.08)

"""`fiftyone-clipit benchmark summe`: the 5-split protocol's mechanics on features made here.

No benchmark videos are reachable offline, so the features are generated from SumMe's real
annotations: random unit vectors tilted towards one direction as the users' consensus score
rises. The table must cover the 5 splits of the shared split file, with each split's test
videos never used for training or model selection.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from scipy import stats

from fiftyone_clipit.benchmark import h5_benchmark_videos, run_benchmark
from fiftyone_clipit.cli import main
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.readers import read_splits, read_summe, shared_data_dir
from fiftyone_clipit.summary import upsample_scores
from fiftyone_clipit.training import TrainingOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summe_features(tmp_path_factory):
    if not (shared_data_dir() / "summe" / "GT").is_dir():
        pytest.skip(f"no SumMe annotations under {shared_data_dir()}")
    folder = tmp_path_factory.mktemp("summe-features")
    rng = np.random.default_rng(0)
    direction = rng.normal(size=32)
    for annotation in read_summe():
        picks = np.arange(0, annotation.n_frames, max(1, round(annotation.fps / 2)))
        consensus = annotation.gt_score[picks]
        consensus = (consensus - consensus.min()) / (np.ptp(consensus) + 1e-9)
        features = rng.normal(size=(len(picks), 32)) + 1.5 * consensus[:, None] * direction
        np.savez(folder / f"{annotation.name}.npz", embeddings=features.astype(np.float32), frame_numbers=picks + 1)
    return folder


def test_benchmark_command_prints_the_f1_table_of_the_five_splits(summe_features, capsys, one_thread):
    assert main(["benchmark", "summe", "--features", str(summe_features), "--preset", "tiny",
                 "--epochs", "3", "--learning-rate", "0.01", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    splits = read_splits("summe_splits_pglsum.json")
    assert len(result["splits"]) == 5 == len(splits)
    assert result["mean_f1"] == pytest.approx(np.mean([row["f1"] for row in result["splits"]]))
    for row, split in zip(result["splits"], splits):
        assert row["n_test"] == len(split["test_keys"])
        assert row["n_train"] + row["n_validation"] == len(split["train_keys"])
        assert 0.0 <= row["f1"] <= 1.0 and 1 <= row["best_epoch"] <= 3
        assert f"split {row['split']}: F1 {row['f1']:.4f}" in "\n".join(lines)
    assert f"mean F1 over 5 splits: {result['mean_f1']:.4f}" in lines[-2]


def test_informative_features_beat_noise_on_the_same_protocol(summe_features, tmp_path, one_thread):
    options = TrainingOptions(epochs=3, learning_rate=1e-2, f1_mode="max")
    for path in summe_features.iterdir():
        with np.load(path) as data:
            noise = np.random.default_rng(1).normal(size=data["embeddings"].shape).astype(np.float32)
            np.savez(tmp_path / path.name, embeddings=noise, frame_numbers=data["frame_numbers"])
    informed = run_benchmark("summe", str(summe_features), preset="tiny", options=options)
    blind = run_benchmark("summe", str(tmp_path), preset="tiny", options=options)
    assert informed.mean_f1 > blind.mean_f1 + 0.05, (informed.mean_f1, blind.mean_f1)


def test_missing_features_are_named(summe_features, tmp_path):
    (tmp_path / "Air_Force_One.npz").write_bytes((summe_features / "Air_Force_One.npz").read_bytes())
    with pytest.raises(ClipItError, match=r"(?s)24 of the summe videos have no usable features.*Base jumping"):
        run_benchmark("summe", str(tmp_path), preset="tiny")
    with pytest.raises(ClipItError, match="does not exist"):
        run_benchmark("summe", str(tmp_path / "nowhere"), preset="tiny")


def _write_h5(path, videos: dict) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        for key, fields in videos.items():
            group = handle.create_group(key)
            for name, value in fields.items():
                group[name] = value


def _planted_h5_video(rng, n_frames: int, user_summary: np.ndarray, change_points: np.ndarray, importance: np.ndarray,
                      dim: int = 32) -> dict:
    picks = np.arange(0, n_frames, 15)
    direction = np.ones(dim) / np.sqrt(dim)
    score = importance[picks]
    score = (score - score.min()) / (np.ptp(score) + 1e-9)
    features = rng.normal(size=(len(picks), dim)) + 2.0 * score[:, None] * direction
    return {
        "features": features.astype(np.float32), "gtscore": score, "gtsummary": (score > 0.5).astype(np.float32),
        "user_summary": user_summary.astype(np.float32), "change_points": change_points,
        "n_frame_per_seg": change_points[:, 1] - change_points[:, 0] + 1, "n_frames": n_frames, "picks": picks,
    }


@pytest.fixture(scope="module")
def tvsum_h5(tmp_path_factory):
    """An eccv16-layout h5 of 8 real TVSum videos (their users' summaries and 2-second segments) and
    an OVP-like h5 of 4 planted videos, with a canonical and a mixed (augmented-style) split file."""
    from fiftyone_clipit.readers import read_tvsum, tvsum_segments

    if not (shared_data_dir() / "tvsum" / "ydata-tvsum50.mat").exists():
        pytest.skip("no TVSum annotations")
    folder = tmp_path_factory.mktemp("h5")
    rng = np.random.default_rng(1)
    annotations = read_tvsum()[:8]
    tvsum = {
        f"video_{i}": _planted_h5_video(rng, a.n_frames, a.user_summaries, tvsum_segments(a.user_scores), a.gt_score)
        for i, a in enumerate(annotations, start=1)
    }
    _write_h5(folder / "eccv16_dataset_tvsum_google_pool5.h5", tvsum)
    ovp = {}
    for i in range(1, 5):
        n_frames = 900
        change_points = np.stack([np.arange(0, n_frames, 60), np.arange(59, n_frames, 60)], axis=1)
        importance = np.repeat(rng.random(len(change_points)), 60)
        users = np.stack([importance > 0.7, importance > 0.6])
        ovp[f"video_{i}"] = _planted_h5_video(rng, n_frames, users, change_points, importance)
    _write_h5(folder / "eccv16_dataset_ovp_google_pool5.h5", ovp)
    canonical = [{"train_keys": [f"video_{i}" for i in range(1, 7)], "test_keys": ["video_7", "video_8"]},
                 {"train_keys": [f"video_{i}" for i in range(3, 9)], "test_keys": ["video_1", "video_2"]}]
    (folder / "canonical.json").write_text(json.dumps(canonical))
    mixed = "\n".join(
        ["- train_keys:"]
        + [f"  - ../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_{i}" for i in range(1, 7)]
        + [f"  - ../datasets/eccv16_dataset_ovp_google_pool5.h5/video_{i}" for i in range(1, 5)]
        + ["  test_keys:", "  - ../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_7",
           "  - ../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_8"]
    )
    (folder / "mixed_aug.yml").write_text(mixed + "\n")
    return folder, annotations


def test_the_h5_reader_gives_the_files_ground_truth(tvsum_h5):
    from fiftyone_clipit.readers import read_eccv16_h5

    folder, annotations = tvsum_h5
    videos = read_eccv16_h5(folder / "eccv16_dataset_tvsum_google_pool5.h5")
    assert list(videos) == [f"video_{i}" for i in range(1, 9)]
    for video, annotation in zip(videos.values(), annotations):
        assert video.source == "tvsum" and video.n_frames == annotation.n_frames
        assert np.array_equal(video.user_summary, annotation.user_summaries)  # the users' summaries read_tvsum builds
        assert video.features.shape == (len(video.picks), 32) and video.change_points[-1, 1] == video.n_frames - 1


def test_a_bad_h5_file_is_named(tvsum_h5, tmp_path):
    from fiftyone_clipit.readers import read_eccv16_h5

    _write_h5(tmp_path / "broken.h5", {"video_1": {"features": np.zeros((3, 4)), "picks": np.arange(3)}})
    with pytest.raises(ClipItError, match=r"broken\.h5': video 'video_1' has no \['gtscore', 'gtsummary'"):
        read_eccv16_h5(tmp_path / "broken.h5")
    with pytest.raises(ClipItError, match="not found"):
        read_eccv16_h5(tmp_path / "absent.h5")


def test_benchmark_on_h5_ground_truth_with_the_files_features_and_mixed_splits(tvsum_h5, capsys, one_thread):
    folder, _ = tvsum_h5
    tvsum_file, ovp_file = folder / "eccv16_dataset_tvsum_google_pool5.h5", folder / "eccv16_dataset_ovp_google_pool5.h5"
    assert main(["benchmark", "tvsum", "--h5", str(tvsum_file), "--h5-features", "--splits", str(folder / "canonical.json"),
                 "--preset", "tiny", "--epochs", "2", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "vision-only" in result["setting"] and "vision-only" in out
    assert [row["n_test"] for row in result["splits"]] == [2, 2] and all(0 <= r["f1"] <= 1 for r in result["splits"])
    mixed = run_benchmark("tvsum", None, splits=str(folder / "mixed_aug.yml"), preset="tiny",
                          options=TrainingOptions(epochs=2), h5=[str(tvsum_file), str(ovp_file)], h5_features=True)
    assert [row["n_train"] + row["n_validation"] for row in mixed.splits] == [10]
    assert mixed.split_setting == "augmented" and result["split_setting"] == "canonical"
    assert mixed.mean_kendall is not None  # the TVSum test videos' user scores come from TVSum's .mat
    with pytest.raises(ClipItError, match=r"have no usable features"):
        run_benchmark("tvsum", str(folder), splits=str(folder / "canonical.json"), preset="tiny", h5=[str(tvsum_file)])
    with pytest.raises(ClipItError, match=r"--features DIR .* or --h5-features"):
        run_benchmark("tvsum", None, h5=[str(tvsum_file)])


def test_h5_route_ranks_against_tvsums_user_scores_where_the_frames_agree(tvsum_h5, tmp_path):
    """Kendall / Spearman on the h5 route equal scipy's, user by user, from TVSum's .mat; a video whose
    frame count differs from the .mat's (here: two videos under each other's keys) gets none, never
    another video's users."""
    folder, annotations = tvsum_h5
    tvsum_file = folder / "eccv16_dataset_tvsum_google_pool5.h5"
    result = run_benchmark("tvsum", None, splits=str(folder / "canonical.json"), h5=[str(tvsum_file)],
                           h5_features=True, method="gtscore")
    videos = h5_benchmark_videos([str(tvsum_file)], None, h5_features=True)
    for row in result.splits:
        for method, correlate in (("kendall", stats.kendalltau), ("spearman", stats.spearmanr)):
            expected = np.mean([
                np.mean([correlate(upsample_scores(videos[key].gt_scores, videos[key].picks, a.n_frames), user)[0]
                         for user in a.user_scores])
                for key, a in ((key, annotations[int(key[6:]) - 1]) for key in row["video_f1"])
            ])
            assert row[method] == pytest.approx(expected, abs=1e-9)
    assert result.mean_kendall == pytest.approx(np.mean([row["kendall"] for row in result.splits]))
    shifted = tmp_path / "eccv16_dataset_tvsum_google_pool5.h5"
    shutil.copy(tvsum_file, shifted)
    with h5py.File(shifted, "r+") as handle:  # videos 7 and 8 under each other's keys
        handle.move("video_7", "swap")
        handle.move("video_8", "video_7")
        handle.move("swap", "video_8")
    other = run_benchmark("tvsum", None, splits=str(folder / "canonical.json"), h5=[str(shifted)],
                          h5_features=True, method="gtscore")
    assert other.splits[0]["kendall"] is None and other.splits[1]["kendall"] is not None


def test_tvsum_tables_report_rank_correlations_against_the_users_scores(tmp_path, capsys, one_thread):
    """Kendall and Spearman (Otani et al.) beside F1, per split and mean, from TVSum's real user scores."""
    from fiftyone_clipit.readers import read_tvsum

    if not (shared_data_dir() / "tvsum" / "ydata-tvsum50.mat").exists():
        pytest.skip("no TVSum annotations")
    rng = np.random.default_rng(2)
    direction = rng.normal(size=32)
    for annotation in read_tvsum():
        picks = np.arange(0, annotation.n_frames, 15)
        consensus = annotation.gt_score[picks]
        consensus = (consensus - consensus.min()) / (np.ptp(consensus) + 1e-9)
        features = rng.normal(size=(len(picks), 32)) + 1.5 * consensus[:, None] * direction
        np.savez(tmp_path / f"{annotation.name}.npz", embeddings=features.astype(np.float32), frame_numbers=picks + 1)
    assert main(["benchmark", "tvsum", "--features", str(tmp_path), "--preset", "tiny", "--epochs", "2", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert len(result["splits"]) == 5 and all(-1 <= row["kendall"] <= 1 and -1 <= row["spearman"] <= 1 for row in result["splits"])
    assert result["mean_kendall"] == pytest.approx(np.mean([row["kendall"] for row in result["splits"]]))
    assert any(line.startswith("  mean Kendall") for line in lines) and "canonical splits; preset tiny" in lines[1]

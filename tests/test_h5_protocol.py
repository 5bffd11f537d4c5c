"""DSNet's augmented and transfer splits on the standard h5 files, and the gtscore reference.

The four eccv16 files are written here in their published layout: TVSum and SumMe from the real
annotations in the shared data (their users' summaries, 2-second segments), OVP and YouTube from
planted data with the keys DSNet's split files name. Scoring each test video with its own
`gtscore` (no training) runs every split of every setting in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_clipit.benchmark import h5_benchmark_videos, run_benchmark
from fiftyone_clipit.cli import main
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.readers import read_splits, read_summe, read_tvsum, shared_data_dir, tvsum_segments
from fiftyone_clipit.summary import uniform_change_points
from fiftyone_clipit.training import TrainingOptions, summary_of_scores, video_f1
from test_scorer_benchmark import _planted_h5_video, _write_h5

SPLITS = shared_data_dir() / "splits"


def _annotated(rng, annotations, segments) -> dict:
    return {
        f"video_{i}": _planted_h5_video(rng, a.n_frames, a.user_summaries, segments(a), a.gt_score)
        for i, a in enumerate(annotations, start=1)
    }


def _planted(rng, keys) -> dict:
    videos = {}
    for key in keys:
        n_frames = int(rng.integers(600, 1200))
        change_points = uniform_change_points(n_frames, 60)
        importance = np.repeat(rng.random(len(change_points)), change_points[:, 1] - change_points[:, 0] + 1)
        videos[key] = _planted_h5_video(rng, n_frames, np.stack([importance > 0.7, importance > 0.5]), change_points, importance)
    return videos


@pytest.fixture(scope="module")
def eccv16_files(tmp_path_factory):
    if not (shared_data_dir() / "tvsum" / "ydata-tvsum50.mat").exists() or not (SPLITS / "tvsum_aug_dsnet.yml").exists():
        pytest.skip("no TVSum / SumMe annotations or DSNet split files in the shared data")
    folder = tmp_path_factory.mktemp("eccv16")
    rng = np.random.default_rng(0)
    named = {
        source: sorted({key.split("/")[1] for split in read_splits(SPLITS / f"{d}_{s}_dsnet.yml")
                        for key in split["train_keys"] + split["test_keys"] if key.startswith(source)},
                       key=lambda k: int(k.split("_")[1]))
        for source in ("ovp", "youtube") for d in ("tvsum",) for s in ("aug",)
    }
    files = {
        "tvsum": _annotated(rng, read_tvsum(), lambda a: tvsum_segments(a.user_scores)),
        "summe": _annotated(rng, read_summe(), lambda a: uniform_change_points(a.n_frames, round(2 * a.fps))),
        "ovp": _planted(rng, named["ovp"]),
        "youtube": _planted(rng, named["youtube"]),
    }
    paths = []
    for source, videos in files.items():
        paths.append(folder / f"eccv16_dataset_{source}_google_pool5.h5")
        _write_h5(paths[-1], videos)
    return [str(p) for p in paths]


@pytest.mark.slow
@pytest.mark.parametrize("dataset, setting", [
    ("tvsum", "aug"), ("tvsum", "trans"), ("summe", "aug"), ("summe", "trans"), ("tvsum", None),
])
def test_dsnet_splits_run_on_the_four_h5_files(eccv16_files, dataset, setting, capsys):
    name = f"{dataset}_{setting}_dsnet.yml" if setting else f"{dataset}_dsnet.yml"
    argv = ["benchmark", dataset, "--splits", str(SPLITS / name), "--h5-features", "--method", "gtscore"]
    for path in eccv16_files:
        argv += ["--h5", path]
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = {"aug": "augmented", "trans": "transfer", None: "canonical"}[setting]
    assert f"{expected} splits" in out and "gtscore (no training" in out
    options = TrainingOptions(f1_mode="avg" if dataset == "tvsum" else "max")
    result = run_benchmark(dataset, None, splits=str(SPLITS / name), h5=eccv16_files, h5_features=True,
                           method="gtscore", options=options)
    assert len(result.splits) == 5 and result.split_setting == expected
    # each split tests the dataset's own videos, and their gtscore beats random scores on the same shots
    videos = h5_benchmark_videos(eccv16_files, None, h5_features=True)
    rng = np.random.default_rng(1)
    for row in result.splits:
        keys = [key if "/" in key else f"{dataset}/{key}" for key in row["video_f1"]]
        assert all(key.startswith(f"{dataset}/") for key in keys)
        chance = [video_f1(videos[k], rng.random(len(videos[k].picks)), 0.15, options.f1_mode) for k in keys]
        assert row["f1"] > np.mean(chance) + 0.05


def test_a_split_naming_a_video_no_file_holds_is_named(eccv16_files, tmp_path):
    (tmp_path / "bad.yml").write_text(
        "- train_keys:\n  - ../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_1\n"
        "  test_keys:\n  - ../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_77\n"
    )
    with pytest.raises(ClipItError, match=r"names videos \['video_77'\] that none of the h5 files \['eccv16_dataset_tvsum"):
        run_benchmark("tvsum", None, splits=str(tmp_path / "bad.yml"), h5=eccv16_files, h5_features=True, method="gtscore")
    with pytest.raises(ClipItError, match=r"Unknown method 'oracle'"):
        run_benchmark("tvsum", None, h5=eccv16_files, h5_features=True, method="oracle")


def test_gtscore_summaries_are_the_files_keyshots(eccv16_files):
    """The summary of a video's gtscore covers its most important segments within 15%."""
    video = h5_benchmark_videos(eccv16_files[:1], None, h5_features=True)["video_1"]
    summary = summary_of_scores(video, video.gt_scores, 0.15)
    assert 0 < summary.sum() <= int(video.n_frames * 0.15)
    inside = np.zeros(video.n_frames)
    inside[video.picks] = video.gt_scores
    assert inside[summary].max() == pytest.approx(video.gt_scores.max())

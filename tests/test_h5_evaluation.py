"""`benchmark tvsum --h5` and `evaluate_summary` through FiftyOne agree, video by video.

An eccv16-layout h5 file is written from TVSum's real annotations (its users' summaries and
2-second segments). The benchmark scores each test video with the file's own gtscore (no
training); the same summaries, written to FiftyOne samples as TemporalDetections beside the users'
summaries, are evaluated by the plugin's FiftyOne evaluation run, which must give the same F1.
"""

from __future__ import annotations

import json
import uuid

import fiftyone as fo
import numpy as np
import pytest

from fiftyone_clipit.benchmark import h5_benchmark_videos, run_benchmark
from fiftyone_clipit.fo.evaluation import evaluate_summary
from fiftyone_clipit.fo.groundtruth import mask_to_detections
from fiftyone_clipit.readers import read_eccv16_h5, read_tvsum, shared_data_dir, tvsum_segments
from fiftyone_clipit.training import summary_of_scores
from test_scorer_benchmark import _planted_h5_video, _write_h5

N_VIDEOS = 10


@pytest.fixture(scope="module")
def tvsum_file(tmp_path_factory):
    if not (shared_data_dir() / "tvsum" / "ydata-tvsum50.mat").exists():
        pytest.skip("no TVSum annotations in the shared data")
    folder = tmp_path_factory.mktemp("tvsum-h5")
    rng = np.random.default_rng(3)
    annotations = read_tvsum()[:N_VIDEOS]
    _write_h5(folder / "eccv16_dataset_tvsum_google_pool5.h5", {
        f"video_{i}": _planted_h5_video(rng, a.n_frames, a.user_summaries, tvsum_segments(a.user_scores), a.gt_score)
        for i, a in enumerate(annotations, start=1)
    })
    splits = [{"train_keys": [f"video_{i}" for i in range(1, 7)], "test_keys": [f"video_{i}" for i in range(7, 11)]},
              {"train_keys": [f"video_{i}" for i in range(5, 11)], "test_keys": [f"video_{i}" for i in range(1, 5)]}]
    (folder / "splits.json").write_text(json.dumps(splits))
    return folder / "eccv16_dataset_tvsum_google_pool5.h5", folder / "splits.json", annotations


def test_h5_users_are_read_tvsums_users(tvsum_file):
    path, _, annotations = tvsum_file
    for video, annotation in zip(read_eccv16_h5(path).values(), annotations):
        assert np.array_equal(video.user_summary, annotation.user_summaries)


def test_benchmark_f1_equals_evaluate_summary_through_fiftyone(tvsum_file):
    path, splits, annotations = tvsum_file
    result = run_benchmark("tvsum", None, splits=str(splits), h5=[str(path)], h5_features=True, method="gtscore")
    videos = h5_benchmark_videos([str(path)], None, h5_features=True)
    dataset = fo.Dataset(f"clipit-h5-{uuid.uuid4().hex[:8]}")
    try:
        for row in result.splits:
            samples = []
            for key in row["video_f1"]:
                video = videos[key]
                summary = summary_of_scores(video, video.gt_scores, 0.15)
                users = [
                    detection for user, mask in enumerate(video.user_summaries, start=1)
                    for detection in mask_to_detections(mask, "keyshot", user=user)
                ]
                samples.append(fo.Sample(
                    filepath=f"/videos/{video.name.replace('/', '_')}.mp4", split=row["split"], key=key,
                    metadata=fo.VideoMetadata(total_frame_count=video.n_frames, frame_rate=30.0),
                    gt_users=fo.TemporalDetections(detections=users),
                    clipit_summary=fo.TemporalDetections(detections=mask_to_detections(summary, "summary")),
                ))
            dataset.add_samples(samples)
        evaluate_summary(dataset, "gt_users", eval_key="h5check", protocol="tvsum")
        through_fiftyone = dict(zip(dataset.values("key"), dataset.values("h5check_f1")))
        for row in result.splits:
            for key, f1 in row["video_f1"].items():
                assert through_fiftyone[key] == pytest.approx(f1, abs=1e-12)
            split_f1 = np.mean(dataset.match(fo.ViewField("split") == row["split"]).values("h5check_f1"))
            assert split_f1 == pytest.approx(row["f1"], abs=1e-12)
    finally:
        dataset.delete()

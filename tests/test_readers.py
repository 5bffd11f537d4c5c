"""The ground-truth readers on the real published files in the shared data (skipped when absent)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from conftest import SHARED_VIDEOS
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.readers import (
    read_qfvs,
    read_qvhighlights,
    read_splits,
    read_summe,
    read_tvsum,
    shared_data_dir,
    tvsum_segments,
    user_keyshot_summaries,
)
from fiftyone_clipit.summary import summary_capacity

DATA = SHARED_VIDEOS.parent


def need(path: str):
    if not (DATA / path).exists():
        pytest.skip(f"shared data {DATA / path} is absent")
    return DATA / path


@pytest.fixture(scope="module")
def tvsum():
    return read_tvsum(need("tvsum/ydata-tvsum50.mat"))


def test_tvsum_matches_its_info_table(tvsum):
    with open(need("tvsum/tvsum50_info.tsv")) as f:
        info = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [a.name for a in tvsum] == [row["video_id"] for row in info]
    assert [a.n_frames for a in tvsum] == [int(row["nframes"]) for row in info]
    assert [a.category for a in tvsum] == [row["category"] for row in info]
    assert [a.title for a in tvsum] == [row["title"] for row in info]
    for annotation, row in zip(tvsum, info):
        assert annotation.fps == pytest.approx(float(row["fps_est"]), abs=1e-3)


def test_tvsum_users_scores_and_consensus(tvsum):
    first = tvsum[0]
    assert (first.name, first.n_frames, first.user_scores.shape) == ("AwmHb44_ouw", 10597, (20, 10597))
    for annotation in tvsum:
        assert set(np.unique(annotation.user_scores)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
        # PROVENANCE: gt_score is the per-frame mean of the 20 users
        assert annotation.gt_score == pytest.approx(annotation.user_scores.mean(axis=0))


def test_tvsum_user_summaries_follow_the_protocol(tvsum):
    for annotation in tvsum[:10]:
        budget = summary_capacity(annotation.n_frames, 0.15)
        kept = annotation.user_summaries.sum(axis=1)
        assert np.all((kept > 0.8 * budget) & (kept <= budget))
        # each summary is made of whole annotation segments
        segments = tvsum_segments(annotation.user_scores)
        for mask in annotation.user_summaries[:3]:
            for first, last in segments:
                assert mask[first : last + 1].all() or not mask[first : last + 1].any()


def test_tvsum_segments_and_keyshot_summaries_hand_case():
    scores = np.array([[1, 1, 5, 5, 5, 2, 2, 2, 2, 2], [2, 2, 1, 1, 1, 4, 4, 4, 4, 4]], dtype=float)
    segments = tvsum_segments(scores)
    assert segments.tolist() == [[0, 1], [2, 4], [5, 9]]
    # budget floor(10 * 0.5) = 5 frames. User 0: segments 0 + 1 (means 1 + 5 = 6) beat segment 2
    # (2). User 1: segment 2 (4) beats segments 0 + 1 (2 + 1 = 3).
    summaries = user_keyshot_summaries(scores, segments, proportion=0.5)
    assert np.flatnonzero(summaries[0]).tolist() == [0, 1, 2, 3, 4]
    assert np.flatnonzero(summaries[1]).tolist() == [5, 6, 7, 8, 9]


def test_summe_reads_every_video_in_split_order():
    summe = read_summe(need("summe/GT"))
    assert len(summe) == 25
    assert (summe[0].name, summe[-1].name) == ("Air_Force_One", "playing_ball")
    first = summe[0]
    assert (first.n_frames, first.fps, first.user_scores.shape) == (4494, 25.0, (15, 4494))
    for annotation in summe:
        assert annotation.user_summaries.dtype == bool
        assert np.array_equal(annotation.user_summaries, annotation.user_scores > 0)
        assert annotation.gt_score.shape == (annotation.n_frames,)
        assert annotation.category is None and annotation.title is None


@pytest.mark.parametrize("name, n_videos", [("tvsum_splits_pglsum.json", 50), ("tvsum_dsnet.yml", 50), ("summe_splits_pglsum.json", 25), ("summe_dsnet.yml", 25)])
def test_splits_cover_the_dataset_five_times(name, n_videos):
    need(f"splits/{name}")
    splits = read_splits(name)
    assert len(splits) == 5
    for split in splits:
        train, test = set(split["train_keys"]), set(split["test_keys"])
        assert not train & test
        assert train | test == {f"video_{i}" for i in range(1, n_videos + 1)}
        assert len(test) == round(n_videos / 5)


def test_transfer_splits_keep_the_dataset_of_each_key():
    need("splits/summe_trans_dsnet.yml")
    split = read_splits(DATA / "splits" / "summe_trans_dsnet.yml")[0]
    assert all(key.startswith("summe/video_") for key in split["test_keys"])
    assert {key.split("/")[0] for key in split["train_keys"]} >= {"tvsum", "ovp", "youtube"}


def test_qfvs_concepts_queries_and_summaries():
    videos = read_qfvs(need("qfvs"))
    assert [v.name for v in videos] == ["P01", "P02", "P03", "P04"]
    p01 = videos[0]
    assert p01.shot_concepts.shape == (2783, 48) and len(p01.dictionary) == 48
    # first line of P01.txt: "Building,Face,Men,Party"
    assert [p01.dictionary[i] for i in np.flatnonzero(p01.shot_concepts[0])] == ["Building", "Face", "Men", "Party"]
    assert all(len(v.queries) == 45 for v in videos)
    query = p01.queries[0]
    assert query.concepts == ("Book", "Street") and query.text == "Book Street"
    assert len(query.user_summaries) == 3
    first_user = (DATA / "qfvs/Query-Focused_Summaries/User_Summaries/P01/Book_Street_user1.txt").read_text().split()
    assert query.user_summaries[0].tolist() == [int(v) - 1 for v in first_user]  # 1-based in the file
    assert query.oracle.min() >= 0 and query.oracle.max() < 2783
    assert len(p01.global_user_summaries) == 3 and p01.global_oracle.size > 0


def test_qvhighlights_saliency_of_every_clip():
    queries = read_qvhighlights(need("qvhighlights/highlight_val_release.jsonl"), split="val")
    assert len(queries) == 1550
    first = queries[0]
    assert (first.qid, first.vid, first.duration) == (2579, "NUsG9BgSes0_210.0_360.0", 150.0)
    assert first.saliency.shape == (75, 3)
    assert first.saliency[41].tolist() == [1, 1, 2] and first.saliency[0].tolist() == [0, 0, 0]
    assert first.relevant_windows == ((82.0, 150.0),)
    assert all(q.saliency.shape[0] == math.floor(q.duration / 2) for q in queries)


def test_missing_files_say_how_to_supply_them(tmp_path, monkeypatch):
    with pytest.raises(ClipItError, match=r"not found at '.*nowhere.mat'.*CLIPIT_SHARED_DATA"):
        read_tvsum(tmp_path / "nowhere.mat")
    monkeypatch.setenv("CLIPIT_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    with pytest.raises(ClipItError, match="The SumMe GT folder not found"):
        read_summe()
    with pytest.raises(ClipItError, match=r"Unknown QVHighlights split 'test'. Valid splits are \['train', 'val'\]"):
        read_qvhighlights(split="test")
    (tmp_path / "summe" / "GT").mkdir(parents=True)
    with pytest.raises(ClipItError, match="No .mat files"):
        read_summe()

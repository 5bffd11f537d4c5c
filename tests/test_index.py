"""The FAISS frame index core: exact and IVF search, ids, updates, persistence, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_clipit.bench.vectors import FrameLikeVectors
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.index import EmptyIndexError, FrameIndex, build_index, merge_moments
from fiftyone_clipit.index_layout import EXACT_MAX_FRAMES, nlist_for, pack_ids, unpack_ids
from fiftyone_clipit.knn import far_queries, recall_at_k


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def small():
    """Five videos of 8-d random unit vectors with sparse frame numbers (every 15th frame)."""
    rng = np.random.default_rng(0)
    return [(f"video{i}", np.arange(1, 16 * 15, 15)[: 10 + i], unit(rng.standard_normal((10 + i, 8)))) for i in range(5)]


@pytest.fixture(scope="module")
def large():
    """Frame-like 64-d vectors past EXACT_MAX_FRAMES, so the index is IVF."""
    data = FrameLikeVectors(EXACT_MAX_FRAMES + 4000, dim=64, frames_per_video=300)
    items = [(f"v{v}", np.arange(1, data.video_length(v) + 1), data.video(v)) for v in range(data.n_videos)]
    return data, items, build_index(items, 64, {"model": "synthetic"})


def brute_force(items, query, k):
    rows = [(key, int(n), float(v @ query)) for key, numbers, vectors in items for n, v in zip(numbers, vectors)]
    return sorted(rows, key=lambda r: -r[2])[:k]


def test_ids_pack_video_slot_and_frame_number():
    ids = pack_ids(7, np.array([1, 15, 2**32 - 1]))
    slots, numbers = unpack_ids(ids)
    assert slots.tolist() == [7, 7, 7] and numbers.tolist() == [1, 15, 2**32 - 1]
    with pytest.raises(ValueError, match="frame numbers"):
        pack_ids(0, np.array([0]))


def test_flat_search_equals_brute_force_and_names_video_and_frame(small):
    index = build_index(small, 8)
    assert index.kind == "flat" and len(index) == sum(len(n) for _, n, _ in small)
    query = unit(np.random.default_rng(1).standard_normal(8))
    (hits,) = index.search(query, k=6)
    expected = brute_force(small, query, 6)
    assert list(zip(hits.keys, hits.frame_numbers.tolist())) == [(k, n) for k, n, _ in expected]
    np.testing.assert_allclose(hits.scores, [s for _, _, s in expected], rtol=1e-5)


def test_remove_and_replace_a_video(small):
    index = build_index(small, 8)
    n = len(index)
    assert index.remove("video2") == 12 and len(index) == n - 12 and "video2" not in index
    assert index.remove("video2") == 0
    (hits,) = index.search(small[2][2][0], k=len(index))
    assert "video2" not in hits.keys
    index.add("video0", np.array([5]), small[0][2][:1])
    assert len(index) == n - 12 - 10 + 1
    (hits,) = index.search(small[0][2][0], k=1)
    assert (hits.keys[0], int(hits.frame_numbers[0])) == ("video0", 5)


def test_save_and_load_round_trip_keeps_one_generation(small, tmp_path):
    index = build_index(small, 8, {"model": "m"})
    index.save(str(tmp_path))
    index.remove("video1")
    index.save(str(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*.faiss")) == ["frames-2.faiss"]
    loaded = FrameIndex.load(str(tmp_path))
    assert loaded.info == {"model": "m"} and loaded.keys == index.keys and len(loaded) == len(index)
    query = small[3][2][4]
    assert loaded.search(query, 5)[0].keys == index.search(query, 5)[0].keys
    with pytest.raises(ClipItError, match="build_frame_index"):
        FrameIndex.load(str(tmp_path / "nothing"))


def test_query_on_an_empty_index_says_what_to_do():
    with pytest.raises(EmptyIndexError, match="compute_frame_embeddings.*build_frame_index"):
        FrameIndex(8).search(np.ones(8, np.float32), 5)


def test_k_larger_than_the_index_returns_every_frame(small, caplog):
    index = build_index(small[:1], 8)
    with caplog.at_level("INFO", logger="fiftyone_clipit"):
        (hits,) = index.search(small[0][2][0], k=1000)
    assert len(hits.keys) == 10 and "more than the 10 frames" in caplog.text
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(small[0][2][0], k=0)


def test_dimension_differing_from_the_index_is_named(small):
    index = build_index(small, 8, {"model": "tiny-random"})
    with pytest.raises(ClipItError, match=r"\(1, 16\).*8-d vectors \(made by 'tiny-random'\)"):
        index.search(np.ones(16, np.float32), 3)
    with pytest.raises(ClipItError, match="Embeddings of video 'x'"):
        index.add("x", np.array([1]), np.ones((1, 16), np.float32))
    with pytest.raises(ClipItError, match="NaN"):
        index.add("x", np.array([1]), np.full((1, 8), np.nan, np.float32))


def test_large_index_is_ivf_with_measured_recall(large):
    data, items, index = large
    assert index.kind == "ivf" and len(index) == data.n_vectors
    assert index.trained_size == data.n_vectors and index._index.nlist == nlist_for(data.n_vectors)
    vectors, ids = index.vectors()
    assert vectors.shape == (data.n_vectors, 64) and len(set(ids.tolist())) == data.n_vectors
    report = index.calibrate({"near": data.near_queries(100), "text": data.text_queries(100)})
    for kind in ("near", "text"):
        assert report[kind]["recall"] >= 0.95 and index.nprobe[kind] == report[kind]["nprobe"]
    # the recall it reports is what an independent exact search gives for new queries
    queries = data.text_queries(50, seed=9)
    keys = np.array([k for k, numbers, _ in items for _ in numbers])
    numbers = np.concatenate([n for _, n, _ in items])
    every = np.concatenate([v for _, _, v in items])
    found = index.search(queries, 10, query_kind="text")
    hits = [[f"{k}:{n}" for k, n in zip(h.keys, h.frame_numbers)] for h in found]
    exact = [[f"{keys[i]}:{numbers[i]}" for i in np.argsort(-(every @ q))[:10]] for q in queries]
    assert recall_at_k(np.array(hits), np.array(exact)) >= 0.9


def test_rebuild_follows_size(small, large):
    index = build_index(small, 8)
    assert not index.needs_rebuild()
    data, items, ivf = large
    assert not ivf.needs_rebuild()
    shrunk = build_index(items, 64, kind="ivf")
    for key, _, _ in items[10:]:
        shrunk.remove(key)
    assert shrunk.needs_rebuild()
    shrunk.rebuild()
    assert shrunk.kind == "flat" and len(shrunk) == sum(len(n) for _, n, _ in items[:10])
    query = items[3][2][7]
    (hits,) = shrunk.search(query, 1)
    assert (hits.keys[0], int(hits.frame_numbers[0])) == ("v3", 8)


def test_far_queries_sit_at_the_asked_cosine(large):
    _, items, _ = large
    vectors = items[0][2]
    queries = far_queries(vectors, 20, cosine=0.3)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    assert 0.25 < np.max(queries @ vectors.T, axis=1).min()


def test_merge_moments_joins_overlaps_and_keeps_the_best_score():
    assert merge_moments([(10, 20, 0.5), (1, 5, 0.9), (18, 30, 0.7), (32, 40, 0.1)]) == [
        (1, 5, 0.9), (10, 30, 0.7), (32, 40, 0.1)
    ]


def test_frame_like_vectors_look_like_video_frames():
    data = FrameLikeVectors(3000, dim=512, frames_per_video=600)
    first, second = data.video(0), data.video(1)
    assert 0.93 < (first[1:] * first[:-1]).sum(1).mean() < 0.98  # neighbouring frames
    assert 0.7 < (first @ first.T).mean() < 0.85  # one video
    assert 0.4 < (first @ second.T).mean() < 0.6  # unrelated videos
    best = (data.text_queries(50) @ data.all().T).max(axis=1)
    assert 0.25 < best.mean() < 0.4  # text-like queries: cosine ~0.3 to the best frame
    np.testing.assert_array_equal(data.video(1), second)  # reproducible

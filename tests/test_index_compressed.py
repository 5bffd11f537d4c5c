"""The compressed (IVF-PQ) frame index: re-ranked from the memory-mapped store, streamed builds,
list counts that grow with the data, the kind chosen by size, and its bad inputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fiftyone_clipit.bench.vectors import FrameLikeVectors
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.index import FrameIndex, build_compressed, build_index
from fiftyone_clipit.index_calibration import RERANK_FACTORS
from fiftyone_clipit.index_layout import (
    COMPRESSED_MIN_FRAMES,
    EXACT_MAX_FRAMES,
    choose_kind,
    describe_kind,
    nlist_for,
    pack_ids,
    pq_subquantizers,
)
from fiftyone_clipit.knn import exact_top_k, recall_at_k
from fiftyone_clipit.mapped import MappedStore, map_member
from fiftyone_clipit.store import EmbeddingStore, FrameEmbeddings

DIM = 64


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """30,000 frame-like 64-d frames in 100 videos of a real embedding store (every 15th frame)."""
    root = str(tmp_path_factory.mktemp("store"))
    data = FrameLikeVectors(30_000, dim=DIM, frames_per_video=300)
    store = EmbeddingStore(root)
    keys = [f"v{v}" for v in range(data.n_videos)]
    for v, key in enumerate(keys):
        store.put(key, FrameEmbeddings(15 * np.arange(1, data.video_length(v) + 1), data.video(v), {"model": "m"}))
    source = MappedStore(root)
    index = build_compressed(source, keys, DIM, {"model": "m"})
    return data, root, keys, index


def exact_hits(root: str, keys: list[str], queries: np.ndarray, k: int) -> list[list[tuple[str, int]]]:
    """Exact top k by brute force over every stored vector (np.load, not the memory maps)."""
    store = EmbeddingStore(root)
    names, numbers, vectors = [], [], []
    for key in keys:
        item = store.get(key)
        names += [key] * len(item.frame_numbers)
        numbers.append(item.frame_numbers)
        vectors.append(item.embeddings)
    numbers, vectors = np.concatenate(numbers), np.concatenate(vectors)
    return [[(names[i], int(numbers[i])) for i in np.argsort(-(vectors @ q))[:k]] for q in queries]


def as_pairs(hits) -> list[list[tuple[str, int]]]:
    return [list(zip(h.keys, h.frame_numbers.tolist())) for h in hits]


def pair_recall(found, truth) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def test_list_count_grows_with_the_data_past_1024():
    assert nlist_for(20_000) == 512 and nlist_for(1_000_000) == 1024
    assert nlist_for(4_000_000) == 2048 and nlist_for(10_000_000) == 4096 and nlist_for(72_000_000) == 8192
    assert choose_kind(EXACT_MAX_FRAMES) == "flat" and choose_kind(EXACT_MAX_FRAMES + 1) == "ivf"
    assert choose_kind(COMPRESSED_MIN_FRAMES) == "ivf" and choose_kind(COMPRESSED_MIN_FRAMES + 1) == "ivfpq"


def test_store_members_are_memory_mapped_as_stored(archive):
    _, root, keys, _ = archive
    path = os.path.join(root, f"{keys[3]}.npz")
    mapped = map_member(path, "embeddings")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    item = EmbeddingStore(root).get(keys[3])
    np.testing.assert_array_equal(mapped, item.embeddings)
    source = MappedStore(root)
    np.testing.assert_array_equal(source.rows(keys[3], item.frame_numbers[[4, 0, 9]]), item.embeddings[[4, 0, 9]])
    with pytest.raises(ClipItError, match="lacks frames"):
        source.rows(keys[3], np.array([16]))  # frames are every 15th
    with pytest.raises(ClipItError, match="no embeddings for video 'nope'"):
        source.rows("nope", np.array([1]))


def test_a_rewritten_video_is_mapped_again(tmp_path):
    store, source = EmbeddingStore(str(tmp_path)), MappedStore(str(tmp_path))
    store.put("a", FrameEmbeddings(np.array([1, 2]), np.eye(2, dtype=np.float32), {}))
    np.testing.assert_array_equal(source.rows("a", np.array([2])), [[0, 1]])
    store.put("a", FrameEmbeddings(np.array([1, 2, 3]), np.eye(3, 2, dtype=np.float32)[::-1].copy(), {}))
    os.utime(os.path.join(str(tmp_path), "a.npz"), ns=(1, 1))  # a different stamp even within one tick
    np.testing.assert_array_equal(source.rows("a", np.array([3])), [[1, 0]])


def test_compressed_index_keeps_codes_not_vectors_and_returns_exact_cosines(archive, tmp_path):
    data, root, keys, index = archive
    assert index.kind == "ivfpq" and len(index) == data.n_vectors and index.nlist == nlist_for(data.n_vectors)
    assert index.layout.startswith(f"IVF{nlist_for(data.n_vectors)},PQ16x4fs")
    size = os.path.getsize(index.save(str(tmp_path)))
    assert size < data.n_vectors * DIM * 4 / 8  # 8 bytes of code (16 x 4 bits) + 8 of id per frame, not 256
    queries = data.near_queries(5, seed=3)
    (hits,) = index.search(queries[0], 10, nprobe=8)
    exact = MappedStore(root)
    for key, number, score in zip(hits.keys, hits.frame_numbers, hits.scores):
        assert score == pytest.approx(float(exact.rows(key, np.array([number]))[0] @ queries[0]), abs=1e-5)
    assert (np.diff(hits.scores) <= 0).all()


def test_calibrated_recall_after_reranking_matches_an_independent_exact_search(archive, tmp_path):
    data, root, keys, index = archive
    report = index.calibrate({"near": data.near_queries(100), "text": data.text_queries(100)}, target_recall=0.95)
    assert report["near"]["recall"] >= 0.95 and report["text"]["recall"] >= 0.95
    # text-like queries need a larger re-rank pool than frames: the smallest that reaches the target
    assert report["near"]["rerank"] == RERANK_FACTORS[0] < report["text"]["rerank"]
    assert index.rerank == {"near": report["near"]["rerank"], "text": report["text"]["rerank"]}
    for kind, queries in (("near", data.near_queries(40, seed=9)), ("text", data.text_queries(40, seed=9))):
        found = as_pairs(index.search(queries, 10, query_kind=kind))  # new queries, truth by brute force
        assert pair_recall(found, exact_hits(root, keys, queries, 10)) >= 0.9, kind
    index.save(str(tmp_path))
    loaded = FrameIndex.load(str(tmp_path), source=MappedStore(root))
    assert loaded.rerank == index.rerank and loaded.nprobe == index.nprobe


def test_layouts_are_named_in_faiss_words():
    assert describe_kind("ivfpq", 4096, 512) == "IVF4096,PQ128x4fs (inner product, re-ranked exactly)"
    assert describe_kind("ivfpq", 2048, 512, nbits=8, m=64).startswith("IVF2048,PQ64x8 ")  # saved before fast-scan
    assert describe_kind("ivf", 1024, 512) == "IVF1024,Flat (inner product)"
    with pytest.raises(ClipItError, match="even embedding dimension, got 511"):
        pq_subquantizers(511)


def test_store_rows_are_read_as_stored_and_follow_rewrites(tmp_path):
    root = str(tmp_path)
    store = EmbeddingStore(root)
    rng = np.random.default_rng(4)
    even, uneven = 15 * np.arange(1, 41), np.array([1, 2, 5, 9, 30, 31, 32, 60])
    store.put("a", FrameEmbeddings(even, rng.standard_normal((40, 8)).astype(np.float32), {}))
    store.put("b", FrameEmbeddings(uneven, rng.standard_normal((8, 8)).astype(np.float32), {}))
    source = MappedStore(root)
    for key, wanted in (("a", even[[7, 3, 4, 5, 39, 0, 3]]), ("b", uneven[[6, 0, 4, 5, 7]]), ("a", even[:0])):
        item = store.get(key)
        expected = item.embeddings[np.searchsorted(item.frame_numbers, wanted)]
        np.testing.assert_array_equal(source.rows(key, wanted), expected)
    for key, missing in (("a", [16]), ("a", [15 * 41]), ("b", [3])):
        with pytest.raises(ClipItError, match=f"Video '{key}' in the store lacks frames"):
            source.rows(key, np.array(missing))
    replaced = rng.standard_normal((3, 8)).astype(np.float32)
    store.put("a", FrameEmbeddings(np.array([2, 4, 8]), replaced, {}))
    os.utime(os.path.join(root, "a.npz"), ns=(1, 1))  # a new stamp even within the clock's resolution
    np.testing.assert_array_equal(source.rows("a", np.array([8, 2])), replaced[[2, 0]])
    with pytest.raises(ClipItError, match="no embeddings for video 'c'"):
        source.rows("c", np.array([1]))


def test_mapped_index_file_answers_as_the_loaded_one(archive, tmp_path):
    data, root, _, index = archive
    index.save(str(tmp_path))
    loaded = FrameIndex.load(str(tmp_path), source=MappedStore(root))
    mapped = FrameIndex.load(str(tmp_path), source=MappedStore(root), mmap=True)
    queries = data.text_queries(10, seed=5)
    for a, b, c in zip(*(i.search(queries, 10, nprobe=16) for i in (index, loaded, mapped))):
        assert a.keys == b.keys == c.keys
        np.testing.assert_array_equal(a.frame_numbers, c.frame_numbers)
    without = FrameIndex.load(str(tmp_path))
    with pytest.raises(ClipItError, match="MappedStore"):
        without.search(queries[0], 3)


def test_videos_removed_and_added_and_rebuilt_from_the_store(archive):
    data, root, keys, built = archive
    index = build_compressed(MappedStore(root), keys[:50], DIM)
    query = data.video(7)[3]
    (hits,) = index.search(query, 1, nprobe=16)
    assert (hits.keys[0], int(hits.frame_numbers[0])) == ("v7", 4 * 15)
    assert index.remove("v7") == 300 and "v7" not in index
    (hits,) = index.search(query, 10, nprobe=64)
    assert "v7" not in hits.keys
    numbers, vectors = MappedStore(root).video("v60")
    index.add("v60", numbers, vectors)
    (hits,) = index.search(vectors[5], 1, nprobe=16)
    assert (hits.keys[0], int(hits.frame_numbers[0])) == ("v60", int(numbers[5]))
    index.rebuild("ivfpq")
    assert index.kind == "ivfpq" and len(index) == 50 * 300 and set(index.keys) == set(keys[:50]) - {"v7"} | {"v60"}
    (hits,) = index.search(vectors[5], 1, nprobe=16)
    assert (hits.keys[0], int(hits.frame_numbers[0])) == ("v60", int(numbers[5]))
    index.rebuild("flat")  # back to exact search: vectors come from the store
    (hits,) = index.search(query, 1)
    assert hits.keys[0] != "v7" and len(index) == 50 * 300


@pytest.mark.slow  # trains OPQ / runs the search bench: seconds, not milliseconds
def test_opq_rotation_is_a_layout_of_its_own(archive):
    data, root, keys, _ = archive
    index = build_compressed(MappedStore(root), keys[:40], DIM, opq=True)
    assert index.layout.startswith("OPQ16,IVF512,PQ16x4fs")
    (hits,) = index.search(data.video(2)[10], 1, nprobe=16)
    assert (hits.keys[0], int(hits.frame_numbers[0])) == ("v2", 11 * 15)


def test_ivfpq_needs_a_store_to_rerank_from():
    data = FrameLikeVectors(12_000, dim=DIM, frames_per_video=300)
    items = [(f"v{v}", np.arange(1, 301), data.video(v)) for v in range(data.n_videos)]
    with pytest.raises(ClipItError, match="source"):
        build_index(items, DIM, kind="ivfpq")
    with pytest.raises(ValueError, match="Available: \\['auto', 'flat', 'ivf', 'ivfpq'\\]"):
        build_index(items, DIM, kind="hnsw")


def test_streamed_exact_search_equals_one_pass():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5000, 16)).astype(np.float32)
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    ids = pack_ids(3, np.arange(1, 5001))
    chunks = [(vectors[i : i + 700], ids[i : i + 700]) for i in range(0, 5000, 700)]
    scores, found = exact_top_k(chunks, queries, 10)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert recall_at_k(found, ids[truth]) == 1.0
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, truth, 1), rtol=1e-5)


@pytest.mark.slow  # trains OPQ / runs the search bench: seconds, not milliseconds
def test_search_bench_reuses_its_store_and_reports_failed_gates(tmp_path):
    import argparse

    from fiftyone_clipit.bench import search

    parser = argparse.ArgumentParser()
    search.add_arguments(parser)
    store = str(tmp_path / "store")
    common = ["--frames", "24000", "--dim", "64", "--queries", "20", "--baseline-frames", "0", "--store", store]
    generated = search.run(parser.parse_args(common + ["--generate-only"]))
    assert not generated["store_reused"] and "median_ms" not in generated
    with open(os.path.join(store, "bench-search.json")) as f:
        truth = json.load(f)["truth_text"]
    args = parser.parse_args(common + ["--kind", "ivfpq", "--max-ms", "0", "--min-recall", "0.5"])
    report = search.run(args)
    assert report["store_reused"] and report["kind"] == "ivfpq" and report["frames"] == 24000
    assert report["layout"].startswith("IVF512,PQ16x4fs") and report["rerank"] == 10
    assert report["passed"]["median_ms_text"] is False and report["passed_all"] is False  # 0 ms cannot be met
    assert report["passed"]["recall_at_10_text"] is (report["recall_at_10_text"] >= 0.5)
    assert report["passed"]["peak_memory_gb"] is (report["peak_memory_gb"] <= 4.0)
    assert report["index_gb_at_100m_frames"] == round(report["index_mb_per_million_frames"] * 100 / 1024, 1)
    with open(os.path.join(store, "bench-search.json")) as f:
        assert json.load(f)["truth_text"] == truth  # reused, not generated again
    other = search.run(parser.parse_args(common[:-2] + ["--store", store, "--seed", "1", "--generate-only"]))
    assert not other["store_reused"]  # another seed is another store


def test_calibration_keeps_the_best_recall_within_the_time_budget_when_the_target_is_out_of_reach(archive, monkeypatch):
    data, root, keys, built = archive
    index = build_compressed(MappedStore(root), keys[:60], DIM)
    cost = lambda self, queries, k, nprobe, rerank=10: float(nprobe * rerank)  # noqa: E731  a stand-in clock
    monkeypatch.setattr(FrameIndex, "_median_ms", cost)
    queries = {"text": data.text_queries(60, seed=4)}
    unlimited = index.calibrate(queries, target_recall=1.01, max_ms=None)["text"]  # 1.01: never reached
    budget = unlimited["nprobe"] * unlimited["rerank"] - 1  # the best setting is just too slow
    limited = index.calibrate(queries, target_recall=1.01, max_ms=budget)["text"]
    assert limited["median_ms"] <= budget < unlimited["median_ms"]
    assert limited["recall"] <= unlimited["recall"]
    assert (index.nprobe["text"], index.rerank["text"]) == (limited["nprobe"], limited["rerank"])
    reached = index.calibrate(queries, target_recall=0.5, max_ms=0)["text"]  # reached: the budget plays no part
    assert reached["recall"] >= 0.5 and reached["median_ms"] > 0

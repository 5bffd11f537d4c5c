"""The frame index in Milvus (a real Milvus Lite, the client API of a Milvus server): the same
top 10 as exact FAISS search, videos replaced, deleted and added, the clips view from a search,
an unreachable server, and a collection that no longer matches the embeddings."""

from __future__ import annotations

import os
import socket
import time
import uuid

import fiftyone as fo
import numpy as np
import pytest

from conftest import write_video
from fiftyone_clipit import add_videos, build_frame_index, compute_frame_embeddings, search_frames
from fiftyone_clipit.bench.vectors import FrameLikeVectors
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import embedding_store
from fiftyone_clipit.fo.index import INDEX_RUN, index_dir, load_frame_index
from fiftyone_clipit.index import build_index
from fiftyone_clipit.milvus_index import MilvusFrameIndex

DIM = 64


def pairs(hits) -> list[list[tuple[str, int]]]:
    return [list(zip(h.keys, h.frame_numbers.tolist())) for h in hits]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def videos():
    data = FrameLikeVectors(6000, dim=DIM, frames_per_video=300)
    return data, [(f"v{v}", 15 * np.arange(1, 301), data.video(v)) for v in range(data.n_videos)]


def test_same_top_10_as_exact_faiss_and_videos_kept_in_step(videos, tmp_path):
    data, items = videos
    milvus = MilvusFrameIndex.create(str(tmp_path / "frames.db"), "frames", DIM, {"model": "m"})
    for key, numbers, vectors in items:
        milvus.add(key, numbers, vectors)
    exact = build_index(items, DIM, {"model": "m"}, kind="flat")
    queries = np.concatenate([data.near_queries(30), data.text_queries(30)])
    found, truth = milvus.search(queries, 10), exact.search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(pairs(found), pairs(truth))])
    assert recall >= 0.99 and len(milvus) == len(exact) == 6000
    np.testing.assert_allclose(found[0].scores, truth[0].scores, atol=1e-4)

    query = items[4][2][10]
    assert pairs(milvus.search(query, 1)) == [[("v4", 11 * 15)]]
    assert milvus.remove("v4") == 300 and "v4" not in milvus
    assert "v4" not in milvus.search(query, 50)[0].keys
    milvus.add("v4", items[4][1][:100], items[4][2][:100])  # re-embedded: fewer frames
    milvus.add("v4", items[4][1][:100], items[4][2][:100])  # twice: replaced, not doubled
    assert pairs(milvus.search(query, 1)) == [[("v4", 11 * 15)]]
    everything = milvus.search(query, len(milvus))[0]
    assert len(everything.keys) == len(milvus) == 5700 + 100 and everything.keys.count("v4") == 100

    record = str(tmp_path / "record")
    milvus.save(record)
    loaded = MilvusFrameIndex.load(record)
    assert loaded.keys == milvus.keys and pairs(loaded.search(queries[:3], 10)) == pairs(milvus.search(queries[:3], 10))


def test_a_collection_that_no_longer_matches_is_refused_with_the_remedy(videos, tmp_path):
    _, items = videos
    uri = str(tmp_path / "frames.db")
    milvus = MilvusFrameIndex.create(uri, "frames", DIM, {"model": "m"})
    milvus.add(*items[0])
    milvus.save(str(tmp_path / "record"))
    with pytest.raises(ClipItError, match="already has a collection 'frames'.*overwrite=True"):
        MilvusFrameIndex.create(uri, "frames", 16)
    MilvusFrameIndex.create(uri, "frames", 16, overwrite=True)
    with pytest.raises(ClipItError, match="of dimension \\[16\\], not 64; rebuild it .*overwrite=True"):
        MilvusFrameIndex.load(str(tmp_path / "record"))
    with pytest.raises(ClipItError, match="holds 64-d vectors"):
        milvus.add("x", np.array([1]), np.ones((1, 8), np.float32))


def test_an_unreachable_server_is_named_within_a_bounded_time():
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(ClipItError, match=f"Cannot reach Milvus at '{uri}'"):
        MilvusFrameIndex.create(uri, "frames", DIM, timeout=3)
    assert time.monotonic() - start < 15


@pytest.fixture(scope="module")
def embedded(video_dir, tiny_encoder):
    dataset = fo.Dataset(f"clipit-milvus-{uuid.uuid4().hex[:8]}")
    add_videos(dataset, [str(video_dir)])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    build_frame_index(dataset)
    return dataset


def test_search_through_milvus_gives_the_faiss_videos_and_clips(embedded, tiny_encoder):
    dataset = embedded.clone()
    report = build_frame_index(dataset, backend="milvus")
    assert (report.kind, report.n_videos, report.n_frames) == ("milvus", 2, 18)
    config = dataset.get_run_info(f"{INDEX_RUN}_milvus").config
    assert config.backend == "milvus" and config.uri.endswith("frames.db") and config.n_frames == 18
    for query in ("a red square", embedding_store(dataset).get(dataset.first().id).embeddings[2]):
        faiss_view = search_frames(dataset, query, k=8, model=tiny_encoder)
        faiss_matches = faiss_view.values("clipit_matches.detections.support")
        milvus_view = search_frames(dataset, query, k=8, model=tiny_encoder, backend="milvus")
        assert milvus_view.values("id") == faiss_view.values("id")
        assert milvus_view.values("clipit_matches.detections.support") == faiss_matches
        assert len(milvus_view.to_clips("clipit_matches")) == sum(len(m) for m in faiss_matches)


def test_milvus_index_in_step_when_videos_are_deleted_and_added(embedded, tiny_encoder, tmp_path):
    dataset = embedded.clone()
    build_frame_index(dataset, backend="milvus")
    faiss_files = sorted(os.listdir(index_dir(dataset)))
    gone = dataset.first().id
    query = embedding_store(dataset).get(gone).embeddings[0]
    dataset.delete_samples(gone)
    view = search_frames(dataset, query, k=100, backend="milvus")
    assert gone not in view.values("id") and gone not in load_frame_index(dataset, "milvus").keys
    (new_id,) = add_videos(dataset, [str(write_video(tmp_path / "extra.mp4", 60, fps=30))])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    report = build_frame_index(dataset, backend="milvus")
    assert (report.n_added, report.n_removed, report.n_videos, report.n_frames) == (1, 0, 2, 16)
    new_frame = embedding_store(dataset).get(new_id).embeddings[1]
    assert search_frames(dataset, new_frame, k=1, backend="milvus").values("id") == [new_id]
    assert sorted(os.listdir(index_dir(dataset))) == faiss_files  # the FAISS index untouched


def test_unreachable_milvus_leaves_the_faiss_index_as_it_was(embedded):
    dataset = embedded.clone()
    build_frame_index(dataset)
    meta = os.path.join(index_dir(dataset), "frame_index.json")
    before = (open(meta).read(), os.stat(meta).st_mtime_ns)
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ClipItError, match=uri):
        build_frame_index(dataset, backend="milvus", uri=uri)
    assert (open(meta).read(), os.stat(meta).st_mtime_ns) == before
    assert not dataset.has_run(f"{INDEX_RUN}_milvus")
    with pytest.raises(ClipItError, match="Unknown backend 'qdrant'. Valid ones are \\['faiss', 'milvus'\\]"):
        build_frame_index(dataset, backend="qdrant")


def test_a_highlight_reel_from_milvus_equals_the_faiss_one(embedded, tmp_path):
    """A dataset whose frames are in Milvus only gets its reel's candidates from Milvus."""
    import json

    from fiftyone_clipit.fo.highlights import ReelOptions, create_highlight_reel

    dataset = embedded.clone()
    faiss = create_highlight_reel(dataset, "a red square", 2.0, str(tmp_path / "faiss"))
    build_frame_index(dataset, backend="milvus")
    milvus = create_highlight_reel(dataset, "a red square", 2.0, str(tmp_path / "milvus"), ReelOptions(backend="milvus"))
    moments = lambda reel: [(m["key"], m["first"], m["last"]) for m in json.loads(open(reel.manifest).read())["moments"]]  # noqa: E731
    assert moments(milvus) == moments(faiss) and moments(faiss)
    dataset.delete_run(INDEX_RUN)
    automatic = create_highlight_reel(dataset, "a red square", 2.0, str(tmp_path / "auto"))
    assert moments(automatic) == moments(faiss) and not dataset.has_run(INDEX_RUN)

"""Frame embeddings, the frame index and search against FiftyOne's real database and real videos.

Everything runs on the mongod FiftyOne starts for this test session, PyAV on generated and real
mp4s, open_clip's tiny random model and real FAISS; a killed run is a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F

from conftest import write_audio_only, write_video
from fiftyone_clipit import add_videos, build_frame_index, compute_frame_embeddings, search_frames
from fiftyone_clipit.errors import BatchError, ClipItError
from fiftyone_clipit.fo.common import embedding_store
from fiftyone_clipit.fo.index import INDEX_RUN, load_frame_index
from fiftyone_clipit.index import EmptyIndexError
from fiftyone_clipit.store import EmbeddingStore, FrameEmbeddings
from test_decode import corner_image, write_frames

pytestmark = pytest.mark.slow


def same_database_env() -> dict[str, str]:
    """The environment for a child process that uses this session's mongod by its URI (without
    one, FiftyOne's service attaches a child to any FiftyOne database service it finds)."""
    from fiftyone.core.odm.database import get_db_client

    host, port = get_db_client().address
    return {**os.environ, "FIFTYONE_DATABASE_URI": f"mongodb://{host}:{port}"}


def new_dataset(persistent: bool = False) -> fo.Dataset:
    dataset = fo.Dataset(f"clipit-search-{uuid.uuid4().hex[:8]}")
    dataset.persistent = persistent
    return dataset


@pytest.fixture(scope="module")
def indexed(video_dir, real_videos, tiny_encoder):
    """Generated and real videos, embedded at 2 fps and indexed."""
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir), *map(str, real_videos)])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    build_frame_index(dataset)
    return dataset


def test_run_records_what_was_embedded_and_deleting_it_deletes_the_store(video_dir, tiny_encoder):
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir)])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    config = dataset.get_run_info("clipit_embeddings").config
    assert (config.model, config.fps, config.dim, config.precision) == ("tiny-random", 2.0, 32, "fp32")
    assert config.n_videos == 2 and config.n_frames == 6 + 12  # 3 s and 6 s at 2 fps
    results = dataset.load_run_results("clipit_embeddings")
    assert sorted(results.frames_per_video.values()) == [6, 12]
    store_dir = Path(config.store_dir)
    assert len(list(store_dir.glob("*.npz"))) == 2
    dataset.delete_run("clipit_embeddings")
    assert "clipit_embeddings" not in dataset.list_runs() and not store_dir.exists()


def test_resume_after_a_killed_run_embeds_only_what_is_missing(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(8):
        write_video(folder / f"clip{i}.mp4", 300, fps=30, size=(640, 360))
    dataset = new_dataset(persistent=True)
    add_videos(dataset, [str(folder)])
    store_dir = Path(embedding_store(dataset).root)
    script = (
        "import fiftyone as fo, fiftyone_clipit as fc;"
        f"fc.compute_frame_embeddings(fo.load_dataset('{dataset.name}'), model='tiny-random', fps=30.0)"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], env=same_database_env())
    deadline = time.time() + 300
    while not list(store_dir.glob("*.npz")) and time.time() < deadline and worker.poll() is None:
        time.sleep(0.005)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert worker.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stored = {p.stem: p.stat().st_mtime_ns for p in store_dir.glob("*.npz")}
    assert 1 <= len(stored) < 8
    store = embedding_store(dataset)
    for key in stored:  # what the killed run stored is complete
        item = store.get(key)
        assert len(item.frame_numbers) == 300 and item.embeddings.shape == (300, 32)
    report = compute_frame_embeddings(dataset, model="tiny-random", fps=30.0)
    assert report.n_up_to_date == len(stored) and report.n_embedded == 8 - len(stored)
    assert {k: (store_dir / f"{k}.npz").stat().st_mtime_ns for k in stored} == stored
    assert len(store.keys()) == 8 and not report.failures
    dataset.delete()


def test_search_frames_finds_a_frame_and_returns_videos_and_clips(indexed):
    store = embedding_store(indexed)
    target = indexed.match(F("filepath").ends_with("colors_b.mp4")).first()
    item = store.get(target.id)
    query = item.embeddings[3]  # the frame sampled at 1.5 s: frame 38 at 25 fps
    view = search_frames(indexed, query, k=5)
    assert view.first().id == target.id
    best = view.first().clipit_matches.detections
    assert best and max(d.confidence for d in best) == pytest.approx(1.0, abs=1e-5)
    assert any(d.support[0] <= int(item.frame_numbers[3]) <= d.support[1] for d in best)
    relevance = view.values("clipit_relevance")
    assert relevance == sorted(relevance, reverse=True) and len(view) <= 5
    n_moments = sum(len(s.clipit_matches.detections) for s in view)
    assert len(view.to_clips("clipit_matches")) == n_moments
    assert len(indexed.match(F("clipit_relevance") > 0.999)) == 1
    assert indexed.get_run_info("clipit_search").config.k == 5


def test_text_query_in_another_process_and_brain_sort_by_similarity(indexed, tiny_encoder):
    view = search_frames(indexed, "a red square", k=len(load_frame_index(indexed)), model=tiny_encoder)
    order = view.values("id")
    assert sorted(order) == sorted(indexed.values("id"))
    brain = indexed.sort_by_similarity("a red square", k=3, brain_key="clipit_frames")
    assert brain.values("id") == order[:3]
    last = indexed.select(order[-1]).first()
    frame = embedding_store(indexed).get(last.id).embeddings[1]
    assert indexed.sort_by_similarity(frame, k=1, brain_key="clipit_frames").values("id") == [last.id]
    script = (
        "import json, fiftyone as fo, fiftyone_clipit as fc;"
        f"d = fo.load_dataset('{indexed.name}');"
        "v = fc.search_frames(d, 'a red square', k=1000);"
        "b = d.sort_by_similarity('a red square', k=3, brain_key='clipit_frames');"
        "print(json.dumps([v.values('id'), b.values('id')]))"
    )
    indexed.persistent = True
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=same_database_env())
    finally:
        indexed.persistent = False
    assert out.returncode == 0, out.stderr
    other_search, other_brain = json.loads(out.stdout.strip().splitlines()[-1])
    assert other_search == order and other_brain == order[:3]


def test_index_stays_in_step_when_videos_are_deleted_and_added(video_dir, tmp_path, tiny_encoder):
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir)])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    build_frame_index(dataset)
    gone = dataset.first().id
    query = embedding_store(dataset).get(gone).embeddings[0]
    dataset.delete_samples(gone)
    view = search_frames(dataset, query, k=100)
    assert gone not in view.values("id") and gone not in load_frame_index(dataset).keys
    extra = write_video(tmp_path / "extra.mp4", 60, fps=30)
    (new_id,) = add_videos(dataset, [str(extra)])
    assert embedding_store(dataset).get(gone) is not None
    assert compute_frame_embeddings(dataset, model=tiny_encoder).n_pruned == 1
    assert embedding_store(dataset).keys() == sorted(dataset.values("id"))
    report = build_frame_index(dataset)
    assert (report.n_added, report.n_removed, report.n_videos) == (1, 0, 2)
    index = load_frame_index(dataset)
    assert sorted(index.keys) == sorted(dataset.values("id")) and len(index) == 12 + 4
    assert dataset.get_run_info(INDEX_RUN).config.n_frames == 16
    assert new_id in search_frames(dataset, embedding_store(dataset).get(new_id).embeddings[1], k=1).values("id")


def test_bad_videos_are_named_and_the_others_embedded(video_dir, tmp_path, tiny_encoder):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(60)]
    whole = write_frames(tmp_path / "whole.mp4", images, fps=30, faststart=True)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    one = write_frames(tmp_path / "one.mp4", [corner_image()])
    rotated = write_frames(tmp_path / "rotated.mp4", [corner_image()] * 10, rotation=90)
    audio = write_audio_only(tmp_path / "audio.mp4")
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir / "colors_a.mp4"), str(broken), str(one), str(rotated)])
    dataset.add_sample(fo.Sample(filepath=str(audio)))  # bypasses add_videos' own check
    with pytest.raises(BatchError) as error:
        compute_frame_embeddings(dataset, model=tiny_encoder)
    message = str(error.value)
    assert "broken.mp4" in message and "of 60 frames" in message and "on_broken='keep'" in message
    assert "audio.mp4" in message and "no video stream" in message
    assert error.value.n_ok == 3
    store = embedding_store(dataset)
    by_name = {Path(p).name: i for i, p in zip(dataset.values("id"), dataset.values("filepath"))}
    assert store.get(by_name["one.mp4"]).frame_numbers.tolist() == [1]
    assert len(store.get(by_name["rotated.mp4"]).frame_numbers) == 2  # 10 frames at 10 fps, 2 fps
    assert store.get(by_name["broken.mp4"]) is None
    report = compute_frame_embeddings(dataset, model=tiny_encoder, on_broken="keep", skip_failures=True)
    assert report.n_embedded == 1 and report.n_up_to_date == 3 and len(report.failures) == 1
    (partial,) = report.partial
    assert "broken.mp4" in partial.item and "of 60 frames" in partial.reason
    kept = store.get(by_name["broken.mp4"])
    assert 0 < len(kept.frame_numbers) < 4 and kept.info["broken"]
    with pytest.raises(ClipItError, match="Unknown on_broken 'skip'"):
        compute_frame_embeddings(dataset, model=tiny_encoder, on_broken="skip")


def test_search_bad_input(video_dir, tmp_path, tiny_encoder):
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir / "colors_a.mp4")])
    with pytest.raises(ClipItError, match="compute_frame_embeddings first"):
        build_frame_index(dataset)
    (gone,) = add_videos(dataset, [str(write_video(tmp_path / "gone.mp4", 30))])
    Path(dataset[gone].filepath).unlink()
    compute_frame_embeddings(dataset.select(gone), model=tiny_encoder, skip_failures=True)
    build_frame_index(dataset)
    with pytest.raises(EmptyIndexError, match="holds no frames"):
        search_frames(dataset, "a person", model=tiny_encoder)
    compute_frame_embeddings(dataset, model=tiny_encoder, skip_failures=True)
    view = search_frames(dataset, "a person", k=1000, model=tiny_encoder)  # more than the 6 frames
    assert len(view) == 1 and len(view.first().clipit_matches.detections) >= 1
    assert load_frame_index(dataset).search(np.ones(32, np.float32), 1000)[0].scores.shape == (6,)
    with pytest.raises(ClipItError, match=r"\(1, 16\).*32-d vectors \(made by 'tiny-random'\)"):
        search_frames(dataset, np.ones(16, np.float32))
    other = type(tiny_encoder)("other-model", tiny_encoder.model, tiny_encoder.tokenizer, tiny_encoder.device)
    with pytest.raises(ClipItError, match="embeddings by 'tiny-random'.*'other-model'"):
        search_frames(dataset, "a person", model=other)
    with pytest.raises(ClipItError, match="non-empty"):
        search_frames(dataset, "  ", model=tiny_encoder)
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        search_frames(dataset, "a person", k=0, model=tiny_encoder)


@pytest.mark.reliability("bad_input")
def test_query_naming_a_file_searches_by_that_image_or_is_refused(video_dir, tmp_path, tiny_encoder):
    """A query that looks like a path is an image query: a missing file, a text file named .mp4
    and a video are refused (library, and CLI as one line, exit 1); sentences with full stops
    still search by text."""
    from PIL import Image

    from conftest import frame_color

    dataset = new_dataset(persistent=True)
    add_videos(dataset, [str(video_dir / "colors_a.mp4")])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    build_frame_index(dataset)
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes, not a video\n")
    refused = {
        str(tmp_path / "missing.png"): "looks like a file, but there is no such file",
        "missing.png": "looks like a file, but there is no such file",
        str(notes): "is not a readable image",
        str(video_dir / "colors_a.mp4"): "is not a readable image",
    }
    remedy = "pass an existing image file, or a sentence without a file extension to search by text"
    for query, why in refused.items():
        with pytest.raises(ClipItError, match=f"The query '{query}' {why}.*{remedy}"):
            search_frames(dataset, query, model=tiny_encoder)
    assert not dataset.has_field("clipit_matches")
    cli = str(Path(sys.executable).parent / "fiftyone-clipit")
    try:
        for query in ("missing.png", str(notes)):
            result = subprocess.run([cli, "search", dataset.name, "--query", query], capture_output=True,
                                    text=True, env=same_database_env())
            assert result.returncode == 1 and result.stdout == ""
            (line,) = result.stderr.strip().splitlines()
            assert line.startswith(f"error: The query '{query}'") and remedy in line
    finally:
        dataset.persistent = False
    frame = tmp_path / "frame 31.png"  # frame 31 is sampled at 2 fps (0, 0.5, 1.0 s ...)
    Image.new("RGB", (96, 64), frame_color(30)).save(frame)
    view = search_frames(dataset, str(frame), k=1, model=tiny_encoder)
    (match,) = view.first().clipit_matches.detections
    assert match.label == "frame 31.png" and match.support[0] <= 31 <= match.support[1]
    for sentence in ("a red square. a blue one", "the 3.5 m jump"):
        view = search_frames(dataset, sentence, k=2, model=tiny_encoder)
        assert {d.label for d in view.first().clipit_matches.detections} == {sentence}
    dataset.delete()


def test_operator_and_cli_search(indexed):
    import fiftyone.operators as foo

    result = foo.execute_operator(
        "@clipit/video-summarization/search_frames", ctx={"dataset": indexed, "params": {"query": "a person", "k": 3}}
    )
    result.raise_exceptions()
    assert 1 <= result.result["videos"] <= 3 and result.result["shown"] >= result.result["videos"]
    # issue 24: fewer moments than frames asked for says why
    assert (result.result["shown"] < 3) == ("why_fewer" in result.result)
    if result.result["shown"] < 3:
        assert result.result["why_fewer"].startswith(f"The 3 best-matching frames make {result.result['shown']} moment(s)")
    cli = str(Path(sys.executable).parent / "fiftyone-clipit")
    indexed.persistent = True
    try:
        index = subprocess.run([cli, "index", indexed.name], capture_output=True, text=True, env=same_database_env())
        search = subprocess.run(
            [cli, "search", indexed.name, "--query", "a person", "-k", "3"],
            capture_output=True, text=True, env=same_database_env(),
        )
    finally:
        indexed.persistent = False
    assert index.returncode == 0, index.stderr
    assert "Frame index (flat: Flat (inner product))" in index.stdout and "0 added, 0 removed" in index.stdout
    assert search.returncode == 0, search.stderr
    assert "frames " in search.stdout and "videos; in the App" in search.stdout


def test_prune_keeps_what_another_process_writes_meanwhile_and_live_temporary_files(tmp_path):
    store = EmbeddingStore(str(tmp_path / "store"))
    item = FrameEmbeddings(np.array([1, 2]), np.ones((2, 4), np.float32), {"model": "m"})
    for key in ("kept", "deleted_earlier", "written_meanwhile"):
        store.put(key, item)
    old, started = time.time() - 3600, time.time() - 60
    os.utime(Path(store.root) / "deleted_earlier.npz", (old, old))
    dead_temp, live_temp = Path(store.root) / ".x.1.npz.tmp", Path(store.root) / ".y.2.npz.tmp"
    dead_temp.write_bytes(b"half")
    live_temp.write_bytes(b"half")
    os.utime(dead_temp, (old, old))
    assert store.prune({"kept"}, written_before=started) == ["deleted_earlier"]
    assert store.keys() == ["kept", "written_meanwhile"]
    assert not dead_temp.exists() and live_temp.exists()

"""Faults: runs killed with SIGKILL mid-way, and the database going away mid-run.

Each test starts the real CLI (or a short `python -c` over the library) in a child process on
this session's MongoDB, kills it at a chosen moment, checks that what is on disk and in the
database is complete or absent (never half-written and taken for complete), then runs the same
command again and counts what was redone. Every wait is bounded, so nothing can hang CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import av
import fiftyone as fo
import numpy as np
import pytest
from bson import ObjectId

from conftest import _free_port, _start_mongod, write_video
from fiftyone_clipit import add_videos, compute_frame_embeddings, create_summary, score_frames
from fiftyone_clipit.errors import BatchError
from fiftyone_clipit.fo.common import embedding_store

pytestmark = [pytest.mark.slow, pytest.mark.reliability("fault")]

N_VIDEOS = 6
N_FRAMES = 240
CLI = [sys.executable, "-m", "fiftyone_clipit.cli"]


def child_env(uri: str | None = None) -> dict[str, str]:
    from fiftyone.core.odm.database import get_db_client

    host, port = get_db_client().address
    return {**os.environ, "FIFTYONE_DATABASE_URI": uri or f"mongodb://{host}:{port}", "PYTHONUNBUFFERED": "1"}


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 120.0) -> subprocess.Popen:
    """Starts `command`, SIGKILLs it as soon as `ready()` holds; fails the test if it ended first."""
    child = subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while child.poll() is None and time.time() < deadline and not ready():
        time.sleep(0.003)
    child.send_signal(signal.SIGKILL)
    output = child.communicate(timeout=30)[0].decode(errors="replace")
    assert child.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{output}"
    return child


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fault-videos")
    for i in range(N_VIDEOS):
        write_video(folder / f"clip{i}.mp4", N_FRAMES, fps=30, size=(320, 180))
    return folder


def new_dataset(videos: Path) -> fo.Dataset:
    dataset = fo.Dataset(f"clipit-faults-{uuid.uuid4().hex[:8]}", persistent=True)
    add_videos(dataset, [str(videos)])
    return dataset


@pytest.fixture(scope="module")
def embedded(videos) -> fo.Dataset:
    """A dataset whose embedding run was killed mid-way and then finished (test 1 below)."""
    dataset = new_dataset(videos)
    yield dataset
    dataset.delete()


def test_killed_while_embedding_keeps_whole_videos_and_resumes(embedded):
    store_dir = Path(embedding_store(embedded).root)
    kill_when(
        [*CLI, "embed", embedded.name, "--model", "tiny-random", "--fps", "30"],
        lambda: len(list(store_dir.glob("*.npz"))) >= 2,
    )
    stored = {p.stem: p.stat().st_mtime_ns for p in store_dir.glob("*.npz") if not p.name.startswith(".")}
    assert 2 <= len(stored) < N_VIDEOS
    store = embedding_store(embedded)
    assert store.keys() == sorted(stored)  # a temporary file of the video in flight is no video
    for key in stored:
        item = store.get(key)
        assert item.embeddings.shape[0] == len(item.frame_numbers) == N_FRAMES
    report = compute_frame_embeddings(embedded, model="tiny-random", fps=30.0)
    redone = report.n_embedded
    assert redone == N_VIDEOS - len(stored) and report.n_up_to_date == len(stored)
    assert {k: (store_dir / f"{k}.npz").stat().st_mtime_ns for k in stored} == stored
    assert len(store.keys()) == N_VIDEOS


def test_killed_with_several_decoders_loses_only_the_videos_in_flight(videos):
    dataset = new_dataset(videos)
    try:
        store_dir = Path(embedding_store(dataset).root)
        kill_when(
            [*CLI, "embed", dataset.name, "--model", "tiny-random", "--fps", "30", "--decoders", "2"],
            lambda: len(list(store_dir.glob("*.npz"))) >= 2,
        )
        stored = {p.stem: p.stat().st_mtime_ns for p in store_dir.glob("*.npz") if not p.name.startswith(".")}
        assert 2 <= len(stored) < N_VIDEOS
        store = embedding_store(dataset)
        assert store.keys() == sorted(stored)
        assert all(store.get(key).embeddings.shape[0] == N_FRAMES for key in stored)
        report = compute_frame_embeddings(dataset, model="tiny-random", fps=30.0, decoders=2)
        assert report.n_embedded == N_VIDEOS - len(stored) and report.n_up_to_date == len(stored)
        assert {k: (store_dir / f"{k}.npz").stat().st_mtime_ns for k in stored} == stored
    finally:
        dataset.delete()


def frames_with(dataset: fo.Dataset, field: str, sample_id: str | None = None) -> int:
    """Frames holding `field`, read straight from the frames collection (of one sample, or all)."""
    query = {field: {"$exists": True}}
    if sample_id is not None:
        query["_sample_id"] = ObjectId(sample_id)
    return dataset._frame_collection.count_documents(query)


def test_killed_while_writing_scores_is_never_taken_for_complete_and_resumes(embedded):
    command = [*CLI, "score", embedded.name, "--query", "a red square", "--score-field", "killed_score"]
    kill_when(command, lambda: frames_with(embedded, "killed_score") > 0)
    embedded.reload()
    ids = embedded.values("id")
    done = sum(frames_with(embedded, "killed_score", i) == N_FRAMES for i in ids)
    assert done < N_VIDEOS
    run = embedded.get_run_info("clipit_score_killed_score").config
    assert run.complete is False  # recorded complete only after every write
    with pytest.raises(BatchError, match="have no finite 'frames.killed_score'; run score_frames"):
        create_summary(embedded, score_field="killed_score", summary_field="never", segmentation="uniform")
    rerun = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    resumed = f"; {done} were already scored by the interrupted run" if done else ""
    assert f"Scored {N_VIDEOS - done} videos into frames.killed_score{resumed}" in rerun.stdout
    embedded.reload()
    assert frames_with(embedded, "killed_score") == N_VIDEOS * N_FRAMES
    assert embedded.get_run_info("clipit_score_killed_score").config.complete is True


def test_killed_while_building_the_index_keeps_the_old_or_the_new_one(embedded):
    from fiftyone_clipit.fo.index import index_dir, load_frame_index
    from fiftyone_clipit.fo.search import build_frame_index

    directory = Path(index_dir(embedded))
    script = (
        "import fiftyone as fo; from fiftyone_clipit.fo.search import build_frame_index;"
        f"build_frame_index(fo.load_dataset('{embedded.name}'), kind='ivf', overwrite=True, brain_key=None)"
    )
    kill_when([sys.executable, "-c", script], lambda: directory.exists() and any(directory.iterdir()))
    embedded.reload()
    if embedded.has_run("clipit_frame_index"):  # recorded only after the index files are in place
        assert len(load_frame_index(embedded)) == N_VIDEOS * N_FRAMES
    report = build_frame_index(embedded, kind="flat", overwrite=True, brain_key=None)
    assert report.n_videos == N_VIDEOS and report.n_frames == N_VIDEOS * N_FRAMES
    assert len(load_frame_index(embedded)) == N_VIDEOS * N_FRAMES
    # a write the kill interrupted may leave a hidden temporary file; it is never read as the index
    assert all(p.name.startswith(".") for p in directory.iterdir() if p.name.endswith(".tmp"))
    assert build_frame_index(embedded, kind="flat", brain_key=None).n_added == 0  # in step: nothing redone


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_killed_while_exporting_leaves_only_whole_files(embedded, tmp_path):
    score_frames(embedded, "a red square", model="tiny-random")
    create_summary(embedded, segmentation="uniform", segment_seconds=1.0, budget=0.5)
    out = tmp_path / "export"
    command = [*CLI, "export", embedded.name, "--output", str(out), "--no-storyboard", "--overwrite"]
    kill_when(command, lambda: out.exists() and any(out.rglob(".clipit-export.json")))
    finished = [p for p in out.rglob("*.mp4") if not p.name.startswith(".")]
    for clip in finished:  # every visible file is whole: it decodes to its segment's length
        if "_seg" in clip.name:
            first, last = (int(x) for x in clip.stem.split("_f")[-1].split("-"))
            assert decoded_frames(clip) == last - first + 1, clip
        else:
            assert decoded_frames(clip) > 0, clip
    done = {p.parent for p in out.rglob(".clipit-export.json")}  # videos whose export completed
    assert 1 <= len(done) < N_VIDEOS
    rerun = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} videos were already exported and left as they were" in rerun.stdout
    assert not [p for p in out.rglob(".partial-*")]  # the killed run's leftovers are gone or replaced
    assert len(list(out.rglob("*_summary.mp4"))) == N_VIDEOS
    assert len(list(out.rglob(".clipit-export.json"))) == N_VIDEOS


def test_database_going_away_mid_run_is_a_clear_error_not_a_hang(videos, tmp_path):
    """A throwaway mongod is killed while the CLI embeds; the CLI must exit non-zero in bounded time."""
    mongod, port = _start_mongod(str(tmp_path / "db"))
    uri = f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=3000&connectTimeoutMS=3000"
    env = {**child_env(uri), "FIFTYONE_CLIPIT_STORE_DIR": str(tmp_path / "store")}
    try:
        name = f"clipit-dbgone-{uuid.uuid4().hex[:6]}"
        add = subprocess.run([*CLI, "add-videos", name, str(videos)], env=env, capture_output=True, text=True, timeout=120)
        assert add.returncode == 0, add.stderr
        child = subprocess.Popen(
            [*CLI, "embed", name, "--model", "tiny-random", "--fps", "10"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        store = tmp_path / "store"
        deadline = time.time() + 120
        while not list(store.rglob("*.npz")) and child.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        mongod.kill()
        mongod.wait(timeout=30)
        killed_at = time.time()
        try:
            _, stderr = child.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            child.kill()
            pytest.fail("the CLI hung after the database went away")
        assert child.returncode not in (0, None)
        assert time.time() - killed_at < 90
        assert "error: the FiftyOne database" in stderr and "Traceback" not in stderr, stderr
        assert "127.0.0.1" in stderr and "run the command again" in stderr
        assert all(np.load(p, allow_pickle=False)["embeddings"].size for p in store.rglob("*.npz"))
    finally:
        if mongod.poll() is None:
            mongod.kill()
        shutil.rmtree(tmp_path / "db", ignore_errors=True)


def test_database_down_at_start_is_one_line_with_the_password_masked_and_exit_3():
    """Nothing listens at the URI: the CLI says so in one line naming the server, exit status 3."""
    uri = f"mongodb://alice:s3cret-pw@127.0.0.1:{_free_port()}/?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000"
    result = subprocess.run([*CLI, "summarize", "any-dataset"], env=child_env(uri), capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the FiftyOne database at mongodb://***@127.0.0.1:"), lines
    assert "Connection refused" in lines[0] and "check that MongoDB is running" in lines[0]
    assert "s3cret-pw" not in result.stderr + result.stdout

"""Concurrency: two processes at once on the same dataset lose no write and corrupt no store.

Both children are real processes on this session's MongoDB (the CLI, and `python -c` over the
library); each run is bounded by a timeout.
"""

from __future__ import annotations

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

from conftest import write_video
from fiftyone_clipit import add_videos, compute_frame_embeddings, score_frames
from fiftyone_clipit.fo.common import embedding_store

pytestmark = [pytest.mark.slow, pytest.mark.reliability("fault")]

CLI = [sys.executable, "-m", "fiftyone_clipit.cli"]
N_VIDEOS, N_FRAMES = 4, 120
WRITE_FRAMES = """
import sys
import fiftyone as fo
from fiftyone_clipit.fo.common import write_in_chunks
dataset = fo.load_dataset(sys.argv[1])
for sample_id in dataset.values("id"):
    write_in_chunks(dataset, f"frames.{sys.argv[2]}", {sample_id: {f: 0.5 for f in range(1, 301)}})
"""

#: A run that holds its field until told to go on: `score` (query) or `summarize` (budget),
#: touching argv[2] once it is writing and waiting (at most 120 s) for argv[3] to exist.
HOLDING_RUN = """
import pathlib, sys, time
import fiftyone as fo
from fiftyone_clipit import create_summary, score_frames
dataset = fo.load_dataset(sys.argv[1])
writing, go_on = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
def progress(fraction, label):
    writing.touch()
    deadline = time.time() + 120
    while not go_on.exists() and time.time() < deadline:
        time.sleep(0.05)
if sys.argv[4] == "score":
    score_frames(dataset, sys.argv[5], model="tiny-random", progress=progress)
else:
    create_summary(dataset, segmentation="uniform", budget=float(sys.argv[5]), progress=progress)
"""


def child_env() -> dict[str, str]:
    from fiftyone.core.odm.database import get_db_client

    host, port = get_db_client().address
    return {**os.environ, "FIFTYONE_DATABASE_URI": f"mongodb://{host}:{port}"}


def run_together(*commands: list[str], timeout: float = 180) -> list[subprocess.CompletedProcess]:
    """Starts every command at once and waits for all (bounded by `timeout`)."""
    children = [
        subprocess.Popen(c, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    results = []
    for command, child in zip(commands, children):
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in children:
                other.kill()
            pytest.fail(f"{command} did not finish within {timeout} s")
        results.append(subprocess.CompletedProcess(command, child.returncode, out, err))
    return results


@pytest.fixture(scope="module")
def videos_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrent")
    for i in range(N_VIDEOS):
        write_video(folder / f"v{i}.mp4", N_FRAMES, fps=30, size=(160, 96))
    ds = fo.Dataset(f"clipit-concurrent-{uuid.uuid4().hex[:8]}", persistent=True)
    add_videos(ds, [str(folder)])
    yield ds
    ds.delete()


@pytest.fixture
def dataset(videos_dataset):
    """A persistent copy of the videos per test (the CLI processes load it by name); nothing embedded."""
    copy = videos_dataset.clone(f"clipit-concurrent-{uuid.uuid4().hex[:8]}", persistent=True)
    yield copy
    copy.delete()


def test_two_processes_embedding_the_same_dataset_leave_a_sound_store(dataset):
    command = [*CLI, "embed", dataset.name, "--model", "tiny-random", "--fps", "15"]
    first, second = run_together(command, command)
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    store = embedding_store(dataset)
    assert store.keys() == sorted(dataset.values("id"))
    for key in store.keys():
        item = store.get(key)
        assert item.embeddings.shape == (len(item.frame_numbers), 32) and np.isfinite(item.embeddings).all()
    assert not [n for n in os.listdir(store.root) if n.endswith(".tmp")]
    report = compute_frame_embeddings(dataset, model="tiny-random", fps=15.0)
    assert report.n_up_to_date == N_VIDEOS and report.n_embedded == 0


def test_two_processes_scoring_different_fields_lose_no_write(dataset):
    compute_frame_embeddings(dataset, model="tiny-random", fps=15.0)
    results = run_together(
        [*CLI, "score", dataset.name, "--query", "a red square", "--score-field", "score_red"],
        [*CLI, "score", dataset.name, "--query", "a blue sky", "--score-field", "score_blue"],
    )
    for result in results:
        assert result.returncode == 0, result.stderr
    dataset.reload()
    total = dataset.get_run_info("clipit_embeddings").config.n_frames  # the sampled steps of every video
    assert dataset.count("frames.score_red") == total and dataset.count("frames.score_blue") == total
    assert dataset.has_run("clipit_score_score_red") and dataset.has_run("clipit_score_score_blue")
    red, blue = np.array(dataset.values("frames.score_red")), np.array(dataset.values("frames.score_blue"))
    assert not np.array_equal(red, blue)


def test_two_processes_summarising_different_fields_lose_no_write(dataset):
    compute_frame_embeddings(dataset, model="tiny-random", fps=15.0)
    score_frames(dataset, "a red square", score_field="score_red", model="tiny-random")
    score_frames(dataset, "a blue sky", score_field="score_blue", model="tiny-random")
    results = run_together(
        [*CLI, "summarize", dataset.name, "--score-field", "score_red", "--summary-field", "sum_red",
         "--segmentation", "uniform", "--budget", "0.5"],
        [*CLI, "summarize", dataset.name, "--score-field", "score_blue", "--summary-field", "sum_blue",
         "--segmentation", "uniform", "--budget", "0.5"],
    )
    for result in results:
        assert result.returncode == 0, result.stderr
    dataset.reload()
    for field in ("sum_red", "sum_blue"):
        assert all(s is not None and len(s.detections) > 0 for s in dataset.values(field)), field


def test_two_processes_creating_the_same_frame_documents_both_land():
    """A video's first frame write creates its frame documents; two writers race to insert them."""
    dataset = fo.Dataset(f"clipit-frames-race-{uuid.uuid4().hex[:8]}", persistent=True)
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/v{i}.mp4") for i in range(20)])
    try:
        results = run_together(
            [sys.executable, "-c", WRITE_FRAMES, dataset.name, "first"],
            [sys.executable, "-c", WRITE_FRAMES, dataset.name, "second"],
        )
        for result in results:
            assert result.returncode == 0, result.stderr
        dataset.reload()
        assert dataset.count("frames") == dataset.count("frames.first") == dataset.count("frames.second") == 20 * 300
    finally:
        dataset.delete()


def start_holding(dataset: fo.Dataset, folder: Path, stage: str, argument: str) -> tuple[subprocess.Popen, Path]:
    """Starts a run that holds its field until `<folder>/go_on` exists; returns once it writes."""
    writing, go_on = folder / "writing", folder / "go_on"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDING_RUN, dataset.name, str(writing), str(go_on), stage, argument],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 120
    while not writing.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert writing.exists(), child.communicate(timeout=30)[1]
    return child, go_on


def test_a_second_process_scoring_the_same_field_is_refused_naming_the_first(dataset, tmp_path):
    compute_frame_embeddings(dataset, model="tiny-random", fps=15.0)
    first, go_on = start_holding(dataset, tmp_path, "score", "a red square")
    second = subprocess.run(
        [*CLI, "score", dataset.name, "--query", "a blue sky"], env=child_env(), capture_output=True, text=True, timeout=180,
    )
    go_on.touch()
    assert first.wait(timeout=180) == 0, first.communicate()[1]
    assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
    assert "'frames.clipit_score' of" in second.stderr and "is being written by another run" in second.stderr
    assert "score_frames for 'a red square' (run " in second.stderr and f"process {first.pid} on" in second.stderr
    dataset.reload()
    assert dataset.get_run_info("clipit_score_clipit_score").config.query == "a red square"
    assert dataset.count("frames.clipit_score") == dataset.get_run_info("clipit_embeddings").config.n_frames
    mine = score_frames(dataset, "a red square", score_field="clipit_score", model="tiny-random")
    assert mine.n_scored == N_VIDEOS  # the lock went with the first run


def test_a_second_process_summarising_into_the_same_field_is_refused(dataset, tmp_path):
    compute_frame_embeddings(dataset, model="tiny-random", fps=15.0)
    score_frames(dataset, "a red square", model="tiny-random")
    first, go_on = start_holding(dataset, tmp_path, "summarize", "0.5")
    second = subprocess.run(
        [*CLI, "summarize", dataset.name, "--segmentation", "uniform", "--budget", "0.2"],
        env=child_env(), capture_output=True, text=True, timeout=180,
    )
    go_on.touch()
    assert first.wait(timeout=180) == 0, first.communicate()[1]
    assert second.returncode == 1, second.stderr
    assert "'clipit_summary' of" in second.stderr and "create_summary from 'frames.clipit_score' (budget 50%)" in second.stderr
    dataset.reload()
    assert dataset.get_run_info("clipit_summary_clipit_summary").config.budget == 0.5


def test_the_lock_of_a_killed_writer_is_taken_over(dataset, tmp_path):
    compute_frame_embeddings(dataset, model="tiny-random", fps=15.0)
    first, _ = start_holding(dataset, tmp_path, "score", "a red square")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    report = score_frames(dataset, "a blue sky", model="tiny-random")
    assert report.n_scored == N_VIDEOS
    assert dataset.get_run_info("clipit_score_clipit_score").config.query == "a blue sky"

"""Concurrency: two processes at once on the same dataset lose no write and corrupt no store.

Both children are real processes on this session's MongoDB (the CLI, and `python -c` over the
library); each run is bounded by a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

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
    total = N_VIDEOS * N_FRAMES
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

"""Scale: two `fiftyone delegated launch` workers against one MongoDB share queued operations.

The workers are real FiftyOne processes whose FIFTYONE_DATABASE_URI (set by conftest) points at
the mongod of this test session, as every process of a multi-machine deployment points at one
MongoDB;
they find the plugin through FIFTYONE_PLUGINS_DIR and the embeddings through the run that
records the store's path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import re
import time
import uuid
from collections import defaultdict
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

from conftest import write_video
from fiftyone_clipit import add_videos, compute_frame_embeddings

pytestmark = pytest.mark.slow

SCORE = "@clipit/video-summarization/score_frames"
DECLARE_FIELDS = """
import sys
import fiftyone as fo
from fiftyone_clipit.fo.common import write_in_chunks
dataset = fo.load_dataset(sys.argv[1])
sample_id = dataset.first().id
for i in range(int(sys.argv[3])):
    write_in_chunks(dataset, f"frames.{sys.argv[2]}_{i}", {sample_id: {1: 0.5}})
"""
QUERIES = ["a person", "a red car", "a dog running", "snow on a mountain", "a crowded street", "the sea"]


@pytest.fixture
def workers(tmp_path):
    """Two delegated-operation workers; stopped (and their logs kept) after the test."""
    fiftyone = str(Path(sys.executable).parent / "fiftyone")
    procs, logs = [], []
    for i in range(2):
        log = open(tmp_path / f"worker{i}.log", "w")
        procs.append(
            subprocess.Popen(
                [fiftyone, "delegated", "launch"], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        logs.append(tmp_path / f"worker{i}.log")
    yield logs
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_two_workers_complete_six_operations_once_each(tmp_path, tiny_encoder, workers):
    dataset = fo.Dataset(f"clipit-workers-{uuid.uuid4().hex[:8]}")
    paths = [write_video(tmp_path / f"v{i}.mp4", 45 + 15 * i, fps=15) for i in range(3)]
    add_videos(dataset, [str(p) for p in paths])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    ids = dataset.values("id")
    jobs = []
    for i, query in enumerate(QUERIES):
        target = ids[i % 3]
        field = f"score_{i}"
        foo.execute_operator(
            SCORE,
            ctx={
                "dataset": dataset,
                "view": dataset.select(target),
                "params": {"query": query, "score_field": field, "view_target": "CURRENT_VIEW"},
                "request_delegation": True,
            },
        )
        jobs.append((target, field))

    service = DelegatedOperationService()
    deadline = time.time() + 400
    while time.time() < deadline:
        ops = service.list_operations(dataset_name=dataset.name)
        states = [op.run_state for op in ops]
        if len(ops) == 6 and all(s in (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED) for s in states):
            break
        time.sleep(2)
    ops = service.list_operations(dataset_name=dataset.name)
    assert len(ops) == 6
    failed = [(op.id, op.status) for op in ops if op.run_state != ExecutionRunState.COMPLETED]
    assert not failed, failed

    dataset.reload()
    frames = dict(zip(dataset.values("id"), dataset.values("metadata.total_frame_count")))
    for target, field in jobs:
        scored = dataset.select(target).count(f"frames.{field}")
        assert scored == frames[target], f"{field}: {scored} of {frames[target]} frames written"
        others = dataset.exclude(target).count(f"frames.{field}")
        assert others == 0, f"{field} leaked onto other videos"

    ran_by = defaultdict(set)
    for worker, log in enumerate(workers):
        for op_id in re.findall(r"^Running operation (\w+)", log.read_text(), flags=re.M):
            ran_by[op_id].add(worker)
    assert {str(op.id) for op in ops} == set(ran_by), "every operation was run by a worker"
    assert all(len(w) == 1 for w in ran_by.values()), f"an operation ran twice: {dict(ran_by)}"
    assert set().union(*ran_by.values()) == {0, 1}, "both workers should have claimed work"


def test_fields_declared_by_two_processes_at_once_all_stay_in_the_schema():
    """FiftyOne saves the field list whole; without write_declared about a third of these are lost."""
    dataset = fo.Dataset(f"clipit-declare-{uuid.uuid4().hex[:8]}")
    sample = fo.Sample(filepath="/nonexistent/clip.mp4")
    sample.frames[1] = fo.Frame()
    dataset.add_sample(sample)
    n = 15
    writers = [
        subprocess.Popen([sys.executable, "-c", DECLARE_FIELDS, dataset.name, prefix, str(n)])
        for prefix in ("a", "b")
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    dataset.reload()
    declared = {name for name in dataset.get_frame_field_schema() if name[:2] in ("a_", "b_")}
    assert declared == {f"{p}_{i}" for p in "ab" for i in range(n)}

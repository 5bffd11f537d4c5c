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
from fiftyone_clipit.fo.common import embedding_store
from fiftyone_clipit.fo.runs import list_clipit_runs
from fiftyone_clipit.fo.shards import plan_document, shard_status

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
def worker_procs(tmp_path):
    """Two delegated-operation workers as (process, log path); stopped (logs kept) after the test."""
    fiftyone = str(Path(sys.executable).parent / "fiftyone")
    started = []
    for i in range(2):
        log = open(tmp_path / f"worker{i}.log", "w")
        proc = subprocess.Popen(
            [fiftyone, "delegated", "launch"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append((proc, tmp_path / f"worker{i}.log"))
    yield started
    for proc, _ in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc, _ in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def workers(worker_procs):
    """The log paths of two delegated-operation workers."""
    return [log for _, log in worker_procs]


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
    store = embedding_store(dataset)  # scores are written at the sampled steps (score_frames' default)
    steps = {sample_id: len(store.get(sample_id).frame_numbers) for sample_id in dataset.values("id")}
    for target, field in jobs:
        scored = dataset.select(target).count(f"frames.{field}")
        assert scored == steps[target], f"{field}: {scored} of {steps[target]} steps written"
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


EMBED = "@clipit/video-summarization/compute_frame_embeddings"


def _schedule_sharded_embeddings(dataset, videos_per_shard: int) -> None:
    """Schedules compute_frame_embeddings on the whole dataset, as the App's 'Schedule' does."""
    result = foo.execute_operator(
        EMBED,
        ctx={
            "dataset": dataset, "view": dataset.view(), "request_delegation": True,
            "params": {"model": "tiny-random", "fps": 15.0, "videos_per_shard": videos_per_shard,
                       "view_target": "DATASET"},
        },
    )
    result.raise_exceptions()


def _embedding_files(dataset) -> dict[str, int]:
    """sample id -> inode of its store file (every write of a video's embeddings makes a new one)."""
    files = {}
    for sample_id in dataset.values("id"):
        try:
            files[sample_id] = os.stat(os.path.join(embedding_store(dataset).root, f"{sample_id}.npz")).st_ino
        except FileNotFoundError:
            pass
    return files


def _ran_by(worker_logs) -> dict[str, set[int]]:
    ran_by = defaultdict(set)
    for worker, log in enumerate(worker_logs):
        for op_id in re.findall(r"^Running operation (\w+)", log.read_text(), flags=re.M):
            ran_by[op_id].add(worker)
    return ran_by


def _shard_dataset(tmp_path, name: str, n_frames: int):
    dataset = fo.Dataset(f"clipit-{name}-{uuid.uuid4().hex[:8]}")
    paths = [write_video(tmp_path / f"{name}{i}.mp4", n_frames, fps=15) for i in range(8)]
    add_videos(dataset, [str(p) for p in paths])
    return dataset


def _finished(ops) -> bool:
    return all(op.run_state in (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED) for op in ops)


def test_two_workers_share_one_sharded_embedding_operation_each_video_once(tmp_path, workers):
    dataset = _shard_dataset(tmp_path, "shards", 60)
    _schedule_sharded_embeddings(dataset, videos_per_shard=2)

    service = DelegatedOperationService()
    inodes, completeness = defaultdict(set), []
    deadline = time.time() + 300
    while time.time() < deadline:
        for sample_id, inode in _embedding_files(dataset).items():
            inodes[sample_id].add(inode)
        dataset.reload()
        if dataset.has_run("clipit_embeddings"):
            config = dataset.get_run_info("clipit_embeddings").config
            completeness.append((config.shards_done, config.complete, len(_embedding_files(dataset))))
        ops = service.list_operations(dataset_name=dataset.name)
        if len(ops) == 5 and _finished(ops):
            break
        time.sleep(0.2)
    ops = service.list_operations(dataset_name=dataset.name)
    assert len(ops) == 5, [op.label for op in ops]  # the scheduled operation and its 4 shards
    failed = [(op.label, op.status) for op in ops if op.run_state != ExecutionRunState.COMPLETED]
    assert not failed, failed

    planner = [op for op in ops if "shard" not in op.context.request_params["params"]]
    assert [op.result.result["shards_queued"] for op in planner] == [4]
    shards = [op.result.result for op in ops if op not in planner]
    assert sorted(r["shard"] for r in shards) == ["1/4", "2/4", "3/4", "4/4"]
    embedded = [i for r in shards for i in r["embedded_ids"]]
    assert sorted(embedded) == sorted(dataset.values("id")), "each video embedded by exactly one shard"
    assert all(r["taken_over"] == {} and not r.get("already_done") for r in shards)
    for sample_id, seen in inodes.items():
        assert len(seen) == 1, f"{sample_id} was written {len(seen)} times"
    assert _embedding_files(dataset).keys() == set(dataset.values("id"))

    # complete only at the end: the shards that finished first said so, and so did the run
    assert sorted((r["shards_done"], r["complete"]) for r in shards)[-1] == (4, True)
    assert [r["complete"] for r in shards].count(True) <= 2  # the last one, and maybe one that ended with it
    assert any(not complete for _, complete, _ in completeness), completeness
    assert all(done == 4 and files == 8 for done, complete, files in completeness if complete), completeness
    dataset.reload()
    config = dataset.get_run_info("clipit_embeddings").config
    assert (config.shards, config.shards_done, config.complete, config.n_videos) == (4, 4, True, 8)
    listed = {run.key: run.describe() for run in list_clipit_runs(dataset)}
    assert "shards 4/4 done" in listed["clipit_embeddings"] and "in progress" not in listed["clipit_embeddings"]

    ran_by = _ran_by(workers)
    assert {str(op.id) for op in ops} == set(ran_by), "every operation was run by a worker"
    assert all(len(w) == 1 for w in ran_by.values()), f"an operation ran twice: {dict(ran_by)}"
    shard_workers = {w for op in ops if op not in planner for w in ran_by[str(op.id)]}
    assert shard_workers == {0, 1}, "both workers should have run shards"


def test_a_worker_killed_mid_shard_leaves_its_shard_to_the_other_or_a_rerun(tmp_path, worker_procs):
    dataset = _shard_dataset(tmp_path, "killed", 150)
    _schedule_sharded_embeddings(dataset, videos_per_shard=4)

    # wait until a worker has stored at least one video of its shard, but not all: kill it there
    pids = {proc.pid: i for i, (proc, _) in enumerate(worker_procs)}
    victim = kept = None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline:
        status = shard_status(dataset, "clipit_embeddings")
        for shard in plan_document(status.plan)["shards"] if status else []:
            holder, stored = shard.get("holder") or {}, _embedding_files(dataset)
            n_stored = sum(i in stored for i in shard["ids"])
            if shard["state"] == "running" and holder.get("pid") in pids and 0 < n_stored < len(shard["ids"]):
                victim, kept = pids[holder["pid"]], {i: stored[i] for i in shard["ids"] if i in stored}
                proc = worker_procs[victim][0]
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()  # reaped: its process is gone, so its shard may be taken over
                killed_shard = shard["ids"]
                break
        time.sleep(0.05)
    assert victim is not None, "no worker was caught mid-shard"
    dataset.reload()
    if dataset.has_run("clipit_embeddings"):
        assert not dataset.get_run_info("clipit_embeddings").config.complete
        assert "in progress" in {run.key: run.describe() for run in list_clipit_runs(dataset)}["clipit_embeddings"]

    service = DelegatedOperationService()
    dead_id, = [  # the killed worker's operation, which stays "running" in FiftyOne's record
        op.id for op in service.list_operations(dataset_name=dataset.name)
        if op.run_state == ExecutionRunState.RUNNING and op.context.request_params["params"].get("shard_ids") == killed_shard
    ]

    def dead_op(op) -> bool:
        return op.id == dead_id

    rerun, deadline = None, time.time() + 300
    while time.time() < deadline:
        others = [op for op in service.list_operations(dataset_name=dataset.name) if not dead_op(op)]
        done = shard_status(dataset, "clipit_embeddings").complete
        if done and _finished(others):
            break
        if not done and _finished(others) and rerun is None:
            # the other worker had finished before the shard was orphaned: rerun the dead shard's
            # operation, as the App's "Re-run" does
            dead = [op for op in service.list_operations(dataset_name=dataset.name) if dead_op(op)]
            rerun = service.rerun_operation(dead[0].id)
        time.sleep(0.2)
    status = shard_status(dataset, "clipit_embeddings")
    assert status.complete, status
    others = [op for op in service.list_operations(dataset_name=dataset.name) if not dead_op(op)]
    failed = [(op.label, op.status) for op in others if op.run_state != ExecutionRunState.COMPLETED]
    assert not failed, failed

    stored = _embedding_files(dataset)
    assert stored.keys() == set(dataset.values("id"))
    assert all(stored[i] == inode for i, inode in kept.items()), "videos the killed worker stored were not redone"
    dataset.reload()
    config = dataset.get_run_info("clipit_embeddings").config
    assert (config.shards, config.shards_done, config.complete, config.n_videos) == (2, 2, True, 8)
    results = [op.result.result for op in others if "shard" in op.context.request_params["params"]]
    taken_over = [report for r in results for report in r["taken_over"].values()]
    print(f"killed worker {victim} holding {len(killed_shard)} videos, {len(kept)} stored; finished by "
          f"{'a rerun' if rerun is not None else 'the other worker'}")
    if rerun is None:
        assert len(taken_over) == 1, results  # the other worker finished the dead worker's shard
        finisher = taken_over[0]
    else:
        assert not taken_over
        finisher = next(r for r in results if r.get("embedded_ids") and set(r["embedded_ids"]) <= set(killed_shard))
    # what the killed worker had stored was skipped; the rest (the video in flight too) was embedded once
    assert sorted(finisher["embedded_ids"]) == sorted(set(killed_shard) - set(kept)), (finisher, kept)
    assert finisher["up_to_date"] == len(kept)


def test_two_workers_share_one_sharded_scoring_operation(tmp_path, tiny_encoder, workers):
    dataset = _shard_dataset(tmp_path, "scores", 45)
    compute_frame_embeddings(dataset, model=tiny_encoder)
    foo.execute_operator(
        SCORE,
        ctx={"dataset": dataset, "view": dataset.view(), "request_delegation": True,
             "params": {"query": "a red car", "videos_per_shard": 3, "view_target": "DATASET"}},
    ).raise_exceptions()

    service = DelegatedOperationService()
    deadline = time.time() + 300
    while time.time() < deadline:
        ops = service.list_operations(dataset_name=dataset.name)
        if len(ops) == 4 and _finished(ops):
            break
        time.sleep(0.5)
    ops = service.list_operations(dataset_name=dataset.name)
    assert len(ops) == 4, [op.label for op in ops]  # the scheduled operation and 3 shards of 3, 3, 2
    failed = [(op.label, op.status) for op in ops if op.run_state != ExecutionRunState.COMPLETED]
    assert not failed, failed
    shards = [op.result.result for op in ops if "shard" in op.context.request_params["params"]]
    assert sorted(r["scored"] for r in shards) == [2, 3, 3]
    assert sum(r["complete"] for r in shards) >= 1 and not all(r["complete"] for r in shards)

    dataset.reload()
    info = dataset.get_run_info("clipit_score_clipit_score").config
    assert (info.shards, info.shards_done, info.complete, info.query) == (3, 3, True, "a red car")
    assert {e["run"] for e in info.videos.values()} == {info.shard_plan} and len(info.videos) == 8
    store = embedding_store(dataset)  # every video's every step scored once, at the sampled steps
    assert dataset.count("frames.clipit_score") == sum(len(store.get(i).frame_numbers) for i in dataset.values("id"))
    ran_by = _ran_by(workers)
    shard_workers = {w for op in ops if "shard" in op.context.request_params["params"] for w in ran_by[str(op.id)]}
    assert shard_workers == {0, 1}, "both workers should have run shards"

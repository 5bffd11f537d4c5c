"""Shard plans in the real database, without workers: claims, a live holder refused, a dead
worker's shard taken over, a failed shard run again, and the run complete only at the end.

The work is a plain function that records the videos it is given; the shards' delegated
operations are queued but no worker runs them here (tests/test_workers.py runs them for real).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.core.odm import get_db_conn
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

from conftest import write_video
from fiftyone_clipit import add_videos, compute_frame_embeddings
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import record_run
from fiftyone_clipit.fo.fieldlock import field_lock
from fiftyone_clipit.fo.shards import (
    PLANS,
    queue_shards,
    run_fields,
    run_shard,
    shard_status,
)
from fiftyone_clipit.shards import DEFAULT_VIDEOS_PER_SHARD

EMBED = "@clipit/video-summarization/compute_frame_embeddings"
RUN = "clipit_test_sharded"


@pytest.fixture
def dataset():
    dataset = fo.Dataset(f"clipit-plans-{uuid.uuid4().hex[:8]}")
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/v{i}.mp4") for i in range(7)])
    yield dataset
    dataset.delete()


class Recorder:
    """Work that remembers which videos it was given, and fails when told to."""

    def __init__(self):
        self.seen: list[list[str]] = []
        self.fail = False

    def __call__(self, samples, progress):
        if self.fail:
            raise ClipItError("a video broke")
        self.seen.append(samples.values("id"))
        progress(1.0, "done")
        return {"n": len(samples)}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _hold(plan: str, index: int, pid: int) -> None:
    """Marks a shard as being run by process `pid` on this machine (as a claim leaves it)."""
    holder = {"token": uuid.uuid4().hex, "pid": pid, "host": socket.gethostname(), "started": time.time(),
              "beat": time.time()}
    get_db_conn()[PLANS].update_one({"_id": plan}, {"$set": {f"shards.{index}.state": "running",
                                                              f"shards.{index}.holder": holder}})


def test_a_plan_queues_one_operation_per_shard_and_completes_only_with_the_last(dataset):
    record_run(dataset, RUN, what="a sharded test run", **run_fields(dataset, RUN))
    assert dataset.get_run_info(RUN).config.complete is True  # never sharded: one call makes it whole
    status = queue_shards(dataset, EMBED, {"model": "tiny-random"}, RUN, videos_per_shard=3)
    assert (status.n_shards, status.done, status.complete) == (3, [], False)
    ops = DelegatedOperationService().list_operations(dataset_name=dataset.name)
    params = sorted((op.context.request_params["params"] for op in ops), key=lambda p: p["shard"]["index"])
    assert [len(p["shard_ids"]) for p in params] == [3, 2, 2]
    assert [i for p in params for i in p["shard_ids"]] == dataset.values("id")
    assert all(p["model"] == "tiny-random" and p["shard"]["plan"] == status.plan for p in params)

    work = Recorder()
    first = run_shard(dataset, status.plan, 0, work)
    assert (first["shard"], first["shards_done"], first["complete"], first["n"]) == ("1/3", 1, False, 3)
    dataset.reload()
    config = dataset.get_run_info(RUN).config
    assert (config.shards, config.shards_done, config.complete) == (3, 1, False)

    again = run_shard(dataset, status.plan, 0, work)
    assert again["already_done"] and len(work.seen) == 1, "a done shard is not run twice"

    run_shard(dataset, status.plan, 1, work)
    last = run_shard(dataset, status.plan, 2, work)
    assert (last["shards_done"], last["complete"]) == (3, True)
    assert sorted(i for ids in work.seen for i in ids) == sorted(dataset.values("id"))
    dataset.reload()
    config = dataset.get_run_info(RUN).config
    assert (config.shards_done, config.complete, config.what) == (3, True, "a sharded test run")


def test_a_live_holder_is_refused_and_a_dead_ones_shard_is_taken_over(dataset):
    status = queue_shards(dataset, EMBED, {}, RUN, videos_per_shard=4)
    assert shard_status(dataset, RUN).plan == status.plan
    _hold(status.plan, 0, pid=os.getppid())  # alive: this test's parent process
    work = Recorder()
    with pytest.raises(ClipItError, match=r"Shard 1/2 of 'clipit_test_sharded' .* is being run by process"):
        run_shard(dataset, status.plan, 0, work)
    assert work.seen == []

    _hold(status.plan, 0, pid=_dead_pid())  # its worker died mid-shard
    result = run_shard(dataset, status.plan, 1, work)
    assert list(result["taken_over"]) == ["0"], "the other shard's run finished the dead worker's shard"
    assert (result["shards_done"], result["complete"]) == (2, True)
    assert sorted(i for ids in work.seen for i in ids) == sorted(dataset.values("id"))


def test_a_failed_shard_is_recorded_and_finished_by_running_it_again(dataset):
    status = queue_shards(dataset, EMBED, {}, RUN, videos_per_shard=7)
    assert status.n_shards == 1
    work = Recorder()
    work.fail = True
    with pytest.raises(ClipItError, match="a video broke"):
        run_shard(dataset, status.plan, 0, work)
    failed = shard_status(dataset, RUN)
    assert failed.failed == {0: "a video broke"} and not failed.complete
    work.fail = False
    assert run_shard(dataset, status.plan, 0, work)["complete"]


@pytest.mark.parametrize("size", [0, -2, "many"])
def test_a_bad_shard_size_is_refused(dataset, size):
    with pytest.raises(ClipItError, match="videos_per_shard must be an integer >= 1"):
        queue_shards(dataset, EMBED, {}, RUN, videos_per_shard=size)


def test_an_unknown_plan_or_shard_is_refused(dataset):
    with pytest.raises(ClipItError, match="No shard 0 in plan nope"):
        run_shard(dataset, "nope", 0, Recorder())
    status = queue_shards(dataset, EMBED, {}, RUN, videos_per_shard=4)
    with pytest.raises(ClipItError, match="No shard 5 in plan"):
        run_shard(dataset, status.plan, 5, Recorder())


def _form(dataset, params: dict) -> dict:
    operator = foo.get_operator(EMBED)
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    return operator.resolve_input(ctx).type.properties


def test_the_form_offers_videos_per_shard_above_ten_videos(dataset):
    assert "videos_per_shard" not in _form(dataset, {})
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/w{i}.mp4") for i in range(4)])
    prop = _form(dataset, {})["videos_per_shard"]
    assert prop.default == DEFAULT_VIDEOS_PER_SHARD and not getattr(prop, "invalid", False)
    bad = _form(dataset, {"videos_per_shard": -1})["videos_per_shard"]
    assert bad.invalid and "whole number >= 0, got -1" in bad.error_message


def test_shards_of_one_run_share_the_field_lock_and_other_runs_wait(dataset):
    path = "frames.clipit_score"
    with field_lock(dataset, path, "shard 1 of run p", shared_by="p"):
        with field_lock(dataset, path, "shard 2 of run p", shared_by="p"):
            for other in ({}, {"shared_by": "q"}):
                with pytest.raises(ClipItError, match="is being written by another run: shard 1 of run p"):
                    with field_lock(dataset, path, "another run", **other):
                        pass
        with pytest.raises(ClipItError, match="being written by another run"):  # shard 2 still holds it
            with field_lock(dataset, path, "another run"):
                pass
    with field_lock(dataset, path, "another run"):  # the last shard let go
        pass


def test_a_shard_whose_videos_were_all_deleted_is_done_without_work(dataset):
    status = queue_shards(dataset, EMBED, {}, RUN, videos_per_shard=4)
    dataset.delete_samples(dataset.skip(4))
    work = Recorder()
    result = run_shard(dataset, status.plan, 1, work)
    assert result["deleted_since_planned"] == 3 and work.seen == []


def test_the_embeddings_record_reads_only_the_videos_of_the_call_and_stays_whole(tmp_path, tiny_encoder):
    """Each shard records clipit_embeddings; it reads its own videos' files and keeps the
    others' counts, which must equal a full count after views, deletions and additions."""
    dataset = fo.Dataset(f"clipit-record-{uuid.uuid4().hex[:8]}")
    paths = [write_video(tmp_path / f"r{i}.mp4", 20 + 10 * i, fps=10) for i in range(4)]
    add_videos(dataset, [str(p) for p in paths[:3]])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=10.0)
    compute_frame_embeddings(dataset.limit(1), model=tiny_encoder, fps=10.0)
    dataset.delete_samples(dataset.skip(2))
    add_videos(dataset, [str(paths[3])])
    compute_frame_embeddings(dataset.skip(2), model=tiny_encoder, fps=10.0)

    dataset.reload()
    config = dataset.get_run_info("clipit_embeddings").config
    counts = dataset.load_run_results("clipit_embeddings").frames_per_video
    assert counts == {i: n for i, n in zip(dataset.values("id"), [20, 30, 50])}
    assert (config.n_videos, config.n_frames, config.complete) == (3, 100, True)
    dataset.delete()


def test_rerunning_a_dead_workers_shard_finishes_it(dataset):
    """What 'Re-run' of the operation of a worker that died mid-shard does: it claims the shard
    from the dead holder and runs it."""
    status = queue_shards(dataset, EMBED, {}, RUN, videos_per_shard=7)
    _hold(status.plan, 0, pid=_dead_pid())
    work = Recorder()
    result = run_shard(dataset, status.plan, 0, work)
    assert result["complete"] and result["taken_over"] == {} and work.seen == [dataset.values("id")]

"""One operation, many workers: a large target queued as shards of videos, each its own
delegated operation, with which shards are done kept in MongoDB.

`queue_shards` splits the target (`fiftyone_clipit.shards.plan_shards`), records the plan in the
collection `clipit_shards` (one document per plan, one entry per shard) and queues one delegated
operation per shard through FiftyOne's `DelegatedOperationService`; any number of
`fiftyone delegated launch` workers on one MongoDB take them. `run_shard` runs in each shard's
operation: it claims the shard with one atomic update (so no shard runs twice at once), does the
work, marks the shard done and then finishes any shard whose worker died mid-way (its process is
gone on this machine, or it sent no heartbeat for `STALE_SECONDS`). The work itself is resumable
(embeddings and scores skip the videos already done), so a shard taken over, or run again, redoes
at most the video that was in flight. The dataset-level run (`clipit_embeddings`,
`clipit_score_<field>`) records `shards`, `shards_done` and `complete`, which turns True only when
every shard is done.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import fiftyone as fo
import fiftyone.core.collections as foc
from fiftyone.core.odm import get_db_conn
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import root_dataset
from fiftyone_clipit.fo.fieldlock import STALE_SECONDS, field_lock, holder_is_gone
from fiftyone_clipit.fo.lineage import new_run_id
from fiftyone_clipit.shards import plan_shards

PLANS = "clipit_shards"
#: the scheduled run the work in this context is a shard of (`shard_of`)
_SHARD_RUN: ContextVar[str | None] = ContextVar("clipit_shard_run", default=None)
#: how often a shard's holder refreshes its heartbeat (at most)
BEAT_SECONDS = 30.0
#: how long a run's record waits for another process recording the same run (longer than a
#: lock left by a process killed on another machine takes to go stale)
RECORD_WAIT_SECONDS = STALE_SECONDS + 60.0

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

#: what one shard's work is: (the shard's videos, progress) -> a short JSON-able report
Work = Callable[[foc.SampleCollection, Callable[[float, str], None]], dict]


@dataclass(frozen=True)
class ShardStatus:
    """Where a plan stands: how many shards, which are done, failed or running."""

    plan: str
    run_key: str
    n_shards: int
    done: list[int]
    failed: dict[int, str]
    running: list[int]

    @property
    def complete(self) -> bool:
        return len(self.done) == self.n_shards

    def record(self) -> dict[str, Any]:
        """The fields a run's config carries about its shards."""
        return {"shards": self.n_shards, "shards_done": len(self.done), "shard_plan": self.plan,
                "complete": self.complete}


def _plans():
    return get_db_conn()[PLANS]


def queue_shards(
    samples: foc.SampleCollection,
    operator_uri: str,
    params: dict,
    run_key: str,
    videos_per_shard: int,
    delegation_target: str | None = None,
    label: str | None = None,
) -> ShardStatus:
    """Splits `samples` into shards and queues one delegated operation of `operator_uri` per shard.

    Each operation gets `params` plus `shard = {"plan", "index", "of"}` and the shard's sample ids
    (`shard_ids`), and runs on `dataset.select(shard_ids)`.

    Args:
        samples: the target videos (a dataset or view).
        operator_uri: the operator each shard runs (it calls `run_shard`).
        params: the operator's parameters, the same for every shard.
        run_key: the dataset-level run the shards make together (e.g. "clipit_embeddings").
        videos_per_shard: the most videos per shard.
        delegation_target (None): the orchestrator to queue on, as FiftyOne takes it.
        label (None): the operations' label; shard "i/n" is appended.

    Returns:
        The plan's status (nothing done yet).
    """
    dataset = root_dataset(samples)
    shards = plan_shards(samples.values("id"), videos_per_shard)
    plan = new_run_id()
    _plans().insert_one({
        "_id": plan, **_of(dataset), "run_key": run_key, "operator": operator_uri, "created": time.time(),
        "shards": [{"ids": ids, "state": QUEUED, "holder": None, "report": None, "error": None} for ids in shards],
    })
    service = DelegatedOperationService()
    for index, ids in enumerate(shards):
        shard_params = {**params, "shard": {"plan": plan, "index": index, "of": len(shards)}, "shard_ids": ids}
        context = ExecutionContext(request_params={
            "dataset_name": dataset.name, "params": shard_params, "delegated": True,
            "delegation_target": delegation_target,
        })
        service.queue_operation(
            operator=operator_uri, label=f"{label or operator_uri} (shard {index + 1}/{len(shards)})",
            delegation_target=delegation_target, context=context.serialize(),
        )
    return shard_status(dataset, run_key)


def shard_status(dataset: fo.Dataset, run_key: str, plan: str | None = None) -> ShardStatus | None:
    """The status of `plan`, or of the latest plan of `run_key` on `dataset`; None when there is none."""
    query = {"_id": plan} if plan else {**_of(dataset), "run_key": run_key}
    docs = list(_plans().find(query).sort("created", -1).limit(1))
    if not docs:
        return None
    return _status(docs[0])


def plan_document(plan: str) -> dict | None:
    """The stored plan: its run key, and per shard the ids, state, holder and report."""
    return _plans().find_one({"_id": plan})


def _status(doc: dict) -> ShardStatus:
    shards = doc["shards"]
    return ShardStatus(
        plan=doc["_id"], run_key=doc["run_key"], n_shards=len(shards),
        done=[i for i, s in enumerate(shards) if s["state"] == DONE],
        failed={i: s.get("error") or "" for i, s in enumerate(shards) if s["state"] == FAILED},
        running=[i for i, s in enumerate(shards) if s["state"] == RUNNING],
    )


def _of(dataset: fo.Dataset) -> dict:
    """The plans of this dataset, not of an earlier one of the same name."""
    created = dataset.created_at
    return {"dataset": dataset.name, "created_at": created.isoformat(timespec="milliseconds") if created else None}


def delete_plans(dataset: fo.Dataset, run_key: str) -> int:
    """Forgets the plans of a run (when the run is deleted); returns how many."""
    return _plans().delete_many({**_of(dataset), "run_key": run_key}).deleted_count


def run_fields(dataset: fo.Dataset, run_key: str) -> dict[str, Any]:
    """What a run's config records about shards: the latest plan's counts, `complete` False
    while any of its shards is not done (until they are run again, or the run is scheduled
    again); just `complete=True` when the run was never sharded."""
    status = shard_status(dataset, run_key)
    return {"complete": True} if status is None else status.record()


@contextmanager
def run_record_lock(dataset: fo.Dataset, run_key: str) -> Iterator[None]:
    """Holds the lock of a run's record while the block writes it, waiting (up to
    `RECORD_WAIT_SECONDS`) for another process recording the same run: FiftyOne writes a run's
    record whole, so two shards recording at once could lose one's update."""
    deadline = time.time() + RECORD_WAIT_SECONDS
    with ExitStack() as stack:
        while True:
            try:
                stack.enter_context(field_lock(dataset, f"run:{run_key}", f"recording run '{run_key}'"))
                break
            except ClipItError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        yield


def refresh_run(dataset: fo.Dataset, run_key: str) -> None:
    """Writes the latest plan's counts (`shards_done`, `complete`) into the run's config."""
    with run_record_lock(dataset, run_key):
        dataset.reload()
        if not dataset.has_run(run_key):
            return
        config = dataset.get_run_info(run_key).config
        for name, value in run_fields(dataset, run_key).items():
            setattr(config, name, value)
        dataset.update_run_config(run_key, config)


def _holder() -> dict:
    now = time.time()
    return {"token": new_run_id(), "pid": os.getpid(), "host": socket.gethostname(), "started": now, "beat": now}


def _claim(plan: str, index: int, holder: dict) -> tuple[bool, dict | None]:
    """Claims shard `index` of `plan` for `holder`: a queued or failed one, or one whose holder
    is gone. Returns (claimed, the shard as it was)."""
    plans = _plans()
    state = f"shards.{index}.state"
    update = {"$set": {state: RUNNING, f"shards.{index}.holder": holder, f"shards.{index}.error": None}}
    if plans.find_one_and_update({"_id": plan, state: {"$in": [QUEUED, FAILED]}}, update):
        return True, None
    doc = plans.find_one({"_id": plan})
    if doc is None:
        raise ClipItError(f"Shard plan {plan} is gone (the run was deleted?); schedule the operation again")
    shard = doc["shards"][index]
    if shard["state"] == RUNNING and shard.get("holder") and holder_is_gone(shard["holder"]):
        taken = plans.find_one_and_update(
            {"_id": plan, state: RUNNING, f"shards.{index}.holder.token": shard["holder"]["token"]}, update
        )
        return taken is not None, shard
    return False, shard


@contextmanager
def _heartbeat(plan: str, index: int, holder: dict) -> Iterator[None]:
    """Refreshes the holder's heartbeat every `BEAT_SECONDS` from a thread while the block runs,
    so a long video (minutes to embed) does not make a live worker look dead to other machines."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(BEAT_SECONDS):
            _plans().update_one(
                {"_id": plan, f"shards.{index}.holder.token": holder["token"]},
                {"$set": {f"shards.{index}.holder.beat": time.time()}},
            )

    thread = threading.Thread(target=beat, name=f"clipit-shard-{index}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _work_on(dataset: fo.Dataset, plan: str, index: int, ids: list[str], holder: dict, work: Work,
             progress: Callable[[float, str], None]) -> dict:
    """Runs the work on one claimed shard and records its end (done with a report, or failed);
    videos deleted from the dataset since the plan was made are left out."""
    key = {"_id": plan, f"shards.{index}.holder.token": holder["token"]}
    samples = dataset.select(ids, ordered=True)
    try:
        with _heartbeat(plan, index, holder):
            report = work(samples, progress) if len(samples) else {"deleted_since_planned": len(ids)}
    except BaseException as e:
        _plans().update_one(key, {"$set": {f"shards.{index}.state": FAILED, f"shards.{index}.error": str(e)[:2000]}})
        raise
    _plans().update_one(key, {"$set": {f"shards.{index}.state": DONE, f"shards.{index}.report": report}})
    return report


def run_shard(
    samples: foc.SampleCollection, plan: str, index: int, work: Work,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Runs shard `index` of `plan`, then any shard of the plan whose worker died, and records
    the plan's progress in the dataset-level run.

    A shard already done returns at once; a shard another live worker is running is refused.

    Args:
        samples: any collection of the dataset (the shard's videos are read from the plan).
        plan: the plan id (the operation's `shard["plan"]`).
        index: the shard's index.
        work: (the shard's videos, progress) -> a JSON-able report; resumable.
        progress (None): a callback(fraction, label).

    Returns:
        {"shard": "i/n", "shards_done": k, "complete": bool, "taken_over": {index: report}, **the
        shard's report}, or {"already_done": True, ...} when it was done by another operation.

    Raises:
        ClipItError: no such plan or shard, or another live worker holds the shard.
    """
    dataset = root_dataset(samples)
    progress = progress or (lambda fraction, label: None)
    doc = _plans().find_one({"_id": plan})
    if doc is None or not 0 <= index < len(doc["shards"]):
        raise ClipItError(f"No shard {index} in plan {plan} of '{dataset.name}'; schedule the operation again")
    run_key, n = doc["run_key"], len(doc["shards"])
    holder = _holder()
    claimed, was = _claim(plan, index, holder)
    result: dict[str, Any] = {"shard": f"{index + 1}/{n}"}
    if claimed:
        result.update(_work_on(dataset, plan, index, doc["shards"][index]["ids"], holder, work, progress))
    elif was["state"] == DONE:
        result["already_done"] = True
    else:
        who = was.get("holder") or {}
        raise ClipItError(
            f"Shard {index + 1}/{n} of '{run_key}' on '{dataset.name}' is being run by process "
            f"{who.get('pid')} on {who.get('host')}; it is taken over once that process is gone (or "
            f"silent for {STALE_SECONDS:.0f} s)"
        )
    result["taken_over"] = _take_over_orphans(dataset, plan, work, progress)
    refresh_run(dataset, run_key)
    status = shard_status(dataset, run_key, plan)
    result.update(shards_done=len(status.done), complete=status.complete)
    return result


def _take_over_orphans(dataset: fo.Dataset, plan: str, work: Work, progress) -> dict[str, dict]:
    """Finishes the shards of `plan` whose worker died mid-way; returns their reports by index."""
    taken = {}
    doc = _plans().find_one({"_id": plan})
    for index, shard in enumerate(doc["shards"] if doc else []):
        if shard["state"] != RUNNING or not shard.get("holder") or not holder_is_gone(shard["holder"]):
            continue
        holder = _holder()
        claimed, _ = _claim(plan, index, holder)
        if claimed:
            taken[str(index)] = _work_on(dataset, plan, index, shard["ids"], holder, work, progress)
    return taken


@contextmanager
def shard_of(run_id: str | None) -> Iterator[None]:
    """Within the block, a run that shards make together (`score_frames`) works as the shard
    of the scheduled run `run_id`: it joins that run's field lock, keeps the videos its other
    shards finished, and leaves `complete` to the shard plan. None: a run of its own."""
    token = _SHARD_RUN.set(run_id)
    try:
        yield
    finally:
        _SHARD_RUN.reset(token)


def current_shard_run() -> str | None:
    """The scheduled run the calling work is a shard of (`shard_of`), or None."""
    return _SHARD_RUN.get()

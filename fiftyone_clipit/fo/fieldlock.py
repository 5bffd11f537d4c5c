"""One writer per field: a lock in the database that every process of a deployment shares.

`score_frames` and `create_summary` hold the lock of the field they write for as long as they
write it. A second run into the same field of the same dataset, in any process on any machine
using the same MongoDB, is refused with a message naming the run that holds it. The lock is a
document with a unique id in the collection `clipit_field_locks`, so taking it is one atomic
insert. A lock left by a killed process is taken over: at once on the same machine (its
process is gone), after `STALE_SECONDS` without a heartbeat from another machine. The shards
of one scheduled run (`fiftyone_clipit.fo.shards`) hold one lock together (`shared_by`).
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import fiftyone as fo
from fiftyone.core.odm import get_db_conn
from pymongo.errors import DuplicateKeyError

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.lineage import new_run_id

LOCKS = "clipit_field_locks"
#: A lock from another machine whose holder sent no heartbeat for this long is taken over.
STALE_SECONDS = 300.0
#: How often a holder refreshes its heartbeat (at most), from `beat()`.
BEAT_SECONDS = 30.0


def holder_is_gone(holder: dict) -> bool:
    """Whether a lock's holder (pid, host, beat) is gone: its process has exited on this
    machine, or it sent no heartbeat for `STALE_SECONDS` from another."""
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, run by another user
            return False
        return False
    return time.time() - float(holder.get("beat", 0.0)) > STALE_SECONDS


def _describe(holder: dict) -> str:
    started = datetime.datetime.fromtimestamp(float(holder["started"])).isoformat(timespec="seconds")
    return f"{holder['what']} (run {holder['run'][:8]}, process {holder['pid']} on {holder['host']}, started {started})"


def _lock_is_gone(lock: dict) -> bool:
    """Whether every process holding a lock is gone (a shared lock has several holders)."""
    if "holders" in lock:
        return all(holder_is_gone(h) for h in lock["holders"].values())
    return holder_is_gone(lock)


@contextmanager
def field_lock(
    dataset: fo.Dataset, path: str, what: str, shared_by: str | None = None
) -> Iterator[Callable[[], None]]:
    """Holds the write lock of `path` on `dataset` while the block runs; yields `beat`, to call
    now and then (per video) so that other machines know the holder is alive.

    Args:
        dataset: the dataset written.
        path: the field written (e.g. "frames.clipit_score").
        what: the run, as the refusal of another writer names it (e.g. "score_frames for 'a dog'").
        shared_by (None): the id of a run that several processes make together (the shards of
            a scheduled run, `fiftyone_clipit.fo.shards`): calls with the same id hold the lock
            together; every other run is refused until the last of them lets go.

    Raises:
        ClipItError: another run holds the lock; the message names it and what to do.
    """
    locks = get_db_conn()[LOCKS]
    now = time.time()
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": now, "beat": now}
    token = new_run_id()
    mine = {"_id": f"{dataset.name}:{path}", "run": shared_by or token, "what": what, **me}
    if shared_by:
        mine["holders"] = {token: me}
    while True:
        try:
            locks.insert_one(mine)
            break
        except DuplicateKeyError:
            holder = locks.find_one({"_id": mine["_id"]})
            if holder is None:  # released meanwhile
                continue
            if shared_by and "holders" in holder and holder["run"] == shared_by:
                joined = locks.update_one({"_id": mine["_id"], "run": shared_by}, {"$set": {f"holders.{token}": me}})
                if joined.matched_count:
                    break
                continue
            if not _lock_is_gone(holder):
                raise ClipItError(
                    f"'{path}' of '{dataset.name}' is being written by another run: {_describe(holder)}; "
                    f"wait for it to finish, or write to another field"
                ) from None
            locks.delete_one({"_id": mine["_id"], "run": holder["run"]})
    last_beat = [now]
    beat_path = f"holders.{token}.beat" if shared_by else "beat"

    def beat() -> None:
        if time.time() - last_beat[0] >= BEAT_SECONDS:
            last_beat[0] = time.time()
            locks.update_one({"_id": mine["_id"], "run": mine["run"]}, {"$set": {beat_path: last_beat[0]}})

    try:
        yield beat
    finally:
        if shared_by:
            locks.update_one({"_id": mine["_id"], "run": shared_by}, {"$unset": {f"holders.{token}": ""}})
            locks.delete_one({"_id": mine["_id"], "run": shared_by, "holders": {}})
        else:
            locks.delete_one({"_id": mine["_id"], "run": mine["run"]})

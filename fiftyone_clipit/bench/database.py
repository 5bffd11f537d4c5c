"""A private MongoDB for a benchmark: FiftyOne's bundled mongod on a free port and a temporary folder.

A benchmark that writes through FiftyOne must never touch a user's database, and its database
size must be its own: `private_database` starts the mongod that ships with FiftyOne, points
FIFTYONE_DATABASE_URI at it before FiftyOne is imported, and stops it and removes its files
on exit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from fiftyone_clipit.errors import ClipItError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def private_database(parent: str | None = None) -> Iterator[str]:
    """Runs a fresh mongod for the duration of the block; yields its URI.

    Raises:
        ClipItError: FiftyOne was imported already (it would keep its first database), or
            mongod did not start (its log is named).
    """
    if "fiftyone" in sys.modules:
        raise ClipItError("A private benchmark database must be set up before FiftyOne is imported")
    fiftyone_dir = importlib.util.find_spec("fiftyone").submodule_search_locations[0]
    folder = tempfile.mkdtemp(prefix="clipit-bench-db-", dir=parent)
    port = _free_port()
    process = subprocess.Popen(
        [os.path.join(fiftyone_dir, "db", "bin", "mongod"), "--dbpath", folder, "--port", str(port),
         "--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", os.path.join(folder, "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(process, port, folder)
        uri = f"mongodb://127.0.0.1:{port}/?uuidRepresentation=standard"  # said, as mongoengine asks
        os.environ["FIFTYONE_DATABASE_URI"] = uri
        os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"  # the bundled mongod is the oldest supported
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for(process: subprocess.Popen, port: int, folder: str, seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise ClipItError(f"mongod exited with {process.returncode}; see {folder}/mongod.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise ClipItError(f"mongod did not start within {seconds:.0f} s; see {folder}/mongod.log")

"""The test session's own promise: mongod runs only when a selected test is marked `db`."""

from __future__ import annotations

import socket

import psutil

import conftest


def test_mongod_runs_only_when_a_selected_test_needs_the_database(request):
    needed = any(item.get_closest_marker("db") for item in request.session.items)
    mongods = [p for p in psutil.Process().children(recursive=True) if p.name() == "mongod"]
    assert conftest.database_started() == needed
    assert bool(mongods) == needed, mongods
    with socket.socket() as s:
        s.settimeout(5)
        reached = s.connect_ex(("127.0.0.1", conftest._PORT)) == 0
    assert reached == needed

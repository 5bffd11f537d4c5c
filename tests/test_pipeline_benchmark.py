"""`fiftyone-clipit bench pipeline` at a tiny size: its own mongod, every stage, figures that add up.

The bench starts a private mongod before it imports FiftyOne, so it runs as its own process
(the CLI), never inside the test session's database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def bench(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "fiftyone_clipit.cli", "bench", "pipeline", "--model", "tiny-random", *args],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING:fiftyone" not in result.stderr  # the bundled mongod's version warning is turned off
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_pipeline_bench_runs_every_stage_in_its_own_database():
    figures = bench("--videos", "2", "--minutes", "0.5")  # scores at the sampled steps, the default
    assert figures["frames"] == 2 * 900 and figures["hours"] == pytest.approx(1 / 60, abs=1e-3)
    assert figures["n_scored"] == figures["n_summarized"] == 2
    assert figures["curve_points"] == 900  # every frame of the panel's video has a score
    assert figures["clips"] >= 2 and 0.0 < figures["f1"] <= 1.0
    stages = figures["stages"]
    assert set(stages) >= {"fiftyone_set_values", "score_frames", "label_scores", "create_summary",
                           "evaluate_summary", "app_sidebar_count", "app_panel_curve", "app_clips_view"}
    assert all(0.0 <= s["core_share"] <= 1.0 and s["seconds"] > 0 for s in stages.values())
    database = figures["database"]
    # the layer wrote the same frame documents as FiftyOne's own set_values did
    assert database["layer_frames_data_bytes"] == database["fiftyone_frames_data_bytes"] > 0
    assert figures["write_over_fiftyone"] > 0

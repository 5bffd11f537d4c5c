"""Security: no unpickling of untrusted files, confined export names, no shell, no leaked secrets."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiftyone_clipit.cli import database_error_message, redact_credentials
from fiftyone_clipit.errors import ClipItError, WeightsNotFoundError
from fiftyone_clipit.summary_files import safe_name, safe_stem

pytestmark = pytest.mark.reliability("bad_input")

REPO = Path(__file__).resolve().parents[1]


class _Exploit:
    """Unpickling this would create `marker`: proof that arbitrary code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def write_malicious_pickle(path: Path, marker: Path) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Exploit(marker)}, f)
    return path


def test_malicious_clip_weights_are_refused_without_running_them(tmp_path):
    from fiftyone_clipit.encoders import load_clip

    marker = tmp_path / "pwned"
    weights = write_malicious_pickle(tmp_path / "weights.bin", marker)
    with pytest.raises(WeightsNotFoundError, match=f"Refused the weights file '{weights}'.*could run code"):
        load_clip("tiny-random", pretrained=str(weights))
    assert not marker.exists(), "unpickling the weights ran code"


def test_malicious_scorer_checkpoint_is_refused_without_running_it(tmp_path):
    import json

    from fiftyone_clipit.checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CONFIG_FILE, WEIGHTS_FILE, load_checkpoint

    marker = tmp_path / "pwned"
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / CONFIG_FILE).write_text(json.dumps({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                                                   "config": {}}))
    write_malicious_pickle(folder / WEIGHTS_FILE, marker)
    with pytest.raises(ClipItError, match="Scorer checkpoint"):
        load_checkpoint(str(folder))
    assert not marker.exists(), "loading the checkpoint ran code"


def test_no_shell_strings_for_external_programs():
    pattern = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput|commands\.getoutput")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in ("fiftyone_clipit", "operators")
        for path in (REPO / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_export_names_never_leave_their_folder(text):
    name = safe_name(text)
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".") and len(name) <= 100
    assert re.fullmatch(r"[A-Za-z0-9._-]*", name)
    root = "/export"
    assert os.path.normpath(os.path.join(root, name or "video")).startswith(root + "/")
    stem = safe_stem(text + ".mp4")
    assert stem and os.path.dirname(stem) == ""


@settings(max_examples=200, deadline=None)
@given(
    user=st.text(alphabet=st.characters(blacklist_characters="/@\x00", blacklist_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=20),
    password=st.text(alphabet=st.characters(blacklist_characters="/@\x00", blacklist_categories=("Cs", "Zs", "Cc")), min_size=4, max_size=30),
)
def test_database_uri_credentials_are_never_printed(user, password):
    uri = f"mongodb://{user}:{password}@db.example.com:27017/?authSource=admin"
    masked = redact_credentials(f"cannot reach {uri}")
    assert masked == "cannot reach mongodb://***@db.example.com:27017/?authSource=admin"
    message = database_error_message(RuntimeError(f"{uri}: connection refused"))
    assert f":{password}@" not in message and "run the command again" in message


@pytest.mark.slow
@pytest.mark.parametrize(
    "params, bad",
    [
        ({"query": "a dog", "score_field": "frames.x; drop", "smoothing_seconds": 1.0}, "score_field"),
        ({"query": "a dog", "score_field": "ok_field", "smoothing_seconds": -5.0}, "smoothing_seconds"),
        ({"query": "   ", "score_field": "ok_field", "smoothing_seconds": 1.0}, "query"),
        ({"query": "a dog", "score_field": "ok_field", "smoothing_seconds": "lots"}, "smoothing_seconds"),
    ],
    ids=["field_name", "range", "empty_text", "type"],
)
@pytest.mark.db
def test_operator_inputs_are_validated_before_any_work(video_dir, tiny_encoder, params, bad):
    import uuid

    import fiftyone as fo
    import fiftyone.operators as foo

    from fiftyone_clipit import add_videos, compute_frame_embeddings

    dataset = fo.Dataset(f"clipit-security-{uuid.uuid4().hex[:8]}")
    add_videos(dataset, [str(video_dir / "colors_a.mp4")])
    compute_frame_embeddings(dataset, model=tiny_encoder)
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError, match=f"Validation error. Path: {bad}. Reason: "):
        foo.execute_operator("@clipit/video-summarization/score_frames", ctx={"dataset": dataset, "params": params})
    dataset.reload()
    assert [k for k in dataset.list_runs() if k.startswith("clipit_score")] == []
    assert not dataset.has_frame_field("ok_field")
    dataset.delete()

"""The `fiftyone-clipit` command as a user runs it: real process, real database, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.db]

CLI = str(Path(sys.executable).parent / "fiftyone-clipit")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=600
    )


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(stream))
        return n / float(stream.average_rate)


def test_demo_with_tiny_random_leaves_playable_clips_within_budget(tmp_path, video_dir, real_videos):
    videos = [str(video_dir / "colors_b.mp4"), *map(str, real_videos)]
    out = tmp_path / "clips"
    result = run("demo", "--model", "tiny-random", "--query", "a person", "--output", str(out),
                 "--videos", *videos, "--dataset", "clipit-cli-demo")
    assert result.returncode == 0, result.stderr
    assert "DEMO FALLBACK" not in result.stderr
    assert "fiftyone app launch clipit-cli-demo" in result.stdout
    import fiftyone as fo  # the App's fields, as the score operator writes them (issue 23)

    dataset = fo.load_dataset("clipit-cli-demo")
    steps = dataset.get_run_info("clipit_embeddings").config.n_frames  # scores are written at the sampled steps
    assert dataset.count("frames.clipit_score_label") == dataset.count("frames.clipit_score") == steps
    assert dataset.count("clipit_score_max") == len(videos)
    for video in videos:
        with av.open(video) as container:
            stream = container.streams.video[0]
            total = float(stream.duration * stream.time_base)
        clips = sorted((out / Path(video).stem).glob("*.mp4"))
        assert clips, f"no clips for {video}"
        lengths = [duration(c) for c in clips]
        assert sum(lengths) <= 0.15 * total + max(lengths) + 1e-6


def test_demo_without_weights_falls_back_loudly(tmp_path, video_dir):
    result = run("demo", "--output", str(tmp_path), "--videos", str(video_dir / "colors_a.mp4"),
                 "--dataset", "clipit-cli-fallback")
    assert result.returncode == 0, result.stderr
    assert "DEMO FALLBACK" in result.stderr and "MEAN NOTHING" in result.stderr
    assert "'ViT-B-32'" in result.stderr and "--pretrained" in result.stderr
    assert list(tmp_path.rglob("*.mp4"))


def test_other_commands_do_not_fall_back(video_dir):
    assert run("add-videos", "clipit-cli-steps", str(video_dir)).returncode == 0
    result = run("embed", "clipit-cli-steps")
    assert result.returncode == 1
    assert "error: No weights for CLIP model 'ViT-B-32'" in result.stderr
    result = run("demo", "--model", "ViT-B-32", "--videos", str(video_dir))
    assert result.returncode == 1 and "DEMO FALLBACK" not in result.stderr


def test_step_by_step_commands(tmp_path, video_dir, bad_files):
    name = "clipit-cli-chain"
    result = run("add-videos", name, str(video_dir), *map(str, bad_files.values()))
    assert result.returncode == 1
    for path in bad_files.values():
        assert str(path) in result.stderr
    assert run("embed", name, "--model", "tiny-random", "--fps", "4").returncode == 0
    assert run("score", name, "--query", "a person").returncode == 0
    result = run("score", name, "--query", "")
    assert result.returncode == 1 and "non-empty" in result.stderr
    result = run("summarize", name, "--budget", "0.2")
    assert result.returncode == 0 and "saved view 'clipit_summary_clips'" in result.stdout
    result = run("export", name, "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.rglob("*.mp4"))) >= 2
    result = run("embed", name, "--model", "no-such-model")
    assert result.returncode == 1 and "Unknown CLIP model 'no-such-model'" in result.stderr


def test_help_and_the_plugins_operators_load_without_torch_or_open_clip():
    """Defaults come from `fiftyone_clipit.defaults`; the heavy libraries load when work starts."""
    probe = (
        "import sys; import operators; from fiftyone_clipit.cli import build_parser; "
        "build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'open_clip') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert run("--help").returncode == 0 and run("train", "--help").returncode == 0


def test_demo_never_replaces_a_dataset_it_did_not_make(video_dir):
    import fiftyone as fo

    from fiftyone_clipit.fo.videos import load_videos_dataset

    own = fo.Dataset("clipit-users-own", persistent=True)
    own.add_sample(fo.Sample(filepath=str(video_dir / "colors_a.mp4"), note="mine"))
    result = run("demo", "--model", "tiny-random", "--videos", str(video_dir / "colors_b.mp4"),
                 "--dataset", "clipit-users-own")
    assert result.returncode == 1
    assert "Dataset 'clipit-users-own' already exists and was not made by the fiftyone-clipit demo" in result.stderr
    assert "--overwrite" in result.stderr
    own.reload()
    assert own.values("note") == ["mine"]
    # one the demo made is replaced by the next demo run
    first = load_videos_dataset("clipit-demo-made", [str(video_dir / "colors_a.mp4")], made_by="fiftyone-clipit demo")
    again = load_videos_dataset("clipit-demo-made", [str(video_dir / "colors_b.mp4")], made_by="fiftyone-clipit demo")
    assert len(again) == 1 and again.first().filepath.endswith("colors_b.mp4") and first.deleted
    own.delete()
    again.delete()

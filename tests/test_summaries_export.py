"""Summaries (KTS shots, knapsack, views, storyboard) and exports, on the real database and videos.

FiftyOne's own mongod on this session's temporary directory, PyAV on generated and real mp4s,
the real open_clip loading code with the tiny random model; exported files are decoded again.
"""

from __future__ import annotations

import os
import resource
import signal
import uuid
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import fiftyone as fo
import fiftyone.core.runs as fors
import numpy as np
import pytest
from fiftyone import ViewField as F
from PIL import Image

from conftest import every_frame_scores, frame_color
from fiftyone_clipit import Budget, add_videos, compute_frame_embeddings, create_summary, export_summary, score_frames
from fiftyone_clipit.errors import BatchError, ClipItError
from fiftyone_clipit.fo.export import export_summary_dataset
from fiftyone_clipit.fo.summaries import SummaryRunConfig, replan_video_summary, summary_options
from fiftyone_clipit.options import SummaryOptions
from fiftyone_clipit.summary_files import safe_stem

pytestmark = pytest.mark.slow

QUERY = "a person"


def new_dataset() -> fo.Dataset:
    return fo.Dataset(f"clipit-summary-{uuid.uuid4().hex[:8]}")


def write_scenes(path: Path, scenes: list[tuple[tuple[int, int, int], int, bool]], fps: int = 30) -> Path:
    """Solid-colour scenes (colour, frames, tone on?) with a 16 kHz mono track: 440 Hz or silence."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv444p"
        video.options = {"qp": "0", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=16000)
        for color, n_frames, _ in scenes:
            image = np.empty((48, 64, 3), np.uint8)
            image[:] = color
            for _ in range(n_frames):
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        track = np.concatenate(
            [(0.1 * on) * np.sin(np.arange(n * 16000 // fps) * 2 * np.pi * 440 / 16000) for _, n, on in scenes]
        )
        track = track.astype(np.float32)
        for start in range(0, len(track), 1024):
            frame = av.AudioFrame.from_ndarray(track[None, start : start + 1024], format="flt", layout="mono")
            frame.sample_rate = 16000
            # With timestamps, the muxer records the encoder's priming delay and players skip it.
            frame.pts, frame.time_base = start, Fraction(1, 16000)
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def decode(path: str) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Every video frame's mean colour, and the audio as mono float samples (None without audio)."""
    with av.open(path) as container:
        colors = [f.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0) for f in container.decode(video=0)]
    with av.open(path) as container:
        if not container.streams.audio:
            return colors, None
        chunks = [f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)]
    return colors, np.concatenate(chunks)


def supports(sample, field: str = "clipit_summary") -> list[tuple[int, int]]:
    return sorted(tuple(d.support) for d in sample[field].detections)


@pytest.fixture(scope="module")
def summarised(video_dir, real_videos, tiny_encoder):
    """Generated and real videos, embedded, scored and summarised with the defaults (KTS, 15%)."""
    dataset = new_dataset()
    add_videos(dataset, [str(video_dir), *map(str, real_videos)])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    score_frames(dataset, QUERY, model=tiny_encoder)
    report = create_summary(dataset)
    return dataset, report


@pytest.fixture
def summarised_copy(summarised):
    """A copy of `summarised` for a test that writes fields to it (same sample ids: same embeddings)."""
    dataset, report = summarised
    copy = dataset.clone()
    yield copy, report
    copy.delete()


@pytest.fixture(scope="module")
def scenes_video(tmp_path_factory) -> Path:
    """Three 2-second scenes: red (silent), green (440 Hz tone), blue (silent)."""
    folder = tmp_path_factory.mktemp("scenes")
    return write_scenes(folder / "scenes.mp4", [((200, 30, 30), 60, False), ((30, 200, 30), 60, True),
                                                ((30, 30, 200), 60, False)])


# ---------------------------------------------------------------- create_summary


def test_kts_summary_segments_views_and_storyboard(summarised):
    dataset, report = summarised
    assert report.n_summarized == len(dataset) and not report.failures
    assert dataset.get_run_info("clipit_summary_clipit_summary").config.segmentation == "kts"
    for sample in dataset.select_fields(["metadata", "clipit_summary"]):
        n_frames = sample.metadata.total_frame_count
        segments = supports(sample)
        assert 0 < sum(b - a + 1 for a, b in segments) <= int(n_frames * 0.15)
        assert all(a2 > b1 + 1 for (_, b1), (a2, _) in zip(segments, segments[1:]))  # disjoint, not touching
        frames = every_frame_scores(dataset, sample.id)
        for detection in sample.clipit_summary.detections:
            first, last = detection.support
            assert detection.label == QUERY
            assert detection.confidence == pytest.approx(np.mean(frames[first - 1 : last]))
    assert len(dataset.load_saved_view(report.view_name)) == report.n_segments
    storyboard = dataset.load_saved_view(report.storyboard_view)
    assert 0 < len(storyboard) <= 8 * len(dataset)
    for sample_id in dataset.values("id"):
        frames = storyboard.match(F("sample_id") == sample_id)
        numbers, ranks = frames.values("frame_number"), frames.values("clipit_summary_keyframe")
        assert sorted(ranks) == list(range(1, len(ranks) + 1))
        sample = dataset[sample_id]
        assert all(any(a <= n <= b for a, b in supports(sample)) for n in numbers)
        times = np.array(numbers) / sample.metadata.frame_rate
        assert all(abs(s - t) >= 1.0 - 1e-9 for i, s in enumerate(times) for t in times[i + 1 :])
        assert all(os.path.exists(p) for p in frames.values("filepath"))


def test_kts_shots_follow_the_scenes(scenes_video, tiny_encoder):
    dataset = new_dataset()
    add_videos(dataset, [str(scenes_video)])
    compute_frame_embeddings(dataset, model=tiny_encoder, fps=2.0)
    planted = {n: (0.9 if 61 <= n <= 120 else 0.1) for n in range(1, 181)}
    dataset.set_values("frames.planted", [planted])
    # 2 s of budget = 60 frames: exactly the green scene, cut where KTS finds the scene change.
    create_summary(dataset, score_field="planted", budget=Budget(seconds=2))
    assert supports(dataset.first()) == [(61, 120)]
    # 15% = 27 frames, less than a scene: shots are kept under the budget, inside the green scene.
    report = create_summary(dataset, score_field="planted", summary_field="short")
    ((first, last),) = supports(dataset.first(), "short")
    assert 61 <= first <= last <= 120 and last - first + 1 <= 27
    assert report.n_summarized == 1


def test_a_run_recorded_before_the_options_still_replans_and_exports(summarised_copy, tmp_path):
    """A summary run as main recorded it before `SummaryOptions` (a generic RunConfig, no `vmax`)
    still reads as options, re-plans one video (the panel's Apply) and exports every video."""
    dataset, _ = summarised_copy
    key = "clipit_summary_clipit_summary"
    recorded = dataset.get_run_info(key).config.serialize()
    assert isinstance(dataset.get_run_info(key).config, SummaryRunConfig)
    legacy = {k: v for k, v in recorded.items() if k not in ("cls", "type", "method", "vmax")}
    dataset.delete_run(key)
    dataset.register_run(key, fors.RunConfig(**legacy), cleanup=False)
    assert type(dataset.get_run_info(key).config) is fors.RunConfig
    assert summary_options(dataset) == SummaryOptions()  # the fixture summarised with the defaults
    first = dataset.first()
    kept_before = sum(b - a + 1 for a, b in supports(first))
    replan_video_summary(dataset, first.id, 0.4)
    first.reload()
    assert sum(b - a + 1 for a, b in supports(first)) > kept_before
    assert isinstance(dataset.get_run_info(key).config, SummaryRunConfig)  # the next write upgrades it
    assert summary_options(dataset).budget == Budget(fraction=0.15)  # the others keep the run's budget
    report = export_summary(dataset, str(tmp_path / "out"), clips=False, reel=False)
    assert not report.failures and len(report.storyboards) == len(dataset)


def test_uniform_and_given_shots(summarised_copy, tmp_path):
    summarised = summarised_copy
    dataset, _ = summarised
    view = dataset.limit(2)
    create_summary(view, summary_field="uniform_summary", segmentation="uniform", segment_seconds=0.5)
    shots = {}
    for sample in view:
        n = sample.metadata.total_frame_count
        shots[sample.id] = fo.TemporalDetections(
            detections=[fo.TemporalDetection(label="shot", support=[a, min(a + 9, n)]) for a in range(1, n + 1, 10)]
        )
    dataset.set_values("shots", shots, key_field="id")
    report = create_summary(view, summary_field="given", segmentation="shots", shots_field="shots")
    assert report.n_summarized == 2
    for sample in view:
        for a, b in supports(sample, "given"):
            assert (a - 1) % 10 == 0 and (b % 10 == 0 or b == sample.metadata.total_frame_count)
    # Overlapping shots in one video: that video is named, the other is written.
    first, second = view.values("id")
    bad = fo.TemporalDetections(detections=[fo.TemporalDetection(support=[1, 20]), fo.TemporalDetection(support=[15, 30])])
    dataset.set_values("shots", {first: bad}, key_field="id")
    with pytest.raises(BatchError, match=r"shots overlap: \[1, 20\]") as error:
        create_summary(view, summary_field="given2", segmentation="shots", shots_field="shots")
    assert error.value.n_ok == 1
    assert dataset[second].given2 is not None and dataset[first].given2 is None


def test_bad_inputs_each_have_a_clear_outcome(summarised_copy, tiny_encoder, tmp_path):
    summarised = summarised_copy
    dataset, _ = summarised
    # NaN scores: that video fails by name, the others are written, its earlier summary stays.
    create_summary(dataset, summary_field="guarded")
    victim = dataset.first()
    before = supports(victim, "guarded")
    dataset.set_values(
        "frames.nan_score",
        [{n: (np.nan if s.id == victim.id and n == 5 else 0.5) for n in range(1, s.metadata.total_frame_count + 1)}
         for s in dataset.select_fields("metadata")],
    )
    with pytest.raises(BatchError, match=r"1 of \d+ frames have no finite 'frames.nan_score'") as error:
        create_summary(dataset, score_field="nan_score", summary_field="guarded")
    assert error.value.n_ok == len(dataset) - 1 and victim.filepath in str(error.value)
    assert supports(dataset[victim.id], "guarded") == before
    # One shot and all-equal scores: a still video is one KTS shot, longer than the budget of
    # floor(90 * 0.15) = 13 frames, so it is cut into 7 pieces of 12-13 frames; equal scores keep
    # the lightest piece, the first (frames 1-12).
    still = new_dataset()
    add_videos(still, [str(write_scenes(tmp_path / "still.mp4", [((90, 90, 90), 90, False)]))])
    compute_frame_embeddings(still, model=tiny_encoder)
    still.set_values("frames.flat", [{n: 0.5 for n in range(1, 91)}])
    report = create_summary(still, score_field="flat")
    assert report.n_shots == 7 and report.n_split_shots == 6
    assert supports(still.first()) == [(1, 12)]
    # A field of another type is refused before any work.
    still.set_values("frames.taken_keyframe", [{1: "x"}])
    with pytest.raises(ClipItError, match="'frames.taken_keyframe' already exists"):
        create_summary(still, score_field="flat", summary_field="taken")
    assert still.get_field("taken") is None
    with pytest.raises(ValueError, match=r"Unknown segmentation 'shot'. Valid ones are \['kts', 'uniform', 'shots'\]"):
        create_summary(still, segmentation="shot")
    with pytest.raises(ValueError, match="min_segment applies to segmentation='kts'"):
        create_summary(still, segmentation="uniform", min_segment=1.0)
    with pytest.raises(ValueError, match="'a lot' is not understood"):
        create_summary(still, budget="a lot")
    with pytest.raises(ValueError, match=r"read text with Budget.parse\('45s'\)"):
        create_summary(still, budget="45s")


# ---------------------------------------------------------------- export_summary


@contextmanager
def file_size_limit(n_bytes: int):
    """Writes past `n_bytes` fail with EFBIG, as a full disk fails them with ENOSPC."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_reels_and_clips_play_with_exact_frames_and_audio(summarised, video_dir, tmp_path):
    dataset, _ = summarised
    report = export_summary(dataset, str(tmp_path / "out"))
    assert len(report.reels) == len(report.storyboards) == len(dataset)
    total = 0
    for sample in dataset.select_fields(["metadata", "clipit_summary"]):
        segments = supports(sample)
        with av.open(sample.filepath) as source:
            source_has_audio = bool(source.streams.audio)
        colors, audio = decode(report.reels[sample.filepath])
        n_frames = sum(b - a + 1 for a, b in segments)
        assert len(colors) == n_frames  # every frame decodes; exactly the summary's frames
        assert (audio is not None) == source_has_audio
        if audio is not None:  # the audio lasts as long as the frames (decoders add < 1 AAC frame of padding)
            with av.open(report.reels[sample.filepath]) as reel:
                stream = reel.streams.audio[0]
                seconds = float(stream.duration * stream.time_base)
            assert abs(seconds - n_frames / sample.metadata.frame_rate) <= 1 / sample.metadata.frame_rate
            assert 0 <= len(audio) - seconds * stream.rate < 1024
        for clip, (a, b) in zip(report.clips[sample.filepath], segments):
            clip_colors, clip_audio = decode(clip)
            assert len(clip_colors) == b - a + 1 and (clip_audio is not None) == source_has_audio
        with Image.open(report.storyboards[sample.filepath]) as image:
            assert image.format == "PNG" and image.width > 300
        total += n_frames / sample.metadata.frame_rate
        if sample.filepath.endswith("colors_a.mp4"):  # frame i of the source is colour frame_color(i)
            palette = np.array([frame_color(i) for i in range(90)], float)
            found = [int(np.argmin(((palette - c) ** 2).sum(axis=1))) + 1 for c in colors]
            assert found == [n for a, b in segments for n in range(a, b + 1)]
    assert report.seconds_written == pytest.approx(total)
    assert not list((tmp_path / "out").rglob(".partial-*"))


def test_reel_audio_stays_in_sync_with_its_frames(scenes_video, tmp_path):
    dataset = new_dataset()
    add_videos(dataset, [str(scenes_video)])
    # Frames 41-80 (red then green) and 111-140 (green then blue): the tone must sound exactly
    # while green frames are shown, across the join.
    segments = [[41, 80], [111, 140]]
    dataset.set_values("cut", [fo.TemporalDetections(detections=[fo.TemporalDetection(label="x", support=s)
                                                                  for s in segments])])
    report = export_summary(dataset, str(tmp_path), summary_field="cut", clips=False, storyboard=False)
    colors, audio = decode(report.reels[str(scenes_video)])
    green = [c[1] > 150 for c in colors]
    assert green == [n > 60 for n in range(41, 81)] + [n <= 120 for n in range(111, 141)]
    per_frame = 16000 // 30
    loudness = [np.sqrt(np.mean(audio[i * per_frame : (i + 1) * per_frame] ** 2)) for i in range(len(colors))]
    for index, is_green in enumerate(green):
        if any(green[j] != is_green for j in range(max(0, index - 1), min(len(green), index + 2))):
            continue  # a frame next to a change: AAC smears a few milliseconds
        assert (loudness[index] > 0.04) == is_green, (index, loudness[index])
    # The tone sounds from reel frame 20 to the end of frame 49 (green frames 61-80, 111-120):
    # samples 10,667 to 26,667, within a millisecond.
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    assert abs(loud[0] - 20 * 16000 / 30) <= 16 and abs(loud[-1] - 50 * 16000 / 30) <= 16


def test_the_same_export_is_left_and_another_refused_then_replaced(summarised, tmp_path):
    dataset, _ = summarised
    view = dataset.limit(1)
    out = tmp_path / "out"
    first = export_summary(view, str(out))
    (path,) = first.reels
    mtime = os.path.getmtime(first.reels[path])
    same = export_summary(view, str(out))
    assert same.up_to_date == [path] and same.seconds_written == 0
    assert (same.clips, same.reels, same.storyboards) == (first.clips, first.reels, first.storyboards)
    folder = Path(first.reels[path]).parent
    stale = folder / f"{folder.name}_seg099_f000001-000002.mp4"
    stale.write_bytes(b"an old clip")
    with pytest.raises(BatchError, match="exists; pass overwrite=True to replace it"):
        export_summary(view, str(out), crf=30)  # another encoding: another export
    assert os.path.getmtime(first.reels[path]) == mtime  # untouched
    again = export_summary(view, str(out), crf=30, overwrite=True)
    assert again.clips == first.clips and not stale.exists() and not again.up_to_date
    assert export_summary(view, str(out), crf=30).up_to_date == [path]
    Path(first.clips[path][0]).unlink()  # a file gone: the export is redone, not taken as done
    with pytest.raises(BatchError, match="exists; pass overwrite=True to replace it"):
        export_summary(view, str(out), crf=30)


def test_unwritable_or_file_export_dir_is_refused(summarised, tmp_path):
    dataset, _ = summarised
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ClipItError, match=f"'{blocker}' is a file; choose a directory"):
        export_summary(dataset, str(blocker))
    with pytest.raises(ClipItError, match="Cannot write to export directory .*a_file/out"):
        export_summary(dataset, str(blocker / "out"))
    assert blocker.read_text() == "not a folder"


def test_full_disk_leaves_no_file_looking_complete(summarised_copy, tmp_path):
    summarised = summarised_copy
    dataset, _ = summarised
    view = dataset.match(F("filepath").ends_with("car-detection.mp4"))
    segments = [[10, 20], [100, 110], [200, 300]]  # two short clips, then one longer than both
    view.set_values("three", [fo.TemporalDetections(detections=[fo.TemporalDetection(label="x", support=s)
                                                                 for s in segments])])
    reference = export_summary(view, str(tmp_path / "reference"), summary_field="three", storyboard=False)
    (clips,), (reel,) = reference.clips.values(), reference.reels.values()
    limit = max(os.path.getsize(c) for c in clips) + 4096
    assert len(clips) >= 2 and os.path.getsize(reel) > limit  # every clip fits, the reel cannot
    out = tmp_path / "out"
    with file_size_limit(limit):
        with pytest.raises(BatchError, match="File too large|No space left") as error:
            export_summary(view, str(out), summary_field="three", storyboard=False)
    assert error.value.n_ok == 0
    # the reel fails while clip 3 is being cut: clips 1-2 had finished, and go with the failed video
    assert not list(out.rglob(".partial-*")) and not list(out.rglob("*.mp4"))


def test_names_from_fields_cannot_escape_the_export_dir(summarised_copy, tmp_path):
    summarised = summarised_copy
    dataset, _ = summarised
    view = dataset.limit(2)
    first, second = view.values("id")
    dataset.set_values("title", {first: "../../escape/me", second: ".."}, key_field="id")
    out = tmp_path / "deep" / "out"
    report = export_summary(view, str(out), name_field="title", clips=False, storyboard=False)
    fallback = safe_stem(dataset[second].filepath)  # '..' names nothing: the file name, as by default
    assert sorted(report.reels.values()) == sorted(
        [str(out / "escape_me" / "escape_me_summary.mp4"), str(out / fallback / f"{fallback}_summary.mp4")]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]


def test_fiftyone_route_exports_the_clips_view_with_labels(summarised, tmp_path):
    dataset, report = summarised
    view = dataset.limit(2)
    out = export_summary_dataset(view, str(tmp_path / "fo"))
    back = fo.Dataset.from_dir(out, dataset_type=fo.types.FiftyOneVideoLabelsDataset)
    segments = {(round(d.confidence, 6)): tuple(d.support) for s in view for d in s.clipit_summary.detections}
    assert len(back) == len(segments)
    for sample in back:
        assert sample.labels.label == QUERY
        first, last = segments[round(sample.labels.confidence, 6)]
        with av.open(sample.filepath) as clip:
            assert abs(sum(1 for _ in clip.decode(video=0)) - (last - first + 1)) <= 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]
    with pytest.raises(ClipItError, match="exists and is not empty; pass overwrite=True"):
        export_summary_dataset(view, out)


# ---------------------------------------------------------------- the cutter on its own


def test_cuts_are_frame_exact_on_real_footage(real_videos, tmp_path):
    # bottle-detection runs at 179/6 = 29.83 fps: frames are found by timestamp, not rounded times.
    from fiftyone_clipit.reels import write_segments

    (source,) = [str(v) for v in real_videos if v.name == "bottle-detection.mp4"]

    def thumbnails(path):
        with av.open(path) as container:
            return np.array([f.to_ndarray(width=64, height=36, format="gray") for f in container.decode(video=0)],
                            dtype=float)

    segments = [(100, 160), (500, 530), (1100, 1189)]
    written = write_segments(source, segments, reel_path=str(tmp_path / "reel.mp4")).reel
    assert written.n_frames == 61 + 31 + 90 and written.segments == tuple(segments)
    original, reel = thumbnails(source), thumbnails(written.path)
    wanted = [n - 1 for a, b in segments for n in range(a, b + 1)]
    assert len(reel) == len(wanted)
    mismatches = 0
    for frame, index in zip(reel, wanted):  # the wanted frame matches best, unless a neighbour is a copy of it
        errors = {i: np.mean((frame - original[i]) ** 2) for i in (index - 1, index, index + 1) if i < len(original)}
        best = min(errors, key=errors.get)
        if best != index:
            mismatches += 1
            assert np.mean((original[best] - original[index]) ** 2) < 1.0, (index, best, errors)
    assert mismatches <= 5


def test_cutter_refuses_bad_segments_and_leaves_nothing(video_dir, tmp_path):
    from fiftyone_clipit.reels import write_segments

    source = str(video_dir / "colors_a.mp4")
    with pytest.raises(ValueError, match=r"segment 1 = \[5, 12\] starts before segment 0 = \[1, 10\] ends"):
        write_segments(source, [(1, 10), (5, 12)], reel_path=str(tmp_path / "r.mp4"))
    with pytest.raises(ValueError, match=r"Segment 0 = \[0, 3\] must have 1 <= first <= last"):
        write_segments(source, [(0, 3)], reel_path=str(tmp_path / "r.mp4"))
    with pytest.raises(ClipItError, match=r"segment \[95, 99\] lies past the last frame"):
        write_segments(source, [(1, 5), (95, 99)], reel_path=str(tmp_path / "r.mp4"),
                       clip_paths=[str(tmp_path / "c1.mp4"), str(tmp_path / "c2.mp4")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1.mp4"]  # the finished clip, whole
    assert len(decode(str(tmp_path / "c1.mp4"))[0]) == 5


def test_operators_take_the_new_options(summarised_copy, tmp_path):
    summarised = summarised_copy
    import fiftyone.operators as foo

    dataset, _ = summarised
    uri = "@clipit/video-summarization/"
    params = {"summary_field": "op_summary", "budget_unit": "seconds", "budget": 2.0,
              "segmentation": "uniform", "segment_seconds": 0.5}
    result = foo.execute_operator(uri + "create_summary", ctx={"dataset": dataset, "params": params})
    result.raise_exceptions()
    assert result.result["summarized"] == len(dataset)
    for sample in dataset.select_fields(["metadata", "op_summary"]):
        assert sum(b - a + 1 for a, b in supports(sample, "op_summary")) <= int(2.0 * sample.metadata.frame_rate)
    params = {"export_dir": str(tmp_path / "fo"), "summary_field": "op_summary", "as_dataset": True}
    result = foo.execute_operator(uri + "export_summary", ctx={"dataset": dataset, "params": params})
    result.raise_exceptions()
    assert len(list((tmp_path / "fo" / "data").glob("*.mp4"))) == dataset.count("op_summary.detections")

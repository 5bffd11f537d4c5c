"""The decode-and-embed pipeline on real decoded videos, without a database."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

from conftest import write_video
from fiftyone_clipit.errors import VideoError
from fiftyone_clipit.ingest import embed_videos, up_to_date
from fiftyone_clipit.store import FINGERPRINT_END_BYTES, file_fingerprint


def test_videos_come_out_in_order_each_whole_and_a_bad_one_alone(tmp_path, tiny_encoder, bad_files):
    first = str(write_video(tmp_path / "a.mp4", 60, fps=30))
    second = str(write_video(tmp_path / "b.mp4", 45, fps=15))
    videos = [("a", first), ("bad", str(bad_files["text"])), ("b", second)]
    outcomes = list(embed_videos(videos, tiny_encoder, fps=2.0, batch_size=4))
    assert [o.key for o in outcomes] == ["a", "bad", "b"]
    a, bad, b = outcomes
    assert isinstance(bad.error, VideoError) and bad.item is None
    assert a.item.frame_numbers.tolist() == [1, 16, 31, 46] and b.item.frame_numbers.tolist() == [1, 9, 16, 24, 31, 39]  # first frame at or after each 0.5 s
    assert a.item.embeddings.shape == (4, tiny_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(b.item.embeddings, axis=1), 1.0, atol=1e-5)
    assert a.item.info["fingerprint"] == file_fingerprint(first) and a.status.n_decoded == 60
    wanted = {"model": tiny_encoder.name, "fps": 2.0, "fingerprint": file_fingerprint(first)}
    assert up_to_date(a.item.info, wanted, keep_partial=False)
    assert not up_to_date(a.item.info, {**wanted, "fps": 1.0}, keep_partial=False)
    assert not up_to_date({**a.item.info, "broken": True}, wanted, keep_partial=False)


@pytest.mark.reliability("bad_input")
@pytest.mark.parametrize("size", [1000, 5 * 2**20])
def test_the_file_fingerprint_follows_content_not_size_and_time(tmp_path, size):
    """Issue 22: other bytes of the same size with the timestamp restored are another file; the
    same bytes under another name and time are the same file. Small files are hashed whole;
    past the sampled length a change inside a sampled block is seen."""
    rng = np.random.default_rng(size)
    original = tmp_path / "a.mp4"
    original.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    fingerprint = file_fingerprint(str(original))
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(original.read_bytes())
    assert file_fingerprint(str(copy)) == fingerprint
    stat = original.stat()
    for offset in (0, size // 2 if size < FINGERPRINT_END_BYTES else FINGERPRINT_END_BYTES, size - 1):
        changed = bytearray(original.read_bytes())
        changed[offset] ^= 0xFF
        copy.write_bytes(bytes(changed))
        os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert copy.stat().st_size == stat.st_size and copy.stat().st_mtime_ns == stat.st_mtime_ns
        assert file_fingerprint(str(copy)) != fingerprint, offset


def test_several_decoders_give_the_same_videos_in_order_and_a_bad_one_alone(tmp_path, tiny_encoder, bad_files):
    paths = [str(write_video(tmp_path / f"v{i}.mp4", 30 + 15 * i, fps=15)) for i in range(4)]
    videos = [("v0", paths[0]), ("bad", str(bad_files["text"])), *[(f"v{i}", p) for i, p in enumerate(paths) if i]]
    one = list(embed_videos(videos, tiny_encoder, fps=2.0, batch_size=4, decoders=1))
    pooled = []
    for outcome in embed_videos(videos, tiny_encoder, fps=2.0, batch_size=4, decoders=3, prefetch_batches=1):
        time.sleep(1.2)  # a slow model: the decoders wait on their full queues, past their poll
        pooled.append(outcome)
    assert [o.key for o in pooled] == [o.key for o in one] == ["v0", "bad", "v1", "v2", "v3"]
    assert isinstance(pooled[1].error, VideoError) and pooled[1].error.path == str(bad_files["text"])
    assert pooled[1].error.reason == one[1].error.reason
    for mine, theirs in zip(pooled[2:], one[2:]):
        assert mine.item.frame_numbers.tolist() == theirs.item.frame_numbers.tolist()
        np.testing.assert_array_equal(mine.item.embeddings, theirs.item.embeddings)
        assert mine.status.n_decoded == theirs.status.n_decoded
    assert not multiprocessing.active_children()  # the pool ends with the run


def test_a_decoder_process_that_dies_fails_its_video_alone(tmp_path, tiny_encoder):
    paths = [str(write_video(tmp_path / f"v{i}.mp4", 90, fps=30)) for i in range(5)]
    outcomes = embed_videos([(str(i), p) for i, p in enumerate(paths)], tiny_encoder, fps=30.0, batch_size=4, decoders=2)
    first = next(outcomes)  # video 0 done; decoder 1 is on a chunk of a later video, its queue full
    victim = next(p for p in multiprocessing.active_children() if p.name == "clipit-decoder-1")
    os.kill(victim.pid, signal.SIGKILL)
    rest = list(outcomes)
    assert [o.key for o in [first, *rest]] == ["0", "1", "2", "3", "4"]
    failed = [o for o in rest if o.error is not None]
    assert len(failed) == 1 and failed[0].item is None and "decoder process died" in failed[0].error.reason
    assert failed[0].error.path == paths[int(failed[0].key)]
    assert all(len(o.item.frame_numbers) == 90 for o in [first, *rest] if o.error is None)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("fps", [2.0, 7.3, 30.0])
def test_chunked_decoders_give_the_frames_of_one_decoder_reading_whole(real_videos, fps):
    """Several decoders cut each video into chunks of sampling times (here a few samples each, so
    every video is many chunks, each found by a seek): the frames, their times and the count of
    decoded frames are those one decoder gives reading each video whole (fps below, between and
    above the sources' 12.5 and 29.8 fps)."""
    from fiftyone_clipit.decode import ResizeSpec
    from fiftyone_clipit.decoders import decode_videos

    videos = [(p.stem, str(p)) for p in real_videos]

    def decoded(decoders: int) -> dict:
        out: dict = {key: [[], [], None] for key, _ in videos}
        for key, event in decode_videos(videos, fps, ResizeSpec(16), 4, False, decoders, 1, 1):
            if hasattr(event, "frame_numbers"):
                out[key][0].extend(event.frame_numbers.tolist())
                out[key][1].extend(event.times.tolist())
            else:
                out[key][2] = (type(event).__name__, getattr(event, "n_decoded", None))
        return out

    whole = decoded(1)
    chunked = decoded(3)
    assert chunked == whole
    assert all(len(frames) > 12 for frames, _, _ in whole.values())  # several chunks a video
    assert not multiprocessing.active_children()

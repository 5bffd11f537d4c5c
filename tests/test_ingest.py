"""The decode-and-embed pipeline on real decoded videos, without a database."""

from __future__ import annotations

import numpy as np

from conftest import write_video
from fiftyone_clipit.errors import VideoError
from fiftyone_clipit.ingest import embed_videos, up_to_date
from fiftyone_clipit.store import file_fingerprint


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

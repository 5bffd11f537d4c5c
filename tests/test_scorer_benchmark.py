"""`fiftyone-clipit benchmark summe`: the 5-split protocol's mechanics on features made here.

No benchmark videos are reachable offline, so the features are generated from SumMe's real
annotations: random unit vectors tilted towards one direction as the users' consensus score
rises. The table must cover the 5 splits of the shared split file, with each split's test
videos never used for training or model selection.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fiftyone_clipit.benchmark import run_benchmark
from fiftyone_clipit.cli import main
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.readers import read_splits, read_summe, shared_data_dir
from fiftyone_clipit.training import TrainingOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summe_features(tmp_path_factory):
    if not (shared_data_dir() / "summe" / "GT").is_dir():
        pytest.skip(f"no SumMe annotations under {shared_data_dir()}")
    folder = tmp_path_factory.mktemp("summe-features")
    rng = np.random.default_rng(0)
    direction = rng.normal(size=32)
    for annotation in read_summe():
        picks = np.arange(0, annotation.n_frames, max(1, round(annotation.fps / 2)))
        consensus = annotation.gt_score[picks]
        consensus = (consensus - consensus.min()) / (np.ptp(consensus) + 1e-9)
        features = rng.normal(size=(len(picks), 32)) + 1.5 * consensus[:, None] * direction
        np.savez(folder / f"{annotation.name}.npz", embeddings=features.astype(np.float32), frame_numbers=picks + 1)
    return folder


def test_benchmark_command_prints_the_f1_table_of_the_five_splits(summe_features, capsys, one_thread):
    assert main(["benchmark", "summe", "--features", str(summe_features), "--preset", "tiny",
                 "--epochs", "3", "--learning-rate", "0.01", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    splits = read_splits("summe_splits_pglsum.json")
    assert len(result["splits"]) == 5 == len(splits)
    assert result["mean_f1"] == pytest.approx(np.mean([row["f1"] for row in result["splits"]]))
    for row, split in zip(result["splits"], splits):
        assert row["n_test"] == len(split["test_keys"])
        assert row["n_train"] + row["n_validation"] == len(split["train_keys"])
        assert 0.0 <= row["f1"] <= 1.0 and 1 <= row["best_epoch"] <= 3
        assert f"split {row['split']}: F1 {row['f1']:.4f}" in "\n".join(lines)
    assert f"mean F1 over 5 splits: {result['mean_f1']:.4f}" in lines[-2]


def test_informative_features_beat_noise_on_the_same_protocol(summe_features, tmp_path, one_thread):
    options = TrainingOptions(epochs=3, learning_rate=1e-2, f1_mode="max")
    for path in summe_features.iterdir():
        with np.load(path) as data:
            noise = np.random.default_rng(1).normal(size=data["embeddings"].shape).astype(np.float32)
            np.savez(tmp_path / path.name, embeddings=noise, frame_numbers=data["frame_numbers"])
    informed = run_benchmark("summe", str(summe_features), preset="tiny", options=options)
    blind = run_benchmark("summe", str(tmp_path), preset="tiny", options=options)
    assert informed.mean_f1 > blind.mean_f1 + 0.05, (informed.mean_f1, blind.mean_f1)


def test_missing_features_are_named(summe_features, tmp_path):
    (tmp_path / "Air_Force_One.npz").write_bytes((summe_features / "Air_Force_One.npz").read_bytes())
    with pytest.raises(ClipItError, match=r"(?s)24 of the summe videos have no usable features.*Base jumping"):
        run_benchmark("summe", str(tmp_path), preset="tiny")
    with pytest.raises(ClipItError, match="does not exist"):
        run_benchmark("summe", str(tmp_path / "nowhere"), preset="tiny")

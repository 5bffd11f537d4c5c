"""The CLIP-It scorer network: presets, windows, shapes, text dependence, checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time

import numpy as np
import pytest
import torch

from fiftyone_clipit.checkpoints import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.scorer import (
    FULL_ATTENTION_MAX_STEPS,
    ClipItScorer,
    ScorerConfig,
    attention_windows,
    list_presets,
    load_preset,
    predict_scores,
)


@pytest.fixture(scope="module")
def tiny_model() -> ClipItScorer:
    torch.manual_seed(0)
    return ClipItScorer(load_preset("tiny")).eval()


def unit_rows(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_presets_are_json_files_with_the_paper_sizes_as_default():
    assert {"paper", "tiny"} <= set(list_presets())
    paper = load_preset()
    assert (paper.name, paper.feature_dim, paper.model_dim, paper.text_heads) == ("paper", 512, 512, 4)
    assert (paper.layers, paper.heads, paper.feedforward_dim) == (6, 8, 2048)
    assert load_preset("tiny", feature_dim=64).feature_dim == 64


def test_unknown_preset_and_bad_configs_are_named():
    with pytest.raises(ClipItError, match=r"'huge' not found.*\['paper', 'tiny'"):
        load_preset("huge")
    with pytest.raises(ClipItError, match=r"Unknown scorer config keys \['depth'\]"):
        ScorerConfig.from_dict({"depth": 3})
    with pytest.raises(ClipItError, match="heads=3 must divide model_dim=32"):
        ScorerConfig(model_dim=32, heads=3)
    with pytest.raises(ClipItError, match="window_overlap"):
        ScorerConfig(window=16, window_overlap=8)


@pytest.mark.parametrize("n_steps", [1, 7, 64, 65, 100, 1000, 14400])
def test_windows_tile_the_video_with_context_on_both_sides(n_steps):
    window, overlap = 64, 8
    spans = attention_windows(n_steps, window, overlap)
    kept = np.concatenate([np.arange(keep_lo, keep_hi) for _, _, keep_lo, keep_hi in spans])
    assert np.array_equal(kept, np.arange(n_steps))
    for lo, hi, keep_lo, keep_hi in spans:
        assert 0 <= lo <= keep_lo < keep_hi <= hi <= n_steps
        if n_steps > window:
            assert hi - lo == window
            assert keep_lo - lo >= overlap or lo == 0
            assert hi - keep_hi >= overlap or hi == n_steps
    assert len(spans) <= n_steps // (window - 2 * overlap) + 1


def test_scores_are_per_step_probabilities_and_batching_does_not_change_them(tiny_model):
    rng = np.random.default_rng(0)
    videos = [unit_rows(rng, n) for n in (50, 200, 3)]
    texts = [unit_rows(rng, m) for m in (1, 3, 2)]
    together = predict_scores(tiny_model, videos, texts)
    alone = [predict_scores(tiny_model, [v], [t])[0] for v, t in zip(videos, texts)]
    for video, a, b in zip(videos, together, alone):
        assert a.shape == (len(video),) and np.all((a > 0) & (a < 1))
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_short_video_is_attended_as_a_whole_and_a_long_one_only_within_windows(tiny_model):
    rng = np.random.default_rng(1)
    text = unit_rows(rng, 1)
    short = unit_rows(rng, 60)  # <= window (64): one window, every step sees every other
    changed = short.copy()
    changed[-1] = unit_rows(rng, 1)[0]
    a, b = predict_scores(tiny_model, [short, changed], [text, text])
    assert not np.allclose(a[:10], b[:10], atol=1e-7)
    long = unit_rows(rng, 300)
    far = long.copy()
    far[200:] = unit_rows(rng, 100)  # beyond the first window's reach: steps 0..47 are kept from [0, 64)
    a, b = predict_scores(tiny_model, [long, far], [text, text], attention="windowed")
    np.testing.assert_array_equal(a[:48], b[:48])
    assert not np.allclose(a[200:], b[200:])
    a, b = predict_scores(tiny_model, [long, far], [text, text])  # auto: 300 steps are attended whole
    assert not np.allclose(a[:48], b[:48], atol=1e-7)


def test_full_and_windowed_attention_agree_on_a_video_that_fits_one_window(tiny_model):
    rng = np.random.default_rng(5)
    frames, text = unit_rows(rng, 64), unit_rows(rng, 2)
    full = predict_scores(tiny_model, [frames], [text], attention="full")[0]
    windowed = predict_scores(tiny_model, [frames], [text], attention="windowed")[0]
    np.testing.assert_array_equal(full, windowed)


def test_windows_see_the_positions_of_the_whole_video(tiny_model):
    """Windowed attention deep into a long video knows where it is, as full attention does.

    With the transformer's self-attention silenced, each step's score depends only on its own
    features and its position code; on a video of identical frames, windowed scores then equal
    full ones step for step only if every window adds the positions of the whole video (window-
    local positions would repeat the first window's scores in every window).
    """
    model = ClipItScorer(load_preset("tiny")).eval()
    model.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        for layer in model.encoder.layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()
    rng = np.random.default_rng(6)
    frames, text = np.repeat(unit_rows(rng, 1), 300, axis=0), unit_rows(rng, 1)
    assert len(model.attention_spans(300, "windowed")) > 2
    full = predict_scores(model, [frames], [text], attention="full")[0]
    windowed = predict_scores(model, [frames], [text], attention="windowed")[0]
    np.testing.assert_allclose(windowed, full, atol=1e-6)
    stride = 64 - 2 * 8
    assert not np.allclose(windowed[10 : 10 + stride], windowed[10 + stride : 10 + 2 * stride], atol=1e-4)


def test_auto_attention_is_full_up_to_the_memory_bound_then_windowed(tiny_model):
    assert tiny_model.attention_spans(FULL_ATTENTION_MAX_STEPS) == [(0, FULL_ATTENTION_MAX_STEPS, 0, FULL_ATTENTION_MAX_STEPS)]
    assert len(tiny_model.attention_spans(FULL_ATTENTION_MAX_STEPS + 1)) > 1
    assert tiny_model.attention_spans(5000, "full") == [(0, 5000, 0, 5000)]
    with pytest.raises(ClipItError, match=r"Unknown attention 'sliding'.*\['auto', 'full', 'windowed'\]"):
        predict_scores(tiny_model, [np.ones((3, 32), np.float32)], [np.ones((1, 32), np.float32)], attention="sliding")


def test_scores_depend_on_the_text_even_with_one_sentence(tiny_model):
    rng = np.random.default_rng(2)
    frames = unit_rows(rng, 40)
    a, b = predict_scores(tiny_model, [frames, frames], [unit_rows(rng, 1), unit_rows(rng, 1)])
    assert np.abs(a - b).max() > 1e-4


def test_bad_inputs_are_named(tiny_model):
    rng = np.random.default_rng(3)
    with pytest.raises(ClipItError, match=r"Frame embeddings #0 has shape \(10, 16\).*\(n >= 1, 32\)"):
        predict_scores(tiny_model, [rng.normal(size=(10, 16))], [unit_rows(rng, 1)])
    bad = unit_rows(rng, 5)
    bad[2, 0] = np.nan
    with pytest.raises(ClipItError, match="NaN"):
        predict_scores(tiny_model, [bad], [unit_rows(rng, 1)])


def test_checkpoint_round_trip_gives_bit_identical_scores(tiny_model, tmp_path):
    rng = np.random.default_rng(4)
    videos, texts = [unit_rows(rng, 90), unit_rows(rng, 150)], [unit_rows(rng, 1), unit_rows(rng, 2)]
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {"data": {"clip_model": "tiny-random"}}, "# card\n")
    assert sorted(os.listdir(path)) == sorted([CONFIG_FILE, WEIGHTS_FILE, "MODEL_CARD.md"])
    loaded = load_checkpoint(path)
    assert loaded.config == tiny_model.config and loaded.metadata["data"]["clip_model"] == "tiny-random"
    for a, b in zip(predict_scores(tiny_model, videos, texts), predict_scores(loaded.model, videos, texts)):
        assert np.array_equal(a, b)
    with pytest.raises(ClipItError, match="already exists"):
        save_checkpoint(path, tiny_model, {}, "")


def test_version_1_checkpoints_still_load_with_their_concat_fusion(tmp_path):
    """Checkpoints written before fusion and input_norm were config keys keep their architecture."""
    torch.manual_seed(1)
    old = ClipItScorer(load_preset("tiny", fusion="concat", input_norm=False)).eval()
    path = save_checkpoint(str(tmp_path / "v1"), old, {}, "")
    config_path = os.path.join(path, CONFIG_FILE)
    document = json.loads(open(config_path).read())
    document["format_version"] = 1
    del document["config"]["fusion"], document["config"]["input_norm"]
    open(config_path, "w").write(json.dumps(document))
    loaded = load_checkpoint(path)
    assert (loaded.config.fusion, loaded.config.input_norm) == ("concat", False)
    rng = np.random.default_rng(7)
    frames, text = unit_rows(rng, 30), unit_rows(rng, 1)
    assert np.array_equal(predict_scores(old, [frames], [text])[0], predict_scores(loaded.model, [frames], [text])[0])


def test_loading_never_unpickles(tiny_model, tmp_path):
    """A pickle put where the weights belong is refused, and its payload never runs."""
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {}, "")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(os.path.join(path, WEIGHTS_FILE), "wb") as f:
        pickle.dump(Payload(), f)
    with pytest.raises(ClipItError, match=r"model\.safetensors holds \d+ bytes but config\.json records"):
        load_checkpoint(path)
    edit_config(path, as_version_2)  # no checksum to stop it: the safetensors reader refuses the pickle
    with pytest.raises(ClipItError, match="model.safetensors cannot be read"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.reliability("bad_input")
def test_a_checkpoint_with_nan_weights_is_refused(tiny_model, tmp_path):
    diverged = ClipItScorer(tiny_model.config)  # as a diverged training saves it: checksum and all
    diverged.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        diverged.score_head.weight[0, 0] = float("nan")
    path = save_checkpoint(str(tmp_path / "nan"), diverged, {}, "")
    with pytest.raises(ClipItError, match=r"weights \['score_head.weight'\] hold NaN or infinite values"):
        load_checkpoint(path)


def test_broken_checkpoints_are_named(tiny_model, tmp_path):
    with pytest.raises(ClipItError, match="not found or incomplete"):
        load_checkpoint(str(tmp_path / "nothing"))
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {}, "")
    config_path = os.path.join(path, CONFIG_FILE)
    document = json.loads(open(config_path).read())
    document["config"]["layers"] = 2
    open(config_path, "w").write(json.dumps(document))
    with pytest.raises(ClipItError, match="weights do not fit its config"):
        load_checkpoint(path)
    document["format"] = "something-else"
    open(config_path, "w").write(json.dumps(document))
    with pytest.raises(ClipItError, match="is not a CLIP-It scorer config"):
        load_checkpoint(path)


def edit_config(path: str, change) -> None:
    """Rewrites a checkpoint's config.json through `change(document)`."""
    config_path = os.path.join(path, CONFIG_FILE)
    document = json.loads(open(config_path).read())
    change(document)
    open(config_path, "w").write(json.dumps(document))


def as_version_2(document: dict) -> None:
    """A checkpoint as written before checksums were recorded (format version 2, no "files")."""
    document["format_version"] = 2
    del document["files"]


def refusal(path: str) -> str:
    """The one-line ClipItError that loading `path` raises, which names the checkpoint."""
    with pytest.raises(ClipItError) as raised:
        load_checkpoint(path)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"Scorer checkpoint '{path}'"), message
    return message


@pytest.mark.reliability("bad_input")
def test_a_flipped_byte_in_the_weights_is_refused_naming_the_file(tiny_model, tmp_path):
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {}, "")
    weights_path = os.path.join(path, WEIGHTS_FILE)
    data = bytearray(open(weights_path, "rb").read())
    middle = len(data) // 2
    assert middle > 8 + int.from_bytes(data[:8], "little")  # a byte of a tensor, past the header
    data[middle] ^= 0x01  # the same size, a finite weight changed in its last bits
    open(weights_path, "wb").write(data)
    message = refusal(path)
    assert "model.safetensors does not match the SHA-256 recorded in config.json" in message
    assert message.endswith("retrain the scorer or restore the checkpoint folder from a copy")
    edit_config(path, lambda document: document.pop("files"))  # the record deleted: not loaded unchecked
    assert "config.json records no SHA-256 and size for model.safetensors" in refusal(path)


@pytest.mark.reliability("bad_input")
@pytest.mark.parametrize("damage, expected", [
    (lambda d: d.pop("config"), 'config.json has no "config" object'),
    (lambda d: d["config"].pop("model_dim"), "config.json is damaged: Scorer config keys ['model_dim'] are missing"),
    (lambda d: d["config"].update(depth=3), "config.json is damaged: Unknown scorer config keys ['depth']"),
    (lambda d: d["config"].update(model_dim="32"), "model_dim must be an integer from 1 to 16,384, got '32'"),
    (lambda d: d["config"].update(dropout="0.1"), "dropout must be a number in [0, 1), got '0.1'"),
], ids=["no-config", "missing-key", "unknown-key", "text-size", "text-dropout"])
def test_a_damaged_config_is_one_error_naming_the_key(tiny_model, tmp_path, damage, expected):
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {}, "")
    edit_config(path, damage)
    message = refusal(path)
    assert expected in message and message.endswith("restore the checkpoint folder from a copy")


@pytest.mark.reliability("bad_input")
def test_an_absurd_size_is_refused_before_anything_is_allocated(tiny_model, tmp_path):
    """model_dim 2,000,000 asks for a 48 TB attention layer: refused by the config check, at once."""
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {}, "")
    edit_config(path, lambda d: d["config"].update(model_dim=2_000_000, heads=2))
    start = time.perf_counter()
    message = refusal(path)
    assert time.perf_counter() - start < 2.0
    assert "model_dim must be an integer from 1 to 16,384, got 2000000" in message
    with pytest.raises(ClipItError, match="layers must be an integer from 1 to 128, got 100000"):
        load_preset("tiny", layers=100_000)


@pytest.mark.reliability("bad_input")
@pytest.mark.parametrize("key, value, stored", [
    ("feedforward_dim", 128, 64), ("layers", 2, 1), ("fusion", "concat", "product"), ("input_norm", False, True),
])
def test_a_size_that_disagrees_with_the_weights_names_the_key(tiny_model, tmp_path, key, value, stored):
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {}, "")
    edit_config(path, lambda d: d["config"].update({key: value}))
    message = refusal(path)
    assert f"config.json says {key}={value!r} but the weights have {key}={stored!r}" in message


@pytest.mark.reliability("bad_input")
def test_checkpoints_record_a_checksum_and_older_ones_without_it_still_load(tiny_model, tmp_path):
    path = save_checkpoint(str(tmp_path / "ckpt"), tiny_model, {}, "")
    data = open(os.path.join(path, WEIGHTS_FILE), "rb").read()
    record = json.loads(open(os.path.join(path, CONFIG_FILE)).read())["files"][WEIGHTS_FILE]
    assert record == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    edit_config(path, as_version_2)
    loaded = load_checkpoint(path)
    rng = np.random.default_rng(8)
    frames, text = unit_rows(rng, 30), unit_rows(rng, 1)
    assert np.array_equal(predict_scores(tiny_model, [frames], [text])[0], predict_scores(loaded.model, [frames], [text])[0])

"""open_clip's real loading code: presets, clear errors without weights, decoder-side resizing."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from fiftyone_clipit.decode import iter_sampled_frames
from fiftyone_clipit.encoders import PRESETS, list_models, load_clip
from fiftyone_clipit.errors import ClipItError, WeightsNotFoundError


def test_presets_are_listed_first():
    assert list_models()[:3] == ["ViT-B-32", "ViT-B-32-random", "tiny-random"]
    assert "ViT-L-14" in list_models()
    assert PRESETS["tiny-random"].pretrained is None


def test_tiny_random_embeds_unit_vectors(tiny_encoder):
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    images = tiny_encoder.encode_images(frames)
    texts = tiny_encoder.encode_text(["a person", "a dog"])
    assert images.shape == (3, 32) and texts.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(texts[0], texts[1])


def test_random_models_are_reproducible(tiny_encoder):
    again = load_clip("tiny-random")
    np.testing.assert_array_equal(again.encode_text(["a cat"]), tiny_encoder.encode_text(["a cat"]))


def test_wrong_frame_shape_is_rejected(tiny_encoder):
    with pytest.raises(ValueError, match=r"\(b, 32, 32, 3\)"):
        tiny_encoder.encode_images(np.zeros((1, 224, 224, 3), np.uint8))


@pytest.mark.parametrize("query", ["", "   ", []])
def test_empty_query_is_rejected(tiny_encoder, query):
    with pytest.raises(ClipItError, match="non-empty"):
        tiny_encoder.encode_text(query)


def test_unknown_model_lists_the_presets():
    with pytest.raises(ClipItError, match="Unknown CLIP model 'ViT-Q-99'.*tiny-random"):
        load_clip("ViT-Q-99")


def test_missing_weights_fail_in_one_sentence_naming_model_and_remedy():
    with pytest.raises(WeightsNotFoundError) as error:
        load_clip("ViT-B-32")
    message = str(error.value)
    assert "'ViT-B-32'" in message and "HF_HUB_OFFLINE" in message
    assert "--pretrained" in message and "local-dir:" in message
    assert "\n" not in message


def test_missing_weights_file_and_unknown_tag(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_clip("ViT-B-32", pretrained=str(tmp_path / "nope.safetensors"))
    with pytest.raises(WeightsNotFoundError, match="no pretrained tag 'nonsense'"):
        load_clip("ViT-B-32", pretrained="nonsense")


def test_weights_file_is_loaded_through_open_clip(tmp_path, tiny_encoder):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    other = open_clip.create_model("clipit-tiny-random")
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    loaded = load_clip("tiny-random", pretrained=str(path))
    expected = torch.nn.functional.normalize(
        other.eval().encode_text(open_clip.get_tokenizer("clipit-tiny-random")(["a cat"])), dim=-1
    )
    np.testing.assert_allclose(loaded.encode_text(["a cat"]), expected.detach().numpy(), atol=1e-5)
    assert not np.allclose(loaded.encode_text(["a cat"]), tiny_encoder.encode_text(["a cat"]))


def _model_transform_embeddings(encoder, architecture, frames):
    _, _, preprocess = open_clip.create_model_and_transforms(architecture)
    with torch.inference_mode():
        x = torch.stack([preprocess(Image.fromarray(f)) for f in frames])
        return torch.nn.functional.normalize(encoder.model.encode_image(x), dim=-1).numpy()


def _decoder_resize_agreement(encoder, architecture, video):
    resized = next(iter_sampled_frames(str(video), 1.0, resize=encoder.resize, batch_size=4))
    full = next(iter_sampled_frames(str(video), 1.0, resize=None, batch_size=4))
    ours = encoder.encode_images(resized.frames)
    theirs = _model_transform_embeddings(encoder, architecture, full.frames)
    return (ours * theirs).sum(axis=1)


def test_decoder_resizing_matches_the_model_transform(tiny_encoder, real_videos):
    cosine = _decoder_resize_agreement(tiny_encoder, "clipit-tiny-random", real_videos[0])
    assert cosine.min() > 0.999


@pytest.mark.slow
def test_decoder_resizing_matches_the_model_transform_vit_b_32(real_videos):
    encoder = load_clip("ViT-B-32-random")
    assert encoder.resize.size == 224 and encoder.resize.interpolation == "BICUBIC"
    cosine = _decoder_resize_agreement(encoder, "ViT-B-32", real_videos[-1])
    assert cosine.min() > 0.995


def test_int8_is_a_cpu_option_that_quantizes_only_the_image_tower(tiny_encoder):
    int8 = load_clip("tiny-random", precision="int8")
    assert int8.precision == "int8" and tiny_encoder.precision == "fp32"
    quantized = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, quantized) for m in int8.model.visual.modules())
    assert not any(isinstance(m, quantized) for m in int8.model.transformer.modules())
    np.testing.assert_array_equal(int8.encode_text(["a cat"]), tiny_encoder.encode_text(["a cat"]))
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    cosine = (int8.encode_images(frames) * tiny_encoder.encode_images(frames)).sum(axis=1)
    assert cosine.min() > 0.99


def test_unknown_or_unsupported_precision_is_refused():
    with pytest.raises(ClipItError, match=r"Unknown precision 'bf16'. Available: \['fp32', 'fp16', 'int8'\]"):
        load_clip("tiny-random", precision="bf16")
    with pytest.raises(ClipItError, match="'fp16' runs on cuda only.*'int8' for the faster CPU path"):
        load_clip("tiny-random", device="cpu", precision="fp16")


@pytest.mark.slow
def test_int8_vit_b_32_embeddings_stay_within_cosine_0999_of_fp32(real_videos):
    fp32 = load_clip("ViT-B-32-random")
    int8 = load_clip("ViT-B-32-random", precision="int8")
    batch = next(iter_sampled_frames(str(real_videos[0]), 0.5, resize=fp32.resize, batch_size=8))
    cosine = (int8.encode_images(batch.frames) * fp32.encode_images(batch.frames)).sum(axis=1)
    assert cosine.min() >= 0.999

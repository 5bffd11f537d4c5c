"""CLIP image and text encoders loaded through open_clip's own loading code.

Model names are either presets from `models/clip_models.json` (`ViT-B-32`, `ViT-B-32-random`,
`tiny-random`), any open_clip architecture (`open_clip.list_models()`), or open_clip's
`hf-hub:ORG/REPO` and `local-dir:DIR` schemas. `pretrained` is an open_clip tag or a checkpoint
file. Weights are never downloaded silently into a dead end: when they are neither cached nor
reachable, loading stops with one sentence that says how to supply them.

Precision (`precision=`): fp32 on CPU and fp16 on a GPU by default. `"int8"` is a faster CPU
path that is never chosen silently: the image tower's linear layers (the MLPs, about two thirds
of ViT-B/32's work) are quantized to int8 with dynamic activation scales
(`torch.ao.quantization.quantize_dynamic`), which ran ViT-B/32 1.6-1.8 times faster on a
2-core CPU with embeddings at cosine >= 0.9998 to fp32 on real footage (`fiftyone-clipit bench
embeddings` measures both). The text tower stays fp32.
"""

from __future__ import annotations

import os
import pickle
import socket
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import Sequence
from urllib.parse import urlparse

import numpy as np
import open_clip
import torch

from fiftyone_clipit.decode import ResizeSpec
from fiftyone_clipit.defaults import DEFAULT_MODEL, PRESETS_PACKAGE, clip_model_presets
from fiftyone_clipit.errors import ClipItError, WeightsNotFoundError

_SCHEMAS = ("hf-hub:", "local-dir:")
#: precision -> where it runs; None (the default) picks fp16 on cuda and fp32 elsewhere
PRECISIONS = {"fp32": "any device", "fp16": "cuda", "int8": "cpu"}


@dataclass(frozen=True)
class ModelPreset:
    """A named CLIP model: an open_clip architecture and the weights that go with it.

    Attributes:
        name: the name users select (`--model`).
        architecture: the open_clip model config name.
        pretrained: an open_clip pretrained tag, or None for random weights (seed 0).
        description: one line for listings.
    """

    name: str
    architecture: str
    pretrained: str | None
    description: str


def _register_configs() -> dict[str, ModelPreset]:
    package = resources.files(PRESETS_PACKAGE)
    for entry in package.iterdir():
        if entry.name.startswith("clipit-") and entry.name.endswith(".json"):
            with resources.as_file(entry) as path:
                open_clip.add_model_config(path)
    return {name: ModelPreset(name=name, **fields) for name, fields in clip_model_presets().items()}


PRESETS: dict[str, ModelPreset] = _register_configs()


def list_models() -> list[str]:
    """Names `load_clip` accepts: the presets, then every open_clip architecture."""
    return list(PRESETS) + [m for m in open_clip.list_models() if m not in PRESETS]


def resolve_device(device: str | None = None) -> torch.device:
    """The device to run on: the given one, else cuda, then mps, then cpu."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The precision to run at: the given one if the device supports it, else the default.

    Raises:
        ClipItError: an unknown precision, or one the device cannot run.
    """
    if precision is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ClipItError(f"Unknown precision '{precision}'. Available: {list(PRECISIONS)}")
    where = PRECISIONS[precision]
    if where != "any device" and device.type != where:
        raise ClipItError(
            f"Precision '{precision}' runs on {where} only, not on '{device}'; use 'fp32' there"
            + (" or 'int8' for the faster CPU path" if device.type == "cpu" else "")
        )
    return precision


def quantize_image_tower(model: torch.nn.Module) -> torch.nn.Module:
    """Makes a CLIP model's image tower run its linear layers in int8 (dynamic scales), in place.

    Only `model.visual` changes (as `.half()` or `.to()` would, the model itself is modified);
    weights are quantized per tensor, activations per batch. Returns the model.
    """
    with warnings.catch_warnings():
        # torch.ao's eager dynamic quantization is deprecated in favour of torchao (not a
        # dependency here) but is still shipped and is still the fastest CPU path in torch
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        model.visual = torch.ao.quantization.quantize_dynamic(
            model.visual, {torch.nn.Linear}, dtype=torch.qint8
        )
    return model


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _reachable(url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _weights_cached(cfg: dict) -> bool:
    """Whether open_clip would find this tag's weights without the network."""
    from huggingface_hub import try_to_load_from_cache

    repo = (cfg.get("hf_hub") or "").rstrip("/")
    if repo:
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(repo, filename), str):
                return True
    url = cfg.get("url")
    if url:
        cache = os.path.expanduser("~/.cache/clip")
        return os.path.isfile(os.path.join(cache, os.path.basename(urlparse(url).path)))
    return False


def _how_to_supply(model: str) -> str:
    return (
        f"supply them by running once with internet access (they are cached under $HF_HOME), "
        f"by passing pretrained=/path/to/weights.safetensors|.bin (CLI: --pretrained), "
        f"or by naming a local open_clip model folder as model='local-dir:DIR' "
        f"(see `fiftyone-clipit models` for the choices; '{model}' was asked for)"
    )


def _check_weights_available(model: str, architecture: str, pretrained: str) -> None:
    if _is_file(pretrained):
        if not os.path.isfile(pretrained):
            raise WeightsNotFoundError(
                f"Weights file '{pretrained}' for CLIP model '{model}' does not exist; "
                + _how_to_supply(model)
            )
        return
    cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        raise WeightsNotFoundError(
            f"CLIP model '{model}' has no pretrained tag '{pretrained}'; available tags: {tags}"
        )
    if _weights_cached(cfg):
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if _hub_offline() or not _reachable(endpoint):
        why = "HF_HUB_OFFLINE is set" if _hub_offline() else f"{endpoint} cannot be reached"
        raise WeightsNotFoundError(
            f"No weights for CLIP model '{model}' (tag '{pretrained}') are cached and {why}; "
            + _how_to_supply(model)
        )


class ClipEncoder:
    """A loaded CLIP model with the preprocessing that belongs to its weights.

    `resize` tells the decoder how to shape frames (shortest side, interpolation, centre crop),
    so frames arrive at the model's input size and only normalisation is left to do here.
    `activation` ("quick_gelu" or "gelu") is read off the built network.
    `precision` is one of PRECISIONS ("fp32", "fp16" on cuda, "int8" on cpu); `architecture`
    is the open_clip model config name (the name users chose, when not given).
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        tokenizer,
        device: torch.device,
        precision: str = "fp32",
        architecture: str | None = None,
    ):
        self.name = name
        self.architecture = architecture or name
        self.precision = resolve_precision(precision, device)
        model = model.eval().to(device)
        if self.precision == "fp16":
            model = model.half()
        elif self.precision == "int8":
            model = quantize_image_tower(model)
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.resize = ResizeSpec(
            size=self.image_size,
            interpolation=str(cfg.get("interpolation", "bicubic")).upper(),
            center_crop=cfg.get("resize_mode", "shortest") == "shortest",
        )
        self._mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device)
        self._std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), device=device)
        self.dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else None
        quick = any(isinstance(m, open_clip.transformer.QuickGELU) for m in model.modules())
        #: the activation the network was built with; embeddings record it, so a model built
        #: another way (GELU for weights trained with QuickGELU, as earlier versions did) is embedded again
        self.activation = "quick_gelu" if quick else "gelu"

    @torch.inference_mode()
    def encode_images(self, frames: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings of RGB frames already at the model's input size.

        Args:
            frames: uint8 array (b, image_size, image_size, 3).

        Returns:
            float32 array (b, d).
        """
        if frames.ndim != 4 or frames.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"frames must be (b, {self.image_size}, {self.image_size}, 3) uint8 for "
                f"'{self.name}', got {frames.shape}"
            )
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self._mean[:, None, None]) / self._std[:, None, None]
        if self.precision == "fp16":
            x = x.half()
        features = self.model.encode_image(x)
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings of sentences: float32 array (len(texts), d).

        Raises:
            ClipItError: no text, or an empty / whitespace-only sentence.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts or any(not t or not t.strip() for t in texts):
            raise ClipItError(f"The query must be non-empty text, got {list(texts)!r}")
        tokens = self.tokenizer(list(texts)).to(self.device)
        features = self.model.encode_text(tokens)
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


def _is_file(pretrained: str) -> bool:
    return os.path.sep in pretrained or bool(os.path.splitext(pretrained)[1])


def _trained_with(model: str, architecture: str, weights: str | None) -> dict:
    """open_clip's pretrained config of the tag the weights come from ({} when none is known).

    A tag names it directly; a weights file given for a preset that names a tag is taken to be
    that tag's weights (the preset's own weights, supplied by hand), so it is built the same way.
    """
    if architecture.startswith(_SCHEMAS) or weights is None:
        return {}
    tag = weights
    if _is_file(weights):
        preset = PRESETS.get(model)
        tag = preset.pretrained if preset is not None else None
    return (open_clip.get_pretrained_cfg(architecture, tag) or {}) if tag else {}


def build_settings(model: str, architecture: str, weights: str | None) -> dict:
    """Keyword arguments for open_clip's factory that build the network the weights were trained in.

    open_clip builds an architecture as its config says and only warns when a pretrained tag was
    trained with another activation (OpenAI's CLIP weights were trained with QuickGELU; the
    `ViT-B-32` config says GELU): every embedding would then come from another function than the
    one the weights were trained in. Here the tag's config decides: QuickGELU when it was trained
    with it, and the tag's preprocessing (mean/std, interpolation, resize mode) also when the
    weights come from a file given for a preset.

    Raises:
        ClipItError: the architecture forces QuickGELU but the weights were trained with GELU.
    """
    trained = _trained_with(model, architecture, weights)
    if not trained:
        return {}
    built_quick = bool((open_clip.get_model_config(architecture) or {}).get("quick_gelu", False))
    trained_quick = bool(trained.get("quick_gelu", False))
    if built_quick and not trained_quick:
        plain = architecture.replace("-quickgelu", "")
        raise ClipItError(
            f"CLIP model '{model}' is built with QuickGELU but its weights '{weights}' were trained "
            f"with GELU; use the architecture '{plain}' with these weights"
        )
    settings: dict = {"force_quick_gelu": trained_quick}
    if _is_file(weights):
        settings.update(
            {
                f"image_{key}": trained[key]
                for key in ("mean", "std", "interpolation", "resize_mode")
                if key in trained
            }
        )
    return settings


def _resolve(model: str, pretrained: str | None) -> tuple[str, str | None]:
    if model in PRESETS:
        preset = PRESETS[model]
        return preset.architecture, pretrained if pretrained is not None else preset.pretrained
    if model.startswith(_SCHEMAS) or model in open_clip.list_models():
        return model, pretrained
    raise ClipItError(
        f"Unknown CLIP model '{model}'. Available presets: {list(PRESETS)}; any open_clip "
        f"architecture ({len(open_clip.list_models())} names, e.g. 'ViT-L-14') or "
        f"'hf-hub:ORG/REPO' / 'local-dir:DIR' also works"
    )


def load_clip(
    model: str = DEFAULT_MODEL,
    pretrained: str | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> ClipEncoder:
    """Loads a CLIP model with open_clip's factory.

    Args:
        model (DEFAULT_MODEL): a preset, an open_clip architecture, or 'hf-hub:' / 'local-dir:'.
        pretrained (None): an open_clip tag or weights file; None takes the preset's weights
            (random weights, seed 0, for architectures without a preset).
        device (None): torch device; None picks cuda, mps or cpu.
        precision (None): "fp32", "fp16" (cuda) or "int8" (the faster CPU path, see the module
            docstring); None picks fp16 on cuda and fp32 elsewhere.

    Raises:
        ClipItError: the model name or precision is unknown, or the device cannot run it.
        WeightsNotFoundError: the weights are neither cached, nor reachable, nor a file.
    """
    torch_device = resolve_device(device)
    resolve_precision(precision, torch_device)
    architecture, weights = _resolve(model, pretrained)
    if weights is not None and not architecture.startswith(_SCHEMAS):
        _check_weights_available(model, architecture, weights)
    settings = build_settings(model, architecture, weights)
    torch.manual_seed(0)
    try:
        with warnings.catch_warnings():
            # a mismatch open_clip only warns about is an error here: the embeddings would be wrong
            warnings.filterwarnings("error", message="QuickGELU mismatch", category=UserWarning)
            clip_model, _, _ = open_clip.create_model_and_transforms(architecture, pretrained=weights, **settings)
    except UserWarning as e:
        raise ClipItError(f"CLIP model '{model}' would not be the network its weights were trained in: {e}") from e
    except pickle.UnpicklingError as e:
        raise WeightsNotFoundError(
            f"Refused the weights file '{weights}' for CLIP model '{model}': it holds Python objects "
            f"besides tensors, and loading them could run code. Use a .safetensors file or plain "
            f"state-dict weights from a source you trust"
        ) from e
    except (RuntimeError, FileNotFoundError, OSError) as e:
        raise WeightsNotFoundError(
            f"Could not load weights for CLIP model '{model}' ({e}); " + _how_to_supply(model)
        ) from e
    tokenizer = open_clip.get_tokenizer(architecture)
    return ClipEncoder(
        model, clip_model, tokenizer, torch_device, resolve_precision(precision, torch_device), architecture
    )

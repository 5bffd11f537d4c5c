"""Scorer checkpoints on disk: a folder of safetensors weights, config.json and a model card.

`save_checkpoint` writes the folder under a temporary name and renames it into place, and records
the SHA-256 and size of the weights in config.json (format version 3). `load_checkpoint` checks
all it can before it allocates a tensor: the weights against their checksum, the config's keys,
types and sizes, and those sizes against the tensor shapes in the safetensors header (read
without loading the tensors). A flipped byte, a damaged config or the config of other weights is
then one ClipItError naming the checkpoint, the bad file or key and what to do, never a
traceback or a terabyte allocation. Loading never unpickles anything.

Checkpoints written before checksums were recorded (format versions 1 and 2) still load; only
their weights cannot be checked byte for byte (their header and shapes still are).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fiftyone_clipit.defaults import ZERO_SHOT
from fiftyone_clipit.errors import OVERWRITE_HINT, ClipItError
from fiftyone_clipit.scorer import ClipItScorer, ScorerConfig

CHECKPOINT_FORMAT = "clipit-scorer"
#: 3: the weights' SHA-256 and size in config.json's "files"; 2: fusion and input_norm in the
#: config; 1: "concat" fusion, no input norm.
CHECKPOINT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "MODEL_CARD.md"
RESTORE = "retrain the scorer or restore the checkpoint folder from a copy"
_HASH_BLOCK = 1 << 20


@dataclass
class Checkpoint:
    """A scorer loaded from disk, with what its config.json says about it."""

    model: ClipItScorer
    config: ScorerConfig
    metadata: dict
    path: str


def check_checkpoint_folder(path: str, overwrite: bool = False) -> str:
    """The absolute path of a checkpoint folder to write, refused if it exists (unless `overwrite`).

    `train_scorer` asks before it prepares a single video, so a taken path costs no training.

    Raises:
        ClipItError: the folder exists and overwrite is False.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise ClipItError(f"Checkpoint folder '{path}' already exists; choose another path or {OVERWRITE_HINT}")
    return path


def file_record(path: str) -> dict:
    """{"sha256": hex digest, "bytes": size} of a file, read in blocks (weights can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": os.path.getsize(path)}


def save_checkpoint(
    path: str, model: ClipItScorer, metadata: dict, card: str, overwrite: bool = False
) -> str:
    """Writes a checkpoint folder: model.safetensors, config.json and MODEL_CARD.md.

    The folder is written under a temporary name and renamed into place, so a folder that
    exists is complete; config.json records the weights' SHA-256 and size, which
    `load_checkpoint` verifies.

    Args:
        path: the folder to create.
        model: the scorer whose weights to save.
        metadata: JSON-ready facts kept in config.json (data, losses, validation figures, ...).
        card: the model card, Markdown.
        overwrite (False): replace an existing folder.

    Returns:
        the folder's absolute path.

    Raises:
        ClipItError: the folder exists and overwrite is False.
    """
    path = check_checkpoint_folder(path, overwrite)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=parent)
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        weights_path = os.path.join(staging, WEIGHTS_FILE)
        save_file(weights, weights_path, metadata={"format": "pt"})
        document = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "config": model.config.to_dict(),
            "files": {WEIGHTS_FILE: file_record(weights_path)},
            "metadata": metadata,
        }
        with open(os.path.join(staging, CONFIG_FILE), "w") as f:
            json.dump(document, f, indent=2)
        with open(os.path.join(staging, CARD_FILE), "w") as f:
            f.write(card)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_checkpoint(path: str, device: str | torch.device | None = None) -> Checkpoint:
    """Loads a checkpoint folder written by `save_checkpoint`, checked before anything is allocated.

    Versions 1 and 2 (written before checksums were recorded) load without the checksum check;
    version 3 must match the SHA-256 and size its config.json records for model.safetensors.

    Args:
        path: the folder, or a file inside it.
        device (None): where to put the model; None keeps it on the CPU.

    Raises:
        ClipItError: the folder or its files are missing, the weights do not match their
            checksum, the config is damaged (keys, types, sizes) or does not fit the weights'
            shapes, or the weights hold NaN / infinite values. One line, naming what to do.
    """
    folder = os.path.abspath(path if os.path.isdir(path) else os.path.dirname(path))
    hint = "pass a folder written by train_scorer (config.json + model.safetensors) or scorer='zero-shot'"
    config_path, weights_path = os.path.join(folder, CONFIG_FILE), os.path.join(folder, WEIGHTS_FILE)
    if not os.path.isfile(config_path) or not os.path.isfile(weights_path):
        raise ClipItError(f"Scorer checkpoint '{path}' not found or incomplete; {hint}")
    label = f"Scorer checkpoint '{path}'"
    try:
        with open(config_path) as f:
            document = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClipItError(f"{label}: config.json is not readable JSON ({e}); {hint}") from e
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise ClipItError(f"'{config_path}' is not a CLIP-It scorer config (format '{CHECKPOINT_FORMAT}'); {hint}")
    version = document.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ClipItError(
            f"{label} has format version {version!r}; this version of fiftyone-clipit reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    if version >= 3:
        _check_weights_record(label, weights_path, document.get("files"))
    config = _checkpoint_config(label, document.get("config"), version)
    _check_shapes(label, config, _weight_shapes(label, weights_path))
    weights = load_file(weights_path, device="cpu")
    broken = [name for name, tensor in weights.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        raise ClipItError(
            f"{label}: weights {broken[:5]} hold NaN or infinite values, so every score would be NaN; {RESTORE}"
        )
    model = ClipItScorer(config)
    model.load_state_dict(weights, strict=True)
    model.eval().to(device or "cpu")
    return Checkpoint(model=model, config=config, metadata=document.get("metadata", {}), path=folder)


def _check_weights_record(label: str, weights_path: str, files) -> None:
    """The weights file against the size and SHA-256 that config.json records for it."""
    record = files.get(WEIGHTS_FILE) if isinstance(files, dict) else None
    if not isinstance(record, dict) or not {"sha256", "bytes"} <= record.keys():
        raise ClipItError(
            f"{label}: config.json records no SHA-256 and size for {WEIGHTS_FILE} (\"files\"), which format "
            f"version {CHECKPOINT_VERSION} always has, so the config is damaged; {RESTORE}"
        )
    size = os.path.getsize(weights_path)
    if size != record["bytes"]:
        raise ClipItError(
            f"{label}: {WEIGHTS_FILE} holds {size} bytes but config.json records {record['bytes']!r} "
            f"(cut short or replaced); {RESTORE}"
        )
    if file_record(weights_path)["sha256"] != record["sha256"]:
        raise ClipItError(
            f"{label}: {WEIGHTS_FILE} does not match the SHA-256 recorded in config.json (damaged or "
            f"changed since it was written); {RESTORE}"
        )


def _checkpoint_config(label: str, values, version: int) -> ScorerConfig:
    """The config of a checkpoint: every field present, of the right type and size."""
    if not isinstance(values, dict):
        raise ClipItError(f"{label}: config.json has no \"config\" object (the scorer's sizes); {RESTORE}")
    if version == 1:
        values = {"fusion": "concat", "input_norm": False, **values}
    try:
        return ScorerConfig.from_dict(values, complete=True)
    except ClipItError as e:
        raise ClipItError(f"{label}: config.json is damaged: {e}; {RESTORE}") from e


def _weight_shapes(label: str, weights_path: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from the safetensors header alone (no tensor is read)."""
    try:
        with safe_open(weights_path, framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ClipItError(f"{label}: {WEIGHTS_FILE} cannot be read ({reason}); {RESTORE}") from e


def _check_shapes(label: str, config: ScorerConfig, shapes: dict[str, tuple[int, ...]]) -> None:
    """The config's tensor shapes (built on the meta device: nothing allocated) against the file's."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in ClipItScorer(config).state_dict().items()}
    if expected == shapes:
        return
    found = _sizes_in_weights(shapes)
    wrong = [f"{key}={getattr(config, key)!r} but the weights have {key}={value!r}"
             for key, value in found.items() if getattr(config, key) != value]
    if not wrong:
        differ = sorted(expected.keys() ^ shapes.keys()) or sorted(k for k in expected if expected[k] != shapes[k])
        wrong = [f"tensors {differ[:3]} differ"]
    raise ClipItError(
        f"{label}: the weights do not fit its config (config.json says {'; '.join(wrong)}); {RESTORE}"
    )


def _sizes_in_weights(shapes: dict[str, tuple[int, ...]]) -> dict:
    """The config fields that tensor shapes give away (heads and window do not shape a tensor)."""
    sizes: dict = {}
    rebuild, fuse = shapes.get("reconstruction_head.weight"), shapes.get("fuse.weight")
    if rebuild is not None and len(rebuild) == 3:  # Conv1d(model_dim, feature_dim, 1)
        sizes["feature_dim"], sizes["model_dim"] = rebuild[0], rebuild[1]
        if fuse is not None and len(fuse) == 2 and fuse[1] in (2 * rebuild[0], 3 * rebuild[0]):
            sizes["fusion"] = "product" if fuse[1] == 3 * rebuild[0] else "concat"
    linear1 = shapes.get("encoder.layers.0.linear1.weight")
    if linear1 is not None and len(linear1) == 2:
        sizes["feedforward_dim"] = linear1[0]
    layers = {name.split(".")[2] for name in shapes if name.startswith("encoder.layers.")}
    sizes["layers"] = len(layers)
    sizes["input_norm"] = "frame_norm.weight" in shapes
    return sizes


def checkpoint_for(scorer: str, embedded_with: str, device: str | None) -> Checkpoint | None:
    """The trained scorer named by `scorer`, checked against the embeddings' model; None for zero-shot.

    Raises:
        ClipItError: not "zero-shot" and not a readable checkpoint, or trained on another model's embeddings.
    """
    if scorer == ZERO_SHOT:
        return None
    if not isinstance(scorer, str) or not os.path.exists(scorer):
        raise ClipItError(
            f"Unknown scorer {scorer!r}: use '{ZERO_SHOT}' or the path of a checkpoint folder written by train_scorer"
        )
    checkpoint = load_checkpoint(scorer, device)
    trained_on = checkpoint.metadata.get("data", {}).get("clip_model")
    if trained_on != embedded_with:
        raise ClipItError(
            f"Scorer '{scorer}' was trained on embeddings of '{trained_on}', but these frames were "
            f"embedded with '{embedded_with}'; use a scorer trained on '{embedded_with}' or re-embed"
        )
    return checkpoint

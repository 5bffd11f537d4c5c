"""The CLIP-It scorer (Narasimhan et al. 2021, section 3): frames read in the light of words.

Language-guided attention lets every frame (the attention's query) look at the text (keys and
values: the user's query sentences, or captions of the video) and fuses what it found with the
frame's own features. A frame-scoring transformer with temporal positions then relates the frames
to one another, and a linear head with a sigmoid gives one score per sampled step. A 1x1
convolution reconstructs the frame features from the score-weighted transformer output; the
reconstruction and diversity losses of `fiftyone_clipit.training` read it.

Temporal attention (`attention=`): "full" attends over the whole video, as the paper's
transformer does; "windowed" attends within windows of `config.window` steps that overlap by
`config.window_overlap` steps on each side, each step keeping the output of the window in which
it has at least that much context on both sides, so memory grows linearly with length; "auto"
(the default) is full up to `FULL_ATTENTION_MAX_STEPS` steps and windowed beyond. Positions are
the steps' places in the whole video in every mode, so a window deep into a long video knows
where it is, and "full" and "windowed" agree on a video that fits one window.

Shapes are data, as open_clip keeps them: presets are JSON files `models/scorer-<name>.json`
(`list_presets()`), parsed into a frozen `ScorerConfig` that refuses wrong types and absurd sizes
before any tensor exists; a checkpoint (`fiftyone_clipit.checkpoints`) keeps its config as JSON
beside safetensors weights, and loading it never unpickles anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from fiftyone_clipit.defaults import (
    DEFAULT_SCORER_PRESET,
    check_attention,
    list_scorer_presets,
    scorer_preset_files,
)
from fiftyone_clipit.errors import ClipItError

DEFAULT_PRESET = DEFAULT_SCORER_PRESET
#: longest video "auto" attends as a whole: 2,048 steps (17 min at 2 fps) cost the paper preset
#: about 134 MB of attention scores per layer; longer videos are attended in windows.
FULL_ATTENTION_MAX_STEPS = 2048
FUSION_MODES = ("product", "concat")
#: largest value of each size: far above any CLIP embedding (1,280 for ViT-bigG-14) or useful
#: scorer, low enough that a damaged config (model_dim 2,000,000: a 48 TB layer) is refused
#: before anything is allocated.
SIZE_LIMITS = {
    "feature_dim": 16384, "model_dim": 16384, "text_heads": 256, "layers": 128, "heads": 256,
    "feedforward_dim": 65536, "window": 65536,
}


@dataclass(frozen=True)
class ScorerConfig:
    """The shapes of a CLIP-It scorer.

    Attributes:
        name: the preset it came from (`list_presets()`), or "custom".
        description: one line for listings.
        feature_dim: dimension of the CLIP frame and text embeddings (512 for ViT-B/32).
        model_dim: width of the frame-scoring transformer.
        text_heads: heads of the language-guided attention; must divide feature_dim.
        layers: transformer encoder layers.
        heads: attention heads per transformer layer; must divide model_dim.
        feedforward_dim: hidden width of each layer's MLP.
        dropout: dropout while training.
        window: most steps one attention window holds (memory is linear in length beyond it).
        window_overlap: context steps a window shares with each neighbour; 2 * overlap < window.
        fusion: how the language-guided attention output `a` joins the frame features `f`:
            "product" feeds [f, a, f * a] to the fusing layer, so a frame-text match is one linear
            read-out away (on fresh seeds of `bench learning`, tiny, no measurable gain over
            "concat": docs/training.md);
            "concat" feeds [f, a] (version 1 checkpoints).
        input_norm: LayerNorm the frame and text features before the attention. Unit-norm CLIP
            vectors have coordinates of about 1 / sqrt(feature_dim), which leaves the attention
            logits near zero and the text nearly unheard at the start of training (version 1
            checkpoints have none).
    """

    name: str = "custom"
    description: str = ""
    feature_dim: int = 512
    model_dim: int = 512
    text_heads: int = 4
    layers: int = 6
    heads: int = 8
    feedforward_dim: int = 2048
    dropout: float = 0.1
    window: int = 512
    window_overlap: int = 64
    fusion: str = "product"
    input_norm: bool = True

    def __post_init__(self) -> None:
        """Refuses wrong types, sizes out of range and shapes that do not fit, before any tensor exists."""
        name = self.name
        for key in ("name", "description"):
            if not isinstance(getattr(self, key), str):
                raise ClipItError(f"Scorer config {name!r}: {key} must be text, got {getattr(self, key)!r}")
        for key, limit in SIZE_LIMITS.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ClipItError(
                    f"Scorer config '{name}': {key} must be an integer from 1 to {limit:,}, got {value!r}"
                )
        if self.model_dim % self.heads:
            raise ClipItError(f"Scorer config '{name}': heads={self.heads} must divide model_dim={self.model_dim}")
        if self.feature_dim % self.text_heads:
            raise ClipItError(
                f"Scorer config '{name}': text_heads={self.text_heads} must divide feature_dim={self.feature_dim}"
            )
        if not isinstance(self.fusion, str) or self.fusion not in FUSION_MODES:
            raise ClipItError(f"Scorer config '{name}': fusion must be one of {list(FUSION_MODES)}, got {self.fusion!r}")
        if not isinstance(self.input_norm, bool):
            raise ClipItError(f"Scorer config '{name}': input_norm must be true or false, got {self.input_norm!r}")
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ClipItError(f"Scorer config '{name}': dropout must be a number in [0, 1), got {dropout!r}")
        overlap = self.window_overlap
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0 or 2 * overlap >= self.window:
            raise ClipItError(
                f"Scorer config '{name}': window_overlap must be an integer in [0, window / 2), "
                f"got {overlap!r} for window={self.window}"
            )

    def to_dict(self) -> dict:
        """The config as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, complete: bool = False) -> ScorerConfig:
        """A config from JSON values; unknown keys are an error, not silently dropped.

        Args:
            values: field name -> value.
            complete (False): every field must be given, none defaulted (a checkpoint's config,
                which was written whole: a missing size means a damaged file, not a default).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ClipItError(f"Unknown scorer config keys {unknown}; the valid keys are {sorted(known)}")
        missing = sorted(known - set(values)) if complete else []
        if missing:
            raise ClipItError(f"Scorer config keys {missing} are missing; a complete config has {sorted(known)}")
        return cls(**values)


def list_presets() -> list[str]:
    """Names of the scorer presets shipped under `models/` (`scorer-<name>.json`)."""
    return list_scorer_presets()


def load_preset(name: str = DEFAULT_PRESET, **overrides) -> ScorerConfig:
    """The config of a preset, with some fields replaced (e.g. `feature_dim` to fit the data).

    Raises:
        ClipItError: no such preset, or the values are invalid.
    """
    files = scorer_preset_files()
    if name not in files:
        raise ClipItError(f"Scorer preset '{name}' not found. Available presets: {sorted(files)}")
    values = json.loads(files[name].read_text())
    return ScorerConfig.from_dict({**values, "name": name, **overrides})


def attention_windows(n_steps: int, window: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Cuts `n_steps` into attention windows; each step is kept from exactly one window.

    Args:
        n_steps: length of the video in sampled steps (>= 1).
        window: steps per window.
        overlap: context steps on each side of the kept part (2 * overlap < window).

    Returns:
        [(lo, hi, keep_lo, keep_hi), ...]: the window attends over steps [lo, hi) and its output
        is kept for steps [keep_lo, keep_hi); the kept parts tile [0, n_steps) in order. Every
        window of a video longer than `window` holds exactly `window` steps.
    """
    if n_steps <= window:
        return [(0, n_steps, 0, n_steps)]
    stride = window - 2 * overlap
    spans = []
    for keep_lo in range(0, n_steps, stride):
        keep_hi = min(keep_lo + stride, n_steps)
        hi = min(n_steps, max(0, keep_lo - overlap) + window)
        spans.append((hi - window, hi, keep_lo, keep_hi))
    return spans


def sinusoidal_positions(n: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The transformer's sine / cosine position codes: float32 (n, dim)."""
    position = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    frequency = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim)
    )
    codes = torch.zeros(n, dim, device=device)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return codes


class ScorerOutput(NamedTuple):
    """What the scorer computes for a padded batch of videos.

    logits: (b, n) before the sigmoid. scores: (b, n) in (0, 1), 0 on padding.
    hidden: (b, n, model_dim) transformer output.
    reconstruction: (b, n, feature_dim) frame features rebuilt from `scores * hidden`, or None.
    """

    logits: torch.Tensor
    scores: torch.Tensor
    hidden: torch.Tensor
    reconstruction: torch.Tensor | None


class ClipItScorer(nn.Module):
    """Language-guided attention, a windowed frame-scoring transformer, a score and a rebuild head.

    The language-guided attention has a learned "nothing here" key and value beside the text
    (`add_bias_kv`): with a single sentence, plain softmax attention would hand every frame the
    same value; with the null a frame takes the text's value only as far as it matches it, so
    the attention weight itself carries the frame-text match into the transformer.
    """

    def __init__(self, config: ScorerConfig):
        super().__init__()
        self.config = config
        c = config
        self.frame_norm = nn.LayerNorm(c.feature_dim) if c.input_norm else nn.Identity()
        self.text_norm = nn.LayerNorm(c.feature_dim) if c.input_norm else nn.Identity()
        self.text_attention = nn.MultiheadAttention(
            c.feature_dim, c.text_heads, dropout=c.dropout, add_bias_kv=True, batch_first=True
        )
        self.fuse = nn.Linear((3 if c.fusion == "product" else 2) * c.feature_dim, c.model_dim)
        self.fuse_norm = nn.LayerNorm(c.model_dim)
        self.dropout = nn.Dropout(c.dropout)
        layer = nn.TransformerEncoderLayer(
            c.model_dim, c.heads, c.feedforward_dim, c.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, c.layers, norm=nn.LayerNorm(c.model_dim), enable_nested_tensor=False
        )
        self.score_head = nn.Linear(c.model_dim, 1)
        self.reconstruction_head = nn.Conv1d(c.model_dim, c.feature_dim, kernel_size=1)

    def forward(
        self,
        frames: torch.Tensor,
        frame_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        reconstruct: bool = True,
        window_batch: int | None = None,
        attention: str = "auto",
    ) -> ScorerOutput:
        """Scores a padded batch of videos.

        Args:
            frames: (b, n, feature_dim) frame embeddings, zero-padded.
            frame_mask: (b, n) bool, True on real steps (a prefix of each row, at least one).
            text: (b, m, feature_dim) sentence embeddings, zero-padded.
            text_mask: (b, m) bool, True on real sentences (at least one per video).
            reconstruct (True): also rebuild the frame features (for the losses).
            window_batch (None): attention windows per encoder call; None runs all at once
                (training); a number bounds inference memory regardless of video length.
            attention ("auto"): "full", "windowed" or "auto" (see the module docstring).
        """
        frames, text = self.frame_norm(frames), self.text_norm(text)
        attended, _ = self.text_attention(
            frames, text, text, key_padding_mask=~text_mask, need_weights=False
        )
        parts = [frames, attended, frames * attended] if self.config.fusion == "product" else [frames, attended]
        tokens = self.dropout(self.fuse_norm(self.fuse(torch.cat(parts, dim=-1))))
        hidden = self._encode_in_windows(tokens, frame_mask, window_batch, attention)
        logits = self.score_head(hidden).squeeze(-1)
        scores = torch.sigmoid(logits) * frame_mask
        reconstruction = None
        if reconstruct:
            weighted = (hidden * scores.unsqueeze(-1)).transpose(1, 2)
            reconstruction = self.reconstruction_head(weighted).transpose(1, 2)
        return ScorerOutput(logits, scores, hidden, reconstruction)

    def _encode_in_windows(
        self, tokens: torch.Tensor, frame_mask: torch.Tensor, window_batch: int | None, attention: str
    ) -> torch.Tensor:
        b, n, dim = tokens.shape
        spans = [
            (video, *span)
            for video, length in enumerate(frame_mask.sum(dim=1).tolist())
            for span in self.attention_spans(int(length), attention)
        ]
        width = max(hi - lo for _, lo, hi, _, _ in spans)
        device = tokens.device
        offsets = torch.arange(width, device=device)
        starts = torch.tensor([video * n + lo for video, lo, _, _, _ in spans], device=device)
        sizes = torch.tensor([hi - lo for _, lo, hi, _, _ in spans], device=device)
        valid = offsets[None, :] < sizes[:, None]
        index = torch.where(valid, starts[:, None] + offsets[None, :], 0)
        los = torch.tensor([lo for _, lo, _, _, _ in spans], device=device)
        steps = torch.where(valid, los[:, None] + offsets[None, :], 0)  # places in the whole video
        flat = tokens.reshape(b * n, dim)
        positions = sinusoidal_positions(n, dim, device)
        chunk = window_batch or len(spans)
        encoded = torch.cat([
            self.encoder(
                flat[index[s : s + chunk]] + positions[steps[s : s + chunk]],
                src_key_padding_mask=~valid[s : s + chunk],
            )
            for s in range(0, len(spans), chunk)
        ]).reshape(-1, dim)
        source = torch.cat([
            torch.arange(w * width + keep_lo - lo, w * width + keep_hi - lo, device=device)
            for w, (_, lo, _, keep_lo, keep_hi) in enumerate(spans)
        ])
        target = torch.cat([
            torch.arange(video * n + keep_lo, video * n + keep_hi, device=device)
            for video, _, _, keep_lo, keep_hi in spans
        ])
        return tokens.new_zeros(b * n, dim).index_copy(0, target, encoded[source]).reshape(b, n, dim)

    def attention_spans(self, n_steps: int, attention: str = "auto") -> list[tuple[int, int, int, int]]:
        """The windows the transformer attends over for a video of `n_steps` (`attention_windows`)."""
        check_attention(attention)
        if attention == "full" or (attention == "auto" and n_steps <= FULL_ATTENTION_MAX_STEPS):
            return [(0, n_steps, 0, n_steps)]
        return attention_windows(n_steps, self.config.window, self.config.window_overlap)


def pad_batch(
    arrays: Sequence[np.ndarray], dim: int, what: str, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacks (n_i, dim) arrays into a zero-padded float32 (b, max n_i, dim) and a (b, n) mask.

    Raises:
        ClipItError: an array is empty, not 2-D, of another dimension, or holds NaN / inf.
    """
    for i, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != dim:
            raise ClipItError(
                f"{what} #{i} has shape {array.shape}; expected (n >= 1, {dim}) to match the scorer's "
                f"feature_dim (embed with the CLIP model the scorer was trained on)"
            )
        if not np.isfinite(array).all():
            raise ClipItError(f"{what} #{i} contains NaN or infinite values; re-embed it")
    longest = max(len(a) for a in arrays)
    batch = np.zeros((len(arrays), longest, dim), dtype=np.float32)
    mask = np.zeros((len(arrays), longest), dtype=bool)
    for i, array in enumerate(arrays):
        batch[i, : len(array)] = array
        mask[i, : len(array)] = True
    return torch.from_numpy(batch).to(device), torch.from_numpy(mask).to(device)


def predict_scores(
    model: ClipItScorer,
    features: Sequence[np.ndarray],
    texts: Sequence[np.ndarray],
    window_batch: int = 16,
    attention: str = "auto",
) -> list[np.ndarray]:
    """Per-step scores of a batch of videos, in eval mode and without gradients.

    Args:
        model: a scorer (its device is used).
        features: per video, float (n_i, feature_dim) frame embeddings.
        texts: per video, float (m_i, feature_dim) sentence embeddings (or one (d,) vector).
        window_batch (16): attention windows per encoder call, which bounds memory.
        attention ("auto"): "full", "windowed" or "auto" (full up to FULL_ATTENTION_MAX_STEPS).

    Returns:
        per video, float32 (n_i,) scores in (0, 1).
    """
    if len(features) != len(texts):
        raise ClipItError(f"{len(features)} videos but {len(texts)} texts; give one text per video")
    check_attention(attention)
    device = next(model.parameters()).device
    dim = model.config.feature_dim
    frames, frame_mask = pad_batch([np.asarray(f, np.float32) for f in features], dim, "Frame embeddings", device)
    text, text_mask = pad_batch([np.atleast_2d(np.asarray(t, np.float32)) for t in texts], dim, "Text embeddings", device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            scores = model(
                frames, frame_mask, text, text_mask, reconstruct=False, window_batch=window_batch, attention=attention
            ).scores
    finally:
        model.train(was_training)
    return [scores[i, : len(f)].float().cpu().numpy() for i, f in enumerate(features)]

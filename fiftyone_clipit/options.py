"""How to train the CLIP-It scorer: `TrainingOptions`, importable without torch.

The training loop (`fiftyone_clipit.training`, which re-exports `TrainingOptions`) reads them; the
command line and the operators read their defaults for help texts and forms without loading
torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fiftyone_clipit.defaults import DEFAULT_BUDGET, check_attention
from fiftyone_clipit.errors import ClipItError

if TYPE_CHECKING:
    from fiftyone_clipit.scorer import ScorerConfig

MODES = ("supervised", "unsupervised")
#: the default peak learning rate times the scorer's model_dim (see TrainingOptions.learning_rate)
LEARNING_RATE_TIMES_WIDTH = 0.1


@dataclass(frozen=True)
class TrainingOptions:
    """How to train.

    Attributes:
        mode: "supervised" (BCE + reconstruction + diversity) or "unsupervised" (the last two).
        epochs: most passes over the training videos.
        batch_size: videos per optimiser step.
        learning_rate: AdamW's peak learning rate; None scales it with the scorer's width,
            `LEARNING_RATE_TIMES_WIDTH / model_dim` (3.1e-3 for the tiny preset, 2e-4 for paper),
            as Adam's stable step shrinks with width.
        warmup_epochs: epochs of linear warm-up to the peak; a cosine decay to zero follows.
        weight_decay: AdamW's.
        bce_weight, reconstruction_weight, diversity_weight: the losses' weights.
        validation_fraction: share of the training videos held out for model selection.
        patience: stop after this many epochs without a better validation figure (None: never).
        seed: seeds the split, the initial weights, the batch order and dropout.
        proportion: summary budget for the validation F1.
        f1_mode: "avg" over users (TVSum) or "max" (SumMe).
        attention: the scorer's temporal attention, "auto", "full" or "windowed".
    """

    mode: str = "supervised"
    epochs: int = 60
    batch_size: int = 4
    learning_rate: float | None = None
    warmup_epochs: int = 5
    weight_decay: float = 1e-2
    bce_weight: float = 1.0
    reconstruction_weight: float = 1.0
    diversity_weight: float = 1.0
    validation_fraction: float = 0.2
    patience: int | None = 20
    seed: int = 0
    proportion: float = DEFAULT_BUDGET
    f1_mode: str = "avg"
    attention: str = "auto"

    def __post_init__(self) -> None:
        check_attention(self.attention)
        if self.warmup_epochs < 0:
            raise ClipItError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.mode not in MODES:
            raise ClipItError(f"Unknown training mode '{self.mode}'; the available modes are {list(MODES)}")
        if self.f1_mode not in ("avg", "max"):
            raise ClipItError(f"Unknown F1 mode '{self.f1_mode}'; the available modes are ['avg', 'max']")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ClipItError(f"learning_rate must be in (0, 1) or None (scaled with width), got {self.learning_rate!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ClipItError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.validation_fraction < 1:
            raise ClipItError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if min(self.bce_weight, self.reconstruction_weight, self.diversity_weight) < 0:
            raise ClipItError("Loss weights must be >= 0")

    def peak_learning_rate(self, config: ScorerConfig) -> float:
        """The learning rate after warm-up: the one given, or the width-scaled default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return LEARNING_RATE_TIMES_WIDTH / config.model_dim

    def loss_weights(self) -> dict[str, float]:
        """The weight of each loss this mode uses."""
        weights = {"reconstruction": self.reconstruction_weight, "diversity": self.diversity_weight}
        return {"bce": self.bce_weight, **weights} if self.mode == "supervised" else weights

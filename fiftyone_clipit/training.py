"""Training the CLIP-It scorer: losses, a seeded loop, model selection on validation F1, cards.

Losses (paper, section 3.3):
- weighted binary cross-entropy of the scores against the ground-truth keyframes (the share of
  users who kept each step), positives weighted up by negatives / positives of the batch;
- reconstruction: mean squared error between the input frame features and the features the 1x1
  convolution rebuilds from the score-weighted transformer output;
- diversity: mean pairwise cosine similarity of the rebuilt features of the selected frames. The
  selection is soft (each frame counts with its score, so the loss trains the scores); with 0/1
  scores it is exactly the mean over pairs of selected frames. Computed in O(n) memory.
Supervised training uses all three, unsupervised the last two; the weights are options.

The epoch kept is chosen on validation videos taken from the training videos (never the test
split): supervised, the best summary F1 against their labels; unsupervised, the lowest
unsupervised loss (reconstruction + diversity), so no label is read at any point.

The default recipe (peak learning rate, warm-up and cosine decay, dropout, the "product" fusion,
epochs and patience) was chosen by `fiftyone-clipit bench learning`; docs/training.md has the
figures that chose it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_clipit.defaults import DEFAULT_BUDGET, Progress
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.metrics import summary_f1
from fiftyone_clipit.options import TrainingOptions
from fiftyone_clipit.scorer import ClipItScorer, ScorerConfig, ScorerOutput, pad_batch, predict_scores
from fiftyone_clipit.summary import generate_summary

#: (video, its step scores) -> a figure, higher is better
VideoMetric = Callable[["TrainingVideo", np.ndarray], float]


@dataclass(frozen=True)
class TrainingVideo:
    """One video's features, text and ground truth, at the sampled steps of the protocol.

    Attributes:
        name: what to call it in reports (a file path, a TVSum id, ...).
        features: float32 (n_steps, d) L2-normalised frame embeddings.
        text: float32 (m, d) sentence embeddings (query sentences or captions).
        picks: int64 (n_steps,) 0-based frame index of each step, strictly increasing.
        n_frames: frames in the video.
        change_points: int64 (n_shots, 2) inclusive [first, last] frame indices of the shots.
        user_summaries: bool (n_users, n_frames), or None when the video has no ground truth.
        user_scores: float (n_users, n_frames) per-frame importance (TVSum), or None; when given,
            benchmarks report rank correlations against it.
        gt_scores: float (n_steps,) the annotation's consensus importance at the steps (the h5
            files' `gtscore`), or None; benchmarks can score with it as a no-training reference.
    """

    name: str
    features: np.ndarray
    text: np.ndarray
    picks: np.ndarray
    n_frames: int
    change_points: np.ndarray
    user_summaries: np.ndarray | None = None
    user_scores: np.ndarray | None = None
    gt_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.features.ndim != 2 or n == 0:
            raise ClipItError(f"Video '{self.name}': features must be (n_steps >= 1, d), got {self.features.shape}")
        if np.size(self.text) == 0:
            raise ClipItError(
                f"Video '{self.name}' has no text (an empty query or no captions); give it a query or "
                f"leave it out of training"
            )
        if np.atleast_2d(self.text).shape[1] != self.features.shape[1]:
            raise ClipItError(
                f"Video '{self.name}': text embeddings {np.shape(self.text)} and frame features "
                f"{self.features.shape} differ in dimension; embed both with the same CLIP model"
            )
        if len(self.picks) != n or (n > 1 and np.any(np.diff(self.picks) <= 0)):
            raise ClipItError(f"Video '{self.name}': picks must be {n} strictly increasing frame indices")
        if self.picks[0] < 0 or self.picks[-1] >= self.n_frames:
            raise ClipItError(f"Video '{self.name}': picks reach past its {self.n_frames} frames")
        if self.user_summaries is not None and self.user_summaries.shape[1:] != (self.n_frames,):
            raise ClipItError(
                f"Video '{self.name}': user summaries {self.user_summaries.shape} do not cover its "
                f"{self.n_frames} frames"
            )

    def targets(self) -> np.ndarray:
        """Keyframe labels at the steps: the share of users who kept each step, float32 (n_steps,)."""
        if self.user_summaries is None:
            raise ClipItError(f"Video '{self.name}' has no ground truth; supervised training needs it")
        return self.user_summaries[:, self.picks].mean(axis=0).astype(np.float32)


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against keyframe labels in [0, 1], positives weighted up.

    Args:
        logits, targets, mask: (b, n); mask is True on real steps.

    Returns:
        scalar: the mean over real steps; positives weigh negatives / positives (at least 1).
    """
    weights = mask.float()
    positives = (targets * weights).sum()
    negatives = ((1 - targets) * weights).sum()
    pos_weight = (negatives / positives.clamp_min(1e-6)).clamp_min(1.0).detach()
    loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
    return (loss * weights).sum() / weights.sum()


def reconstruction_loss(reconstruction: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between rebuilt and input features over real steps: (b, n, d) -> scalar."""
    error = ((reconstruction - features) ** 2).mean(dim=-1)
    weights = mask.float()
    return (error * weights).sum() / weights.sum()


def diversity_loss(reconstruction: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine similarity of the rebuilt features, each frame weighted by its score.

    sum_{i != j} s_i s_j cos(r_i, r_j) = |sum_i s_i u_i|^2 - sum_i s_i^2 (u_i = r_i / |r_i|), so
    the cost is O(n) in memory and time, for videos of any length.

    Args:
        reconstruction: (b, n, d); scores, mask: (b, n).

    Returns:
        scalar: the mean over videos of the weighted mean pairwise similarity.
    """
    unit = F.normalize(reconstruction, dim=-1)
    w = scores * mask
    pooled = (w.unsqueeze(-1) * unit).sum(dim=1)
    squares = (w**2).sum(dim=-1)
    pair_similarity = (pooled**2).sum(dim=-1) - squares
    pair_weight = w.sum(dim=-1) ** 2 - squares
    return (pair_similarity / pair_weight.clamp_min(1e-6)).mean()


def scorer_losses(
    output: ScorerOutput, features: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor | None,
    options: TrainingOptions,
) -> dict[str, torch.Tensor]:
    """Each loss the mode uses, weighted, plus their sum under "total"."""
    weights = options.loss_weights()
    losses = {
        "reconstruction": reconstruction_loss(output.reconstruction, features, mask),
        "diversity": diversity_loss(output.reconstruction, output.scores, mask),
    }
    if "bce" in weights:
        losses["bce"] = weighted_bce(output.logits, targets, mask)
    weighted = {name: weights[name] * value for name, value in losses.items()}
    weighted["total"] = sum(weighted.values())
    return weighted


def summary_of_scores(video: TrainingVideo, step_scores: np.ndarray, proportion: float = DEFAULT_BUDGET) -> np.ndarray:
    """The protocol's keyshot summary of a video's step scores: bool (n_frames,)."""
    lengths = video.change_points[:, 1] - video.change_points[:, 0] + 1
    return generate_summary(step_scores, video.change_points, video.n_frames, lengths, video.picks, proportion)


def video_f1(video: TrainingVideo, step_scores: np.ndarray, proportion: float = DEFAULT_BUDGET, mode: str = "avg") -> float:
    """Summary F1 of step scores against a video's users (the TVSum / SumMe protocol)."""
    if video.user_summaries is None:
        raise ClipItError(f"Video '{video.name}' has no ground truth to compute an F1 against")
    return summary_f1(summary_of_scores(video, step_scores, proportion), video.user_summaries, mode=mode)


def score_videos(
    model: ClipItScorer, videos: Sequence[TrainingVideo], batch_size: int = 8, attention: str = "auto"
) -> list[np.ndarray]:
    """Step scores of videos with a scorer, a batch of videos at a time."""
    scores: list[np.ndarray] = []
    for start in range(0, len(videos), batch_size):
        part = videos[start : start + batch_size]
        scores += predict_scores(model, [v.features for v in part], [v.text for v in part], attention=attention)
    return scores


def evaluate_f1(
    model: ClipItScorer, videos: Sequence[TrainingVideo], proportion: float = DEFAULT_BUDGET, mode: str = "avg",
    attention: str = "auto",
) -> list[float]:
    """Summary F1 of the scorer on each video (with ground truth)."""
    scores = score_videos(model, videos, attention=attention)
    return [video_f1(v, s, proportion, mode) for v, s in zip(videos, scores)]


def split_validation(
    videos: Sequence[TrainingVideo], fraction: float, seed: int
) -> tuple[list[TrainingVideo], list[TrainingVideo]]:
    """Holds out a seeded share of the training videos (at least one when fraction > 0).

    Raises:
        ClipItError: too few videos to hold any out and still train.
    """
    if fraction == 0:
        return list(videos), []
    n_validation = max(1, round(len(videos) * fraction))
    if n_validation >= len(videos):
        raise ClipItError(
            f"{len(videos)} video(s) cannot be split into training and validation "
            f"(validation_fraction={fraction}); add videos or pass validation_fraction=0"
        )
    order = np.random.default_rng(seed).permutation(len(videos))
    held = set(order[:n_validation].tolist())
    return [v for i, v in enumerate(videos) if i not in held], [v for i, v in enumerate(videos) if i in held]


@dataclass
class TrainingResult:
    """A trained scorer (its best epoch's weights) and how it got there.

    Attributes:
        model: the scorer with the selected epoch's weights, in eval mode.
        options: the options it was trained with.
        best_epoch: the epoch kept (1-based).
        criterion: "validation_f1" or "validation_loss" (no ground truth) or "last_epoch".
        best_value: the criterion's value at the kept epoch.
        history: per epoch: {"epoch", "loss", and the criterion's value}.
        train_names, validation_names: which videos were used for what.
        seconds: wall time of the training.
    """

    model: ClipItScorer
    options: TrainingOptions
    best_epoch: int
    criterion: str
    best_value: float
    history: list[dict] = field(default_factory=list)
    train_names: list[str] = field(default_factory=list)
    validation_names: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _batch(videos: Sequence[TrainingVideo], device: torch.device, supervised: bool):
    dim = videos[0].features.shape[1]
    frames, mask = pad_batch([v.features.astype(np.float32) for v in videos], dim, "Frame embeddings", device)
    text, text_mask = pad_batch([np.atleast_2d(v.text).astype(np.float32) for v in videos], dim, "Text embeddings", device)
    targets = None
    if supervised:
        targets = torch.zeros(mask.shape, device=device)
        for i, video in enumerate(videos):
            targets[i, : len(video.features)] = torch.from_numpy(video.targets())
    return frames, mask, text, text_mask, targets


def selection_criterion(options: TrainingOptions, has_validation: bool) -> str:
    """How the epoch is chosen: validation F1 (supervised), validation loss (unsupervised), or the last."""
    if not has_validation:
        return "last_epoch"
    return "validation_f1" if options.mode == "supervised" else "validation_loss"


def _validation_figure(model, videos, options, device, metric: VideoMetric | None = None) -> float:
    """The selection criterion, higher is better: validation F1 (or `metric`), or minus the unsupervised loss."""
    if options.mode == "supervised":
        if metric is not None:
            scores = score_videos(model, videos, attention=options.attention)
            return float(np.mean([metric(video, s) for video, s in zip(videos, scores)]))
        return float(np.mean(evaluate_f1(model, videos, options.proportion, options.f1_mode, options.attention)))
    model.eval()
    total, steps = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(videos), options.batch_size):
            frames, mask, text, text_mask, _ = _batch(videos[start : start + options.batch_size], device, False)
            output = model(frames, mask, text, text_mask, attention=options.attention)
            total += float(scorer_losses(output, frames, mask, None, options)["total"]) * int(mask.sum())
            steps += int(mask.sum())
    return -total / steps


def train(
    videos: Sequence[TrainingVideo],
    config: ScorerConfig,
    options: TrainingOptions = TrainingOptions(),
    validation: Sequence[TrainingVideo] | None = None,
    device: str | torch.device | None = None,
    progress: Progress = None,
    validation_metric: VideoMetric | None = None,
) -> TrainingResult:
    """Trains a scorer and keeps the epoch with the best validation figure.

    Args:
        videos: training videos; a seeded `options.validation_fraction` of them is held out for
            model selection unless `validation` is given.
        config: the scorer's shapes; feature_dim is taken from the data.
        options (defaults): mode, epochs, loss weights, seed, ...
        validation (None): explicit validation videos (never the test split).
        device (None): torch device; None picks cuda when available, else cpu.
        progress (None): True for a progress bar, or a callback(fraction, label).
        validation_metric (None): supervised selection by metric(video, step_scores), higher is
            better, averaged over the validation videos (e.g. QFVS's semantic F1); None: the
            summary F1 of `options.proportion` against the video's users.

    Returns:
        the trained scorer and its history.

    Raises:
        ClipItError: no videos, mixed feature dimensions, or supervised videos without ground truth.
    """
    if not videos:
        raise ClipItError("No training videos; give at least two videos with frame embeddings")
    everything = [*videos, *(validation or [])]
    dim = everything[0].features.shape[1]
    for video in everything:
        if video.features.shape[1] != dim:
            raise ClipItError(
                f"Video '{video.name}' has {video.features.shape[1]}-d features, '{everything[0].name}' "
                f"{dim}-d; embed every video with one CLIP model"
            )
    supervised = options.mode == "supervised"
    if supervised and any(v.user_summaries is None for v in videos):
        missing = [v.name for v in videos if v.user_summaries is None][:5]
        raise ClipItError(f"Supervised training needs ground truth for every video; none for {missing}")
    if supervised:
        for video in everything:
            if not video.targets().any():
                raise ClipItError(
                    f"Video '{video.name}' has no positive frame in its ground truth (no user kept any of "
                    f"its sampled frames); fix its labels or leave it out of training"
                )
    if validation is None and len(videos) < 2 and options.validation_fraction > 0:
        raise ClipItError(
            f"Only one training video ('{videos[0].name}'): training needs at least two, one to learn "
            f"from and one to choose the epoch on; add videos or pass validation_fraction=0"
        )
    if validation is None:
        train_set, validation_set = split_validation(videos, options.validation_fraction, options.seed)
    else:
        train_set, validation_set = list(videos), list(validation)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = ClipItScorer(replace(config, feature_dim=dim)).to(device)
        result = _fit(model, train_set, validation_set, options, device, progress, validation_metric)
    result.train_names = [v.name for v in train_set]
    result.validation_names = [v.name for v in validation_set]
    result.seconds = time.perf_counter() - started
    return result


def _fit(model, train_set, validation_set, options, device, progress, validation_metric) -> TrainingResult:
    learning_rate = options.peak_learning_rate(model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=options.weight_decay)
    steps_per_epoch = -(-len(train_set) // options.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, steps_per_epoch, options)
    )
    order_rng = np.random.default_rng(options.seed)
    supervised = options.mode == "supervised"
    criterion = selection_criterion(options, bool(validation_set))
    best_value, best_epoch, best_state, history = -np.inf, 0, None, []
    bar = _progress_bar(progress, options.epochs)
    for epoch in range(1, options.epochs + 1):
        model.train()
        losses = []
        order = order_rng.permutation(len(train_set))
        for start in range(0, len(train_set), options.batch_size):
            part = [train_set[i] for i in order[start : start + options.batch_size]]
            frames, mask, text, text_mask, targets = _batch(part, device, supervised)
            output = model(frames, mask, text, text_mask, attention=options.attention)
            total = scorer_losses(output, frames, mask, targets, options)["total"]
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(total.item())
        value = (
            _validation_figure(model, validation_set, options, device, validation_metric)
            if validation_set else float(epoch)
        )
        shown = -value if criterion == "validation_loss" else value
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), criterion: shown})
        if value > best_value:
            best_value, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
        bar(epoch, f"epoch {epoch}/{options.epochs}: loss {np.mean(losses):.4f}, {criterion} {shown:.4f}")
        if options.patience is not None and epoch - best_epoch >= options.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    if criterion == "validation_loss":
        best_value = -best_value
    return TrainingResult(model=model, options=options, best_epoch=best_epoch, criterion=criterion,
                          best_value=float(best_value), history=history)


def learning_rate_factor(step: int, steps_per_epoch: int, options: TrainingOptions) -> float:
    """The share of the peak learning rate at optimiser step `step`: linear warm-up, cosine decay.

    Warm-up over `options.warmup_epochs` epochs keeps the first steps of a deep transformer
    from diverging; the cosine decay to zero over `options.epochs` lets the last epochs settle.
    """
    warmup = options.warmup_epochs * steps_per_epoch
    total = max(options.epochs * steps_per_epoch, warmup + 1)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def _progress_bar(progress: Progress, total: int) -> Callable[[int, str], None]:
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="Training the scorer", unit="epoch")

        def update(epoch: int, label: str) -> None:
            bar.update(1)
            bar.set_postfix_str(label.split(": ", 1)[-1])
            if epoch == total:
                bar.close()

        return update
    if callable(progress):
        return lambda epoch, label: progress(epoch / total, label)
    return lambda epoch, label: None


def checkpoint_metadata(result: TrainingResult, data: dict) -> dict:
    """What config.json records about a training: data, losses, options and validation figures."""
    options = asdict(result.options)
    return {
        "data": data,
        "training": {
            **options,
            "peak_learning_rate": result.options.peak_learning_rate(result.model.config),
            "schedule": f"linear warm-up over {result.options.warmup_epochs} epoch(s), then cosine decay to 0",
            "losses": result.options.loss_weights(),
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "selection_criterion": result.criterion,
            "selection_value": result.best_value,
            "train_videos": result.train_names,
            "validation_videos": result.validation_names,
            "seconds": round(result.seconds, 2),
        },
        "history": result.history,
    }


def validation_curve(history: list[dict], criterion: str, best_epoch: int) -> list[str]:
    """The training history as Markdown table rows: epoch, training loss, criterion, kept mark."""
    rows = ["| epoch | training loss | " + criterion.replace("_", " ") + " | |", "|---:|---:|---:|---|"]
    for row in history:
        value = row.get(criterion)
        shown = f"{value:.4f}" if isinstance(value, float) else "-"
        kept = "kept" if row["epoch"] == best_epoch else ""
        rows.append(f"| {row['epoch']} | {row['loss']:.4f} | {shown} | {kept} |")
    return rows


def model_card(config: ScorerConfig, metadata: dict, sections: Sequence[str] = ()) -> str:
    """A Markdown model card: what the scorer is, what it was trained on, how it did on validation.

    `sections` are further Markdown lines put before the limits (e.g. the baselines' figures).
    """
    training, data = metadata["training"], metadata["data"]
    losses = ", ".join(f"{name} x {weight:g}" for name, weight in training["losses"].items())
    lines = [
        "# CLIP-It scorer checkpoint",
        "",
        "A language-guided frame scorer (CLIP-It, Narasimhan et al., NeurIPS 2021) written by",
        "fiftyone-clipit. Load it with `score_frames(samples, scorer=PATH)`; weights are safetensors.",
        "",
        "## Model",
        f"- preset: `{config.name}`; feature_dim {config.feature_dim}, model_dim {config.model_dim}, "
        f"{config.layers} layer(s) x {config.heads} head(s), {config.text_heads} text head(s), "
        f"attention window {config.window} steps (overlap {config.window_overlap})",
        "",
        "## Data",
        *[f"- {key}: {value}" for key, value in data.items()],
        f"- training videos: {len(training['train_videos'])}; validation videos: {len(training['validation_videos'])}",
        "",
        "## Training",
        f"- mode: {training['mode']}; losses: {losses}",
        f"- recipe: AdamW, peak learning rate {training['peak_learning_rate']:.3g}"
        f"{' (scaled with width)' if training['learning_rate'] is None else ''}, {training['schedule']}; "
        f"weight decay {training['weight_decay']:g}; dropout {config.dropout:g}; fusion `{config.fusion}`; "
        f"attention `{training['attention']}`; batch {training['batch_size']} videos",
        f"- epochs run: {training['epochs_run']} of {training['epochs']} (patience {training['patience']}); "
        f"seed {training['seed']}",
        "",
        "## Validation (model selection; the test split is never used)",
        f"- kept epoch {training['best_epoch']}: {training['selection_criterion']} = "
        f"{training['selection_value']:.4f} (budget {training['proportion']:.0%}, F1 mode {training['f1_mode']})",
        "",
        *validation_curve(metadata["history"], training["selection_criterion"], training["best_epoch"]),
        "",
        *sections,
        "## Limits",
        "- Scores are only meaningful for frame embeddings of the CLIP model named under Data.",
        "",
    ]
    return "\n".join(lines)

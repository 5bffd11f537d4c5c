"""A trained scorer against what a user gets without it, on the training's own validation videos.

`train_scorer` and `fiftyone-clipit train` call `validation_baselines` after training: the
summary F1 of the trained scorer, of zero-shot (CLIP frame-text similarity, the default scorer)
and of a query-blind twin (the same recipe trained on the same videos with one text for every
video, so what it learns comes from the frames alone) on the held-out validation videos. When the
trained scorer does not beat zero-shot, `baseline_warning` says so: the model card, the CLI and
the App's operator all show it, so nobody swaps the default for a worse scorer unknowingly.

The validation videos chose the epoch, so the trained scorer's figure is optimistic; zero-shot
needs no selection. A trained scorer that does not beat zero-shot even here will not on new videos.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from fiftyone_clipit.defaults import Progress
from fiftyone_clipit.options import TrainingOptions
from fiftyone_clipit.relevance import zero_shot_scores
from fiftyone_clipit.scorer import ScorerConfig
from fiftyone_clipit.training import TrainingResult, TrainingVideo, score_videos, train, video_f1


def validation_baselines(
    result: TrainingResult,
    videos: Sequence[TrainingVideo],
    config: ScorerConfig,
    options: TrainingOptions,
    device: str | None = None,
    progress: Progress = None,
) -> dict:
    """Validation F1 of the trained scorer, zero-shot and the query-blind twin, and the warning.

    Args:
        result: the training of `train` on `videos` (its train / validation split by name).
        videos: every video given to `train`.
        config: the preset the scorer was trained from (the twin uses it too).
        options: the options of that training (the twin uses them too).
        device (None): torch device of the twin's training.
        progress (None): the twin's training progress (as `train`'s).

    Returns:
        {"f1_trained", "f1_zero_shot", "f1_query_blind" (None when every video has the same text:
        the scorer is query-blind itself), "n_videos", "warning" (None when the scorer beats
        zero-shot)}; or {"skipped": reason} without validation videos with ground truth.
    """
    by_name = {v.name: v for v in videos}
    validation = [by_name[n] for n in result.validation_names]
    if not validation or any(v.user_summaries is None for v in validation):
        return {"skipped": "no validation videos with ground truth (validation_fraction=0 or no gt_field)"}

    def f1(model, chosen: Sequence[TrainingVideo]) -> float:
        scores = score_videos(model, chosen, attention=options.attention)
        return float(np.mean([video_f1(v, s, options.proportion, options.f1_mode) for v, s in zip(chosen, scores)]))

    figures = {
        "f1_trained": f1(result.model, validation),
        "f1_zero_shot": float(np.mean([
            video_f1(v, zero_shot_scores(v.features, v.text), options.proportion, options.f1_mode) for v in validation
        ])),
        "f1_query_blind": None,
        "n_videos": len(validation),
    }
    texts = [np.atleast_2d(v.text) for v in videos]
    if any(t.shape != texts[0].shape or not np.allclose(t, texts[0]) for t in texts):
        constant = np.mean([t.mean(axis=0) for t in texts], axis=0, keepdims=True)
        constant /= max(float(np.linalg.norm(constant)), 1e-12)
        blind_train = [replace(by_name[n], text=constant) for n in result.train_names]
        blind_validation = [replace(v, text=constant) for v in validation]
        twin = train(blind_train, config, options, validation=blind_validation, device=device,
                     progress=progress)
        figures["f1_query_blind"] = f1(twin.model, blind_validation)
    figures["warning"] = baseline_warning(figures)
    return figures


def baseline_warning(figures: dict) -> str | None:
    """One line when the trained scorer's validation F1 does not beat zero-shot's; else None."""
    if "skipped" in figures or figures["f1_trained"] > figures["f1_zero_shot"]:
        return None
    return (
        f"the trained scorer's validation F1 {figures['f1_trained']:.4f} does not beat zero-shot's "
        f"{figures['f1_zero_shot']:.4f} on the same {figures['n_videos']} validation video(s): keep the default "
        f"zero-shot scorer, or train on more labelled videos"
    )


def baseline_card_lines(figures: dict) -> list[str]:
    """The model card's section on the baselines (Markdown lines)."""
    lines = ["## Against the baselines (the validation videos; summary F1)"]
    if "skipped" in figures:
        return [*lines, f"- not computed: {figures['skipped']}", ""]
    blind = figures["f1_query_blind"]
    lines += [
        "| scorer | F1 |",
        "|---|---:|",
        f"| this checkpoint | {figures['f1_trained']:.4f} |",
        f"| zero-shot (CLIP similarity, the default scorer) | {figures['f1_zero_shot']:.4f} |",
        f"| query-blind twin (same recipe, one text for every video) | "
        f"{'-' if blind is None else f'{blind:.4f}'} |",
        "",
        f"On {figures['n_videos']} validation video(s), which also chose the epoch (so this checkpoint's figure "
        "is optimistic)." + (" Every video had the same text: the checkpoint is query-blind itself." if blind is None else ""),
    ]
    if figures["warning"]:
        lines += ["", f"**Warning: {figures['warning']}.**"]
    return [*lines, ""]

"""The `train_scorer` operator: a form around `fiftyone_clipit.fo.training.train_scorer`."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone_clipit.defaults import ATTENTION_MODES, DEFAULT_SCORER_PRESET, list_scorer_presets
from fiftyone_clipit.options import TrainingOptions

from .base import ClipItOperator, absolute_folder, field_choice, fields_of_type, float_input, text_input


def int_input(ctx, inputs: types.Object, name: str, label: str, default: int, low: int, high: int) -> None:
    """A whole-number box that is invalid outside [low, high]."""
    prop = inputs.int(name, label=label, default=default, min=low, max=high)
    value = ctx.params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        prop.invalid = True
        prop.error_message = f"{label} must be a whole number between {low} and {high}"


class TrainScorer(ClipItOperator):
    name = "train_scorer"
    label = "CLIP-It: train a scorer"
    description = "Train the CLIP-It frame scorer on this dataset's embeddings and ground truth"

    needs_embeddings = True

    def build_inputs(self, ctx, inputs):
        mode = ctx.params.get("mode") or "supervised"
        inputs.enum("mode", ["supervised", "unsupervised"], default="supervised", label="Training")
        field_choice(
            ctx, inputs, "gt_field", "Ground truth: users' summaries or per-frame importance field",
            fields_of_type(ctx, fo.EmbeddedDocumentField, fo.TemporalDetections)
            + [f"frames.{name}" for name in fields_of_type(ctx, (fo.FloatField, fo.IntField), frames=True) if name != "frame_number"],
            None, "import users' summaries or a per-frame importance first", required=mode == "supervised",
        )
        field_choice(
            ctx, inputs, "query_field", "Field with each video's query (optional)",
            fields_of_type(ctx, fo.StringField), None, "no text field on this dataset", required=False,
        )
        text_input(ctx, inputs, "query", "Or one query for all videos (optional)")
        if ctx.params.get("query_field") and ctx.params.get("query"):
            prop = inputs.str("text_choice", label="Query")
            prop.invalid = True
            prop.error_message = "Give a query field or one query, not both"
        if not ctx.params.get("query_field") and not ctx.params.get("query"):
            text_input(ctx, inputs, "captioner", "No query: captioning model for generic text (folder or hub id; empty: caption-free)")
        text_input(ctx, inputs, "output_dir", "Checkpoint folder to write (absolute)", required=True, folder=True)
        inputs.enum("preset", list_scorer_presets(), default=DEFAULT_SCORER_PRESET, label="Scorer size", view=types.DropdownView())
        defaults = TrainingOptions()
        int_input(ctx, inputs, "epochs", "Most epochs", defaults.epochs, 1, 10000)
        float_input(
            ctx, inputs, "validation_fraction", "Share of videos for model selection",
            defaults.validation_fraction, 0.05, 0.9,
        )
        int_input(ctx, inputs, "seed", "Seed", defaults.seed, 0, 2**31 - 1)
        inputs.enum(
            "attention", list(ATTENTION_MODES), default=defaults.attention, view=types.DropdownView(),
            label="Temporal attention", description="auto: whole video up to 2,048 steps, windows beyond",
        )
        inputs.bool("overwrite", default=False, label="Replace an existing checkpoint folder")

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.training import train_scorer

        defaults = TrainingOptions()
        report = train_scorer(
            self.target(ctx),
            absolute_folder(ctx.params["output_dir"]),
            gt_field=(ctx.params.get("gt_field") or "").removeprefix("frames.") or None,
            query_field=ctx.params.get("query_field") or None,
            query=ctx.params.get("query") or None,
            captioner=ctx.params.get("captioner") or None,
            preset=ctx.params.get("preset") or DEFAULT_SCORER_PRESET,
            overwrite=bool(ctx.params.get("overwrite")),
            progress=progress,
            mode=ctx.params.get("mode") or "supervised",
            epochs=int(ctx.params.get("epochs", defaults.epochs)),
            validation_fraction=float(ctx.params.get("validation_fraction", defaults.validation_fraction)),
            seed=int(ctx.params.get("seed", defaults.seed)),
            attention=ctx.params.get("attention") or defaults.attention,
        )
        return {
            "checkpoint": report.checkpoint,
            "best_epoch": report.best_epoch,
            report.criterion: round(report.validation_value, 4),
            **{k: round(v, 4) for k, v in report.baselines.items() if k.startswith("f1_") and v is not None},
            **({"warning": report.warning} if report.warning else {}),
        }

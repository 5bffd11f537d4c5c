"""The plugin's operators: forms and progress around the library's public functions.

Each operator reads its parameters, calls one function of `fiftyone_clipit`, and reports what
it did; the algorithms live in the library so the CLI and Python users get the same behaviour.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_clipit.encoders import DEFAULT_MODEL, PRESETS

from .base import ClipItOperator, float_input, text_input


class AddVideos(ClipItOperator):
    name = "add_videos"
    label = "CLIP-It: add videos"
    description = "Add video files or folders (with their metadata) to this dataset"
    heavy = False
    needs_target = False

    def build_inputs(self, ctx, inputs):
        text_input(ctx, inputs, "paths", "Video files or folders (comma-separated)", required=True)

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.videos import add_videos

        paths = [p.strip() for p in ctx.params["paths"].split(",") if p.strip()]
        ids = add_videos(ctx.dataset, paths, progress=progress)
        return {"added": len(ids)}


class ComputeFrameEmbeddings(ClipItOperator):
    name = "compute_frame_embeddings"
    label = "CLIP-It: compute frame embeddings"
    description = "Decode frames at a chosen rate and embed them with CLIP"

    def build_inputs(self, ctx, inputs):
        inputs.enum(
            "model",
            list(PRESETS),
            default=DEFAULT_MODEL,
            label="CLIP model",
            view=types.DropdownView(),
        )
        inputs.str("pretrained", label="Weights tag or file (optional)")
        float_input(ctx, inputs, "fps", "Frames per second to sample", 2.0, 0.01, 60.0)

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.embeddings import compute_frame_embeddings

        report = compute_frame_embeddings(
            self.target(ctx),
            model=ctx.params.get("model") or DEFAULT_MODEL,
            pretrained=ctx.params.get("pretrained") or None,
            fps=ctx.params.get("fps", 2.0),
            progress=progress,
        )
        return {"embedded": report.n_embedded, "up_to_date": report.n_up_to_date, "frames": report.n_frames}


class ScoreFrames(ClipItOperator):
    name = "score_frames"
    label = "CLIP-It: score frames for a query"
    description = "Per-frame relevance of a text query (zero-shot CLIP similarity)"

    def build_inputs(self, ctx, inputs):
        text_input(ctx, inputs, "query", "Query", required=True)
        text_input(ctx, inputs, "score_field", "Frame field to write", default="clipit_score", field_name=True)
        float_input(ctx, inputs, "smoothing_seconds", "Smoothing (seconds)", 1.0, 0.0, 60.0)

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.scoring import score_frames

        report = score_frames(
            self.target(ctx),
            ctx.params["query"],
            score_field=ctx.params.get("score_field") or "clipit_score",
            smoothing_seconds=ctx.params.get("smoothing_seconds", 1.0),
            progress=progress,
        )
        return {"scored": report.n_scored}


class CreateSummary(ClipItOperator):
    name = "create_summary"
    label = "CLIP-It: create summary"
    description = "Pick the best segments of each video under a budget"
    heavy = False

    def build_inputs(self, ctx, inputs):
        text_input(ctx, inputs, "score_field", "Frame score field", default="clipit_score", field_name=True)
        text_input(ctx, inputs, "summary_field", "Summary field", default="clipit_summary", field_name=True)
        float_input(ctx, inputs, "budget", "Budget (fraction of each video)", 0.15, 0.01, 1.0)
        float_input(ctx, inputs, "segment_seconds", "Segment length (seconds)", 2.0, 0.1, 60.0)

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.summaries import create_summary

        report = create_summary(
            self.target(ctx),
            score_field=ctx.params.get("score_field") or "clipit_score",
            summary_field=ctx.params.get("summary_field") or "clipit_summary",
            budget=ctx.params.get("budget", 0.15),
            segment_seconds=ctx.params.get("segment_seconds", 2.0),
            progress=progress,
        )
        if report.view_name and not ctx.delegated:
            ctx.ops.set_view(ctx.dataset.load_saved_view(report.view_name))
        return {"summarized": report.n_summarized, "segments": report.n_segments, "view": report.view_name}


class EvaluateSummary(ClipItOperator):
    name = "evaluate_summary"
    label = "CLIP-It: evaluate summary"
    description = "Frame-overlap F1 of a summary against ground-truth summaries"
    heavy = False

    def build_inputs(self, ctx, inputs):
        text_input(ctx, inputs, "gt_field", "Ground-truth summary field", required=True, field_name=True)
        text_input(ctx, inputs, "pred_field", "Predicted summary field", default="clipit_summary", field_name=True)
        text_input(ctx, inputs, "eval_key", "Evaluation key", default="clipit_eval", field_name=True)
        inputs.enum("mode", ["avg", "max"], default="avg", label="Over users: avg (TVSum) or max (SumMe)")

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.evaluation import evaluate_summary

        report = evaluate_summary(
            self.target(ctx),
            gt_field=ctx.params["gt_field"],
            pred_field=ctx.params.get("pred_field") or "clipit_summary",
            eval_key=ctx.params.get("eval_key") or "clipit_eval",
            mode=ctx.params.get("mode") or "avg",
            progress=progress,
        )
        return {"f1": report.f1, "videos": len(report.per_video)}


class ExportSummary(ClipItOperator):
    name = "export_summary"
    label = "CLIP-It: export summary clips"
    description = "Write each summary segment as a playable mp4"

    def build_inputs(self, ctx, inputs):
        text_input(ctx, inputs, "export_dir", "Export directory", required=True)
        text_input(ctx, inputs, "summary_field", "Summary field", default="clipit_summary", field_name=True)
        inputs.bool("overwrite", default=False, label="Overwrite existing clips")

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.export import export_summary

        report = export_summary(
            self.target(ctx),
            ctx.params["export_dir"],
            summary_field=ctx.params.get("summary_field") or "clipit_summary",
            overwrite=bool(ctx.params.get("overwrite")),
            progress=progress,
        )
        return {"clips": sum(map(len, report.clips.values())), "export_dir": report.export_dir}


OPERATORS = [AddVideos, ComputeFrameEmbeddings, ScoreFrames, CreateSummary, EvaluateSummary, ExportSummary]


def register(p: foo.PluginContext) -> None:
    """Registers every operator of @clipit/video-summarization."""
    for operator in OPERATORS:
        p.register(operator)

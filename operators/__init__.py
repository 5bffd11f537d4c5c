"""The plugin's operators: forms and progress around the library's public functions.

Each operator reads its parameters, calls one function of `fiftyone_clipit`, and reports what
it did; the algorithms live in the library so the CLI and Python users get the same behaviour.
"""

from __future__ import annotations


import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_clipit.defaults import (
    ATTENTION_MODES,
    DEFAULT_BUDGET,
    DEFAULT_BUDGET_SECONDS,
    DEFAULT_EVAL_KEY,
    DEFAULT_FPS,
    DEFAULT_MODEL,
    DEFAULT_SCORE_FIELD,
    DEFAULT_SUMMARY_FIELD,
    ZERO_SHOT,
    clip_model_presets,
)
from fiftyone_clipit.options import (
    F1_MODES,
    PROTOCOLS,
    EmbeddingOptions,
    EvaluationOptions,
    ScoringOptions,
    SummaryOptions,
)

from .base import (
    ClipItOperator,
    field_choice,
    fields_of_type,
    float_input,
    option_input,
    output_field_input,
    shard_input,
    text_input,
)
from .panel import ClipItPanel
from .runs import DeleteRun, ListRuns
from .training import TrainScorer
from .highlights import CreateHighlightReel
from .search import BuildFrameIndex, SearchFrames


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
    sharded_run = "clipit_embeddings"

    def build_inputs(self, ctx, inputs):
        embedded = self.embedded_with(ctx)
        models = list(clip_model_presets())
        default_model = embedded.get("model", DEFAULT_MODEL)
        inputs.enum(
            "model",
            models if default_model in models else [default_model, *models],
            default=default_model,
            label="CLIP model",
            description="The model and rate of this dataset's embeddings" if embedded else None,
            view=types.DropdownView(),
        )
        inputs.str("pretrained", label="Weights tag or file (optional)", default=embedded.get("pretrained"))
        option_input(ctx, inputs, EmbeddingOptions, "fps", embedded.get("fps"))
        inputs.enum("precision", ["auto", "fp32", "int8", "fp16"], default="auto",
                    label="Precision (auto: fp16 on a GPU, fp32 on CPU; int8: faster CPU path)")
        inputs.enum("on_broken", ["fail", "keep"], default="fail",
                    label="A video that breaks off mid-stream: fail it, or keep what decodes")
        option_input(ctx, inputs, EmbeddingOptions, "decoders")
        shard_input(ctx, inputs, len(self.target(ctx)))

    @staticmethod
    def embedded_with(ctx) -> dict:
        """The model, weights and rate of the dataset's embeddings run (empty: none yet), so a
        second run on new videos defaults to what the others were embedded with."""
        from fiftyone_clipit.fo.common import EMBEDDINGS_RUN

        if ctx.dataset is None or not ctx.dataset.has_run(EMBEDDINGS_RUN):
            return {}
        config = ctx.dataset.get_run_info(EMBEDDINGS_RUN).config
        return {k: getattr(config, k) for k in ("model", "pretrained", "fps") if getattr(config, k, None)}

    def run_on(self, ctx, samples, progress):
        from fiftyone_clipit.fo.embeddings import compute_frame_embeddings

        report = compute_frame_embeddings(
            samples,
            model=ctx.params.get("model") or DEFAULT_MODEL,
            pretrained=ctx.params.get("pretrained") or None,
            fps=ctx.params.get("fps", DEFAULT_FPS),
            precision=None if ctx.params.get("precision", "auto") == "auto" else ctx.params["precision"],
            on_broken=ctx.params.get("on_broken") or "fail",
            decoders=ctx.params.get("decoders") or None,
            progress=progress,
        )
        output = {"embedded": report.n_embedded, "up_to_date": report.n_up_to_date, "frames": report.n_frames,
                  "partly_embedded": len(report.partial), "pruned": report.n_pruned}
        if ctx.params.get("shard"):
            output["embedded_ids"] = report.embedded  # which videos each shard's operation embedded
        return output


class ScoreFrames(ClipItOperator):
    name = "score_frames"
    label = "CLIP-It: score frames for a query"
    description = "Per-frame relevance of a text query (zero-shot CLIP similarity or a trained scorer)"

    needs_embeddings = True
    sharded_run = "clipit_score_<score_field>"

    def shard_run_key(self, ctx):
        from fiftyone_clipit.fo.scoring import score_run_key

        return score_run_key(ctx.params.get("score_field") or DEFAULT_SCORE_FIELD)

    def build_inputs(self, ctx, inputs):
        from fiftyone_clipit.fo.scoring import score_run_key

        generic = bool(ctx.params.get("generic"))
        inputs.bool("generic", default=False, label="Generic summary (no query: read the video's captions)")
        if generic:
            text_input(ctx, inputs, "captioner", "Captioning model: folder or hub id (empty: caption-free)")
        else:
            text_input(ctx, inputs, "query", "Query", required=True)
        output_field_input(
            ctx, inputs, "score_field", "Frame field to write", DEFAULT_SCORE_FIELD, score_run_key, fo.FloatField, frames=True
        )
        option_input(ctx, inputs, ScoringOptions, "smoothing_seconds")
        option_input(ctx, inputs, ScoringOptions, "frames")
        text_input(ctx, inputs, "scorer", f"Scorer: {ZERO_SHOT} or a checkpoint folder", default=ZERO_SHOT)
        if (ctx.params.get("scorer") or ZERO_SHOT) != ZERO_SHOT:
            inputs.enum(
                "attention", list(ATTENTION_MODES), default="auto", view=types.DropdownView(),
                label="Temporal attention", description="auto: whole video up to 2,048 steps, windows beyond",
            )
        shard_input(ctx, inputs, len(self.target(ctx)))

    def run_on(self, ctx, samples, progress):
        from fiftyone_clipit.fo.score_labels import label_scores
        from fiftyone_clipit.fo.scoring import score_frames, score_label_fields

        from fiftyone_clipit.fo.shards import shard_of

        shard = ctx.params.get("shard")
        with shard_of(shard["plan"] if shard else None):
            report = score_frames(
                samples,
                None if ctx.params.get("generic") else ctx.params["query"],
                captioner=(ctx.params.get("captioner") or None) if ctx.params.get("generic") else None,
                score_field=ctx.params.get("score_field") or DEFAULT_SCORE_FIELD,
                smoothing_seconds=ctx.params.get("smoothing_seconds", ScoringOptions.smoothing_seconds),
                scorer=ctx.params.get("scorer") or ZERO_SHOT,
                attention=ctx.params.get("attention") or ScoringOptions.attention,
                frames=ctx.params.get("frames") or ScoringOptions.frames,
                overwrite=bool(ctx.params.get("overwrite")),
                progress=progress,
            )
        score_field = ctx.params.get("score_field") or DEFAULT_SCORE_FIELD
        labelled = label_scores(samples, score_field)
        return {"scored": report.n_scored, "resumed": report.n_resumed, "labelled_for_the_app": labelled,
                "score_labels": f"frames.{score_label_fields(score_field)[0]}"}

    def summary(self, results):
        kept = results.get("resumed") or 0
        again = f"; {kept} kept the scores of an interrupted run" if kept else ""
        labels = results.get("score_labels") or "the score label"
        return (
            f"Scored {results.get('scored', 0)} video(s){again}. Each scored frame's label names the query "
            f"and its confidence is the score: to draw the score on the tiles and the video, click the eye "
            f"beside 'confidence' under {labels} in the sidebar (FiftyOne keeps that choice in this "
            "browser). Filter it there, or open the CLIP-It panel for the curve."
        )


class CreateSummary(ClipItOperator):
    name = "create_summary"
    label = "CLIP-It: create summary"
    description = "Pick the best segments of each video under a budget"
    heavy = False

    def build_inputs(self, ctx, inputs):
        field_choice(
            ctx, inputs, "score_field", "Frame score field",
            fields_of_type(ctx, fo.FloatField, frames=True), DEFAULT_SCORE_FIELD,
            "run 'CLIP-It: score frames for a query' first",
        )
        from fiftyone_clipit.fo.summaries import summary_run_key

        output_field_input(
            ctx, inputs, "summary_field", "Summary field", DEFAULT_SUMMARY_FIELD, summary_run_key,
            fo.EmbeddedDocumentField, fo.TemporalDetections,
        )
        inputs.enum("budget_unit", ["fraction", "seconds"], default="fraction", label="Budget unit")
        if ctx.params.get("budget_unit") == "seconds":
            float_input(ctx, inputs, "budget", "Budget (seconds of each video)", DEFAULT_BUDGET_SECONDS, 0.1, 86400.0)
        else:
            float_input(ctx, inputs, "budget", "Budget (fraction of each video)", DEFAULT_BUDGET, 0.01, 1.0)
        inputs.enum("segmentation", ["kts", "uniform", "shots"], default="kts", label="Shots: KTS, uniform or a field")
        segmentation = ctx.params.get("segmentation") or "kts"
        if segmentation == "kts":
            inputs.float("min_segment", label="Shortest shot in seconds (empty: one sampled frame)", min=0.1)
        elif segmentation == "uniform":
            option_input(ctx, inputs, SummaryOptions, "segment_seconds")
        else:
            field_choice(
                ctx, inputs, "shots_field", "Shots field (TemporalDetections)",
                fields_of_type(ctx, fo.EmbeddedDocumentField, fo.TemporalDetections), None,
                "label each video's shots as TemporalDetections first",
            )

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.summaries import create_summary
        from fiftyone_clipit.summary import Budget

        segmentation = ctx.params.get("segmentation") or "kts"
        amount = float(ctx.params.get("budget", DEFAULT_BUDGET))
        budget = Budget(seconds=amount) if ctx.params.get("budget_unit") == "seconds" else Budget(fraction=amount)
        report = create_summary(
            self.target(ctx),
            score_field=ctx.params.get("score_field") or DEFAULT_SCORE_FIELD,
            summary_field=ctx.params.get("summary_field") or DEFAULT_SUMMARY_FIELD,
            budget=budget,
            segmentation=segmentation,
            min_segment=ctx.params.get("min_segment") if segmentation == "kts" else None,
            segment_seconds=ctx.params.get("segment_seconds", SummaryOptions.segment_seconds),
            shots_field=ctx.params.get("shots_field") if segmentation == "shots" else None,
            overwrite=bool(ctx.params.get("overwrite")),
            progress=progress,
        )
        return {"summarized": report.n_summarized, "segments": report.n_segments, "view": report.view_name}

    def view_after(self, ctx, result):
        ctx.dataset.reload()  # the library saved the view through its own handle on the dataset
        return ctx.dataset.load_saved_view(result["view"]) if result.get("view") else None

    def summary(self, results):
        return (
            f"{results.get('segments', 0)} moment(s) chosen in {results.get('summarized', 0)} video(s), shown as "
            f"the saved view '{results.get('view')}'."
        )


class EvaluateSummary(ClipItOperator):
    name = "evaluate_summary"
    label = "CLIP-It: evaluate summary"
    description = "Frame-overlap F1 of a summary against ground-truth summaries"
    heavy = False

    def build_inputs(self, ctx, inputs):
        inputs.enum("protocol", list(PROTOCOLS), default=EvaluationOptions.protocol, label="Protocol")
        summaries = fields_of_type(ctx, fo.EmbeddedDocumentField, fo.TemporalDetections)
        if ctx.params.get("protocol") == "qvhighlights":
            field_choice(
                ctx, inputs, "gt_field", "Ground-truth saliency field (a list per video)",
                fields_of_type(ctx, fo.ListField), None, "import QVHighlights annotations first",
            )
        else:
            truth = [name for name in summaries if name != (ctx.params.get("pred_field") or DEFAULT_SUMMARY_FIELD)]
            field_choice(
                ctx, inputs, "gt_field", "Ground-truth summary field", truth, None,
                "import or label users' summaries (TemporalDetections) first",
            )
        field_choice(
            ctx, inputs, "pred_field", "Predicted summary field", summaries, DEFAULT_SUMMARY_FIELD,
            "run 'CLIP-It: create summary' first",
        )
        text_input(ctx, inputs, "eval_key", "Evaluation key (a new name, or one to replace)", default=DEFAULT_EVAL_KEY, field_name=True)
        inputs.enum("mode", list(F1_MODES), label="Over users: avg (TVSum) or max (SumMe); empty: the protocol's")
        inputs.bool(
            "segments", default=True,
            label="Also as a temporal detection evaluation '<key>_segments' (tvsum / summe), the one the Model "
                  "Evaluation panel opens, with the frame-overlap F1",
        )
        inputs.bool(
            "allow_stale", default=False,
            label="Evaluate summaries that no longer hold (source replaced, scored or summarised again since); "
                  "the run records them as stale",
        )

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.evaluation import evaluate_summary
        from fiftyone_clipit.fo.segment_evaluation import evaluate_summary_segments

        protocol = ctx.params.get("protocol") or "tvsum"
        options = dict(
            gt_field=ctx.params["gt_field"], pred_field=ctx.params.get("pred_field") or DEFAULT_SUMMARY_FIELD,
            mode=ctx.params.get("mode") or None,
        )
        eval_key = ctx.params.get("eval_key") or DEFAULT_EVAL_KEY
        results = evaluate_summary(
            self.target(ctx), eval_key=eval_key, protocol=protocol, progress=progress,
            allow_stale=bool(ctx.params.get("allow_stale")), **options,
        )
        metrics = results.metrics()
        output = {name: round(float(metrics[name]), 3) for name in ("precision", "recall", "f1") if name in metrics}
        output.update(videos=len(results.per_sample), eval_key=results.key)
        if ctx.params.get("segments", True) and protocol in ("tvsum", "summe"):
            options["mode"] = results.mode
            segments = evaluate_summary_segments(self.target(ctx), eval_key=f"{eval_key}_segments", **options)
            output["model_evaluation_panel"] = f"{segments.key} (segment mAP {segments.mAP():.3f})"
        return output

    def summary(self, results):
        figures = ", ".join(f"{name} {results[name]:.3f}" for name in ("precision", "recall", "f1") if name in results)
        panel = results.get("model_evaluation_panel")
        opened = f" FiftyOne's Model Evaluation panel shows it as '{panel.split(' ')[0]}'." if panel else ""
        return f"Over {results.get('videos', 0)} video(s): {figures or 'no figures'}.{opened}"


class FrameOverlapF1(foo.EvaluationMetric):
    """Frame-overlap F1 of summaries, a custom metric of FiftyOne's temporal detection evaluations."""

    @property
    def config(self) -> foo.EvaluationMetricConfig:
        return foo.EvaluationMetricConfig(
            name="frame_overlap_f1",
            label="Frame-overlap F1",
            description="F1 of the frames a summary shares with the ground-truth summaries (TVSum/SumMe protocol)",
            eval_types=["detection"],
            aggregate_key="frame_f1",
            lower_is_better=False,
            unlisted=True,  # a metric that evaluate_detections runs, not an operation to run alone
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        prop = inputs.enum("mode", ["avg", "max"], default="avg", label="Over users: avg (TVSum) or max (SumMe)")
        if ctx.params.get("mode", "avg") not in ("avg", "max"):
            prop.invalid = True
            prop.error_message = "mode must be 'avg' or 'max'"
        return types.Property(inputs)

    def compute(self, samples, results, mode: str = "avg"):
        from fiftyone_clipit.fo.segment_evaluation import frame_f1_metric

        return frame_f1_metric(samples, results, mode=mode)

    def get_fields(self, samples, config, eval_key):
        return [f"{eval_key}_frame_f1"]


class ExportSummary(ClipItOperator):
    name = "export_summary"
    label = "CLIP-It: export summary clips"
    description = "Write each summary as mp4 clips, a summary reel and a storyboard"

    def build_inputs(self, ctx, inputs):
        from fiftyone_clipit.fo.export import default_export_dir

        inputs.file(
            "choose_dir", label="Export folder",
            view=types.FileExplorerView(choose_dir=True, button_label="Choose a folder..."),
        )
        inputs.str(
            "export_dir", label="...or type one",
            description=f"Empty: {default_export_dir(ctx.dataset)}; a relative folder goes inside it",
        )
        folder = self.export_dir(ctx)
        inputs.view("where", types.Notice(label=f"Files go to {folder}"))
        field_choice(
            ctx, inputs, "summary_field", "Summary field",
            fields_of_type(ctx, fo.EmbeddedDocumentField, fo.TemporalDetections), DEFAULT_SUMMARY_FIELD,
            "run 'CLIP-It: create summary' first",
        )
        inputs.bool("as_dataset", default=False, label="As a FiftyOne video dataset (clips + label JSON)")
        if not ctx.params.get("as_dataset"):
            inputs.bool("clips", default=True, label="One mp4 per segment")
            inputs.bool("reel", default=True, label="A summary reel per video (segments joined)")
            inputs.bool("storyboard", default=True, label="A storyboard PNG per video")
        inputs.bool("overwrite", default=False, label="Overwrite existing files")

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.export import export_summary, export_summary_dataset

        summary_field = ctx.params.get("summary_field") or DEFAULT_SUMMARY_FIELD
        overwrite = bool(ctx.params.get("overwrite"))
        export_dir = self.export_dir(ctx)
        if ctx.params.get("as_dataset"):
            folder = export_summary_dataset(self.target(ctx), export_dir, summary_field, overwrite)
            return {"export_dir": folder}
        report = export_summary(
            self.target(ctx),
            export_dir,
            summary_field=summary_field,
            clips=ctx.params.get("clips", True) is not False,
            reel=ctx.params.get("reel", True) is not False,
            storyboard=ctx.params.get("storyboard", True) is not False,
            overwrite=overwrite,
            progress=progress,
        )
        return {
            "clips": sum(map(len, report.clips.values())),
            "reels": len(report.reels),
            "storyboards": len(report.storyboards),
            "already_exported": len(report.up_to_date),
            "export_dir": report.export_dir,
            "storyboard_files": list(report.storyboards.values()),  # shown as images, every video's
        }

    def summary(self, results):
        if "clips" not in results:
            return f"The summaries are a FiftyOne video dataset in {results.get('export_dir')}."
        return (
            f"{results['clips']} clip(s), {results.get('reels', 0)} reel(s) and {results.get('storyboards', 0)} "
            f"storyboard(s) written to {results.get('export_dir')} (each video's storyboard below)."
        )

    @staticmethod
    def export_dir(ctx) -> str:
        """The folder chosen in the explorer, else the one typed (see `app_export_dir`)."""
        from fiftyone_clipit.fo.export import app_export_dir

        chosen = (ctx.params.get("choose_dir") or {}).get("absolute_path")
        return app_export_dir(ctx.dataset, chosen or ctx.params.get("export_dir"))


OPERATORS = [
    AddVideos, ComputeFrameEmbeddings, ScoreFrames, CreateSummary, EvaluateSummary, ExportSummary,
    FrameOverlapF1, TrainScorer, BuildFrameIndex, SearchFrames, CreateHighlightReel, ListRuns, DeleteRun,
]


def register(p: foo.PluginContext) -> None:
    """Registers every operator and the panel of @clipit/video-summarization."""
    for operator in OPERATORS:
        p.register(operator)
    p.register(ClipItPanel)

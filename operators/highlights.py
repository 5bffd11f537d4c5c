"""The `create_highlight_reel` operator: a form around `fiftyone_clipit.fo.highlights`."""

from __future__ import annotations

import os

import fiftyone.operators.types as types

from fiftyone_clipit.defaults import HIGHLIGHT_ORDERS

from .base import ClipItOperator, float_input, text_input


class CreateHighlightReel(ClipItOperator):
    name = "create_highlight_reel"
    label = "CLIP-It: highlight reel"
    description = "One reel of the best moments for a query across the videos, within a length in seconds"
    needs_embeddings = True

    def build_inputs(self, ctx, inputs):
        from fiftyone_clipit.fo.export import default_export_dir

        text_input(ctx, inputs, "query", "What to find (text, or the path of an image file)", required=True)
        float_input(ctx, inputs, "seconds", "Reel length at most (seconds)", 30.0, 0.1, 36000.0)
        inputs.enum("order", list(HIGHLIGHT_ORDERS), default="relevance",
                    label="Order: best moment first, or by video and time")
        float_input(ctx, inputs, "per_video_seconds", "At most this many seconds from one video (0: no cap)",
                    0.0, 0.0, 36000.0)
        inputs.str(
            "output_dir", label="Folder for the reel",
            description=f"Empty: {os.path.join(default_export_dir(ctx.dataset), 'highlights')}; "
                        f"a relative folder goes inside {default_export_dir(ctx.dataset)}",
        )
        inputs.view("where", types.Notice(label=f"The reel goes to {self.output_dir(ctx)}"))
        inputs.bool("clips", default=False, label="Also one mp4 per moment")
        inputs.bool("overwrite", default=False, label="Replace a reel already in that folder")

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.highlights import ReelOptions, create_highlight_reel

        cap = ctx.params.get("per_video_seconds") or None
        options = ReelOptions(
            order=ctx.params.get("order") or "relevance", per_video_seconds=cap, clips=bool(ctx.params.get("clips")),
        )
        reel = create_highlight_reel(
            self.target(ctx), ctx.params["query"], ctx.params.get("seconds", 30.0), self.output_dir(ctx), options,
            overwrite=bool(ctx.params.get("overwrite")), progress=progress,
        )
        return {
            "reel": reel.reel,
            "length": f"{reel.seconds:.1f} s: {reel.summary}",
            "skipped": len(reel.skipped),
            "view": reel.view_name,
            "storyboard": reel.storyboard,
        }

    def view_after(self, ctx, result):
        ctx.dataset.reload()  # the library saved the view through its own handle on the dataset
        return ctx.dataset.load_saved_view(result["view"]) if result.get("view") else None

    @staticmethod
    def output_dir(ctx) -> str:
        """The folder typed, else `highlights` inside the dataset's export folder."""
        from fiftyone_clipit.fo.export import app_export_dir

        return app_export_dir(ctx.dataset, ctx.params.get("output_dir") or "highlights")

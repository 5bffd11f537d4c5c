"""The `build_frame_index` and `search_frames` operators: forms around `fiftyone_clipit.fo.search`."""

from __future__ import annotations

from fiftyone_clipit.defaults import DEFAULT_BRAIN_KEY
from fiftyone_clipit.options import SearchOptions

from .base import VIEW_RESULT, ClipItOperator, option_input, text_input


class BuildFrameIndex(ClipItOperator):
    name = "build_frame_index"
    label = "CLIP-It: build frame index"
    description = "Index every embedded frame with FAISS (and register a Brain similarity run)"
    needs_embeddings = True

    def build_inputs(self, ctx, inputs):
        inputs.enum("kind", ["auto", "flat", "ivf"], default="auto", label="Index (auto: exact while small)")
        inputs.bool("overwrite", default=False, label="Rebuild from scratch")
        text_input(ctx, inputs, "brain_key", "Brain similarity key", default=DEFAULT_BRAIN_KEY, field_name=True)

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.search import build_frame_index

        report = build_frame_index(
            ctx.dataset,
            kind=ctx.params.get("kind") or "auto",
            overwrite=bool(ctx.params.get("overwrite")),
            brain_key=ctx.params.get("brain_key") or None,
            progress=progress,
        )
        return {"index": report.kind, "videos": report.n_videos, "frames": report.n_frames,
                "added": report.n_added, "removed": report.n_removed}


class SearchFrames(ClipItOperator):
    name = "search_frames"
    label = "CLIP-It: search frames"
    description = "Find the moments across the dataset that match a text, and show them (indexes first if needed)"
    heavy = False
    needs_embeddings = True

    def build_inputs(self, ctx, inputs):
        text_input(ctx, inputs, "query", "Text (or the path of an image file)", required=True)
        option_input(ctx, inputs, SearchOptions, "k")
        option_input(ctx, inputs, SearchOptions, "clip_seconds")
        inputs.enum("show", ["clips", "videos"], default="clips", label="Show the moments as clips or the videos")

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.search import DEFAULT_MATCHES_FIELD, search_frames

        view = search_frames(
            self.target(ctx),
            ctx.params["query"],
            SearchOptions(k=ctx.params.get("k", SearchOptions.k),
                          clip_seconds=ctx.params.get("clip_seconds", SearchOptions.clip_seconds)),
        )
        n_videos = len(view)
        if ctx.params.get("show", "clips") == "clips" and n_videos:
            view = view.to_clips(DEFAULT_MATCHES_FIELD).sort_by(f"{DEFAULT_MATCHES_FIELD}.confidence", reverse=True)
        output = {"videos": n_videos, "shown": len(view), VIEW_RESULT: view}
        k, seconds = ctx.params.get("k", SearchOptions.k), ctx.params.get("clip_seconds", SearchOptions.clip_seconds)
        if ctx.params.get("show", "clips") == "clips" and len(view) < k:
            output["why_fewer"] = (
                f"The {k} best-matching frames make {len(view)} moment(s): frames less than {seconds:g} s "
                "apart in a video share one moment"
            )
        return output

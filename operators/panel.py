"""The "CLIP-It" panel: a video's relevance curve, its summary, a budget that re-plans it, search.

In the sample modal it draws the chosen score field over time with the summary segments (blue,
upper half) and the ground truth (orange, lower half); the budget slider re-plans the current
video's summary; the query box searches the whole dataset and shows the matching videos. In the
grid it offers the search. Clicking the curve reports the time and frame number (FiftyOne's
panel API has no call that seeks the modal's video).
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_clipit.errors import ClipItError


DEFAULTS = {"score_field": "clipit_score", "summary_field": "clipit_summary", "budget": 0.15}


def setting(ctx, key: str):
    """A panel setting from its state, or its default."""
    value = ctx.panel.state.get(key)
    return DEFAULTS.get(key) if value in (None, "") else value


class ClipItPanel(foo.Panel):
    @property
    def config(self) -> foo.PanelConfig:
        return foo.PanelConfig(
            name="clipit_panel",
            label="CLIP-It",
            surfaces="grid modal",
            help_markdown="Relevance of each moment to your query, the summary, and search.",
        )

    def on_load(self, ctx) -> None:
        for key, default in DEFAULTS.items():
            if ctx.panel.state.get(key) is None:
                ctx.panel.set_state(key, default)
        self._draw(ctx)

    def on_change_current_sample(self, ctx) -> None:
        self._draw(ctx)

    def on_change_fields(self, ctx) -> None:
        self._draw(ctx)

    def on_budget(self, ctx) -> None:
        """Re-plans the current video's summary with the new budget and the run's other settings."""
        from fiftyone_clipit.fo.summaries import create_summary

        if not ctx.current_sample:
            return
        summary_field, budget = setting(ctx, "summary_field"), float(setting(ctx, "budget"))
        run_key = f"clipit_summary_{summary_field}"
        options = {"score_field": setting(ctx, "score_field")}
        if ctx.dataset.has_run(run_key):
            config = ctx.dataset.get_run_info(run_key).config
            for key in ("score_field", "segmentation", "min_segment", "max_segment", "segment_seconds",
                        "shots_field", "rounding", "label"):
                if getattr(config, key, None) is not None:
                    options[key] = getattr(config, key)
        try:
            create_summary(
                ctx.dataset.select(ctx.current_sample), summary_field=summary_field, budget=budget, **options
            )
            ctx.panel.set_state("message", f"Summary re-planned with a budget of {budget:.0%}")
        except (ClipItError, ValueError) as e:
            ctx.panel.set_state("message", str(e))
        self._draw(ctx)

    def on_search(self, ctx) -> None:
        from fiftyone_clipit.fo.index import search_frames

        query = (ctx.panel.state.query or "").strip()
        if not query:
            ctx.panel.set_state("message", "Type a query to search")
            return
        try:
            view = search_frames(ctx.dataset, query, k=int(ctx.panel.state.k or 20))
        except (ClipItError, ValueError) as e:
            ctx.panel.set_state("message", str(e))
            return
        ctx.panel.set_state("message", f"{len(view)} video(s) match '{query}'")
        ctx.ops.set_view(view)

    def on_click_curve(self, ctx) -> None:
        seconds = float(ctx.params.get("x") or 0.0)
        rate = ctx.panel.state.frame_rate or 30.0
        ctx.panel.set_state("message", f"{seconds:.2f} s = frame {int(seconds * rate) + 1}")

    def _draw(self, ctx) -> None:
        from fiftyone_clipit.fo.curves import curve_traces, sample_curves

        if not ctx.current_sample or ctx.dataset is None:
            return
        try:
            curves = sample_curves(
                ctx.dataset, ctx.current_sample, setting(ctx, "score_field"), setting(ctx, "summary_field"),
                setting(ctx, "gt_field"),
            )
        except ClipItError as e:
            ctx.panel.set_state("message", str(e))
            return
        traces, layout = curve_traces(curves)
        ctx.panel.set_data("curve", traces)
        ctx.panel.set_state("layout", layout)
        ctx.panel.set_state("frame_rate", float(1 / curves.times[1]) if len(curves.times) > 1 else 30.0)

    def render(self, ctx) -> types.Property:
        panel = types.Object()
        state = ctx.panel.state
        if ctx.current_sample:
            panel.plot(
                "curve", layout=state.layout or {}, on_click=self.on_click_curve,
                config={"displayModeBar": False},
            )
            panel.float(
                "budget", label="Budget", default=0.15,
                view=types.SliderView(min=0.01, max=0.5, step=0.01), on_change=self.on_budget,
            )
            panel.str("score_field", label="Score field", default="clipit_score", on_change=self.on_change_fields)
            panel.str("gt_field", label="Ground-truth field (optional)", on_change=self.on_change_fields)
        else:
            panel.md("Open a video to see how relevant each moment is to your query.", name="intro")
        panel.str("query", label="Search every video for...")
        panel.btn("search", label="Search", on_click=self.on_search)
        if state.message:
            panel.md(str(state.message), name="message")
        return types.Property(panel)

"""The "CLIP-It" panel: a video's relevance curve, its summary, a budget to preview and apply, search.

In the sample modal it draws the chosen score field over time with the summary segments (blue,
upper half) and the ground truth (orange, lower half). In a clips or frames view it draws the
video the clip or frame comes from and outlines the clip's span in red. The budget slider starts
at the budget the video's summary was planned with; moving it re-plans in memory and shades the
preview in green (the stored summary is then outlined); nothing is written until "Apply to this
video" or "Apply to all". The query box sorts the dataset's videos by their best-matching frame
(the frame index's Brain run, `sort_by_similarity`), writing nothing. Clicking the curve reports
the time and frame number and shows that frame (FiftyOne's panel API has no call that seeks the
modal's video, and the panel says so). A video without scores gets a message and Apply disabled.
Below, a table of this dataset's runs: the plugin's delegated operations (queued, running with
their progress, finished) and the runs it recorded; filled when the panel loads and by "Refresh",
and refilled every few seconds while one of them is queued or running (FiftyOne's TimerView).
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_clipit.defaults import (
    DEFAULT_BRAIN_KEY,
    DEFAULT_BUDGET,
    DEFAULT_SCORE_FIELD,
    DEFAULT_SUMMARY_FIELD,
    FALLBACK_FRAME_RATE,
)
from fiftyone_clipit.errors import ClipItError

from .base import ICON


#: how often the runs table refills itself while a run is queued or running
RUNS_REFRESH_MS = 5000

DEFAULTS = {"score_field": DEFAULT_SCORE_FIELD, "summary_field": DEFAULT_SUMMARY_FIELD, "budget": DEFAULT_BUDGET}


def setting(ctx, key: str):
    """A panel setting from its state, or its default."""
    value = ctx.panel.state.get(key)
    return DEFAULTS.get(key) if value in (None, "") else value


def slider_budget(ctx) -> float | None:
    """The slider's budget as a fraction of the video, or None (with a message) when it is 0%."""
    budget = round(float(setting(ctx, "budget")), 4)
    if budget < 0.01:
        ctx.panel.set_state("message", "A budget of 0% chooses nothing; move the slider to 1% or more")
        return None
    return budget


def refresh_clips_views(ctx, summary_field: str) -> None:
    """Regenerates the clips of the summary's saved clips view (`<summary_field>_clips`, which
    create_summary saves) and of the App's current clips view, so neither shows the summary as it
    was before Apply. FiftyOne keeps a clips view's clips in a generated dataset that a later write
    to the summary does not touch (its App needed "Reload saved view"); regenerating keeps that
    dataset's name, so the App's view stays valid. Other saved views are not loaded (a frames view
    would be generated again)."""
    import fiftyone.core.clips as focl

    name = f"{summary_field}_clips"
    views = [ctx.dataset.load_saved_view(name)] if name in ctx.dataset.list_saved_views() else []
    for view in views + [ctx.view]:
        if isinstance(view, focl.ClipsView):
            view.reload()


class ClipItPanel(foo.Panel):
    @property
    def config(self) -> foo.PanelConfig:
        return foo.PanelConfig(
            name="clipit_panel",
            label="CLIP-It",
            icon=ICON,
            surfaces="grid modal",
            help_markdown="Relevance of each moment to your query, the summary, and search.",
        )

    def on_load(self, ctx) -> None:
        for key, default in DEFAULTS.items():
            if key != "budget" and ctx.panel.state.get(key) is None:  # the budget: the video's (`_open`)
                ctx.panel.set_state(key, default)
        self._open(ctx)
        self.on_refresh_runs(ctx)

    def on_refresh_runs(self, ctx) -> None:
        """Lists this dataset's CLIP-It runs: delegated operations and recorded runs."""
        from .runs import ACTIVE_STATES, dataset_runs

        if ctx.dataset is not None:
            rows = dataset_runs(ctx.dataset, self.plugin_name)
            ctx.panel.set_data("runs", rows)
            ctx.panel.set_state("runs_active", any(row["state"] in ACTIVE_STATES for row in rows))

    def on_change_current_sample(self, ctx) -> None:
        self._open(ctx)

    def on_change_view(self, ctx) -> None:
        self._open(ctx)

    def on_change_fields(self, ctx) -> None:
        self._draw(ctx)

    def on_budget(self, ctx) -> None:
        """Previews the current video's summary under the slider's budget; writes nothing."""
        from fiftyone_clipit.fo.summaries import plan_video_summary

        video_id, budget = self._video(ctx), slider_budget(ctx)
        if video_id is None or budget is None:
            return
        try:
            planned = plan_video_summary(ctx.dataset, video_id, budget, setting(ctx, "summary_field"))
        except (ClipItError, ValueError) as e:
            ctx.panel.set_state("message", str(e))
            return
        segments = [tuple(d.support) for d in planned.detections]
        frames = sum(last - first + 1 for first, last in segments)
        ctx.panel.set_state(
            "message",
            f"Preview at {budget:.0%}: {len(segments)} segment(s), {frames} frames; nothing is saved "
            "until you apply it",
        )
        self._draw(ctx, preview=segments)

    def on_apply_video(self, ctx) -> None:
        """Writes the current video's summary under the slider's budget (the run keeps its own)."""
        from fiftyone_clipit.fo.summaries import replan_video_summary

        video_id, budget = self._video(ctx), slider_budget(ctx)
        if video_id is None or budget is None:
            return
        try:
            replan_video_summary(ctx.dataset, video_id, budget, setting(ctx, "summary_field"))
        except (ClipItError, ValueError) as e:
            ctx.panel.set_state("message", str(e))
            return
        ctx.panel.set_state("message", f"This video's summary re-planned with a budget of {budget:.0%}")
        refresh_clips_views(ctx, setting(ctx, "summary_field"))
        ctx.ops.reload_samples()
        self._draw(ctx)

    def on_apply_all(self, ctx) -> None:
        """Re-plans every video's summary under the slider's budget with the run's other settings."""
        from fiftyone_clipit.fo.summaries import create_summary, summary_settings

        summary_field, budget = setting(ctx, "summary_field"), slider_budget(ctx)
        if budget is None:
            return
        try:
            settings = dict(summary_settings(ctx.dataset, summary_field), budget=budget)
            report = create_summary(ctx.dataset, summary_field=summary_field, **settings)
        except (ClipItError, ValueError) as e:
            ctx.panel.set_state("message", str(e))
            return
        ctx.panel.set_state("message", f"{report.n_summarized} video(s) re-planned with a budget of {budget:.0%}")
        refresh_clips_views(ctx, summary_field)
        ctx.ops.reload_samples()
        self._draw(ctx)

    def on_search(self, ctx) -> None:
        """Sorts the dataset's videos by their best frame for the query (FiftyOne's
        `sort_by_similarity` on the frame index's Brain run); writes nothing to the dataset."""
        query = (ctx.panel.state.query or "").strip()
        if not query:
            ctx.panel.set_state("message", "Type a query to search")
            return
        if DEFAULT_BRAIN_KEY not in ctx.dataset.list_brain_runs():
            ctx.panel.set_state(
                "message", "No frame index to search: run 'CLIP-It: build frame index' first"
            )
            return
        try:
            view = ctx.dataset.sort_by_similarity(query, k=int(ctx.panel.state.k or 20), brain_key=DEFAULT_BRAIN_KEY)
        except (ClipItError, ValueError) as e:
            ctx.panel.set_state("message", str(e))
            return
        ctx.panel.set_state("message", f"{len(view)} video(s), best match for '{query}' first")
        ctx.ops.set_view(view)

    def on_click_curve(self, ctx) -> None:
        """Names the clicked moment and shows its frame: FiftyOne 1.22's panel API has no call
        that moves the modal's video, so the panel says so and shows the frame instead."""
        from urllib.parse import quote

        from fiftyone_clipit.fo.curves import frame_picture

        seconds = float(ctx.params.get("x") or 0.0)
        rate = ctx.panel.state.frame_rate or FALLBACK_FRAME_RATE
        ctx.panel.set_state("message", f"{seconds:.2f} s = frame {int(seconds * rate) + 1}")
        video_id = self._video(ctx)
        if video_id is None:
            return
        try:
            _, path = frame_picture(ctx.dataset, video_id, seconds)
        except ClipItError as e:  # an unreadable video (VideoError) included
            ctx.panel.set_state("clicked_frame", None)
            ctx.panel.set_state("message", f"{seconds:.2f} s: {e}")
            return
        ctx.panel.set_state("clicked_frame", {"path": path, "seconds": round(seconds, 2)})
        ctx.panel.set_state("clicked_image", f"/media?filepath={quote(path)}")

    def _video(self, ctx) -> str | None:
        """The id of the video the current sample is (or comes from, in a clips or frames view)."""
        from fiftyone_clipit.fo.curves import source_video

        if not ctx.current_sample or ctx.dataset is None:
            return None
        try:
            return source_video(ctx.view, ctx.current_sample)[0]
        except ClipItError as e:
            ctx.panel.set_state("message", str(e))
            return None

    def _open(self, ctx) -> None:
        """Sets the slider to the budget the video's summary was planned with, and draws it."""
        from fiftyone_clipit.fo.summaries import video_budget

        video_id = self._video(ctx)
        if video_id is None:
            return
        try:
            budget = video_budget(ctx.dataset, video_id, setting(ctx, "summary_field"))
        except ClipItError:
            budget = None
        ctx.panel.set_state("message", None)
        ctx.panel.set_state("clicked_frame", None)  # another video: no frame of the last one
        duration = self._draw(ctx)
        # a budget in seconds shows as the share of this video it makes
        share = budget.share_of(duration) if budget is not None and duration else DEFAULTS["budget"]
        ctx.panel.set_state("budget", round(float(share), 2))

    def _draw(self, ctx, preview: list[tuple[int, int]] | None = None) -> float | None:
        """Draws the curve of the current video; returns its duration in seconds."""
        from fiftyone_clipit.fo.curves import curve_traces, sample_curves, source_video

        if not ctx.current_sample or ctx.dataset is None:
            return None
        try:
            video_id, span = source_video(ctx.view, ctx.current_sample)
            curves = sample_curves(
                ctx.dataset, video_id, setting(ctx, "score_field"), setting(ctx, "summary_field"),
                setting(ctx, "gt_field"),
            )
        except ClipItError as e:
            ctx.panel.set_state("message", str(e))
            ctx.panel.set_data("curve", [])
            ctx.panel.set_state("drawn", False)  # nothing to re-plan: Apply is disabled
            return None
        ctx.panel.set_state("drawn", True)
        rate = float(1 / curves.times[1]) if len(curves.times) > 1 else 30.0
        seconds = None if preview is None else [((first - 1) / rate, last / rate) for first, last in preview]
        traces, layout = curve_traces(curves, span=span, preview=seconds)
        ctx.panel.set_data("curve", traces)
        ctx.panel.set_state("layout", layout)
        ctx.panel.set_state("frame_rate", rate)
        return len(curves.times) / rate

    def render(self, ctx) -> types.Property:
        panel = types.Object()
        state = ctx.panel.state
        if ctx.current_sample:
            panel.plot(
                "curve", layout=state.layout or {}, on_click=self.on_click_curve,
                config={"displayModeBar": False},
            )
            if state.budget is not None:  # set by `_open` to the video's budget: no default the App could apply
                panel.float(
                    "budget", label="Budget", default=state.budget, on_change=self.on_budget,
                    # the share of the video, previewed until applied; the App shows a "%" value relative
                    # to the slider's range, so 0 to 1 makes it the share itself
                    view=types.SliderView(min=0, max=1, view_multiple_of=0.01, value_format="%"),
                )
            buttons = panel.h_stack("apply", align_x="left")
            drawn = bool(state.drawn)
            buttons.btn("apply_video", label="Apply to this video", on_click=self.on_apply_video, disabled=not drawn)
            buttons.btn("apply_all", label="Apply to all", on_click=self.on_apply_all, disabled=not drawn)
            self._render_fields(ctx, panel)
        else:
            panel.md("Open a video to see how relevant each moment is to your query.", name="intro")
        panel.str("query", label="Search every video for...")
        panel.btn("search", label="Search", on_click=self.on_search)
        if state.message:
            panel.md(str(state.message), name="message")
        if ctx.current_sample and state.clicked_frame:
            panel.md(
                f"The frame at {state.clicked_frame['seconds']:.2f} s (a panel cannot move the video: drag its "
                "timeline there to play from this moment)", name="clicked_note",
            )
            panel.str("clicked_image", default=state.clicked_image, view=types.ImageView(width="60%"))
        self._render_runs(panel, bool(state.runs_active))
        # one column with a margin on both sides (the default layout ran to the panel's right edge)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, pad_x=1))

    def _render_fields(self, ctx, panel: types.Object) -> None:
        """Dropdowns of the fields the curve can be drawn from: frame scores, users' summaries."""
        import fiftyone as fo

        from .base import fields_of_type

        scores = fields_of_type(ctx, fo.FloatField, frames=True)
        panel.enum(
            "score_field", scores, label="Score field", default=DEFAULT_SCORE_FIELD if DEFAULT_SCORE_FIELD in scores else None,
            on_change=self.on_change_fields, view=types.DropdownView(),
        )
        summary = setting(ctx, "summary_field")
        truth = [name for name in fields_of_type(ctx, fo.EmbeddedDocumentField, fo.TemporalDetections) if name != summary]
        panel.enum(
            "gt_field", truth, label="Ground-truth field (optional)", on_change=self.on_change_fields,
            view=types.DropdownView(),
        )

    def _render_runs(self, panel: types.Object, active: bool) -> None:
        """The table of this dataset's runs (`on_refresh_runs` fills it), with its refresh button
        and, while a run is `active` (queued or running), a timer that refills it."""
        from .runs import RUN_COLUMNS

        header = panel.h_stack("runs_header", align_x="left", align_y="center")
        header.md("**Runs on this dataset** (scheduled ones need a worker: `fiftyone delegated launch`)", name="runs_title")
        header.btn("refresh_runs", label="Refresh", on_click=self.on_refresh_runs)
        if active:  # refills itself while a run is queued or running; render drops the timer after
            panel.view("runs_timer", types.TimerView(interval=RUNS_REFRESH_MS, on_interval=self.on_refresh_runs))
        # FiftyOne's table is at least 650 px wide, wider than a panel beside the grid
        table = types.TableView(componentsProps={"table": {"sx": {"minWidth": 0}}})
        for key, label in RUN_COLUMNS:
            table.add_column(key, label=label)
        panel.list("runs", types.Object(), view=table)

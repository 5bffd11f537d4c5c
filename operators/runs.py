"""Operators that list and delete this plugin's runs on the current dataset."""

from __future__ import annotations

import re

import fiftyone.operators.types as types

from .base import ClipItOperator


class ListRuns(ClipItOperator):
    name = "list_runs"
    label = "CLIP-It: list runs"
    description = "What this plugin computed on the dataset, and with which settings"
    heavy = False

    def build_inputs(self, ctx, inputs):
        inputs.md("Lists the embeddings, scores, summaries, evaluations, indexes and training runs.")

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.runs import list_clipit_runs

        return {run.key: run.describe() for run in list_clipit_runs(ctx.dataset)}


class DeleteRun(ClipItOperator):
    name = "delete_run"
    label = "CLIP-It: delete a run"
    description = "Delete one of this plugin's runs and what FiftyOne keeps for it"
    heavy = False

    def build_inputs(self, ctx, inputs):
        from fiftyone_clipit.fo.runs import list_clipit_runs

        keys = [run.key for run in list_clipit_runs(ctx.dataset)]
        prop = inputs.enum("run_key", keys, label="Run", required=True, view=types.DropdownView())
        if not keys:
            prop.invalid = True
            prop.error_message = "This dataset has no CLIP-It runs"
        elif ctx.params.get("run_key") not in keys:
            prop.invalid = True
            prop.error_message = f"Choose one of {keys}"

    def run(self, ctx, progress):
        from fiftyone_clipit.fo.runs import delete_clipit_run

        run = delete_clipit_run(ctx.dataset, ctx.params["run_key"])
        return {"deleted": run.key, "kind": run.kind}


# The columns of the CLIP-It panel's table of runs.
RUN_COLUMNS = (("run", "Run"), ("state", "State"), ("details", "Progress / settings"), ("when", "When"))

#: one vocabulary of states for the table: FiftyOne's operation states and the recorded runs'
RUN_STATES = {"scheduled": "queued", "queued": "queued", "running": "running", "completed": "done", "failed": "failed"}

#: the states of a run that is not over yet (the panel's table refills itself while one is listed)
ACTIVE_STATES = ("queued", "running")

#: what each recorded run's key prefix made (the rest of the key is the field it wrote)
_MADE = (("clipit_score_", "scores"), ("clipit_summary_", "summary"), ("clipit_highlights_", "highlight reel"))


def run_title(key: str, kind: str = "run") -> str:
    """A recorded run as the table names it: the field it wrote and what it is, once
    ("clipit_score (scores)", not the run key "clipit_score_clipit_score")."""
    for prefix, made in _MADE:
        if key.startswith(prefix) and len(key) > len(prefix):
            return f"{key[len(prefix):]} ({made})"
    return key if kind == "run" else f"{key} ({kind})"


def dataset_runs(dataset, plugin: str, limit: int = 10) -> list[dict[str, str]]:
    """This dataset's CLIP-It runs as rows of the panel's table: the plugin's delegated
    operations on it (queued, running, finished or failed; newest first, at most `limit`), then
    the runs it recorded (oldest first; a sharded or unfinished one says how far it has come).

    Args:
        dataset: the dataset.
        plugin: the plugin's name (e.g. "@clipit/video-summarization"); operations of other
            plugins are left out.
        limit (10): the most delegated operations listed.

    Returns:
        one dict per row with the keys of RUN_COLUMNS, all strings.
    """
    from fiftyone.factory import DelegatedOperationPagingParams
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.registry import OperatorRegistry

    from fiftyone_clipit.fo.runs import list_clipit_runs

    registry = OperatorRegistry()

    operations = DelegatedOperationService().list_operations(
        dataset_name=dataset.name, search={"^" + re.escape(f"{plugin}/"): ["operator"]},
        paging=DelegatedOperationPagingParams(limit=limit),
    )
    rows = []
    for op in operations:
        if not op.operator.startswith(f"{plugin}/"):
            continue
        status = op.status
        fraction = getattr(status, "progress", None)
        shown = [getattr(status, "label", None) or "", f"{fraction:.0%}" if fraction is not None else ""]
        when = op.completed_at or op.failed_at or op.started_at or op.queued_at or op.scheduled_at
        operator, label = registry.get_operator(op.operator), op.label
        if operator is not None and label in (None, "", operator.name, operator.uri):  # FiftyOne's default names
            label = operator.config.label
        rows.append({
            "run": label or op.operator.rsplit("/", 1)[-1],
            "state": RUN_STATES.get(str(op.run_state), str(op.run_state)),
            "details": " ".join(s for s in shown if s),
            "when": str(when)[:19] if when else "",
        })
    for run in list_clipit_runs(dataset):
        state = "running" if run.config.get("complete") is False else "done"
        progress = []
        if run.config.get("shards"):
            progress = [f"shards {run.config.get('shards_done', 0)}/{run.config['shards']} done"]
        details = ", ".join(progress + run.settings())
        rows.append({"run": run_title(run.key, run.kind), "state": state, "details": details, "when": run.timestamp[:19]})
    return rows

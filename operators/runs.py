"""Operators that list and delete this plugin's runs on the current dataset."""

from __future__ import annotations

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

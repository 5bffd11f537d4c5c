"""This plugin's runs on a dataset (embeddings, scores, summaries, training, evaluations, indexes).

FiftyOne keeps three kinds of runs in three namespaces; CLIP-It writes custom runs (keys starting
with `clipit_`, and the summary evaluations of `evaluate_summary`, which stay out of the Model
Evaluation panel), evaluations (a summary evaluation stored by an earlier version), and brain
runs of its similarity backend.
Listing and deleting goes through FiftyOne's own run APIs, so each run's cleanup (e.g. the
embedding store or the index files) happens as FiftyOne defines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import fiftyone as fo

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.summary import Budget

_KINDS = {
    "run": ("list_runs", "get_run_info", "delete_run"),
    "evaluation": ("list_evaluations", "get_evaluation_info", "delete_evaluation"),
    "brain": ("list_brain_runs", "get_brain_info", "delete_brain_run"),
}


# The settings that tell one run from another, in the order they are shown.
_SHOWN = ("query", "text", "model", "clip_model", "scorer", "score_field", "budget", "segmentation",
          "protocol", "mode", "pred_field", "gt_fields", "gt_field", "kind")


@dataclass(frozen=True)
class RunSummary:
    """One run: its key, kind (run, evaluation, brain), when it was made, and what made it."""

    key: str
    kind: str
    timestamp: str
    config: dict

    def describe(self) -> str:
        """One line for the App: the kind, what made the run (query, model, budget, ...) and when."""
        return ", ".join([self.kind, *self.settings(), *self._progress(), self.timestamp[:19]])

    def settings(self) -> list[str]:
        """What made the run, e.g. ["query 'a dog'", "model 'tiny-random'"] (the panel's column)."""
        return [f"{name} {self._shown(name)}" for name in _SHOWN if self.config.get(name) not in (None, "", [])]

    def _progress(self) -> list[str]:
        """How far a run split into shards (or still writing) has come."""
        shown = []
        if self.config.get("shards"):
            shown.append(f"shards {self.config.get('shards_done', 0)}/{self.config['shards']} done")
        if self.config.get("complete") is False:
            shown.append("in progress")
        return shown

    def _shown(self, name: str) -> str:
        if name == "budget" and "budget_unit" in self.config:
            return str(Budget.from_record(self.config["budget"], self.config["budget_unit"]))
        return repr(self.config[name])


def _is_ours(kind: str, key: str, info) -> bool:
    cls = getattr(info.config, "cls", "") or ""
    return cls.startswith("fiftyone_clipit") or (kind == "run" and key.startswith("clipit_"))


def list_clipit_runs(dataset: fo.Dataset) -> list[RunSummary]:
    """Every run this plugin recorded on `dataset`, oldest first."""
    runs = []
    for kind, (list_name, info_name, _) in _KINDS.items():
        for key in getattr(dataset, list_name)():
            info = getattr(dataset, info_name)(key)
            if _is_ours(kind, key, info):
                config = {k: v for k, v in info.config.serialize().items() if k not in ("cls", "type")}
                runs.append(RunSummary(key, kind, str(info.timestamp), config))
    return sorted(runs, key=lambda run: run.timestamp)


def delete_clipit_run(dataset: fo.Dataset, key: str) -> RunSummary:
    """Deletes one of this plugin's runs (with FiftyOne's cleanup of what it wrote).

    Raises:
        ClipItError: no run of this plugin has that key; the message lists those that exist.
    """
    runs = {run.key: run for run in list_clipit_runs(dataset)}
    if key not in runs:
        raise ClipItError(f"'{dataset.name}' has no CLIP-It run '{key}'; its runs are {sorted(runs)}")
    run = runs[key]
    getattr(dataset, _KINDS[run.kind][2])(key)
    return run

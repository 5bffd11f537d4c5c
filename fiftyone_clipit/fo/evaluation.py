"""Summary evaluation as a FiftyOne custom run, with the published protocols' exact numbers.

``evaluate_summary`` follows the pattern of FiftyOne's own ``fiftyone/utils/eval/regression.py``:
a Config / Method / Results trio. The run is a custom run (``fiftyone.core.runs``), not an
evaluation: FiftyOne 1.22's Model Evaluation panel lists every evaluation and fails on any type
but classification / detection / segmentation, so the summary protocols stay out of its way and
``evaluate_summary_segments`` gives the panel the evaluation it can open. The run shows in
``dataset.list_runs()``, its settings in ``get_run_info(key)``, its results reload with
``load_run_results(key)`` (with ``print_report()``, ``metrics()`` and a figure per video),
``rename_run`` renames its fields and ``delete_run(key)`` removes it and its fields. Per-video
figures are sample fields ``<eval_key>_<metric>``, grouped under ``<eval_key>`` in the App's
sidebar, to sort and filter on.

Protocols (DESIGN.md, "Evaluation protocols"):

- ``"tvsum"`` / ``"summe"``: frame-overlap precision / recall / F1 of the summary against each
  user's summary, averaged over users (TVSum) or the best user (SumMe); with ``gt_score_field``,
  also Kendall tau-b / Spearman rho of the frame scores against each user's scores (Otani et al.).
- ``"qfvs"``: shots of ``shot_seconds``; concept-IoU bipartite matching against each ground-truth
  summary (Sharghi et al.), averaged.
- ``"qvhighlights"``: clip scores (mean frame score per ``clip_seconds`` clip) against the
  annotators' saliency: HIT@1 and AP at thresholds 2 / 3 / 4 (Lei et al., Moment-DETR's code).

``fiftyone_clipit.fo.segment_evaluation.evaluate_summary_segments`` sends the same summaries
through FiftyOne's temporal (ActivityNet) evaluation, for the App's Model Evaluation panel.
"""

from __future__ import annotations

import os
from typing import Any

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.runs as fors
import numpy as np
from tabulate import tabulate

from fiftyone_clipit import protocols
from fiftyone_clipit.defaults import DEFAULT_EVAL_KEY, FALLBACK_FRAME_RATE
from fiftyone_clipit.errors import ALLOW_STALE_HINT, ClipItError, ItemFailure
from fiftyone_clipit.fo.protocols import summary_mask, user_masks
from fiftyone_clipit.fo.common import (
    Progress,
    check_field_name,
    check_field_type,
    check_output_field,
    dataset_name,
    embedding_store,
    ensure_iterable,
    finish,
    iterate,
    root_dataset,
    video_collection,
    write_declared,
    write_in_chunks,
)
from fiftyone_clipit.fo.lineage import stale_scores
from fiftyone_clipit.fo.scoring import DEFAULT_SCORE_FIELD, score_run_key, scored_at_steps
from fiftyone_clipit.fo.summaries import DEFAULT_SUMMARY_FIELD, stale_summaries
from fiftyone_clipit.shots import frame_scores_array
from fiftyone_clipit.options import EvaluationOptions


class SummaryEvaluationConfig(fors.RunConfig):
    """What an ``evaluate_summary`` run compared, and how (stored with the run).

    Args:
        pred_field: the predicted summary (TemporalDetections), or None (qvhighlights only).
        gt_fields: ground-truth fields: users' summaries (TemporalDetections) for tvsum / summe /
            qfvs; the saliency list field for qvhighlights.
        protocol: one of ``PROTOCOLS``.
        mode: ``"avg"`` or ``"max"`` over users.
        score_field: frame field of predicted scores (rank correlation, highlights, plots).
        gt_score_field: frame field of the users' per-frame scores (rank correlation, plots).
        concepts_field: sample field listing each shot's concepts (qfvs).
        shot_seconds: QFVS shot length.
        clip_seconds: QVHighlights clip length.
        stale: sample id -> why its summary or scores no longer hold, for the videos evaluated
            anyway (``allow_stale=True``); empty when every input was current.
        written_fields: the per-video figure fields the run writes (``<key>_<metric>``).
    """

    def __init__(
        self,
        pred_field: str | None,
        gt_fields: list[str],
        protocol: str,
        mode: str,
        score_field: str | None = None,
        gt_score_field: str | None = None,
        concepts_field: str | None = None,
        shot_seconds: float = EvaluationOptions.shot_seconds,
        clip_seconds: float = EvaluationOptions.clip_seconds,
        stale: dict[str, str] | None = None,
        written_fields: list[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.stale = dict(stale or {})
        self.written_fields = list(written_fields or [])
        self.pred_field = pred_field
        self.gt_fields = list(gt_fields)
        self.protocol = protocol
        self.mode = mode
        self.score_field = score_field
        self.gt_score_field = gt_score_field
        self.concepts_field = concepts_field
        self.shot_seconds = shot_seconds
        self.clip_seconds = clip_seconds

    @property
    def type(self) -> str:
        return "summary"

    @property
    def method(self) -> str:
        return self.protocol

    @classmethod
    def _virtual_attributes(cls) -> list[str]:
        return ["cls", "type", "method"]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The per-video figures this run writes."""
        return protocols.protocol_metrics(self.protocol, self.gt_score_field is not None)


class SummaryEvaluation(fors.Run):
    """Evaluates summaries video by video; owns the run's sample fields (rename / cleanup)."""

    def register_samples(self, samples: foc.SampleCollection, eval_key: str) -> None:
        """Declares the per-video float fields of the run and groups them in the App's sidebar."""
        dataset = root_dataset(samples)
        names = self.get_fields(samples, eval_key)

        def declare() -> None:
            for name in names:
                dataset.add_sample_field(name, fo.FloatField)

        write_declared(dataset, names, declare)
        _set_sidebar_group(dataset, eval_key, names)

    def evaluate_samples(
        self, samples: foc.SampleCollection, eval_key: str, progress: Progress = None
    ) -> "SummaryEvaluationResults":
        """Computes every video's figures, writes them to the fields, returns the results."""
        config = self.config
        fields = ["id", "filepath", "metadata", *config.gt_fields]
        optional = {
            "pred": config.pred_field,
            "concepts": config.concepts_field if config.protocol == "qfvs" else None,
        }
        fields += [name for name in optional.values() if name]
        frame_fields = [name for name in (config.score_field, config.gt_score_field) if name]
        if frame_fields:
            fields += ["frames.frame_number", *(f"frames.{name}" for name in frame_fields)]
        columns = dict(zip(fields, samples.values(fields)))
        self._score_steps = bool(config.score_field) and scored_at_steps(samples, config.score_field)
        per_sample: dict[str, dict[str, float]] = {}
        filepaths: dict[str, str] = {}
        failures: list[ItemFailure] = []
        for index in iterate(range(len(columns["id"])), progress, "Evaluating"):
            row = {name: values[index] for name, values in columns.items()}
            try:
                per_sample[row["id"]] = self._evaluate_one(row)
                filepaths[row["id"]] = row["filepath"]
            except (ValueError, ClipItError) as e:
                failures.append(ItemFailure(row["filepath"], str(e)))
        for name in config.metric_names:
            values = {i: figures[name] for i, figures in per_sample.items()}
            if values:
                write_in_chunks(samples, f"{eval_key}_{name}", values)
        return SummaryEvaluationResults(
            samples, config, eval_key, per_sample, filepaths,
            failures=[[f.item, f.reason] for f in failures], backend=self,
        )

    def _evaluate_one(self, row: dict[str, Any]) -> dict[str, float]:
        """One video's figures; raises ValueError naming what is missing."""
        config = self.config
        meta = row["metadata"]
        if meta is None or not meta.total_frame_count:
            raise ValueError("no video metadata; add it with add_videos")
        n_frames, rate = meta.total_frame_count, meta.frame_rate or FALLBACK_FRAME_RATE
        pred_scores = self._frame_values(row, config.score_field, n_frames, self._score_steps)
        if config.protocol == "qvhighlights":
            saliency = row[config.gt_fields[0]]
            if not saliency:
                raise ValueError(f"no saliency scores in '{config.gt_fields[0]}'")
            return protocols.highlight_figures(pred_scores, np.asarray(saliency, dtype=np.float64), rate, config.clip_seconds)
        users = user_masks([row[name] for name in config.gt_fields], n_frames)
        if users.shape[0] == 0:
            raise ValueError(f"no ground truth in {config.gt_fields}")
        machine = summary_mask(row[config.pred_field], n_frames)
        if config.protocol == "qfvs":
            concepts = row[config.concepts_field]
            if not concepts:
                raise ValueError(f"no shot concepts in '{config.concepts_field}'")
            return protocols.qfvs_figures(machine, users, concepts, rate, config.shot_seconds)
        figures = protocols.keyshot_figures(machine, users, config.mode)
        if config.gt_score_field:
            user_scores = self._frame_values(row, config.gt_score_field, n_frames)
            figures.update(protocols.rank_figures(pred_scores, np.atleast_2d(user_scores.T)))
        return figures

    @staticmethod
    def _frame_values(row: dict[str, Any], name: str | None, n_frames: int, steps: bool = False) -> np.ndarray | None:
        """A frame field as an array: ``(n_frames,)`` floats or ``(n_frames, n_users)`` lists;
        `steps`: scores written at the sampled steps only (see `frame_scores_array`)."""
        if name is None:
            return None
        values = row[f"frames.{name}"]
        numbers = row["frames.frame_number"]
        if values and isinstance(next((v for v in values if v is not None), None), list):
            width = len(next(v for v in values if v is not None))
            columns = [
                frame_scores_array(numbers, [v[k] if v is not None else None for v in values], n_frames, name)
                for k in range(width)
            ]
            return np.stack(columns, axis=1)
        return frame_scores_array(numbers, values, n_frames, name, steps)

    def get_fields(self, samples, eval_key: str) -> list[str]:
        return [f"{eval_key}_{name}" for name in self.config.metric_names]

    def rename(self, samples, eval_key: str, new_eval_key: str) -> None:
        dataset = root_dataset(samples)
        old, new = self.get_fields(dataset, eval_key), self.get_fields(dataset, new_eval_key)
        dataset.rename_sample_fields({a: b for a, b in zip(old, new) if dataset.has_sample_field(a)})
        _set_sidebar_group(dataset, eval_key, [])
        _set_sidebar_group(dataset, new_eval_key, new)

    def cleanup(self, samples, eval_key: str) -> None:
        dataset = root_dataset(samples)
        dataset.delete_sample_fields(self.get_fields(dataset, eval_key), error_level=1)
        _set_sidebar_group(dataset, eval_key, [])

    def _validate_run(self, samples, eval_key, existing_info) -> None:
        self._validate_fields_match(eval_key, "protocol", existing_info)


class SummaryEvaluationResults(fors.RunResults):
    """The figures of an ``evaluate_summary`` run: per video, their means, a report and plots.

    Attributes:
        per_sample: ``{sample id: {metric: value}}`` for every evaluated video.
        filepaths: ``{sample id: filepath}``.
        failures: ``[[filepath, reason], ...]`` of the videos that could not be evaluated.
    """

    def __init__(
        self,
        samples,
        config: SummaryEvaluationConfig,
        eval_key: str,
        per_sample: dict[str, dict[str, float]],
        filepaths: dict[str, str],
        failures: list[list[str]] | None = None,
        backend=None,
    ):
        super().__init__(samples, config, eval_key, backend=backend)
        self.per_sample = per_sample
        self.filepaths = filepaths
        self.failures = failures or []

    @property
    def mode(self) -> str:
        """How the per-user figures were combined: ``"avg"`` or ``"max"``."""
        return self.config.mode

    @property
    def f1(self) -> float:
        """Mean F1 over the evaluated videos; NaN when the protocol has no F1 or nothing was evaluated."""
        return self.metrics().get("f1", float("nan"))

    def metrics(self) -> dict[str, Any]:
        """Mean of each per-video figure (F1, tau, HIT@1; ``map_*`` = mean AP), plus ``support``.

        Returns:
            a dict; the figures are NaN when no video was evaluated.
        """
        names = self.config.metric_names
        means = {
            name: float(np.mean([f[name] for f in self.per_sample.values()])) if self.per_sample else float("nan")
            for name in names
        }
        if self.config.protocol == "qvhighlights":
            means = {name.replace("ap_", "map_", 1): value for name, value in means.items()}
        means["support"] = len(self.per_sample)
        return means

    def report_rows(self) -> list[list[Any]]:
        """One row per video (file name and figures) and a last row with the means."""
        names = self.config.metric_names
        rows = [
            [os.path.basename(self.filepaths[i]), *(figures[n] for n in names)]
            for i, figures in self.per_sample.items()
        ]
        means = self.metrics()
        rows.append(["mean", *(means[n.replace("ap_", "map_", 1)] for n in names)])
        return rows

    def print_report(self, digits: int = 3) -> None:
        """Prints the per-video figures, their means and the videos that failed."""
        header = ["video", *self.config.metric_names]
        print(
            f"Evaluation '{self.key}': protocol {self.config.protocol}, mode {self.config.mode}, "
            f"{len(self.per_sample)} video(s)"
        )
        print(tabulate(self.report_rows(), headers=header, floatfmt=f".{digits}f"))
        for path, reason in self.failures:
            print(f"not evaluated: {path}: {reason}")
        for sample_id, reason in self.config.stale.items():
            print(f"evaluated although stale: {self.filepaths.get(sample_id, sample_id)}: {reason}")

    def plot_video(self, sample: str | None = None):
        """A plotly figure of one video: predicted scores vs ground truth, summary segments shaded.

        Args:
            sample (None): a sample id or filepath; None: the first evaluated video.
        """
        from fiftyone_clipit.fo.evaluation_plots import video_curves
        from fiftyone_clipit.plots import plotly_figure

        return plotly_figure(video_curves(self, self._sample_id(sample)))

    def save_video_png(self, path: str, sample: str | None = None) -> str:
        """Writes the figure of one video as a PNG (matplotlib); returns the path."""
        from fiftyone_clipit.fo.evaluation_plots import video_curves
        from fiftyone_clipit.plots import save_png

        return save_png(video_curves(self, self._sample_id(sample)), path)

    def save_figures(self, out_dir: str) -> list[str]:
        """Writes one PNG per evaluated video into ``out_dir``; returns their paths."""
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        for sample_id, filepath in self.filepaths.items():
            stem = os.path.splitext(os.path.basename(filepath))[0]
            paths.append(self.save_video_png(os.path.join(out_dir, f"{stem}_{sample_id}.png"), sample_id))
        return paths

    def _sample_id(self, sample: str | None) -> str:
        """A sample id of this run from an id, a filepath or None (the first)."""
        if not self.per_sample:
            raise ClipItError(f"Evaluation '{self.key}' evaluated no video; there is nothing to plot")
        if sample is None:
            return next(iter(self.per_sample))
        if sample in self.per_sample:
            return sample
        for sample_id, path in self.filepaths.items():
            if path == sample:
                return sample_id
        raise ClipItError(
            f"'{sample}' is not a video of evaluation '{self.key}'; evaluated: "
            f"{sorted(os.path.basename(p) for p in self.filepaths.values())}"
        )

    @classmethod
    def _from_dict(cls, d, samples, config, eval_key):
        return cls(samples, config, eval_key, d["per_sample"], d["filepaths"], failures=d.get("failures"))


def evaluate_summary(
    samples: foc.SampleCollection,
    gt_field: str | list[str],
    options: EvaluationOptions | None = None,
    *,
    pred_field: str | None = DEFAULT_SUMMARY_FIELD,
    eval_key: str = DEFAULT_EVAL_KEY,
    allow_stale: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> SummaryEvaluationResults:
    """Evaluates summaries by a published protocol, as the FiftyOne custom run ``eval_key``.

    Args:
        samples: a video dataset or view.
        gt_field: tvsum / summe / qfvs: one or more TemporalDetections fields of users' summaries
            (each field one user, or several users told apart by a ``user`` attribute);
            qvhighlights: the saliency field (``add_highlight_annotations``).
        options (None): an `EvaluationOptions`; keyword `settings` build or replace them:
            `protocol` (``"tvsum"``, ``"summe"``, ``"qfvs"`` or ``"qvhighlights"``), `mode`
            (``"avg"`` or ``"max"`` over users; None: the protocol's, summe max, else avg),
            `score_field` (frame field of predicted scores; needed for rank correlation and
            qvhighlights, default there ``"clipit_score"``), `gt_score_field` (frame field of
            users' per-frame scores, ``add_video_annotations``'s ``gt_user_scores``: adds
            Kendall tau / Spearman rho for tvsum and summe), `concepts_field` (per-shot concept
            lists, qfvs), `shot_seconds` (QFVS shot length), `clip_seconds` (QVHighlights clip
            length).
        pred_field ("clipit_summary"): the summary to evaluate (TemporalDetections); optional for
            qvhighlights, where it is only drawn in the plots.
        eval_key ("clipit_eval"): the run's key and the prefix of its fields.
        skip_failures (False): log videos that cannot be evaluated instead of raising at the end.
        allow_stale (False): evaluate summaries or scores that no longer hold (their source file
            was replaced, they were re-embedded or re-scored since, or re-summarising them
            failed) instead of refusing; the run records which (``config.stale``).
        progress (None): True for a progress bar, or a callback(fraction, label).

    Returns:
        The SummaryEvaluationResults (also ``dataset.load_run_results(eval_key)``).

    Raises:
        ClipItError: an unknown protocol or mode, a missing field or one of the wrong type,
            ``eval_key`` is the key of another kind of run, or (unless ``allow_stale``) some
            summary or scores evaluated no longer hold.
        BatchError: some videos could not be evaluated (the others were saved with the run).
    """
    options = EvaluationOptions.of(options, **settings)
    protocol, score_field, gt_score_field = options.protocol, options.score_field, options.gt_score_field
    mode = options.mode or protocols.DEFAULT_MODES[protocol]
    samples = video_collection(samples)
    check_field_name(eval_key, "eval key")
    if protocol == "qvhighlights":
        score_field = score_field or DEFAULT_SCORE_FIELD
        if pred_field is not None and samples.get_field(pred_field) is None:
            pred_field = None
    if gt_score_field and not score_field:
        score_field = DEFAULT_SCORE_FIELD
    config = SummaryEvaluationConfig(
        pred_field, ensure_iterable(gt_field), protocol, mode, score_field=score_field,
        gt_score_field=gt_score_field, concepts_field=options.concepts_field if protocol == "qfvs" else None,
        shot_seconds=options.shot_seconds, clip_seconds=options.clip_seconds,
    )
    _check_fields(samples, config)
    config.stale = _stale_inputs(samples, config)
    if config.stale and not allow_stale:
        paths = dict(zip(*samples.values(["id", "filepath"])))
        named = "; ".join(f"{os.path.basename(paths[i])}: {why}" for i, why in list(config.stale.items())[:5])
        raise ClipItError(
            f"Not evaluated: {len(config.stale)} of {len(samples)} video(s) have a summary or scores that no "
            f"longer hold ({named}); bring them up to date, or {ALLOW_STALE_HINT} to evaluate them anyway "
            f"(the run records them as stale)"
        )
    config.written_fields = [f"{eval_key}_{name}" for name in config.metric_names]
    for path in config.written_fields:
        check_output_field(samples, path, eval_key, fo.FloatField)
    _free_run_key(samples, eval_key)
    method = config.build()
    method.register_run(samples, eval_key, overwrite=True)
    method.register_samples(samples, eval_key)
    results = method.evaluate_samples(samples, eval_key, progress=progress)
    method.save_run_results(samples, eval_key, results)
    failures = [ItemFailure(path, reason) for path, reason in results.failures]
    finish("Evaluating", failures, len(results.per_sample), skip_failures)
    return results


def _stale_inputs(samples: foc.SampleCollection, config: SummaryEvaluationConfig) -> dict[str, str]:
    """Sample id -> why the summary or scores it is evaluated on no longer hold."""
    stale = {}
    if config.score_field:
        run_key = score_run_key(config.score_field)
        stale = stale_scores(samples, run_key, embedding_store(samples), config.score_field)
    if config.pred_field:
        stale.update(stale_summaries(samples, config.pred_field))
    return stale


def _free_run_key(samples: foc.SampleCollection, eval_key: str) -> None:
    """Makes ``eval_key`` free for a summary evaluation run.

    A summary evaluation that an earlier version stored as a FiftyOne evaluation (where the Model
    Evaluation panel fails on it) is removed; its fields are written again.

    Raises:
        ClipItError: ``eval_key`` is the key of another kind of run.
    """
    dataset = root_dataset(samples)
    if eval_key in dataset.list_runs():
        existing = dataset.get_run_info(eval_key).config
        if not isinstance(existing, SummaryEvaluationConfig):
            raise ClipItError(
                f"'{eval_key}' is the key of a {type(existing).__name__} run on '{dataset.name}'; "
                f"choose another eval_key. Its runs are {dataset.list_runs()}"
            )
    if eval_key in dataset.list_evaluations():
        if dataset.get_evaluation_info(eval_key).config.cls != SummaryEvaluationConfig.__module__ + ".SummaryEvaluationConfig":
            raise ClipItError(
                f"'{eval_key}' is the key of an evaluation on '{dataset.name}'; choose another eval_key. "
                f"Its evaluations are {dataset.list_evaluations()}"
            )
        dataset.delete_evaluation(eval_key)


def _set_sidebar_group(dataset: fo.Dataset, name: str, paths: list[str]) -> None:
    """Shows ``paths`` as the App sidebar group ``name``; no paths: removes the group."""
    groups = dataset.app_config.sidebar_groups
    if groups is None:
        if not paths:
            return
        groups = fo.DatasetAppConfig.default_sidebar_groups(dataset)
    groups = [g for g in groups if g.name != name]
    for group in groups:  # a path shows in one group only
        group.paths = [p for p in group.paths if p not in paths]
    if paths:
        groups.append(fo.SidebarGroupDocument(name=name, paths=list(paths)))
    dataset.app_config.sidebar_groups = groups
    dataset.save()


def _check_fields(samples: foc.SampleCollection, config: SummaryEvaluationConfig) -> None:
    """Every field the run reads exists with the right type; the eval fields are free."""
    detections = [] if config.protocol == "qvhighlights" else list(config.gt_fields)
    if config.pred_field is not None:
        detections.append(config.pred_field)
    elif config.protocol != "qvhighlights":
        raise ClipItError("pred_field is required: the summary field to evaluate")
    for name in detections:
        require_field(samples, name, "summary field")
        check_field_type(samples, name, fo.EmbeddedDocumentField, fo.TemporalDetections)
    if config.protocol == "qvhighlights":
        if len(config.gt_fields) != 1:
            raise ClipItError(f"qvhighlights takes one saliency field as gt_field; got {config.gt_fields}")
        require_field(samples, config.gt_fields[0], "saliency field")
        check_field_type(samples, config.gt_fields[0], fo.ListField)
    if config.concepts_field:
        require_field(samples, config.concepts_field, "shot concepts field")
        check_field_type(samples, config.concepts_field, fo.ListField)
    for name in (config.score_field, config.gt_score_field):
        if name:
            require_field(samples, f"frames.{name}", "frame field", check_name=name)


def require_field(samples: foc.SampleCollection, path: str, what: str, check_name: str | None = None) -> None:
    """Raises a ClipItError naming a field that is invalid or missing."""
    check_field_name(check_name or path, what)
    if samples.get_field(path) is None:
        raise ClipItError(f"Field '{path}' does not exist on '{dataset_name(samples)}'")

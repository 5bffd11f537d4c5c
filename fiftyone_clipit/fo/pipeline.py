"""The whole chain on a collection: embed, score, summarise, evaluate (if labelled), export."""

from __future__ import annotations

from dataclasses import dataclass

import fiftyone.core.collections as foc

from fiftyone_clipit.encoders import ClipEncoder
from fiftyone_clipit.errors import ItemFailure
from fiftyone_clipit.fo.common import Progress
from fiftyone_clipit.fo.embeddings import EmbeddingReport, compute_frame_embeddings
from fiftyone_clipit.fo.evaluation import SummaryEvaluationResults, evaluate_summary
from fiftyone_clipit.fo.export import ExportReport, export_summary
from fiftyone_clipit.fo.score_labels import label_scores
from fiftyone_clipit.fo.scoring import ScoreReport, score_frames
from fiftyone_clipit.fo.summaries import SummaryReport, create_summary
from fiftyone_clipit.options import EmbeddingOptions, SummaryOptions


@dataclass
class PipelineReport:
    """The reports of each stage; `evaluation` is None without a ground-truth field."""

    embeddings: EmbeddingReport
    scores: ScoreReport
    summary: SummaryReport
    evaluation: SummaryEvaluationResults | None
    export: ExportReport | None

    def failures(self) -> list[ItemFailure]:
        """Each video that failed at some stage, once, with the reason of the first stage it
        failed at (the later stages fail for want of what that one did not make)."""
        stages = [self.embeddings.failures, self.scores.failures, self.summary.failures]
        if self.evaluation is not None:
            stages.append([ItemFailure(path, reason) for path, reason in self.evaluation.failures])
        if self.export is not None:
            stages.append(self.export.failures)
        first: dict[str, ItemFailure] = {}
        for failure in (failure for stage in stages for failure in stage):
            first.setdefault(failure.item, failure)
        return list(first.values())


def run_pipeline(
    samples: foc.SampleCollection,
    query: str,
    encoder: ClipEncoder,
    embedding_options: EmbeddingOptions | None = None,
    summary_options: SummaryOptions | None = None,
    export_dir: str | None = None,
    gt_field: str | None = None,
    overwrite: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
) -> PipelineReport:
    """Runs every stage with default fields and the given options (None: the defaults); each
    stage's failures are reported by that stage. The fields it writes are those the operators
    write, the App's score labels included."""
    options = {"skip_failures": skip_failures, "progress": progress}
    embeddings = compute_frame_embeddings(samples, embedding_options, model=encoder, **options)
    scores = score_frames(samples, query, model=encoder, **options)
    label_scores(samples)  # the App's per-frame labels, as the operator writes them
    summary = create_summary(samples, summary_options, **options)
    evaluation = evaluate_summary(samples, gt_field=gt_field, **options) if gt_field else None
    export = (
        export_summary(samples, export_dir, overwrite=overwrite, **options) if export_dir else None
    )
    return PipelineReport(embeddings, scores, summary, evaluation, export)

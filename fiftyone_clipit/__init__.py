"""fiftyone-clipit: language-guided video summarization (CLIP-It) for FiftyOne.

The FiftyOne-free core lives in `decode`, `encoders`, `relevance`, `summary`, `metrics` and
`store`; the FiftyOne layer in `fiftyone_clipit.fo`. The public API is
re-exported here lazily so that importing the core never imports FiftyOne.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# Idle OpenMP workers of torch spin by default and take the cores our decoder thread needs; on
# 2 cores, sleeping instead raised the pipeline from 0.83-0.86 to 0.88-0.91 of the model alone
# (docs/how-it-works.md, "Frame embeddings"). It counts only if set before torch loads, and never overrides
# the user's own setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_PUBLIC_API = {
    "add_videos": "fiftyone_clipit.fo.videos",
    "load_videos_dataset": "fiftyone_clipit.fo.videos",
    "compute_frame_embeddings": "fiftyone_clipit.fo.embeddings",
    "build_frame_index": "fiftyone_clipit.fo.search",
    "search_frames": "fiftyone_clipit.fo.search",
    "score_frames": "fiftyone_clipit.fo.scoring",
    "train_scorer": "fiftyone_clipit.fo.training",
    "export_features": "fiftyone_clipit.fo.features",
    "create_summary": "fiftyone_clipit.fo.summaries",
    "replan_video_summary": "fiftyone_clipit.fo.summaries",
    "summary_options": "fiftyone_clipit.fo.summaries",
    "Budget": "fiftyone_clipit.budget",
    "EmbeddingOptions": "fiftyone_clipit.options",
    "ShotOptions": "fiftyone_clipit.options",
    "SummaryOptions": "fiftyone_clipit.options",
    "ScoringOptions": "fiftyone_clipit.options",
    "SearchOptions": "fiftyone_clipit.options",
    "IndexOptions": "fiftyone_clipit.options",
    "ExportOptions": "fiftyone_clipit.options",
    "TrainingOptions": "fiftyone_clipit.options",
    "evaluate_summary": "fiftyone_clipit.fo.evaluation",
    "evaluate_summary_segments": "fiftyone_clipit.fo.segment_evaluation",
    "add_video_annotations": "fiftyone_clipit.fo.groundtruth",
    "add_highlight_annotations": "fiftyone_clipit.fo.groundtruth",
    "add_qfvs_annotations": "fiftyone_clipit.fo.groundtruth",
    "export_summary": "fiftyone_clipit.fo.export",
    "export_summary_dataset": "fiftyone_clipit.fo.export",
    "create_highlight_reel": "fiftyone_clipit.fo.highlights",
    "ReelOptions": "fiftyone_clipit.fo.highlights",
    "run_pipeline": "fiftyone_clipit.fo.pipeline",
}

__all__ = sorted(_PUBLIC_API)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC_API:
        return getattr(importlib.import_module(_PUBLIC_API[name]), name)
    raise AttributeError(f"module 'fiftyone_clipit' has no attribute '{name}'")

"""fiftyone-clipit: language-guided video summarization (CLIP-It) for FiftyOne.

The FiftyOne-free core lives in `decode`, `encoders`, `relevance`, `summary`, `metrics` and
`store`; the FiftyOne layer in `fiftyone_clipit.fo`. The public FiftyOne functions are
re-exported here lazily so that importing the core never imports FiftyOne.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_FIFTYONE_API = {
    "add_videos": "fiftyone_clipit.fo.videos",
    "load_videos_dataset": "fiftyone_clipit.fo.videos",
    "compute_frame_embeddings": "fiftyone_clipit.fo.embeddings",
    "score_frames": "fiftyone_clipit.fo.scoring",
    "create_summary": "fiftyone_clipit.fo.summaries",
    "evaluate_summary": "fiftyone_clipit.fo.evaluation",
    "export_summary": "fiftyone_clipit.fo.export",
    "run_pipeline": "fiftyone_clipit.fo.pipeline",
}

__all__ = sorted(_FIFTYONE_API)


def __getattr__(name: str) -> Any:
    if name in _FIFTYONE_API:
        return getattr(importlib.import_module(_FIFTYONE_API[name]), name)
    raise AttributeError(f"module 'fiftyone_clipit' has no attribute '{name}'")

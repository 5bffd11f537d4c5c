"""What each derived output was made from, video by video, and whether it still holds.

Embeddings keep the content fingerprint of the file they were decoded from
(`store.file_fingerprint`, in the store's info); a score run records, per video, that
fingerprint and the stamp of the embeddings it read; a summary run records, per video, the
score run it read, the file's fingerprint and the embeddings' stamp. A stage compares what it is about to read with what
made it and refuses, per video and with a remedy, inputs that went stale: a source replaced
since it was embedded, scores older than the embeddings, a summary older than its scores.

The per-video records live in the run's config (`videos`: sample id -> entry, `failed`: sample
id -> reason) and are merged run after run, so summarising one view leaves the entries of the
other videos as they were; a video that fails in a run loses its entry and is named in
`failed`, so its old value (kept in the field) is known to be stale.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Mapping

import fiftyone as fo
import fiftyone.core.collections as foc

from fiftyone_clipit.errors import ALLOW_STALE_HINT
from fiftyone_clipit.fo.common import root_dataset
from fiftyone_clipit.store import FINGERPRINT_PREFIX, EmbeddingStore, file_fingerprint

#: What to do when the source file changed since it was embedded.
SOURCE_REMEDY = (
    "re-embed with compute_frame_embeddings (fiftyone-clipit embed), then score and summarize again"
)
#: Appended to a refusal of stale inputs.
GO_AHEAD = f"or {ALLOW_STALE_HINT} to go ahead anyway"


def new_run_id() -> str:
    """An identifier for one run, recorded with every value it writes."""
    return uuid.uuid4().hex


def current_fingerprint(path: str) -> str | None:
    """The source file's fingerprint now; None when it is gone."""
    try:
        return file_fingerprint(path)
    except OSError:
        return None


def source_problem(path: str, recorded: str | None, made: str) -> str | None:
    """Why `path` no longer is the file something was `made` from (None when it is, or when
    nothing was recorded)."""
    if recorded is None:
        return None
    now = current_fingerprint(path)
    if now is None:
        return f"the source file is gone since it was {made}; restore it, or {SOURCE_REMEDY}"
    if not recorded.startswith(FINGERPRINT_PREFIX):
        return (
            f"it was {made} by an earlier version of CLIP-It, which did not fingerprint the source "
            f"file's content, so it cannot be told from other footage; {SOURCE_REMEDY}"
        )
    if now != recorded:
        return f"the source file was replaced or edited since it was {made}; {SOURCE_REMEDY}"
    return None


def recorded_videos(dataset: fo.Dataset, run_key: str) -> dict[str, dict] | None:
    """The per-video entries of a run (sample id -> entry); None when the run records none
    (there is no such run, or an older version of CLIP-It wrote it)."""
    if not dataset.has_run(run_key):
        return None
    videos = getattr(dataset.get_run_info(run_key).config, "videos", None)
    return dict(videos) if isinstance(videos, Mapping) else None


def recorded_failures(dataset: fo.Dataset, run_key: str) -> dict[str, str]:
    """The videos that failed in a run's last call (sample id -> reason)."""
    if not dataset.has_run(run_key):
        return {}
    failed = getattr(dataset.get_run_info(run_key).config, "failed", None)
    return dict(failed) if isinstance(failed, Mapping) else {}


def merged_lineage(
    dataset: fo.Dataset, run_key: str, ids_in_run: list[str], entries: dict[str, dict], failed: dict[str, str]
) -> dict[str, Any]:
    """The `videos` and `failed` of a run's new record: the previous ones, with every video of
    this run replaced by its new entry or, when it failed, by its failure."""
    in_run = set(ids_in_run)
    videos = {i: e for i, e in (recorded_videos(dataset, run_key) or {}).items() if i not in in_run}
    old_failed = {i: r for i, r in recorded_failures(dataset, run_key).items() if i not in in_run}
    return {"videos": {**videos, **entries}, "failed": {**old_failed, **failed}}


def embeddings_entry(store: EmbeddingStore, sample_id: str, info: dict | None) -> dict:
    """What a video's embeddings are: the fingerprint of the file they came from and the
    stamp of their stored file (it changes whenever they are rewritten)."""
    return {"source": (info or {}).get("fingerprint"), "embeddings": store.stamp(sample_id)}


def scores_problem(entry: dict | None, store: EmbeddingStore, sample_id: str, score_field: str) -> str | None:
    """Why a video's scores no longer match its embeddings: they are gone (the store was
    deleted or moved), or were written again since (None when they match, or when the score
    run recorded nothing for it)."""
    if entry is None or entry.get("embeddings") is None:
        return None
    stamp = store.stamp(sample_id)
    if stamp is None:
        where = "the embedding store is gone" if not os.path.isdir(store.root) else "they were deleted"
        return (
            f"its frame embeddings are missing from '{store.root}' ({where}) although "
            f"'frames.{score_field}' was scored from them; restore the store from a copy, or re-embed "
            f"with compute_frame_embeddings (fiftyone-clipit embed) and score again"
        )
    if stamp != entry["embeddings"]:
        return (
            f"its frames were embedded again after 'frames.{score_field}' was scored; score again "
            f"with score_frames (fiftyone-clipit score), then summarize"
        )
    return None


def stale_scores(
    samples: foc.SampleCollection, run_key: str, store: EmbeddingStore, score_field: str
) -> dict[str, str]:
    """Sample id -> why its scores in `frames.<score_field>` no longer hold, for each video of
    `samples` the score run `run_key` recorded: its source file changed since it was scored,
    or it was embedded again since. Scores without records are not checked."""
    made = recorded_videos(root_dataset(samples), run_key)
    if not made:
        return {}
    stale = {}
    for sample_id, path in zip(*samples.values(["id", "filepath"])):
        entry = made.get(sample_id)
        if entry is None:
            continue
        problem = source_problem(path, entry.get("source"), "scored")
        problem = problem or scores_problem(entry, store, sample_id, score_field)
        if problem:
            stale[sample_id] = problem
    return stale


"""Per-frame relevance of a text query, written to a frame field in bulk."""

from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.encoders import ClipEncoder, load_clip
from fiftyone_clipit.errors import ClipItError, ItemFailure
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    Progress,
    check_field_name,
    check_field_type,
    embedding_store,
    ensure_iterable,
    finish,
    iterate,
    record_run,
    root_dataset,
    samples_info,
    video_collection,
    write_in_chunks,
)
from fiftyone_clipit.relevance import zero_shot_scores
from fiftyone_clipit.summary import upsample_scores

DEFAULT_SCORE_FIELD = "clipit_score"


def score_run_key(score_field: str) -> str:
    """The custom run that records how `frames.<score_field>` was made."""
    return f"clipit_score_{score_field}"


@dataclass
class ScoreReport:
    """What `score_frames` did."""

    n_scored: int = 0
    failures: list[ItemFailure] = field(default_factory=list)


def frame_relevance(
    embeddings: np.ndarray,
    frame_numbers: np.ndarray,
    text_embeddings: np.ndarray,
    n_frames: int,
    fps: float,
    smoothing_seconds: float,
) -> np.ndarray:
    """Relevance of every frame of a video in [0, 1]: (1 + smoothed cosine similarity) / 2.

    The rescaling keeps the order and the comparability across videos of CLIP's similarity
    while giving the knapsack positive values and the App a [0, 1] range.
    """
    steps = zero_shot_scores(embeddings, text_embeddings, smoothing_steps=smoothing_seconds * fps)
    picks = np.asarray(frame_numbers) - 1
    return (1.0 + upsample_scores(steps, picks, n_frames)) / 2.0


def score_frames(
    samples: foc.SampleCollection,
    query: str | list[str],
    score_field: str = DEFAULT_SCORE_FIELD,
    model: str | ClipEncoder | None = None,
    pretrained: str | None = None,
    smoothing_seconds: float = 1.0,
    device: str | None = None,
    skip_failures: bool = False,
    progress: Progress = None,
) -> ScoreReport:
    """Scores every frame of every video for a text query (zero-shot CLIP similarity).

    Needs the frame embeddings of `compute_frame_embeddings`; the query is embedded by the same
    model. Scores are written to `frames.<score_field>` in bulk, for every frame of the video
    (steps upsampled as the evaluation protocol does), and the run `clipit_score_<score_field>`
    records the query and model.

    Args:
        samples: a video dataset or view with frame embeddings.
        query: the text, or several sentences (a frame's score is its best sentence's).
        score_field ("clipit_score"): the frame field to write.
        model (None): the embeddings' model (default) or a loaded ClipEncoder of it.
        pretrained (None): weights for the model, when it is named.
        smoothing_seconds (1.0): Gaussian smoothing over time, in seconds of video.
        device (None): torch device for the text encoder.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Raises:
        ClipItError: empty query, bad field, no embeddings run, or a model other than the
            embeddings' one.
        BatchError: some videos could not be scored (the others were written).
    """
    video_collection(samples)
    sentences = ensure_iterable(query)
    if not sentences or any(not isinstance(s, str) or not s.strip() for s in sentences):
        raise ClipItError(f"The query must be non-empty text, got {query!r}")
    check_field_name(score_field, "score field")
    check_field_type(samples, f"frames.{score_field}", fo.FloatField)
    dataset = root_dataset(samples)
    if not dataset.has_run(EMBEDDINGS_RUN):
        raise ClipItError(
            f"Dataset '{dataset.name}' has no frame embeddings; run compute_frame_embeddings first"
        )
    embedded_with = dataset.get_run_info(EMBEDDINGS_RUN).config.model
    name = model.name if isinstance(model, ClipEncoder) else model
    if name is not None and name != embedded_with:
        raise ClipItError(
            f"Frames of '{dataset.name}' were embedded with '{embedded_with}', not '{name}'; "
            f"score with model='{embedded_with}' or re-embed the frames with '{name}'"
        )
    encoder = model if isinstance(model, ClipEncoder) else load_clip(embedded_with, pretrained, device)
    text = encoder.encode_text(sentences)
    store = embedding_store(dataset)
    report, values = ScoreReport(), {}
    for sample_id, path, metadata in iterate(samples_info(samples), progress, "Scoring frames"):
        item = store.get(sample_id)
        if item is None or item.info.get("model") != embedded_with:
            report.failures.append(
                ItemFailure(path, f"no frame embeddings by '{embedded_with}'; run compute_frame_embeddings")
            )
            continue
        n_frames = metadata.total_frame_count if metadata else int(item.frame_numbers[-1])
        try:
            scores = frame_relevance(
                item.embeddings, item.frame_numbers, text, n_frames, item.info["fps"], smoothing_seconds
            )
        except (ClipItError, ValueError) as e:
            report.failures.append(ItemFailure(path, str(e)))
            continue
        values[sample_id] = {i + 1: float(s) for i, s in enumerate(scores)}
        report.n_scored += 1
    if values:
        write_in_chunks(samples, f"frames.{score_field}", values)
    record_run(
        dataset,
        score_run_key(score_field),
        query=sentences[0] if len(sentences) == 1 else sentences,
        scorer="zero-shot",
        model=embedded_with,
        smoothing_seconds=smoothing_seconds,
        score_field=score_field,
    )
    finish("Scoring frames", report.failures, report.n_scored, skip_failures)
    return report

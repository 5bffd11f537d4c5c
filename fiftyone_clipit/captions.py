"""Text for generic summaries (no query): captions of the video, or a caption-free stand-in.

CLIP-It makes generic summaries by reading the frames in the light of captions of the video
(the paper uses dense video captions). The captioner is pluggable: any callable that turns RGB
frames into sentences. `TransformersCaptioner` wraps a Hugging Face image-to-text model (e.g.
BLIP) when transformers and the weights are available; no captioning weights are reachable
offline, so it fails in one sentence saying how to supply them. Without a captioner,
`caption_free_text` stands in for the captions: the centres of the video's frame embeddings
(k-means in CLIP space, where images and text share one space), largest clusters first, which
still gives the scorer something to read every frame against, and so still yields a summary.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
from scipy.cluster.vq import kmeans2

from fiftyone_clipit.decode import iter_sampled_frames, probe_video
from fiftyone_clipit.defaults import DEFAULT_CAPTIONS
from fiftyone_clipit.errors import ClipItError, WeightsNotFoundError
from fiftyone_clipit.store import EmbeddingStore, file_fingerprint

#: frames (RGB uint8 arrays (h, w, 3)) -> one sentence per frame
Captioner = Callable[[Sequence[np.ndarray]], list[str]]

#: the text source of generic summaries without a captioner; with one it is "captions by <name>"
CAPTION_FREE = "caption-free"
QUERY = "query"


class TransformersCaptioner:
    """Captions frames with a Hugging Face image-to-text model (BLIP, GIT, ...).

    transformers is an optional dependency; weights load with `from_pretrained` from a local
    folder or the hub cache (`HF_HOME`), and nothing is fetched when `HF_HUB_OFFLINE` is set.
    On transformers 4.x the "image-to-text" pipeline runs the model; transformers 5 removed
    that pipeline, so there the processor and `AutoModelForImageTextToText` generate directly.

    Args:
        model: a folder with the model's files, or a hub id (e.g.
            "Salesforce/blip-image-captioning-base").
        device (None): torch device; None picks cuda when available, else cpu.
        max_new_tokens (30): longest caption, in tokens.

    Raises:
        ClipItError: transformers is not installed.
        WeightsNotFoundError: the weights are neither a folder, nor cached, nor reachable.
    """

    def __init__(self, model: str, device: str | None = None, max_new_tokens: int = 30):
        try:
            import transformers
        except ImportError as e:
            raise ClipItError(
                f"Captioning with '{model}' needs the optional package transformers "
                f"(pip install transformers); or leave the captioner out for caption-free generic summaries"
            ) from e
        import torch

        self.name = model
        self.max_new_tokens = max_new_tokens
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        try:
            if int(transformers.__version__.split(".")[0]) < 5:
                self._pipeline = transformers.pipeline("image-to-text", model=model, device=self.device)
            else:
                self._pipeline = None
                self._processor = transformers.AutoProcessor.from_pretrained(model, local_files_only=offline)
                self._model = transformers.AutoModelForImageTextToText.from_pretrained(
                    model, local_files_only=offline
                ).to(self.device).eval()
        except OSError as e:
            raise WeightsNotFoundError(
                f"No weights for captioning model '{model}' could be loaded ({e}); supply them as a "
                f"local folder (model='/path/to/folder'), or run once with internet access so they are "
                f"cached under $HF_HOME"
            ) from e

    def __call__(self, frames: Sequence[np.ndarray]) -> list[str]:
        from PIL import Image

        images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
        if self._pipeline is not None:
            outputs = self._pipeline(images, max_new_tokens=self.max_new_tokens)
            return [out[0]["generated_text"] if isinstance(out, list) else out["generated_text"] for out in outputs]
        import torch

        inputs = self._processor(images=images, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            tokens = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        return self._processor.batch_decode(tokens, skip_special_tokens=True)


def load_captioner(captioner: Captioner | str | None, device: str | None = None) -> Captioner | None:
    """A captioner as given, or the TransformersCaptioner of a model folder / hub id; None stays None."""
    if captioner is None or callable(captioner):
        return captioner
    if not isinstance(captioner, str) or not captioner.strip():
        raise ClipItError(f"captioner must be a model folder, a hub id or a callable, got {captioner!r}")
    return TransformersCaptioner(captioner, device=device)


def captioner_name(captioner: Captioner) -> str:
    """What a captioner is called in run records and model cards (its model, for TransformersCaptioner)."""
    return str(getattr(captioner, "name", None) or getattr(captioner, "__name__", None) or type(captioner).__name__)


def text_source(query: object | None, captioner: Captioner | None) -> str:
    """Where the text a scorer reads comes from: "query", "captions by <captioner>" or "caption-free"."""
    if query is not None:
        return QUERY
    return CAPTION_FREE if captioner is None else f"captions by {captioner_name(captioner)}"


def check_text_source(trained_on: str | None, scoring_with: str, scorer: str) -> None:
    """Refuses to score with other text than the scorer was trained on (queries, captions of one
    captioner, or the caption-free stand-in); checkpoints that do not say are let through.

    Raises:
        ClipItError: naming both sources and what to pass instead.
    """
    if trained_on is None:
        return
    trained_generic = trained_on == CAPTION_FREE or trained_on.startswith("captions by ")
    if not trained_generic and scoring_with == QUERY:
        return
    if trained_generic and trained_on == scoring_with:
        return
    if not trained_generic:
        remedy = "give a query, or train a generic scorer (no query) for generic summaries"
    elif trained_on == CAPTION_FREE:
        remedy = "score without a query and without a captioner, as it was trained"
    else:
        remedy = f"score without a query with captioner '{trained_on[len('captions by '):]}', as it was trained"
    raise ClipItError(f"Scorer '{scorer}' was trained on text from {trained_on!r}, not {scoring_with!r}; {remedy}")


def cached_captions(
    path: str, captioner: Captioner, n_captions: int, store: EmbeddingStore | None = None, key: str | None = None
) -> list[str]:
    """A video's captions, from the store when the same captioner already captioned this very file.

    The record kept beside the embeddings names the captioner, the number of frames and the
    file's fingerprint, so a replaced file or another captioner captions again.
    """
    record = {"captioner": captioner_name(captioner), "n_captions": n_captions, "source": file_fingerprint(path)}
    if store is not None and key is not None:
        kept = store.get_captions(key)
        if kept is not None and all(kept.get(k) == v for k, v in record.items()) and kept.get("sentences"):
            return list(kept["sentences"])
    sentences = caption_video(path, captioner, n_captions)
    if store is not None and key is not None:
        store.put_captions(key, {**record, "sentences": sentences})
    return sentences


def caption_video(path: str, captioner: Captioner, n_captions: int = DEFAULT_CAPTIONS) -> list[str]:
    """Captions `n_captions` frames spread evenly over a video; distinct sentences in time order.

    Args:
        path: the video file.
        captioner: frames -> one sentence each.
        n_captions (7): frames to caption.

    Raises:
        VideoError: the video cannot be read.
        ClipItError: the captioner returned the wrong number of sentences, or only empty ones.
    """
    if n_captions < 1:
        raise ValueError(f"n_captions must be >= 1, got {n_captions!r}")
    info = probe_video(path)
    fps = n_captions / max(info.duration, 1e-3)
    frames = [frame for batch in iter_sampled_frames(path, fps, batch_size=n_captions) for frame in batch.frames]
    frames = frames[:n_captions]
    sentences = captioner(frames)
    if not isinstance(sentences, (list, tuple)) or len(sentences) != len(frames):
        raise ClipItError(
            f"The captioner returned {sentences!r} for {len(frames)} frames of '{path}'; it must "
            f"return one sentence per frame"
        )
    distinct = list(dict.fromkeys(s.strip() for s in sentences if isinstance(s, str) and s.strip()))
    if not distinct:
        raise ClipItError(f"The captioner returned no non-empty sentence for '{path}'")
    return distinct


def caption_free_text(embeddings: np.ndarray, n_sentences: int = DEFAULT_CAPTIONS, seed: int = 0) -> np.ndarray:
    """Stand-in "captions" of a video: the centres of its frame embeddings, largest clusters first.

    Args:
        embeddings: float (n_steps, d) L2-normalised frame embeddings.
        n_sentences (7): most centres (fewer for short videos; empty clusters are dropped).
        seed (0): k-means initialisation seed, so the same video always gets the same text.

    Returns:
        float32 (k, d) L2-normalised centres, 1 <= k <= n_sentences.
    """
    data = np.asarray(embeddings, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        raise ClipItError(f"Frame embeddings must be (n_steps >= 1, d), got {data.shape}")
    k = max(1, min(n_sentences, len(data)))
    if k == 1:
        centres, labels = data.mean(axis=0, keepdims=True), np.zeros(len(data), dtype=int)
    else:
        centres, labels = kmeans2(data, k, seed=seed, minit="++")
    sizes = np.bincount(labels, minlength=len(centres))
    order = [i for i in np.argsort(-sizes, kind="stable") if sizes[i] > 0]
    centres = centres[order]
    norms = np.linalg.norm(centres, axis=1, keepdims=True)
    return (centres / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def video_text(
    query_text: np.ndarray | None,
    captioner: Captioner | None,
    encoder,
    embeddings: np.ndarray,
    n_captions: int,
    store: EmbeddingStore | None,
    key: str | None,
    path: str,
) -> tuple[np.ndarray, list[str]]:
    """The text one video is read against, and the captions it was made from (empty unless
    captioned): the query's sentence embeddings when there is a query; else the video's
    captions, embedded by `encoder` (a ClipEncoder), when there is a captioner; else the
    caption-free stand-in made from its frame `embeddings`. Scoring and training both read a
    video's text through this, so a scorer is trained on the text it is scored with.

    Raises:
        ClipItError, VideoError: the video cannot be captioned.
    """
    if query_text is not None:
        return query_text, []
    if captioner is not None:
        sentences = cached_captions(path, captioner, n_captions, store, key)
        return encoder.encode_text(sentences), sentences
    return caption_free_text(embeddings), []

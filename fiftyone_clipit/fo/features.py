"""`export_features`: a dataset's frame embeddings (and caption embeddings) as benchmark files.

The benchmarks (`fiftyone-clipit benchmark tvsum|summe|qfvs --features DIR`) read one `.npz` per
video named after the video's file: `embeddings`, `frame_numbers` (1-based) and `fps` (the
video's frame rate) from the embedding store, and, with a captioner, `captions` (the CLIP text
embeddings of the video's captions) and `sentences`. The captions are the ones `train_scorer` and
`score_frames` read with the same captioner (cached beside the embeddings), so a benchmark with
`--captions` trains and tests on the same text as the library.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.defaults import FALLBACK_FRAME_RATE
from fiftyone_clipit.captions import DEFAULT_CAPTIONS, Captioner, cached_captions, load_captioner, text_source
from fiftyone_clipit.encoders import load_clip
from fiftyone_clipit.errors import ClipItError, ItemFailure, VideoError
from fiftyone_clipit.fo.common import (
    EMBEDDINGS_RUN,
    Progress,
    embedding_store,
    finish,
    iterate,
    root_dataset,
    samples_info,
    video_collection,
)
from fiftyone_clipit.store import save_npz_atomically


@dataclass
class FeaturesReport:
    """What `export_features` wrote: the files, the text source, and the videos that failed."""

    files: list[str] = field(default_factory=list)
    text: str = "caption-free"
    failures: list[ItemFailure] = field(default_factory=list)


def export_features(
    samples: foc.SampleCollection,
    output_dir: str,
    captioner: Captioner | str | None = None,
    n_captions: int = DEFAULT_CAPTIONS,
    device: str | None = None,
    overwrite: bool = False,
    skip_failures: bool = False,
    progress: Progress = None,
) -> FeaturesReport:
    """Writes `<file stem>.npz` per video under `output_dir` for the benchmarks.

    Args:
        samples: a video dataset or view with frame embeddings.
        output_dir: the folder to write (an absolute or working-directory-relative path).
        captioner (None): also write the video's captions and their CLIP text embeddings (a
            callable or a transformers image-to-text model folder / hub id), embedded by the
            model and weights the embeddings run recorded.
        n_captions (7): frames captioned per video.
        device (None): torch device of the captioner and the text encoder.
        overwrite (False): replace files already in `output_dir`.
        skip_failures (False): log videos that fail instead of raising at the end.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Raises:
        ClipItError: no embeddings run, two videos with one file name, or a file in the way.
        BatchError: some videos could not be written (the others were).
    """
    samples = video_collection(samples)
    dataset = root_dataset(samples)
    if not dataset.has_run(EMBEDDINGS_RUN):
        raise ClipItError(f"Dataset '{dataset.name}' has no frame embeddings; run compute_frame_embeddings first")
    if not str(output_dir).strip():
        raise ClipItError("output_dir is empty; give the folder to write the features to")
    rows = samples_info(samples)
    stems = [Path(path).stem for _, path, _ in rows]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ClipItError(f"Several videos are named {clashes[:5]}; the benchmarks find features by file name")
    folder = Path(output_dir)
    in_the_way = [s for s in stems if (folder / f"{s}.npz").exists()]
    if in_the_way and not overwrite:
        raise ClipItError(f"'{folder}' already holds {in_the_way[:3]}.npz ...; pass overwrite=True (--overwrite) to replace")
    embedded = dataset.get_run_info(EMBEDDINGS_RUN).config
    model = embedded.model
    captioner = load_captioner(captioner, device)
    encoder = load_clip(model, getattr(embedded, "pretrained", None), device) if captioner is not None else None
    store = embedding_store(dataset)
    report = FeaturesReport(text=text_source(None, captioner))
    for (sample_id, path, metadata), stem in iterate(list(zip(rows, stems)), progress, "Writing features"):
        item = store.get(sample_id)
        if item is None or item.info.get("model") != model:
            report.failures.append(ItemFailure(path, f"no frame embeddings by '{model}'; run compute_frame_embeddings"))
            continue
        arrays = {
            "embeddings": item.embeddings, "frame_numbers": item.frame_numbers,
            "fps": np.float64((metadata.frame_rate if metadata else None) or item.info.get("frame_rate") or FALLBACK_FRAME_RATE),
        }
        if captioner is not None:
            try:
                sentences = cached_captions(path, captioner, n_captions, store, sample_id)
            except (ClipItError, VideoError, OSError) as e:
                report.failures.append(ItemFailure(path, str(e)))
                continue
            arrays.update(captions=encoder.encode_text(sentences), sentences=np.asarray(sentences))
        target = os.path.join(folder, f"{stem}.npz")
        save_npz_atomically(target, **arrays)
        report.files.append(target)
    finish("Writing features", report.failures, len(report.files), skip_failures)
    return report

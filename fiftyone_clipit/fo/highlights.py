"""`create_highlight_reel`: type a query, get one reel of the best moments across the dataset.

The FiftyOne side of `fiftyone_clipit.highlights`: candidates come from the frame index (the
videos with the best frames for the query, at most `max_videos`, so the cost grows with the
reel and `max_videos`, not with the archive); each candidate is scored for the query from its
stored embeddings (zero-shot, or the trained scorer named) and cut into shots (KTS, as
summaries are); the core plans the reel across videos and writes it. The moments are written
to a TemporalDetections field (a clips view shows them in the App) and the run
`clipit_highlights_<field>` records what the reel was made of.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field, replace
from fractions import Fraction

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from fiftyone_clipit.checkpoints import checkpoint_for
from fiftyone_clipit.defaults import DEFAULT_BRAIN_KEY, DEFAULT_HIGHLIGHTS_FIELD, ZERO_SHOT, Progress
from fiftyone_clipit.errors import OVERWRITE_HINT, ClipItError
from fiftyone_clipit.fo.common import (
    check_field_name,
    check_number,
    check_output_field,
    embedding_store,
    iterate,
    record_run,
    root_dataset,
    video_collection,
    write_replacing,
)
from fiftyone_clipit.fo.index import INDEX_RUN, MILVUS_INDEX_RUN, load_frame_index
from fiftyone_clipit.fo.lineage import embeddings_entry, new_run_id, source_problem
from fiftyone_clipit.fo.search import build_frame_index
from fiftyone_clipit.highlights import (
    ORDERS,
    Candidate,
    Moment,
    moment_record,
    plan_reel_and_rate,
    reel_format,
    reel_storyboard,
    reel_frames,
    source_format,
    write_reel,
)
from fiftyone_clipit.queries import check_query, embed_query, best_videos, query_encoder
from fiftyone_clipit.reels import write_segments
from fiftyone_clipit.relevance import frame_relevance
from fiftyone_clipit.scorer import predict_scores
from fiftyone_clipit.options import ScoringOptions, ShotOptions
from fiftyone_clipit.shots import shots_for_video
from fiftyone_clipit.store import write_atomically
from fiftyone_clipit.summary import upsample_scores
from fiftyone_clipit.summary_files import clip_name, safe_stem, writable_dir

REEL_FILE = "highlights.mp4"
STORYBOARD_FILE = "highlights_storyboard.png"
MANIFEST_FILE = "highlights.json"
CLIPS_FOLDER = "clips"
NO_EMBEDDINGS = "no frame embeddings; run compute_frame_embeddings"


@dataclass(frozen=True)
class ReelOptions:
    """How a highlight reel is made.

    Attributes:
        order: "relevance" (best moment first) or "source" (by video, then time).
        per_video_seconds: the most seconds one video may give; None: no cap.
        max_videos: candidate videos, those with the best frames for the query.
        scorer: "zero-shot" or a checkpoint folder written by train_scorer.
        clips: also write one mp4 per moment under `clips/`.
        field: the TemporalDetections field that holds the moments.
        smoothing_seconds: zero-shot smoothing, as score_frames.
        backend: "faiss" or "milvus"; None: the one the dataset uses (Milvus when it has a
            Milvus index and no FAISS one).
    """

    order: str = "relevance"
    per_video_seconds: float | None = None
    max_videos: int = 20
    scorer: str = ZERO_SHOT
    clips: bool = False
    field: str = DEFAULT_HIGHLIGHTS_FIELD
    smoothing_seconds: float = ScoringOptions.smoothing_seconds
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ClipItError(f"Unknown order '{self.order}'. Valid orders are {list(ORDERS)}")
        if not isinstance(self.max_videos, int) or isinstance(self.max_videos, bool) or self.max_videos < 1:
            raise ClipItError(f"max_videos must be a positive integer, got {self.max_videos!r}")
        if self.backend not in (None, "faiss", "milvus"):
            raise ClipItError(f"Unknown index backend '{self.backend}'. Available: ['faiss', 'milvus']")
        if self.per_video_seconds is not None:
            check_number(self.per_video_seconds, "per_video_seconds")
        check_field_name(self.field, "highlights field")


@dataclass
class HighlightReel:
    """What `create_highlight_reel` wrote.

    Attributes:
        reel, storyboard, manifest: the files; clips: the per-moment clips (when asked).
        moments: the manifest's moments (source, frames, seconds, score, place in the reel).
        seconds: the reel's length.
        skipped: file -> why a video of the collection gave no candidate.
        view_name: the saved clips view of the moments.
    """

    reel: str
    storyboard: str
    manifest: str
    moments: list[dict]
    seconds: float
    clips: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    view_name: str = ""

    @property
    def summary(self) -> str:
        """"3 moments from 2 videos"."""
        return f"{_count(len(self.moments), 'moment')} from {_count(len({m['key'] for m in self.moments}), 'video')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def highlights_run_key(field_name: str) -> str:
    """The custom run that records how the reel in `field_name` was made."""
    return f"clipit_highlights_{field_name}"


def create_highlight_reel(
    samples: foc.SampleCollection,
    query: str,
    seconds: float,
    output_dir: str,
    options: ReelOptions = ReelOptions(),
    overwrite: bool = False,
    progress: Progress = None,
) -> HighlightReel:
    """One reel of the best moments for `query` across the videos of `samples`, at most `seconds`.

    Args:
        samples: a video dataset or view with frame embeddings (compute_frame_embeddings).
        query: text (or an image file) to find.
        seconds: the reel's length at most, in seconds.
        output_dir: the folder for highlights.mp4, highlights_storyboard.png, highlights.json
            (the manifest) and, with `options.clips`, clips/.
        options: order, per-video cap, candidates, scorer, clips, field (ReelOptions).
        overwrite (False): replace the files of an earlier reel in `output_dir`, and write into
            an existing field that no reel wrote.
        progress (None): True for a progress bar, or a callback(fraction, label).

    Returns:
        The HighlightReel written; its moments are also in `options.field` and its clips view.

    Raises:
        ClipItError: an empty query or collection, no embeddings, an output folder that holds
            a reel (without overwrite), a field of another kind, a budget shorter than every
            moment, or no candidate video left.
        ValueError: `seconds` (or the per-video cap) is not a positive finite number.
    """
    samples = video_collection(samples)
    check_query(query)
    check_number(seconds, "seconds")
    run_key = highlights_run_key(options.field)
    check_output_field(samples, options.field, run_key, fo.EmbeddedDocumentField, fo.TemporalDetections, overwrite)
    folder = _output_folder(output_dir, overwrite)
    dataset = root_dataset(samples)
    backend = options.backend or (
        "milvus" if dataset.has_run(MILVUS_INDEX_RUN) and not dataset.has_run(INDEX_RUN) else "faiss"
    )
    brain_key = DEFAULT_BRAIN_KEY if backend == "faiss" else None
    build_frame_index(dataset, brain_key=brain_key, backend=backend, check_sources=False)
    index = load_frame_index(dataset, backend)
    vector, query_kind, label = embed_query(index, query)
    ids = set(samples.values("id"))
    allowed = None if isinstance(samples, fo.Dataset) else ids
    left_out = {i: entry["reason"] for i, entry in index.info.get("stale", {}).items()}
    skipped = {i: left_out.get(i, NO_EMBEDDINGS) for i in ids - set(index.keys)}
    ranked = best_videos(index, vector, options.max_videos, allowed, query_kind)
    keys = [key for key, _ in ranked]
    candidates, lineage = _candidates(dataset, index, keys, query, vector, options, seconds, skipped, progress)
    paths = dict(zip(*dataset.select(list(skipped)).values(["id", "filepath"]))) if skipped else {}
    named_skips = {paths.get(i, i): why for i, why in skipped.items()}
    if not candidates:
        raise ClipItError(f"No video could give a moment for '{label}': " + "; ".join(f"{p}: {w}" for p, w in named_skips.items()))
    # rates from the metadata: a source is opened (its packet index read) only once it is chosen
    rates = {c.key: Fraction(c.frame_rate).limit_denominator(1001) for c in candidates}
    moments, rate = plan_reel_and_rate(candidates, rates, seconds, options.order, options.per_video_seconds)
    if not moments:
        shortest = min(reel_frames(int(s[1] - s[0] + 1), c.frame_rate, rate) for c in candidates for s in c.shots)
        raise ClipItError(
            f"A reel of {seconds:g} s holds no moment: the shortest moment of the candidates lasts "
            f"{shortest / float(rate):.2f} s; ask for at least that many seconds"
        )
    # the rate the plan counted its budget in; size and audio from the sources chosen
    chosen = dict.fromkeys(m.path for m in moments)
    output = replace(reel_format([source_format(path) for path in chosen]), frame_rate=rate)
    report = _write_files(folder, moments, output, label, options, progress)
    report.skipped = named_skips
    manifest = {
        "query": label,
        "scorer": options.scorer,
        "model": index.info.get("model"),
        "seconds_asked": seconds,
        "seconds": report.seconds,
        "order": options.order,
        "frame_rate": str(output.frame_rate),
        "size": [output.width, output.height],
        "moments": [{**m, "lineage": lineage[m["key"]]} for m in report.moments],
        "skipped": named_skips,
    }
    write_atomically(report.manifest, lambda f: json.dump(manifest, f, indent=2), mode="w")
    report.moments = manifest["moments"]
    report.view_name = _write_moments(dataset, moments, label, options.field, run_key, manifest, report)
    return report


def _output_folder(output_dir: str, overwrite: bool) -> str:
    folder = writable_dir(output_dir)
    ours = [os.path.join(folder, name) for name in (REEL_FILE, STORYBOARD_FILE, MANIFEST_FILE, CLIPS_FOLDER)]
    there = [p for p in ours if os.path.exists(p)]
    if there and not overwrite:
        raise ClipItError(
            f"'{folder}' already holds a highlight reel ({os.path.basename(there[0])}); choose another "
            f"folder, or {OVERWRITE_HINT} to replace it"
        )
    for path in there:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return folder


def _candidates(dataset, index, keys, query, vector, options, seconds, skipped, progress) -> tuple[list[Candidate], dict]:
    """The candidate videos scored and cut into shots; those that cannot be are added to `skipped`."""
    store = embedding_store(dataset)
    view = dataset.select(keys, ordered=True)
    rows = zip(*view.values(["id", "filepath", "metadata.frame_rate", "metadata.total_frame_count"]))
    checkpoint, text = None, vector
    if options.scorer != ZERO_SHOT:
        embedded_with = dataset.get_run_info("clipit_embeddings").config.model
        checkpoint = checkpoint_for(options.scorer, embedded_with, None)
        if isinstance(query, str) and not os.path.isfile(query):
            text = query_encoder(index, None).encode_text([query])
    candidates, lineage = [], {}
    for sample_id, path, rate, n_frames in iterate(list(rows), progress, "Scoring candidate videos"):
        item = store.get(sample_id)
        problem = None if item is None else source_problem(path, item.info.get("fingerprint"), "embedded")
        if item is None or problem or not rate or not n_frames:
            skipped[sample_id] = problem or (
                NO_EMBEDDINGS if item is None else "no frame rate or frame count in its metadata; run compute_metadata"
            )
            continue
        if checkpoint is None:
            scores = frame_relevance(item.embeddings, item.frame_numbers, vector, n_frames, item.info["fps"], options.smoothing_seconds)
        else:
            (steps,) = predict_scores(checkpoint.model, [item.embeddings], [text])
            scores = upsample_scores(steps, np.asarray(item.frame_numbers) - 1, n_frames)
        try:
            shots = shots_for_video(ShotOptions(), n_frames, rate, item, max(1, math.floor(seconds * rate)))
        except ValueError as e:
            skipped[sample_id] = str(e)
            continue
        candidates.append(Candidate(sample_id, path, float(rate), np.asarray(scores, dtype=np.float64), shots))
        lineage[sample_id] = {"model": item.info.get("model"), **embeddings_entry(store, sample_id, item.info)}
    return candidates, lineage


def _write_files(folder, moments: list[Moment], output, label, options, progress) -> HighlightReel:
    reel_path = os.path.join(folder, REEL_FILE)
    report_progress = (lambda i: progress((i + 1) / len(moments), f"Writing the reel: moment {i + 1}/{len(moments)}")) if callable(progress) else None
    parts = write_reel(moments, reel_path, output, progress=report_progress)
    records = [moment_record(m, p, output.frame_rate) for m, p in zip(moments, parts)]
    storyboard = reel_storyboard(moments, os.path.join(folder, STORYBOARD_FILE), f"'{label}': {_count(len(moments), 'moment')}")
    report = HighlightReel(
        reel=reel_path, storyboard=storyboard, manifest=os.path.join(folder, MANIFEST_FILE), moments=records,
        seconds=parts[-1].last / float(output.frame_rate),
    )
    if options.clips:
        report.clips = _write_clips(os.path.join(folder, CLIPS_FOLDER), moments, records)
    return report


def _write_clips(folder: str, moments: list[Moment], records: list[dict]) -> list[str]:
    """One mp4 per moment at its source's own rate and size (`write_segments`), named after the
    source and frames; each record gets its clip's path."""
    os.makedirs(folder, exist_ok=True)
    by_source: dict[str, list[int]] = {}
    for position, moment in enumerate(moments):
        by_source.setdefault(moment.path, []).append(position)
    for path, positions in by_source.items():
        positions.sort(key=lambda p: moments[p].first)
        names = [os.path.join(folder, clip_name(safe_stem(path), i, moments[p].first, moments[p].last)) for i, p in enumerate(positions)]
        write_segments(path, [(moments[p].first, moments[p].last) for p in positions], clip_paths=names)
        for position, name in zip(positions, names):
            records[position]["clip"] = name
    return [r["clip"] for r in records]


def _write_moments(dataset, moments, label, field_name, run_key, manifest, report) -> str:
    """The moments into `field_name` (other videos' old moments cleared), its clips view saved,
    the run recorded; returns the view's name."""
    values: dict[str, fo.TemporalDetections] = {}
    for rank, moment in enumerate(moments, start=1):
        values.setdefault(moment.key, fo.TemporalDetections(detections=[])).detections.append(
            fo.TemporalDetection(label=label, support=[moment.first, moment.last], confidence=moment.score, reel_rank=rank)
        )
    write_replacing(dataset, field_name, values)
    view_name = f"{field_name}_clips"
    dataset.save_view(view_name, dataset.to_clips(field_name).sort_by(f"{field_name}.reel_rank"), overwrite=True)
    record_run(
        dataset, run_key, run_id=new_run_id(), query=label, written_fields=[field_name], reel=report.reel,
        storyboard=report.storyboard, manifest=report.manifest, seconds=report.seconds, order=manifest["order"],
        scorer=manifest["scorer"], n_moments=len(moments),
    )
    return view_name

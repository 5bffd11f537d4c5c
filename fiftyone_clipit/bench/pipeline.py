"""`fiftyone-clipit bench pipeline`: the FiftyOne layer and its database as an archive grows.

`--videos` videos of `--minutes` minutes at `--frame-rate` fps get planted frame embeddings (2
steps per second, shots as `bench summary` plants them, some shots pulled towards the query's
text embedding) in the embedding store, with the lineage `compute_frame_embeddings` records
(each sample's file is a small real file whose fingerprint the embeddings carry; its metadata
states the planted length), and a planted ground truth: three users' summaries of the pulled
shots. No frame is decoded. Then, in a private mongod, as a user runs it: `score_frames` for
the query, `label_scores` (the App's frame labels), `create_summary` (no keyframe images:
they would decode the video), `evaluate_summary` (TVSum protocol) against the planted users,
and the App's typical reads: the sidebar's count of frames above a score, one video's curve
for the panel (`sample_curves`), the clips view's count and first page.

Baseline, in the same run on a twin dataset (same samples, no frames yet): FiftyOne's own bulk
path for the same documents, `set_values` of the same scores and the same labels on frame
fields and the videos' highest and mean scores, one call per field. `write_over_fiftyone` is its time over the layer's (score_frames +
label_scores, scoring included), each the best of `--repeats` rounds that take turns (the first
is the pipeline's own; the others write again on cleared frames), so that load from other
processes hits both alike; `write_rounds` lists every round's pair of seconds. Figures per stage: seconds (and per hour of video), the share
sampled in the core vs the FiftyOne layer and database (`fiftyone_clipit.bench.stages`), peak
memory above the stage's start; database bytes from `dbStats` / `collStats` after a checkpoint.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

DESCRIPTION = "the FiftyOne layer at scale: score, label, summarise, evaluate and App reads per hour of video"

QUERY = "a goalkeeper saves a shot"
GT_FIELD = "gt_user_summaries"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", type=int, default=10, help="number of videos")
    parser.add_argument("--minutes", type=float, default=6.0, help="length of each video in minutes")
    parser.add_argument("--frame-rate", type=float, default=30.0, help="frames per second of the videos")
    parser.add_argument("--fps", type=float, default=2.0, help="sampled steps per second (embeddings)")
    parser.add_argument("--model", default="ViT-B-32-random", help="CLIP model of the planted embeddings")
    parser.add_argument("--frames", choices=["steps", "every"], default="steps",
                        help="score_frames' frames: the sampled steps only, or every frame")
    parser.add_argument("--threshold", type=float, default=0.6, help="score of the sidebar's count")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the writes, FiftyOne's and the layer's in turn; the ratio is of the best of each")
    parser.add_argument("--skip-baseline", action="store_true", help="leave out FiftyOne's set_values path")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planted data")
    parser.add_argument("--workdir", help="folder for the database and the store (default: a temporary one)")


def run(args: argparse.Namespace) -> dict:
    from fiftyone_clipit.bench.database import private_database

    if args.videos < 1 or args.minutes <= 0 or args.fps <= 0 or args.frame_rate < args.fps or args.repeats < 1:
        raise ValueError("--videos >= 1, --minutes > 0, --frame-rate >= --fps > 0 and --repeats >= 1 are needed")
    with tempfile.TemporaryDirectory(prefix="clipit-bench-pipeline-", dir=args.workdir) as root:
        os.environ["FIFTYONE_CLIPIT_STORE_DIR"] = os.path.join(root, "store")
        with private_database(root):
            return _measure(args, root)


def _measure(args: argparse.Namespace, root: str) -> dict:
    import fiftyone as fo

    from fiftyone_clipit.bench.planting import plant_dataset
    from fiftyone_clipit.bench.stages import timed
    from fiftyone_clipit.encoders import load_clip

    fo.config.show_progress_bars = False
    encoder = load_clip(args.model)
    text = encoder.encode_text([QUERY])
    start = time.perf_counter()
    dataset, twin, planted = plant_dataset(args, root, encoder, text)
    plant_seconds = time.perf_counter() - start
    hours = args.videos * args.minutes / 60
    stages, figures = {}, {}
    if not args.skip_baseline:
        with timed() as stages["fiftyone_set_values"]:
            _fiftyone_writes(twin, planted, text, args.frames)
    _layer(dataset, encoder, stages, figures, args)
    out = {
        "videos": args.videos,
        "minutes": args.minutes,
        "hours": round(hours, 3),
        "frames": int(args.videos * round(args.minutes * 60 * args.frame_rate)),
        "model": args.model,
        "score_frames_written": args.frames,
        "plant_seconds": round(plant_seconds, 2),
        "stages": {name: stage.figures(hours) for name, stage in stages.items()},
        **figures,
    }
    out["database"] = _database_bytes(dataset, twin, hours)
    if "fiftyone_set_values" in stages:
        rounds = [(stages["fiftyone_set_values"].seconds, stages["score_frames"].seconds + stages["label_scores"].seconds)]
        rounds += [_write_round(dataset, twin, planted, text, encoder, args.frames) for _ in range(args.repeats - 1)]
        out["write_rounds"] = [[round(a, 3), round(b, 3)] for a, b in rounds]
        out["write_over_fiftyone"] = round(min(a for a, _ in rounds) / min(b for _, b in rounds), 3)
    out["load"] = os.getloadavg()[0]
    return out


def _write_round(dataset, twin, planted: dict, text, encoder, frames: str) -> tuple[float, float]:
    """One more round of the same writes on frames cleared first (FiftyOne's, then the layer's:
    score_frames and label_scores); returns both times in seconds."""
    from fiftyone_clipit.fo.score_labels import label_scores
    from fiftyone_clipit.fo.scoring import score_frames

    twin.clear_frames()
    start = time.perf_counter()
    _fiftyone_writes(twin, planted, text, frames)
    fiftyone_seconds = time.perf_counter() - start
    dataset.clear_frames()
    start = time.perf_counter()
    score_frames(dataset, QUERY, model=encoder, frames=frames)
    label_scores(dataset)
    return fiftyone_seconds, time.perf_counter() - start


def _layer(dataset, encoder, stages: dict, figures: dict, args: argparse.Namespace) -> None:
    """The user's path through the layer, then the App's reads, each timed."""
    from fiftyone import ViewField as F

    from fiftyone_clipit.bench.stages import timed
    from fiftyone_clipit.fo.curves import sample_curves
    from fiftyone_clipit.fo.evaluation import evaluate_summary
    from fiftyone_clipit.fo.score_labels import label_scores
    from fiftyone_clipit.fo.scoring import score_frames, score_label_fields
    from fiftyone_clipit.fo.summaries import create_summary

    with timed() as stages["score_frames"]:
        scored = score_frames(dataset, QUERY, model=encoder, frames=args.frames)
    with timed() as stages["label_scores"]:
        label_scores(dataset)
    with timed() as stages["create_summary"]:
        summary = create_summary(dataset, n_keyframes=0)
    with timed() as stages["evaluate_summary"]:
        results = evaluate_summary(dataset, GT_FIELD)
    label = f"frames.{score_label_fields()[0]}"
    with timed() as stages["app_sidebar_count"]:
        above = dataset.filter_labels(label, F("confidence") > args.threshold).count(f"{label}.classifications")
    middle = dataset.skip(len(dataset) // 2).first().id
    with timed() as stages["app_panel_curve"]:
        curve = sample_curves(dataset, middle)
    with timed() as stages["app_clips_view"]:
        clips = dataset.load_saved_view(summary.view_name)
        n_clips = clips.count()
        first_page = clips.limit(20).values("support")
    figures.update(
        n_scored=scored.n_scored,
        n_summarized=summary.n_summarized,
        frames_above_threshold=int(above),
        curve_points=int((curve.pred_scores == curve.pred_scores).sum()),
        clips=int(n_clips),
        first_page=len(first_page),
        f1=round(float(results.metrics()["f1"]), 3),
    )


def _fiftyone_writes(twin, planted: dict, text, frames: str) -> None:
    """FiftyOne's bulk path for the documents the layer writes: the scores (made by the same
    core function; at the steps or every frame, as `frames`), their one-element
    Classifications and each video's highest and mean score, one `set_values` per field."""
    import fiftyone as fo

    from fiftyone_clipit.defaults import DEFAULT_SCORE_FIELD
    from fiftyone_clipit.fo.score_labels import score_label
    from fiftyone_clipit.fo.scoring import score_label_fields
    from fiftyone_clipit.relevance import frame_relevance

    scores, maxima, means = {}, {}, {}
    for sample_id, (item, n_frames) in planted.items():
        values = frame_relevance(item.embeddings, item.frame_numbers, text, n_frames, item.info["fps"], 1.0)
        numbers = item.frame_numbers if frames == "steps" else range(1, n_frames + 1)
        scores[sample_id] = {int(n): float(values[n - 1]) for n in numbers}
        maxima[sample_id], means[sample_id] = float(values.max()), float(values.mean())
    twin.set_values(f"frames.{DEFAULT_SCORE_FIELD}", scores, key_field="id")
    label_field, max_field, mean_field = score_label_fields(DEFAULT_SCORE_FIELD)
    twin.set_values(max_field, maxima, key_field="id")
    twin.set_values(mean_field, means, key_field="id")
    labels = {
        sample_id: {
            n: fo.Classifications(classifications=[fo.Classification(label=score_label(QUERY, DEFAULT_SCORE_FIELD), confidence=s)])
            for n, s in by_frame.items()
        }
        for sample_id, by_frame in scores.items()
    }
    twin.set_values(f"frames.{label_field}", labels, key_field="id")


def _database_bytes(dataset, twin, hours: float) -> dict:
    """On-disk bytes (after a checkpoint) of the whole database and of each dataset's frames."""
    import fiftyone.core.odm as foo

    client = foo.get_db_conn().client
    client.admin.command("fsync")
    db = foo.get_db_conn()
    stats = db.command("dbStats")
    out = {
        "db_storage_bytes": int(stats["storageSize"]),
        "db_index_bytes": int(stats["indexSize"]),
        "db_data_bytes": int(stats["dataSize"]),
    }
    for name, ds in (("layer", dataset), ("fiftyone", twin)):
        coll = db.command("collStats", ds._frame_collection_name)
        out[f"{name}_frames_bytes"] = int(coll["storageSize"] + coll["totalIndexSize"])
        out[f"{name}_frames_data_bytes"] = int(coll["size"])
    out["layer_frames_bytes_per_hour"] = int(out["layer_frames_bytes"] / hours)
    out["layer_frames_bytes_1000_hours"] = int(out["layer_frames_bytes"] / hours * 1000)
    return out

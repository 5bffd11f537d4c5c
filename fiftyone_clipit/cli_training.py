"""The scorer's subcommands of `fiftyone-clipit`: `train`, `features` and `benchmark tvsum|summe|qfvs`.

Thin, like the rest of the command line: each parses its options and calls one library function
(`fiftyone_clipit.fo.training.train_scorer`, `fiftyone_clipit.benchmark.run_benchmark`,
`fiftyone_clipit.qfvs.run_qfvs`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Callable

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.options import BENCHMARK_METHODS, BenchmarkOptions, TrainingOptions

#: CLI option -> TrainingOptions field
_TRAINING_FLAGS = {
    "mode": "mode", "epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate",
    "warmup_epochs": "warmup_epochs", "weight_decay": "weight_decay", "bce_weight": "bce_weight",
    "reconstruction_weight": "reconstruction_weight", "diversity_weight": "diversity_weight",
    "validation_fraction": "validation_fraction", "patience": "patience", "seed": "seed",
    "budget": "proportion", "f1_mode": "f1_mode", "attention": "attention",
}


def _training_options(args: argparse.Namespace) -> dict:
    """The training options given on the command line (the others keep their defaults)."""
    return {
        field: getattr(args, flag)
        for flag, field in _TRAINING_FLAGS.items()
        if getattr(args, flag, None) is not None
    }


def training_options(args: argparse.Namespace, **fixed):
    """`TrainingOptions` from the library's defaults, the flags given and `fixed` values."""
    return TrainingOptions(**{**fixed, **_training_options(args)})


def cmd_train(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.common import existing_dataset
    from fiftyone_clipit.fo.training import train_scorer

    report = train_scorer(
        existing_dataset(args.dataset), args.output, gt_field=args.gt_field, query_field=args.query_field,
        query=args.query, captioner=args.captioner, n_captions=args.n_captions, preset=args.preset,
        device=args.device, overwrite=args.overwrite,
        skip_failures=args.skip_failures, progress=True, **_training_options(args),
    )
    print(
        f"Wrote {report.checkpoint}: epoch {report.best_epoch} kept ({report.criterion} "
        f"{report.validation_value:.4f}) from {report.n_train} training and {report.n_validation} "
        f"validation videos. Score with: fiftyone-clipit score DATASET --query TEXT --scorer {report.checkpoint}"
    )
    figures = report.baselines
    if "skipped" in figures:
        print(f"Baselines not compared: {figures['skipped']}")
    else:
        blind = figures["f1_query_blind"]
        print(f"Validation F1: this scorer {figures['f1_trained']:.4f}, zero-shot {figures['f1_zero_shot']:.4f}, "
              f"query-blind twin {'-' if blind is None else f'{blind:.4f}'}")
    if report.warning:
        print(f"WARNING: {report.warning}")


def cmd_benchmark(args: argparse.Namespace) -> None:
    if args.benchmark == "qfvs":
        return _qfvs_benchmark(args)
    from fiftyone_clipit.benchmark import DATASET_F1_MODE, format_table, run_benchmark

    options = training_options(args, f1_mode=DATASET_F1_MODE[args.benchmark])
    result = run_benchmark(
        args.benchmark, args.features, splits=args.splits, preset=args.preset, options=options,
        annotations_path=args.annotations, device=args.device, h5=args.h5, h5_features=args.h5_features,
        method=args.method, captions=args.captions,
    )
    print(format_table(result))
    if args.json:
        print(json.dumps(asdict(result)))


def cmd_features(args: argparse.Namespace) -> None:
    from fiftyone_clipit.fo.common import existing_dataset
    from fiftyone_clipit.fo.features import export_features

    report = export_features(
        existing_dataset(args.dataset), args.output, captioner=args.captioner, n_captions=args.n_captions,
        device=args.device, overwrite=args.overwrite,
        skip_failures=args.skip_failures, progress=True,
    )
    print(f"Wrote {len(report.files)} feature files to {args.output} (text: {report.text}); "
          f"run: fiftyone-clipit benchmark tvsum|summe|qfvs --features {args.output}")


def _qfvs_benchmark(args: argparse.Namespace) -> None:
    from fiftyone_clipit.qfvs import format_qfvs_table, run_qfvs

    if args.features is None:
        raise ClipItError("benchmark qfvs needs --features DIR, the folder of P01.npz ... P04.npz")
    if args.h5 or args.h5_features or args.splits:
        raise ClipItError("--h5, --h5-features and --splits belong to tvsum / summe; QFVS has its own four rounds")

    def encode_concepts(concepts):
        from fiftyone_clipit.encoders import load_clip

        return load_clip(args.model, args.pretrained, device=args.device).encode_text(concepts)

    result = run_qfvs(
        args.features, args.annotations, preset=args.preset, options=training_options(args),
        top_percent=args.top_percent, text_encoder=encode_concepts, device=args.device, progress=True,
    )
    print(format_qfvs_table(result))
    if args.json:
        print(json.dumps(asdict(result)))


def add_training_option_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """The `TrainingOptions` flags; each left out keeps the library's default (shown in --help)."""
    from fiftyone_clipit.defaults import ATTENTION_MODES

    d = TrainingOptions()
    flags = {
        "mode": dict(choices=["supervised", "unsupervised"], help=f"default {d.mode}"),
        "epochs": dict(type=int, help=f"most epochs (default {d.epochs})"),
        "batch_size": dict(type=int, help=f"videos per step (default {d.batch_size})"),
        "learning_rate": dict(type=float, help="peak AdamW learning rate (default: 0.1 / the preset's model_dim)"),
        "warmup_epochs": dict(type=int, help=f"linear warm-up, then cosine decay (default {d.warmup_epochs})"),
        "weight_decay": dict(type=float, help=f"AdamW weight decay (default {d.weight_decay:g})"),
        "bce_weight": dict(type=float, help=f"weight of the keyframe BCE (default {d.bce_weight:g})"),
        "reconstruction_weight": dict(type=float, help=f"weight of the reconstruction loss (default {d.reconstruction_weight:g})"),
        "diversity_weight": dict(type=float, help=f"weight of the diversity loss (default {d.diversity_weight:g})"),
        "validation_fraction": dict(type=float, help=f"share of training videos for model selection ({d.validation_fraction:g})"),
        "patience": dict(type=int, help=f"stop after this many epochs without improvement ({d.patience})"),
        "seed": dict(type=int, help=f"seed of the split, weights and batches (default {d.seed})"),
        "budget": dict(type=float, help=f"summary budget of the validation F1 (default {d.proportion:g})"),
        "f1_mode": dict(choices=["avg", "max"], help="over users: avg (TVSum) or max (SumMe)"),
        "attention": dict(choices=list(ATTENTION_MODES), help=f"temporal attention (default {d.attention})"),
    }
    for flag, kwargs in flags.items():
        if flag not in exclude:
            parser.add_argument("--" + flag.replace("_", "-"), **kwargs)


def add_captioner_arguments(parser: argparse.ArgumentParser) -> None:
    """--captioner and --n-captions: the text of generic summaries, the same in train and score."""
    from fiftyone_clipit.defaults import DEFAULT_CAPTIONS

    parser.add_argument("--captioner", help="generic summaries: a transformers image-to-text model folder or hub id "
                                            "whose captions are the text (default: caption-free)")
    parser.add_argument("--n-captions", type=int, default=DEFAULT_CAPTIONS, help="frames captioned per video")


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    from fiftyone_clipit.defaults import DEFAULT_SCORER_PRESET, list_scorer_presets

    parser.add_argument("--preset", default=DEFAULT_SCORER_PRESET, choices=list_scorer_presets(), help="scorer shapes")
    add_training_option_arguments(parser)
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def add_commands(add: Callable[[str, Callable, str], argparse.ArgumentParser], common: Callable) -> None:
    """Adds `train` and `benchmark` through the main parser's `add(name, func, help)`."""
    from fiftyone_clipit.defaults import DEFAULT_MODEL

    p = add("train", cmd_train, "train a CLIP-It scorer on a dataset's frame embeddings and ground truth")
    common(p)
    p.add_argument("--output", required=True, help="checkpoint folder to write")
    p.add_argument("--gt-field", action="append", help="users' summaries field(s) or one per-frame importance field")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--query-field", help="sample field with each video's query")
    text.add_argument("--query", help="one query for every video (neither: generic, captions or caption-free)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint folder")
    add_captioner_arguments(p)
    _training_arguments(p)
    p = add("features", cmd_features, "write a dataset's frame (and caption) embeddings as the benchmarks' .npz files")
    common(p)
    p.add_argument("--output", required=True, help="folder to write <video file stem>.npz into")
    add_captioner_arguments(p)
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace files already in --output")
    p = add("benchmark", cmd_benchmark, "TVSum / SumMe 5-split protocol, or QFVS's four rounds, on features you computed")
    p.add_argument("benchmark", choices=["tvsum", "summe", "qfvs"], help="the dataset whose protocol to run")
    p.add_argument("--features", help="folder of per-video .npz features (needed unless --h5-features)")
    p.add_argument("--h5", action="append", help="eccv16_dataset_*_google_pool5.h5: ground truth, shots, picks (repeat for mixed splits)")
    p.add_argument("--h5-features", action="store_true", help="with --h5: the file's GoogLeNet features (vision-only)")
    p.add_argument("--splits", help="split file (default: the PGL-SUM splits in the shared data)")
    p.add_argument("--annotations", help="TVSum .mat file, SumMe GT folder or QFVS origin_data folder (default: the shared data)")
    p.add_argument("--captions", action="store_true",
                   help="tvsum/summe: the text is each features file's 'captions' (from `features --captioner`)")
    p.add_argument("--method", choices=list(BENCHMARK_METHODS), default=BenchmarkOptions.method,
                   help="tvsum/summe: train a scorer per split, or score with the annotation's gtscore (a no-training reference)")
    p.add_argument("--top-percent", type=float, default=0.02, help="qfvs: share of shots in a summary (default 0.02)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"qfvs: CLIP model that embeds the concepts when DIR has no concepts.npz (default {DEFAULT_MODEL})")
    p.add_argument("--pretrained", help="qfvs: weights of --model (tag or file)")
    p.add_argument("--json", action="store_true", help="also print the table as one JSON line")
    _training_arguments(p)

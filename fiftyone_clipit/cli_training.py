"""The scorer's subcommands of `fiftyone-clipit`: `train` and `benchmark tvsum|summe`.

Thin, like the rest of the command line: each parses its options and calls one library function
(`fiftyone_clipit.fo.training.train_scorer`, `fiftyone_clipit.benchmark.run_benchmark`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Callable

#: CLI option -> TrainingOptions field
_TRAINING_FLAGS = {
    "mode": "mode", "epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate",
    "weight_decay": "weight_decay", "bce_weight": "bce_weight",
    "reconstruction_weight": "reconstruction_weight", "diversity_weight": "diversity_weight",
    "validation_fraction": "validation_fraction", "patience": "patience", "seed": "seed",
    "budget": "proportion", "f1_mode": "f1_mode",
}


def _training_options(args: argparse.Namespace) -> dict:
    """The training options given on the command line (the others keep their defaults)."""
    return {field: getattr(args, flag) for flag, field in _TRAINING_FLAGS.items() if getattr(args, flag) is not None}


def cmd_train(args: argparse.Namespace) -> None:
    from fiftyone_clipit.cli import _dataset
    from fiftyone_clipit.fo.training import train_scorer

    report = train_scorer(
        _dataset(args.dataset), args.output, gt_field=args.gt_field, query_field=args.query_field,
        query=args.query, preset=args.preset, device=args.device, overwrite=args.overwrite,
        skip_failures=args.skip_failures, progress=True, **_training_options(args),
    )
    print(
        f"Wrote {report.checkpoint}: epoch {report.best_epoch} kept ({report.criterion} "
        f"{report.validation_value:.4f}) from {report.n_train} training and {report.n_validation} "
        f"validation videos. Score with: fiftyone-clipit score DATASET --query TEXT --scorer {report.checkpoint}"
    )


def cmd_benchmark(args: argparse.Namespace) -> None:
    from fiftyone_clipit.benchmark import F1_MODES, format_table, run_benchmark
    from fiftyone_clipit.training import TrainingOptions

    options = TrainingOptions(**{"f1_mode": F1_MODES[args.benchmark], **_training_options(args)})
    result = run_benchmark(
        args.benchmark, args.features, splits=args.splits, preset=args.preset, options=options,
        annotations_path=args.annotations, device=args.device,
    )
    print(format_table(result))
    if args.json:
        print(json.dumps(asdict(result)))


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    from fiftyone_clipit.scorer import DEFAULT_PRESET, list_presets

    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list_presets(), help="scorer shapes")
    parser.add_argument("--mode", choices=["supervised", "unsupervised"], help="default supervised")
    parser.add_argument("--epochs", type=int, help="most epochs (default 60)")
    parser.add_argument("--batch-size", type=int, help="videos per step (default 4)")
    parser.add_argument("--learning-rate", type=float, help="AdamW learning rate (default 3e-4)")
    parser.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-2)")
    parser.add_argument("--bce-weight", type=float, help="weight of the keyframe BCE (default 1)")
    parser.add_argument("--reconstruction-weight", type=float, help="weight of the reconstruction loss (default 1)")
    parser.add_argument("--diversity-weight", type=float, help="weight of the diversity loss (default 1)")
    parser.add_argument("--validation-fraction", type=float, help="share of training videos for model selection (0.2)")
    parser.add_argument("--patience", type=int, help="stop after this many epochs without improvement (20)")
    parser.add_argument("--seed", type=int, help="seed of the split, weights and batches (default 0)")
    parser.add_argument("--budget", type=float, help="summary budget of the validation F1 (default 0.15)")
    parser.add_argument("--f1-mode", choices=["avg", "max"], help="over users: avg (TVSum) or max (SumMe)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def add_commands(add: Callable[[str, Callable, str], argparse.ArgumentParser], common: Callable) -> None:
    """Adds `train` and `benchmark` through the main parser's `add(name, func, help)`."""
    p = add("train", cmd_train, "train a CLIP-It scorer on a dataset's frame embeddings and ground truth")
    common(p)
    p.add_argument("--output", required=True, help="checkpoint folder to write")
    p.add_argument("--gt-field", action="append", help="users' summaries field(s) or one per-frame importance field")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--query-field", help="sample field with each video's query")
    text.add_argument("--query", help="one query for every video (neither: caption-free generic text)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint folder")
    _training_arguments(p)
    p = add("benchmark", cmd_benchmark, "TVSum / SumMe 5-split protocol on frame features you computed")
    p.add_argument("benchmark", choices=["tvsum", "summe"])
    p.add_argument("--features", required=True, help="folder of per-video .npz features")
    p.add_argument("--splits", help="split file (default: the PGL-SUM splits in the shared data)")
    p.add_argument("--annotations", help="TVSum .mat file or SumMe GT folder (default: the shared data)")
    p.add_argument("--json", action="store_true", help="also print the table as one JSON line")
    _training_arguments(p)

"""The TVSum / SumMe protocol on frame features you computed: 5 splits, train, select, test.

`fiftyone-clipit benchmark tvsum|summe --features DIR` runs it. For each of the 5 splits (the
PGL-SUM splits in the shared data by default; DSNet's work too), a scorer is trained on the
split's training videos, the epoch is selected on a validation part of those training videos
(never on the test videos), and the summary F1 of the test videos is reported: the mean over
TVSum's 20 users, the best of SumMe's users. The table gives each split and the mean over splits.

Features: one `.npz` per video under DIR, named after the video (the TVSum id, e.g.
`AwmHb44_ouw.npz`, or the SumMe file stem, e.g. `Air_Force_One.npz`) or after its split key
(`video_7.npz`), holding `embeddings` (n, d) and `frame_numbers` (n,), 1-based, as the
embedding store of `compute_frame_embeddings` writes them, or `features` and `picks` (0-based
frame indices), as the eccv16 h5 files name them. Shots come from KTS on the features (the
change points of the published h5 files came from KTS too). The text of these generic summaries
is, with `--captions`, each file's `captions` (the CLIP embeddings of the video's captions, as
`fiftyone-clipit features --captioner` writes them, the same captions `train` and `score` read),
else the caption-free stand-in (`fiftyone_clipit.captions.caption_free_text`); the table says which.

With `--h5 FILE` (the eccv16_dataset_*_google_pool5.h5 files most papers use; repeat it for
DSNet's augmented and transfer splits, whose keys name several files) the ground truth, the
shots and the picks come from the file, exactly those of every published number; the features
come from `--features DIR` (CLIP features you computed, on the same frames) or, with
`--h5-features`, from the file's own GoogLeNet features: a vision-only variant, labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fiftyone_clipit.captions import caption_free_text
from fiftyone_clipit.defaults import DEFAULT_BUDGET
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.examples import training_example
from fiftyone_clipit.options import BenchmarkOptions, ShotOptions
from fiftyone_clipit.readers import (
    H5Video,
    VideoAnnotation,
    read_eccv16_h5,
    read_splits,
    read_summe,
    read_tvsum,
    shared_data_dir,
    user_keyshot_summaries,
)
from fiftyone_clipit.scorer import load_preset
from fiftyone_clipit.store import FrameEmbeddings
from fiftyone_clipit.summary import uniform_change_points, upsample_scores
from fiftyone_clipit.metrics import rank_correlation
from fiftyone_clipit.training import TrainingOptions, TrainingVideo, score_videos, train, video_f1

BENCHMARK_DATASETS = ("tvsum", "summe")
#: how test videos are scored: a scorer trained on the split, or the annotation's own consensus
#: score (the h5 files' gtscore; no training: a reference that checks the protocol, not a model)
DEFAULT_SPLITS = {"tvsum": "tvsum_splits_pglsum.json", "summe": "summe_splits_pglsum.json"}
#: how each benchmark combines its users' F1s (TVSum: average, SumMe: best)
DATASET_F1_MODE = {"tvsum": "avg", "summe": "max"}
ANNOTATION_SETTING = "annotations, KTS shots on the given features"


@dataclass
class BenchmarkResult:
    """The F1 table: one row per split and the mean over splits."""

    dataset: str
    splits_file: str
    mean_f1: float
    splits: list[dict] = field(default_factory=list)
    setting: str = ANNOTATION_SETTING
    split_setting: str = "canonical"
    preset: str = "paper"
    text: str = "caption-free"
    method: str = "train"
    mean_kendall: float | None = None
    mean_spearman: float | None = None


def read_annotations(dataset: str, path: str | None = None) -> list[VideoAnnotation]:
    """TVSum's or SumMe's annotations, in split-key order (video_1, video_2, ...)."""
    if dataset not in BENCHMARK_DATASETS:
        raise ClipItError(f"Unknown benchmark '{dataset}'; the available benchmarks are {list(BENCHMARK_DATASETS)}")
    return read_tvsum(path) if dataset == "tvsum" else read_summe(path)


def load_features(
    folder: Path, annotation, key: str, captions: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One video's features, 0-based picks and text from `<name>.npz` or `<key>.npz` under `folder`.

    `annotation` is anything with the video's `name` and `n_frames` (a VideoAnnotation, an H5Video).
    The text is the file's `captions` (caption embeddings, as `export_features` writes them with a
    captioner) when `captions`, else the caption-free stand-in.

    Raises:
        ClipItError: no file, unknown keys, picks outside the annotated frames, or no captions.
    """
    candidates = [folder / f"{annotation.name}.npz", folder / f"{key}.npz"]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise ClipItError(f"No features for '{annotation.name}' ({key}): expected {candidates[0]} or {candidates[1]}")
    with np.load(path, allow_pickle=False) as data:
        if "embeddings" in data and "frame_numbers" in data:
            features, picks = data["embeddings"], data["frame_numbers"].astype(np.int64) - 1
        elif "features" in data and "picks" in data:
            features, picks = data["features"], data["picks"].astype(np.int64)
        else:
            raise ClipItError(
                f"'{path}' holds {sorted(data.files)}; expected 'embeddings' + 'frame_numbers' (1-based) "
                f"or 'features' + 'picks' (0-based)"
            )
        text = np.asarray(data["captions"], dtype=np.float32) if captions and "captions" in data else None
    if captions and text is None:
        raise ClipItError(
            f"'{path}' holds no 'captions' (caption embeddings); write the features with a captioner "
            f"(fiftyone-clipit features DATASET --captioner MODEL) or leave out --captions"
        )
    if picks.ndim != 1 or len(picks) != len(features) or not len(picks):
        raise ClipItError(f"'{path}': {len(picks)} picks for {len(features)} feature rows")
    if picks[0] < 0 or picks[-1] >= annotation.n_frames or np.any(np.diff(picks) <= 0):
        raise ClipItError(
            f"'{path}': picks must be increasing frame indices inside the video's {annotation.n_frames} "
            f"frames; were the features computed on the same copy of the video?"
        )
    features = np.asarray(features, dtype=np.float32)
    features = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    return features, picks, text if text is not None else caption_free_text(features)


def benchmark_videos(
    dataset: str, features_dir: str, annotations_path: str | None = None, max_segment: float = ShotOptions.max_segment,
    proportion: float = DEFAULT_BUDGET, captions: bool = False,
) -> dict[str, TrainingVideo]:
    """Every annotated video of the benchmark as a TrainingVideo, keyed by split key (video_N).

    Raises:
        ClipItError: the folder is missing, or some videos have no features (all are named).
    """
    folder = Path(features_dir)
    if not folder.is_dir():
        raise ClipItError(f"Features folder '{features_dir}' does not exist; give the folder of per-video .npz files")
    videos, missing = {}, []
    for index, annotation in enumerate(read_annotations(dataset, annotations_path), start=1):
        key = f"video_{index}"
        try:
            features, picks, text = load_features(folder, annotation, key, captions)
        except ClipItError as e:
            missing.append(str(e))
            continue
        users = annotation.user_summaries
        if users is None:
            shots = uniform_change_points(annotation.n_frames, max(1, round(2 * annotation.fps)))
            users = user_keyshot_summaries(annotation.gt_score[None, :], shots)
        step_rate = len(picks) / (annotation.n_frames / annotation.fps)
        item = FrameEmbeddings(np.asarray(picks) + 1, features, {"fps": step_rate})
        video = training_example(
            annotation.name, item, annotation.n_frames, annotation.fps, text, users, proportion,
            ShotOptions(max_segment=max_segment),
        )
        videos[key] = replace(
            video, user_scores=annotation.user_scores if dataset == "tvsum" else None,
            gt_scores=np.asarray(annotation.gt_score, dtype=np.float64)[video.picks],
        )
    if missing:
        shown = "\n  ".join(missing[:5])
        raise ClipItError(f"{len(missing)} of the {dataset} videos have no usable features:\n  {shown}")
    return videos


def tvsum_user_scores(
    video: H5Video, annotations: list[VideoAnnotation] | None
) -> np.ndarray | None:
    """The TVSum users' per-frame scores of an h5 video, for Kendall / Spearman; None if unknown.

    The h5 files hold no user scores; a TVSum video's come from TVSum's .mat, found by the
    file's `video_name` or else by its key (`video_N` is the N-th video of the .mat, as the split
    files number them), and kept only when the frame counts agree.
    """
    if video.source != "tvsum" or not annotations:
        return None
    by_name = {a.name: a for a in annotations}
    match = by_name.get(video.name)
    if match is None and video.key.startswith("video_") and video.key[6:].isdigit():
        index = int(video.key[6:]) - 1
        match = annotations[index] if 0 <= index < len(annotations) else None
    return match.user_scores if match is not None and match.n_frames == video.n_frames else None


def h5_benchmark_videos(
    h5_files: list[str], features_dir: str | None, h5_features: bool = False, dataset: str | None = None,
    captions: bool = False, tvsum_annotations: list[VideoAnnotation] | None = None,
) -> dict[str, TrainingVideo]:
    """Every video of the h5 files as a TrainingVideo with the file's ground truth, shots and picks.

    Keys are `<source>/video_N` (e.g. `tvsum/video_3`), as mixed split files name them, and also
    `video_N` for the videos of `dataset`'s own file (or of the only file given). TVSum videos
    carry their users' per-frame scores from `tvsum_annotations` (see `tvsum_user_scores`).

    Raises:
        ClipItError: a file or key is missing, or some videos have no features (all are named).
    """
    if not h5_features and features_dir is None:
        raise ClipItError("Give --features DIR (your CLIP features) or --h5-features (the file's own features)")
    folder = Path(features_dir) if features_dir is not None else None
    if folder is not None and not folder.is_dir():
        raise ClipItError(f"Features folder '{features_dir}' does not exist; give the folder of per-video .npz files")
    videos, missing = {}, []
    for h5_file in h5_files:
        for key, video in read_eccv16_h5(h5_file).items():
            if h5_features:
                features, picks = video.features, video.picks
                features = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
                text = caption_free_text(features)
            else:
                try:
                    features, picks, text = load_features(folder, video, key, captions)
                except ClipItError as e:
                    missing.append(f"{video.source}/{key}: {e}")
                    continue
            item = TrainingVideo(
                name=f"{video.source}/{key}",
                features=features,
                text=text,
                picks=picks,
                n_frames=video.n_frames,
                change_points=video.change_points,
                user_summaries=video.user_summary,
                user_scores=tvsum_user_scores(video, tvsum_annotations),
                gt_scores=video.gtscore if h5_features else upsample_scores(video.gtscore, video.picks, video.n_frames)[picks],
            )
            videos[f"{video.source}/{key}"] = item
            if len(h5_files) == 1 or video.source == dataset:
                videos[key] = item
    if missing:
        shown = "\n  ".join(missing[:5])
        raise ClipItError(f"{len(missing)} videos of {h5_files} have no usable features:\n  {shown}")
    return videos


def run_benchmark(
    dataset: str,
    features_dir: str | None,
    splits: str | None = None,
    options: TrainingOptions | None = None,
    benchmark_options: BenchmarkOptions | None = None,
    *,
    annotations_path: str | None = None,
    h5: list[str] | None = None,
    device: str | None = None,
    progress=None,
    **settings,
) -> BenchmarkResult:
    """Trains and tests a scorer on each split of the protocol and tabulates the test F1.

    Args:
        dataset: "tvsum" or "summe".
        features_dir: the folder of per-video .npz features (see the module docstring).
        splits (None): a split file; None: the PGL-SUM splits in the shared data.
        options (None): training options; None: the defaults with the dataset's F1 mode (DATASET_F1_MODE)
            (avg for TVSum, max for SumMe). Their validation_fraction is the share of each split's
            training videos kept for model selection.
        benchmark_options (None): a `BenchmarkOptions`; keyword `settings` build or replace
            them: `preset` ("paper", the scorer's shapes), `method` ("train" a scorer per split,
            or "gtscore": score the test videos with their annotation's consensus score, no
            training, which checks the protocol and the files), `captions` (the text is each
            features file's `captions`, caption embeddings, in training and test alike; False:
            the caption-free stand-in), `h5_features` (with `h5`, train on the files' own
            GoogLeNet features).
        annotations_path (None): the .mat file (TVSum) or GT folder (SumMe); None: shared data.
        h5 (None): eccv16 h5 files; given, their ground truth, shots and picks are used.
        device (None): torch device.
        progress (None): a callback(fraction, label) for each split's training.

    Returns:
        the mean F1 over splits and, per split, its test F1, the epoch kept and its validation F1.
    """
    chosen = BenchmarkOptions.of(benchmark_options, **settings)
    preset, method, captions, h5_features = chosen.preset, chosen.method, chosen.captions, chosen.h5_features
    options = options or TrainingOptions(f1_mode=DATASET_F1_MODE[dataset])
    if captions and (h5_features or features_dir is None):
        raise ClipItError("--captions reads caption embeddings from the --features files; give --features DIR")
    if h5:
        videos = h5_benchmark_videos(h5, features_dir, h5_features, dataset, captions, h5_tvsum_annotations(h5, annotations_path))
        setting = "h5 ground truth and shots, " + (
            "the file's GoogLeNet features (vision-only variant)" if h5_features else "your features"
        )
    else:
        if h5_features:
            raise ClipItError("--h5-features needs --h5 FILE")
        if features_dir is None:
            raise ClipItError("Give --features DIR, the folder of per-video .npz features")
        videos = benchmark_videos(dataset, features_dir, annotations_path, proportion=options.proportion, captions=captions)
        setting = ANNOTATION_SETTING
    splits_file = splits or DEFAULT_SPLITS[dataset]
    rows = []
    for index, split in enumerate(read_splits(splits_file)):
        unknown = [k for k in split["train_keys"] + split["test_keys"] if k not in videos]
        if unknown:
            holder = f"none of the h5 files {[Path(f).name for f in h5]} holds" if h5 else f"{dataset} does not have"
            raise ClipItError(f"Split {index} of '{splits_file}' names videos {unknown[:5]} that {holder}")
        test_videos = [videos[k] for k in split["test_keys"]]
        if method == "gtscore":
            scores = [v.gt_scores for v in test_videos]
            selection = {"best_epoch": None, "n_train": 0, "n_validation": 0}
        else:
            result = train([videos[k] for k in split["train_keys"]], load_preset(preset), options, device=device, progress=progress)
            scores = score_videos(result.model, test_videos, attention=options.attention)
            selection = {
                "best_epoch": result.best_epoch, result.criterion: result.best_value,
                "n_train": len(result.train_names), "n_validation": len(result.validation_names),
            }
        f1 = [video_f1(v, s, options.proportion, options.f1_mode) for v, s in zip(test_videos, scores)]
        rows.append({
            "split": index,
            "f1": float(np.mean(f1)),
            "video_f1": dict(zip(split["test_keys"], map(float, f1))),
            **rank_correlations(test_videos, scores),
            **selection,
            "n_test": len(test_videos),
        })
    correlated = [r for r in rows if r["kendall"] is not None]
    return BenchmarkResult(
        dataset, str(splits_file), float(np.mean([r["f1"] for r in rows])), rows, setting,
        split_setting=split_setting(str(splits_file)), preset=preset if method == "train" else "none",
        text=("captions" if captions else "caption-free") if method == "train" else "none", method=method,
        mean_kendall=float(np.mean([r["kendall"] for r in correlated])) if correlated else None,
        mean_spearman=float(np.mean([r["spearman"] for r in correlated])) if correlated else None,
    )


def h5_tvsum_annotations(h5_files: list[str], annotations_path: str | None) -> list[VideoAnnotation] | None:
    """TVSum's annotations (their user scores) when an h5 file holds TVSum and the .mat is at hand.

    Raises:
        ClipItError: `annotations_path` is given but is not TVSum's .mat.
    """
    if not any("tvsum" in Path(f).name.lower() for f in h5_files):
        return None
    if annotations_path is None and not (shared_data_dir() / "tvsum" / "ydata-tvsum50.mat").is_file():
        return None
    return read_tvsum(annotations_path)


def split_setting(splits_file: str) -> str:
    """DSNet's names for what a split file holds: canonical, augmented or transfer."""
    name = Path(splits_file).name
    return "augmented" if "_aug" in name else "transfer" if "_trans" in name else "canonical"


def rank_correlations(videos: list[TrainingVideo], step_scores: list[np.ndarray]) -> dict[str, float | None]:
    """Kendall's tau-b and Spearman's rho of the frame scores against each video's user scores
    (Otani et al. 2019), averaged over users, then videos; None where the videos have none."""
    if not videos or any(v.user_scores is None for v in videos):
        return {"kendall": None, "spearman": None}
    frames = [upsample_scores(s, v.picks, v.n_frames) for v, s in zip(videos, step_scores)]
    return {
        method: float(np.mean([rank_correlation(f, v.user_scores, method) for v, f in zip(videos, frames)]))
        for method in ("kendall", "spearman")
    }


def format_table(result: BenchmarkResult) -> str:
    """The F1 table as text: one line per split, then the mean."""
    lines = [
        f"{result.dataset} ({result.splits_file}): summary F1 on each split's test videos",
        f"  {result.split_setting} splits; " + (
            f"preset {result.preset}; text: {result.text}" if result.method == "train"
            else "scored by the annotation's own gtscore (no training: a reference)"
        ) + f"; {result.setting}",
    ]
    for row in result.splits:
        selection = {k: v for k, v in row.items() if k.startswith("validation_")}
        chosen = ", ".join(f"{k} {v:.4f}" for k, v in selection.items())
        ranks = f", Kendall {row['kendall']:.3f}, Spearman {row['spearman']:.3f}" if row["kendall"] is not None else ""
        kept = f"; epoch {row['best_epoch']} kept, {chosen}" if row["best_epoch"] is not None else ""
        lines.append(
            f"  split {row['split']}: F1 {row['f1']:.4f}{ranks}  (train {row['n_train']}, validation "
            f"{row['n_validation']}, test {row['n_test']}{kept})"
        )
    if result.mean_kendall is not None:
        lines.append(f"  mean Kendall {result.mean_kendall:.3f}, mean Spearman {result.mean_spearman:.3f}")
    lines.append(f"  mean F1 over {len(result.splits)} splits: {result.mean_f1:.4f}")
    return "\n".join(lines)


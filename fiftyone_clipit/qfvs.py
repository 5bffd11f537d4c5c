"""QFVS (Sharghi et al., CVPR 2017) as the CLIP-It paper ran it: four rounds over the four videos.

`fiftyone-clipit benchmark qfvs --features DIR` runs it. Each video is cut into 5-second shots
(the dataset's own shots: one line of concept tags each); each of its 45 queries is a pair of
concepts with an oracle summary. Round r tests on video r, chooses the epoch on the video before
it (P04 for P01, P01 for P02, ...) and trains on the other two, one training example per
(video, concept pair): the video's shot features, the two concepts' text embeddings as the
text, the oracle summary as the target. The test video is scored once per query; its summary is
the top `top_percent` of its shots (2%, as the public QFVS code of the papers that follow
Sharghi et al. does); precision, recall and F1 are the concept-IoU matching of `metrics.qfvs_f1`
against the oracle, averaged over the video's queries, then over videos.

The same run scores the baselines the trained scorer must beat: the same scorer trained and tested
with one text for every query (query-blind: what the shots alone teach), zero-shot (the mean
cosine of a shot's features with the two concepts) and random shots.

Features: one `.npz` per video under DIR named after it (`P01.npz`), holding either `features`
(n_shots, d), one row per 5-second shot, or `embeddings` (n, d) + `frame_numbers` (n,) 1-based +
`fps` (the video's frame rate), as `compute_frame_embeddings` stores frames, pooled here into the
5-second shots. The concepts' text embeddings come from `concepts.npz` in the same folder (one
array per concept of QFVS's dictionary, from the CLIP model that embedded the frames) or from a
text encoder (the CLI loads the CLIP model named by `--model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fiftyone_clipit.defaults import ZERO_SHOT
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.metrics import qfvs_f1
from fiftyone_clipit.options import TrainingOptions
from fiftyone_clipit.readers import QFVSVideo, read_qfvs
from fiftyone_clipit.scorer import load_preset
from fiftyone_clipit.training import Progress, TrainingVideo, score_videos, train

SHOT_SECONDS = 5.0
DEFAULT_TOP_PERCENT = 0.02
CONCEPTS_FILE = "concepts.npz"
METHODS = ("clipit", "query-blind", ZERO_SHOT, "random")

#: sentences -> L2-normalised (n, d) text embeddings
TextEncoder = Callable[[Sequence[str]], np.ndarray]


@dataclass
class QFVSResult:
    """The paper's QFVS table: per method and test video, P / R / F1 (mean over queries), and means.

    Attributes:
        table: method -> rows {"video", "precision", "recall", "f1"}, one per test video.
        means: method -> {"precision", "recall", "f1"} averaged over the test videos.
        rounds: per round: test, validation and training videos, the epoch kept and its
            validation semantic F1.
    """

    preset: str
    top_percent: float
    table: dict[str, list[dict]] = field(default_factory=dict)
    means: dict[str, dict[str, float]] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)
    text: str = "the query's two concepts"
    ground_truth: str = "oracle summaries, 5-second shots, concept-IoU matching"


def qfvs_rounds(names: Sequence[str]) -> list[tuple[list[str], str, str]]:
    """(training videos, validation video, test video) of each round: test r, validate r-1."""
    if len(names) < 3:
        raise ClipItError(f"QFVS rounds need at least 3 videos (train, validate, test), got {list(names)}")
    rounds = []
    for r, test in enumerate(names):
        validation = names[r - 1]
        rounds.append(([n for n in names if n not in (test, validation)], validation, test))
    return rounds


def load_shot_features(folder: Path, video: QFVSVideo, shot_seconds: float = SHOT_SECONDS) -> np.ndarray:
    """A video's L2-normalised features per shot, float32 (n_shots, d), from `<name>.npz`.

    Raises:
        ClipItError: no file, unknown keys, or features for another number of shots than the
            video's concept tags.
    """
    path = folder / f"{video.name}.npz"
    if not path.is_file():
        raise ClipItError(f"No features for QFVS video {video.name}: expected {path}")
    n_shots = len(video.shot_concepts)
    with np.load(path, allow_pickle=False) as data:
        if "features" in data:
            shots = np.asarray(data["features"], dtype=np.float32)
            if shots.ndim != 2 or len(shots) != n_shots:
                raise ClipItError(
                    f"'{path}': 'features' has shape {shots.shape}, but {video.name}'s tags describe "
                    f"{n_shots} shots of {shot_seconds:g} s; give one row per shot"
                )
        elif {"embeddings", "frame_numbers", "fps"} <= set(data.files):
            shots = pool_shots(data["embeddings"], data["frame_numbers"], float(data["fps"]), n_shots,
                               shot_seconds, str(path))
        else:
            raise ClipItError(
                f"'{path}' holds {sorted(data.files)}; expected 'features' (one row per shot) or "
                f"'embeddings' + 'frame_numbers' (1-based) + 'fps'"
            )
    norms = np.linalg.norm(shots, axis=1, keepdims=True)
    if not np.all(np.isfinite(shots)) or np.any(norms == 0):
        raise ClipItError(f"'{path}': features hold NaN, inf or all-zero rows; recompute them")
    return shots / norms


def pool_shots(
    embeddings: np.ndarray, frame_numbers: np.ndarray, fps: float, n_shots: int,
    shot_seconds: float = SHOT_SECONDS, source: str = "features",
) -> np.ndarray:
    """Mean frame embedding of each `shot_seconds` shot, float32 (n_shots, d).

    A trailing partial shot the tags do not describe is dropped.

    Raises:
        ClipItError: a bad frame rate, or a shot with no sampled frame (the frames do not
            cover the tagged shots).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    frame_numbers = np.asarray(frame_numbers, dtype=np.int64)
    if not np.isfinite(fps) or fps <= 0:
        raise ClipItError(f"'{source}': fps must be a positive number, got {fps}")
    if embeddings.ndim != 2 or len(embeddings) != len(frame_numbers):
        raise ClipItError(f"'{source}': {len(frame_numbers)} frame numbers for embeddings of shape {embeddings.shape}")
    shot_of = ((frame_numbers - 1) / fps // shot_seconds).astype(np.int64)
    keep = shot_of < n_shots
    counts = np.bincount(shot_of[keep], minlength=n_shots)
    if np.any(counts == 0):
        empty = np.flatnonzero(counts == 0)
        raise ClipItError(
            f"'{source}': {len(empty)} of the {n_shots} tagged {shot_seconds:g}-second shots have no "
            f"sampled frame (first: shot {empty[0] + 1}); were the frames sampled from the whole video "
            f"at its frame rate ({fps:g} fps)?"
        )
    sums = np.zeros((n_shots, embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, shot_of[keep], embeddings[keep])
    return (sums / counts[:, None]).astype(np.float32)


def concept_embeddings(
    folder: Path, dictionary: Sequence[str], text_encoder: TextEncoder | None = None
) -> dict[str, np.ndarray]:
    """Each concept's L2-normalised text embedding, from `concepts.npz` or from `text_encoder`.

    Raises:
        ClipItError: neither is given, or the file lacks a concept.
    """
    path = folder / CONCEPTS_FILE
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            missing = [c for c in dictionary if c not in data]
            if missing:
                raise ClipItError(f"'{path}' has no embedding for the QFVS concepts {missing[:5]}")
            vectors = np.stack([np.asarray(data[c], dtype=np.float32).reshape(-1) for c in dictionary])
    elif text_encoder is not None:
        vectors = np.asarray(text_encoder(list(dictionary)), dtype=np.float32)
    else:
        raise ClipItError(
            f"No text embeddings for QFVS's {len(dictionary)} concepts: put {CONCEPTS_FILE} (one array per "
            f"concept) in '{folder}', or name the CLIP model that embedded the frames (--model)"
        )
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    return dict(zip(dictionary, vectors))


def query_examples(
    video: QFVSVideo, shot_features: np.ndarray, concepts: dict[str, np.ndarray]
) -> list[TrainingVideo]:
    """One example per concept pair: the shots as steps, the two concepts as text, the oracle as target."""
    if shot_features.shape[1] != next(iter(concepts.values())).shape[0]:
        raise ClipItError(
            f"QFVS video {video.name}: {shot_features.shape[1]}-d shot features but "
            f"{next(iter(concepts.values())).shape[0]}-d concept embeddings; use one CLIP model for both"
        )
    n_shots = len(shot_features)
    steps = np.arange(n_shots, dtype=np.int64)
    examples = []
    for query in video.queries:
        oracle = np.zeros((1, n_shots), dtype=bool)
        oracle[0, query.oracle] = True
        examples.append(TrainingVideo(
            name=f"{video.name}/{'_'.join(query.concepts)}",
            features=shot_features,
            text=np.stack([concepts[c] for c in query.concepts]),
            picks=steps,
            n_frames=n_shots,
            change_points=np.stack([steps, steps], axis=1),
            user_summaries=oracle,
        ))
    return examples


def top_shots(step_scores: np.ndarray, top_percent: float = DEFAULT_TOP_PERCENT) -> np.ndarray:
    """The summary: the best-scored `top_percent` of the shots (at least one), in time order."""
    k = max(1, int(len(step_scores) * top_percent))
    return np.sort(np.argsort(-np.asarray(step_scores), kind="stable")[:k])


def zero_shot_scores(example: TrainingVideo) -> np.ndarray:
    """The training-free baseline: the mean cosine of each shot with the query's concepts."""
    return (example.features @ np.atleast_2d(example.text).T).mean(axis=1)


def _semantic(video: QFVSVideo, scores: list[np.ndarray], top_percent: float) -> dict:
    """P / R / F1 of a video's query summaries against their oracles, averaged over the queries."""
    per_query = np.array([
        qfvs_f1(top_shots(s, top_percent), query.oracle, video.shot_concepts)
        for query, s in zip(video.queries, scores)
    ])
    precision, recall, f1 = per_query.mean(axis=0)
    return {"video": video.name, "precision": float(precision), "recall": float(recall), "f1": float(f1)}


def run_qfvs(
    features_dir: str,
    qfvs_folder: str | None = None,
    preset: str = "paper",
    options: TrainingOptions | None = None,
    top_percent: float = DEFAULT_TOP_PERCENT,
    text_encoder: TextEncoder | None = None,
    device: str | None = None,
    progress: Progress = None,
) -> QFVSResult:
    """Runs the four QFVS rounds and tabulates P / R / F1 of the scorer and the baselines.

    Args:
        features_dir: the folder of per-video `.npz` features (see the module docstring).
        qfvs_folder (None): QFVS's origin_data folder; None: the shared data.
        preset ("paper"): the scorer's shapes.
        options (None): training options; None: the library's defaults. The epoch is chosen
            by the validation video's semantic F1.
        top_percent (0.02): the share of shots in a summary.
        text_encoder (None): embeds the concepts when the folder has no `concepts.npz`.
        device (None): torch device.
        progress (None): True for a progress bar, or a callback(fraction, label) per round.

    Raises:
        ClipItError: missing features or concept embeddings, a shot count that differs from the
            tags, or a bad `top_percent`; all before any training.
    """
    if not 0 < top_percent <= 1:
        raise ClipItError(f"top_percent must be in (0, 1], got {top_percent}")
    options = options or TrainingOptions()
    folder = Path(features_dir)
    if not folder.is_dir():
        raise ClipItError(f"Features folder '{features_dir}' does not exist; give the folder of P01.npz ... P04.npz")
    videos = {v.name: v for v in read_qfvs(qfvs_folder)}
    shots = {name: load_shot_features(folder, video) for name, video in videos.items()}
    concepts = concept_embeddings(folder, next(iter(videos.values())).dictionary, text_encoder)
    examples = {name: query_examples(video, shots[name], concepts) for name, video in videos.items()}
    queries = {
        example.name: (video, query)
        for name, video in videos.items() for example, query in zip(examples[name], video.queries)
    }

    def semantic_f1(example: TrainingVideo, step_scores: np.ndarray) -> float:
        video, query = queries[example.name]
        return qfvs_f1(top_shots(step_scores, top_percent), query.oracle, video.shot_concepts)[2]

    result = QFVSResult(preset=preset, top_percent=top_percent, table={m: [] for m in METHODS})
    rng = np.random.default_rng(options.seed)
    same_text = np.mean(list(concepts.values()), axis=0, keepdims=True)
    blind = {name: [replace(e, text=same_text) for e in group] for name, group in examples.items()}
    for train_names, validation_name, test_name in qfvs_rounds(list(videos)):
        trained, blind_model = (
            train(
                [e for n in train_names for e in source[n]], load_preset(preset), options,
                validation=source[validation_name], device=device, progress=progress, validation_metric=semantic_f1,
            )
            for source in (examples, blind)
        )
        test = examples[test_name]
        scores = {
            "clipit": score_videos(trained.model, test, attention=options.attention),
            "query-blind": score_videos(blind_model.model, blind[test_name], attention=options.attention),
            ZERO_SHOT: [zero_shot_scores(e) for e in test],
            "random": [rng.random(len(e.features)) for e in test],
        }
        for method in METHODS:
            result.table[method].append(_semantic(videos[test_name], scores[method], top_percent))
        result.rounds.append({
            "test": test_name, "validation": validation_name, "train": train_names,
            "best_epoch": trained.best_epoch, "validation_f1": trained.best_value,
        })
    result.means = {
        method: {k: float(np.mean([row[k] for row in rows])) for k in ("precision", "recall", "f1")}
        for method, rows in result.table.items()
    }
    return result


def format_qfvs_table(result: QFVSResult) -> str:
    """The table as the paper lays it out: P, R, F1 per test video and their mean, per method."""
    videos = [row["video"] for row in result.table[METHODS[0]]]
    header = "".join(f" | {v:^20}" for v in [*videos, "mean"])
    lines = [
        f"QFVS: semantic P / R / F1 on each round's test video (top {result.top_percent:.0%} of shots; "
        f"preset {result.preset}; text: {result.text}; {result.ground_truth})",
        f"  {'method':<10}{header}",
    ]
    for method, rows in result.table.items():
        cells = [*rows, result.means[method]]
        lines.append(f"  {method:<10}" + "".join(
            f" | {c['precision']:.3f} {c['recall']:.3f} {c['f1']:.3f}  " for c in cells
        ))
    for r in result.rounds:
        lines.append(
            f"  round test {r['test']}: trained on {', '.join(r['train'])}, epoch {r['best_epoch']} kept "
            f"(validation {r['validation']} semantic F1 {r['validation_f1']:.4f})"
        )
    return "\n".join(lines)

"""Readers of the published ground truth: TVSum, SumMe, QFVS, QVHighlights and the split files.

FiftyOne-free: each reader returns plain dataclasses of numpy arrays, so the metrics and the
protocol checks (``fiftyone-clipit eval-check``) run on the annotations alone, without the videos.
``fiftyone_clipit.fo.groundtruth`` attaches the same objects to a FiftyOne dataset when the videos
are at hand. A ``None`` path means the shared data folder (:func:`shared_data_dir`); a missing
file raises a :class:`ClipItError` that names the path and how to supply it.

Sources: TVSum50 (Song et al., CVPR 2015), SumMe (Gygli et al., ECCV 2014), QFVS / UT Egocentric
(Sharghi et al., CVPR 2017), QVHighlights (Lei et al., NeurIPS 2021); see PROVENANCE.md of the
shared data for where each file comes from and its terms.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fiftyone_clipit.defaults import DEFAULT_BUDGET
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.summary import keyshot_summary, summary_capacity

#: QFVS cuts its videos into 5-second shots.
QFVS_SHOT_SECONDS = 5.0
#: QVHighlights scores 2-second clips.
QVHIGHLIGHTS_CLIP_SECONDS = 2.0
QVHIGHLIGHTS_SPLITS = ("train", "val")


@dataclass(frozen=True)
class VideoAnnotation:
    """The ground truth of one TVSum / SumMe video.

    Attributes:
        name: the TVSum video id or the SumMe file stem (the video file is ``<name>.mp4``).
        n_frames: frames in the video.
        fps: frames per second.
        user_scores: ``(n_users, n_frames)`` float; TVSum: importance 1-5; SumMe: the GT file's
            ``user_score`` transposed (> 0 = selected).
        user_summaries: ``(n_users, n_frames)`` bool, or None where not defined. SumMe: the users'
            selections; TVSum: each user's keyshot summary built by the protocol from that user's
            scores (the 2-second annotation segments as shots, knapsack, 15% floor budget).
        gt_score: ``(n_frames,)`` float, the dataset's consensus score.
        category: TVSum category code (e.g. ``"VT"``), None for SumMe.
        title: TVSum video title, None for SumMe.
    """

    name: str
    n_frames: int
    fps: float
    user_scores: np.ndarray
    user_summaries: np.ndarray | None
    gt_score: np.ndarray
    category: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class QFVSQuery:
    """One QFVS query (a pair of concepts) with its oracle and user summaries.

    Attributes:
        concepts: the two concepts of the query, e.g. ``("Book", "Street")``.
        oracle: ``(n,)`` int, 0-based shot indices of the oracle summary.
        user_summaries: one ``(n_u,)`` int array of 0-based shot indices per user.
    """

    concepts: tuple[str, str]
    oracle: np.ndarray
    user_summaries: tuple[np.ndarray, ...]

    @property
    def text(self) -> str:
        """The query as words, e.g. ``"Book Street"``."""
        return " ".join(self.concepts)


@dataclass(frozen=True)
class QFVSVideo:
    """One UT Egocentric video of QFVS: dense per-shot concept tags and its 45 queries.

    Attributes:
        name: ``"P01"`` .. ``"P04"``.
        dictionary: the 48 concept names, in the order of the ``shot_concepts`` columns.
        shot_concepts: ``(n_shots, n_concepts)`` bool, shot i covers seconds [5 i, 5 (i + 1)).
        queries: the query-focused summaries.
        global_oracle: ``(n,)`` int, 0-based shots of the query-free oracle summary.
        global_user_summaries: the query-free user summaries, 0-based shot indices.
    """

    name: str
    dictionary: tuple[str, ...]
    shot_concepts: np.ndarray
    queries: tuple[QFVSQuery, ...]
    global_oracle: np.ndarray
    global_user_summaries: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class HighlightQuery:
    """One QVHighlights query with its 2-second clips' saliency scores.

    Attributes:
        qid: the query id.
        query: the query text.
        vid: the video id (``<youtube id>_<start>_<end>``; the file is ``<vid>.mp4``).
        duration: seconds.
        saliency: ``(n_clips, 3)`` int 0-4 for every clip of the video (0 for unlisted clips);
            ``n_clips = int(duration / 2)`` as in Moment-DETR's evaluation.
        relevant_windows: ``[start, end]`` seconds of the moments that match the query.
    """

    qid: int
    query: str
    vid: str
    duration: float
    saliency: np.ndarray
    relevant_windows: tuple[tuple[float, float], ...]


#: what every video of an eccv16_dataset_*_google_pool5.h5 file holds
H5_KEYS = ("features", "gtscore", "gtsummary", "user_summary", "change_points", "n_frame_per_seg", "n_frames", "picks")


@dataclass(frozen=True)
class H5Video:
    """One video of the standard summarisation h5 files (eccv16_dataset_{tvsum,summe,ovp,youtube}_google_pool5.h5).

    Attributes:
        key: the video's group in the file (``video_N``, the key split files use).
        name: its ``video_name`` when the file has one, else the key.
        source: the dataset the file holds (``tvsum``, ``summe``, ``ovp``, ``youtube``, or the file stem).
        features: float32 ``(n_steps, d)``: the file's GoogLeNet pool5 features at the picks.
        gtscore: float ``(n_steps,)`` consensus importance at the picks.
        gtsummary: ``(n_steps,)`` the consensus keyshots at the picks.
        user_summary: bool ``(n_users, n_frames)``.
        change_points: int64 ``(n_shots, 2)`` inclusive ``[first, last]`` frames (KTS shots).
        n_frame_per_seg: int64 ``(n_shots,)``.
        n_frames: frames in the video.
        picks: int64 ``(n_steps,)`` 0-based sampled frames.
    """

    key: str
    name: str
    source: str
    features: np.ndarray
    gtscore: np.ndarray
    gtsummary: np.ndarray
    user_summary: np.ndarray
    change_points: np.ndarray
    n_frame_per_seg: np.ndarray
    n_frames: int
    picks: np.ndarray


def read_eccv16_h5(path: str | os.PathLike) -> dict[str, H5Video]:
    """Read a standard summarisation h5 file: the ground truth, shots and picks published numbers use.

    Args:
        path: e.g. ``eccv16_dataset_tvsum_google_pool5.h5`` (DR-DSN / DSNet / PGL-SUM layout).

    Returns:
        ``{key: H5Video}`` in the file's order (``video_1``, ``video_2``, ...).

    Raises:
        ClipItError: the file is missing or unreadable, or a video lacks a key (named with the
            file and the video).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ClipItError(f"h5 file '{path}' not found; give the eccv16_dataset_*_google_pool5.h5 file")
    source = _split_source(f"{path.name}/video")
    videos = {}
    try:
        handle = h5py.File(path, "r")
    except OSError as e:
        raise ClipItError(f"'{path}' is not a readable h5 file ({e})") from e
    with handle:
        for key in sorted(handle.keys(), key=_video_order):
            group = handle[key]
            missing = [name for name in H5_KEYS if name not in group]
            if missing:
                raise ClipItError(
                    f"'{path}': video '{key}' has no {missing}; the file must hold {list(H5_KEYS)} per video "
                    f"(the eccv16_dataset_*_google_pool5.h5 layout)"
                )
            name = group["video_name"][()] if "video_name" in group else key
            videos[key] = H5Video(
                key=key,
                name=name.decode() if isinstance(name, bytes) else str(name),
                source=source,
                features=np.asarray(group["features"], dtype=np.float32),
                gtscore=np.asarray(group["gtscore"], dtype=np.float64),
                gtsummary=np.asarray(group["gtsummary"]),
                user_summary=np.asarray(group["user_summary"]) > 0,
                change_points=np.asarray(group["change_points"], dtype=np.int64),
                n_frame_per_seg=np.asarray(group["n_frame_per_seg"], dtype=np.int64),
                n_frames=int(np.asarray(group["n_frames"]).ravel()[0]),
                picks=np.asarray(group["picks"], dtype=np.int64),
            )
    if not videos:
        raise ClipItError(f"'{path}' holds no videos")
    return videos


def _video_order(key: str) -> tuple:
    """``video_2`` before ``video_10``."""
    match = re.search(r"(\d+)$", key)
    return (key[: match.start()], int(match.group(1))) if match else (key, 0)


def shared_data_dir() -> Path:
    """The shared data folder: ``$CLIPIT_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    configured = os.environ.get("CLIPIT_SHARED_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def read_tvsum(path: str | os.PathLike | None = None) -> list[VideoAnnotation]:
    """Read TVSum50's ``ydata-tvsum50.mat`` (MATLAB v7.3, read with h5py).

    Args:
        path (None): the .mat file; None: ``<shared data>/tvsum/ydata-tvsum50.mat``.

    Returns:
        50 annotations in file order (``video_1`` .. ``video_50`` of the split files), 20 users each.

    Raises:
        ClipItError: the file is missing or not the TVSum .mat.
    """
    import h5py

    path = _existing(path, "tvsum/ydata-tvsum50.mat", "the TVSum50 annotations")
    try:
        with h5py.File(path, "r") as mat:
            table = mat["tvsum50"]
            rows = []
            for index in range(table["video"].shape[0]):
                item = {key: mat[table[key][index, 0]][()] for key in table.keys()}
                rows.append(item)
    except (OSError, KeyError) as e:
        raise ClipItError(f"'{path}' is not TVSum50's ydata-tvsum50.mat ({e})") from e
    return [_tvsum_annotation(row) for row in rows]


def _tvsum_annotation(row: dict) -> VideoAnnotation:
    """One TVSum row of the .mat as a VideoAnnotation with protocol-built user summaries."""
    n_frames = int(row["nframes"].item())
    fps = n_frames / float(row["length"].item())
    user_scores = np.asarray(row["user_anno"], dtype=np.float64).reshape(-1, n_frames)
    return VideoAnnotation(
        name=_mat_string(row["video"]),
        n_frames=n_frames,
        fps=fps,
        user_scores=user_scores,
        user_summaries=user_keyshot_summaries(user_scores, tvsum_segments(user_scores)),
        gt_score=np.asarray(row["gt_score"], dtype=np.float64).ravel(),
        category=_mat_string(row["category"]),
        title=_mat_string(row["title"]),
    )


def tvsum_segments(user_scores: np.ndarray) -> np.ndarray:
    """The annotation segments of a TVSum video: the runs of frames where no user's score changes.

    TVSum users scored 2-second segments; their scores change only at segment borders, so these
    runs are the segments (two neighbours that every user scored alike form one run).

    Args:
        user_scores: ``(n_users, n_frames)`` per-frame scores.

    Returns:
        ``(n_segments, 2)`` int64 inclusive ``[first, last]`` frame indices covering the video.
    """
    scores = np.atleast_2d(np.asarray(user_scores))
    n_frames = scores.shape[1]
    starts = np.r_[0, np.flatnonzero(np.any(np.diff(scores, axis=1) != 0, axis=0)) + 1]
    return np.stack([starts, np.r_[starts[1:] - 1, n_frames - 1]], axis=1).astype(np.int64)


def user_keyshot_summaries(
    user_scores: np.ndarray, segments: np.ndarray, proportion: float = DEFAULT_BUDGET
) -> np.ndarray:
    """Each user's keyshot summary from their scores, by the protocol (shot means, knapsack).

    Args:
        user_scores: ``(n_users, n_frames)`` per-frame scores.
        segments: ``(n_shots, 2)`` inclusive ``[first, last]`` frame indices of the shots.
        proportion (0.15): the budget, ``floor(n_frames * proportion)`` frames.

    Returns:
        ``(n_users, n_frames)`` bool.
    """
    user_scores = np.atleast_2d(np.asarray(user_scores, dtype=np.float64))
    capacity = summary_capacity(user_scores.shape[1], proportion)
    return np.stack([keyshot_summary(scores, segments, capacity) for scores in user_scores])


def read_summe(folder: str | os.PathLike | None = None) -> list[VideoAnnotation]:
    """Read SumMe's ground-truth ``.mat`` files (MATLAB 5, read with scipy.io.loadmat).

    Args:
        folder (None): the folder of ``<video>.mat`` files; None: ``<shared data>/summe/GT``.

    Returns:
        25 annotations in sorted file order (``video_1`` .. ``video_25`` of the split files).

    Raises:
        ClipItError: the folder is missing or empty, or a file lacks the SumMe fields.
    """
    from scipy.io import loadmat

    folder = _existing(folder, "summe/GT", "the SumMe GT folder")
    files = sorted(folder.glob("*.mat"))
    if not files:
        raise ClipItError(f"No .mat files in '{folder}'; point it at SumMe's GT folder")
    annotations = []
    for file in files:
        mat = loadmat(str(file))
        try:
            user_score = np.asarray(mat["user_score"], dtype=np.float64).T
            n_frames = int(mat["nFrames"].item())
            fps = float(mat["FPS"].item())
            gt_score = np.asarray(mat["gt_score"], dtype=np.float64).ravel()
        except KeyError as e:
            raise ClipItError(f"'{file}' lacks the SumMe field {e}; is it a SumMe GT file?") from e
        if user_score.shape[1] != n_frames:
            raise ClipItError(f"'{file}': user_score covers {user_score.shape[1]} frames, nFrames is {n_frames}")
        annotations.append(
            VideoAnnotation(file.stem, n_frames, fps, user_score, user_score > 0, gt_score)
        )
    return annotations


def read_splits(path: str | os.PathLike) -> list[dict[str, list[str]]]:
    """Read the 5 train/test splits of PGL-SUM (``.json``) or DSNet (``.yml``).

    Keys are ``video_N`` (N = 1-based index in the .mat / GT order). DSNet's augmented and transfer
    splits mix datasets; there each key keeps its dataset, as ``<dataset>/video_N`` (e.g.
    ``ovp/video_3``), so that keys of different datasets never collide.

    Args:
        path: a split file; a bare name (``"tvsum_splits_pglsum.json"``) is looked up under
            ``<shared data>/splits``.

    Returns:
        One ``{"train_keys": [...], "test_keys": [...]}`` per split.

    Raises:
        ClipItError: the file is missing or holds no splits.
    """
    path = Path(path)
    if not path.exists() and path.parent == Path("."):
        path = shared_data_dir() / "splits" / path
    path = _existing(path, "", "a split file")
    text = path.read_text()
    if path.suffix == ".json":
        splits = json.loads(text)
    else:
        import yaml

        splits = yaml.safe_load(text)
    if not isinstance(splits, list) or not splits:
        raise ClipItError(f"'{path}' holds no list of splits")
    sources = {_split_source(key) for split in splits for keys in split.values() for key in keys}
    keep_source = len(sources) > 1
    return [
        {
            part: [_split_key(key, keep_source) for key in split[part]]
            for part in ("train_keys", "test_keys")
        }
        for split in splits
    ]


def _split_source(key: str) -> str:
    """The dataset of a split key: ``eccv16_dataset_ovp_google_pool5.h5/video_3`` -> ``ovp``."""
    if "/" not in key:
        return ""
    file = key.rsplit("/", 2)[-2]
    match = re.match(r"eccv16_dataset_(\w+?)_google_pool5", file)
    return match.group(1) if match else file


def _split_key(key: str, keep_source: bool) -> str:
    """``video_N``, or ``<dataset>/video_N`` when the split mixes datasets."""
    name = key.rsplit("/", 1)[-1]
    return f"{_split_source(key)}/{name}" if keep_source else name


def read_qfvs(folder: str | os.PathLike | None = None) -> list[QFVSVideo]:
    """Read QFVS's ``origin_data`` folder: concept dictionary, per-shot tags, oracle / user summaries.

    Shot numbers in the files are 1-based; the arrays here are 0-based.

    Args:
        folder (None): the folder holding ``Dense_per_shot_tags``, ``Query-Focused_Summaries`` and
            ``Global_Summaries``; None: ``<shared data>/qfvs``.

    Returns:
        The videos P01-P04, each with its 45 queries (3 user summaries each).

    Raises:
        ClipItError: a file is missing, or a tag is not in the dictionary.
    """
    root = _existing(folder, "qfvs", "the QFVS origin_data folder")
    tags = _existing(root / "Dense_per_shot_tags", "", "QFVS's Dense_per_shot_tags")
    dictionary = tuple(
        line.strip().strip("'") for line in (tags / "Dictionary.txt").read_text().splitlines() if line.strip()
    )
    index = {concept: i for i, concept in enumerate(dictionary)}
    videos = []
    for video_dir in sorted(p for p in tags.iterdir() if p.is_dir()):
        name = video_dir.name
        lines = (video_dir / f"{name}.txt").read_text().rstrip("\n").split("\n")
        shot_concepts = np.zeros((len(lines), len(dictionary)), dtype=bool)
        for shot, line in enumerate(lines):
            for concept in filter(None, (c.strip() for c in line.split(","))):
                if concept not in index:
                    raise ClipItError(f"{video_dir / (name + '.txt')} line {shot + 1}: unknown concept '{concept}'")
                shot_concepts[shot, index[concept]] = True
        queries = []
        oracle_dir = root / "Query-Focused_Summaries" / "Oracle_Summaries" / name
        for oracle_file in sorted(oracle_dir.glob("*_oracle.txt")):
            first, second = oracle_file.name[: -len("_oracle.txt")].split("_")
            users = sorted((root / "Query-Focused_Summaries" / "User_Summaries" / name).glob(f"{first}_{second}_user*.txt"))
            queries.append(QFVSQuery((first, second), _shot_list(oracle_file), tuple(map(_shot_list, users))))
        global_dir = root / "Global_Summaries" / name
        videos.append(
            QFVSVideo(
                name=name,
                dictionary=dictionary,
                shot_concepts=shot_concepts,
                queries=tuple(queries),
                global_oracle=_shot_list(global_dir / "oracle.txt"),
                global_user_summaries=tuple(map(_shot_list, sorted(global_dir.glob("user*.txt")))),
            )
        )
    return videos


def _shot_list(path: Path) -> np.ndarray:
    """A file of 1-based shot numbers, one a line, as 0-based int64 indices."""
    if not path.is_file():
        raise ClipItError(f"QFVS summary file '{path}' is missing")
    return np.array([int(v) - 1 for v in path.read_text().split()], dtype=np.int64)


def read_qvhighlights(
    path: str | os.PathLike | None = None, split: str = "val"
) -> list[HighlightQuery]:
    """Read QVHighlights annotations (``highlight_<split>_release.jsonl``).

    Args:
        path (None): the jsonl file; None: ``<shared data>/qvhighlights/highlight_<split>_release.jsonl``.
        split ("val"): ``"train"`` or ``"val"`` (the test split has no public labels).

    Returns:
        One HighlightQuery per line, in file order.

    Raises:
        ClipItError: unknown split, missing file, or a line without saliency scores.
    """
    if split not in QVHIGHLIGHTS_SPLITS:
        raise ClipItError(f"Unknown QVHighlights split '{split}'. Valid splits are {list(QVHIGHLIGHTS_SPLITS)}")
    path = _existing(path, f"qvhighlights/highlight_{split}_release.jsonl", "QVHighlights annotations")
    queries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        if "saliency_scores" not in item:
            raise ClipItError(f"{path} line {number}: no saliency_scores (the test split has no labels)")
        n_clips = int(item["duration"] / QVHIGHLIGHTS_CLIP_SECONDS)
        saliency = np.zeros((n_clips, 3), dtype=np.int64)
        saliency[np.asarray(item["relevant_clip_ids"], dtype=np.int64)] = item["saliency_scores"]
        queries.append(
            HighlightQuery(
                qid=int(item["qid"]),
                query=item["query"],
                vid=item["vid"],
                duration=float(item["duration"]),
                saliency=saliency,
                relevant_windows=tuple((float(a), float(b)) for a, b in item["relevant_windows"]),
            )
        )
    return queries


def _existing(path: str | os.PathLike | None, default: str, what: str) -> Path:
    """``path`` (or the shared-data default) if it exists, else a ClipItError saying how to supply it."""
    resolved = Path(path) if path is not None else shared_data_dir() / default
    if not resolved.exists():
        raise ClipItError(
            f"{what[0].upper()}{what[1:]} not found at '{resolved}'; pass the path explicitly or set "
            f"CLIPIT_SHARED_DATA to the folder holding tvsum/, summe/, qfvs/, qvhighlights/, splits/"
        )
    return resolved


def _mat_string(array: np.ndarray) -> str:
    """A MATLAB char array read by h5py (uint16 codes) as a str; TVSum stores UTF-8 bytes there."""
    codes = [int(c) for c in np.asarray(array).ravel()]
    if max(codes, default=0) < 256:
        try:
            return bytes(codes).decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "".join(map(chr, codes))

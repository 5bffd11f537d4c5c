"""Reference figures from the real annotations alone, to check the metrics against the papers.

``fiftyone-clipit eval-check`` prints them. Each figure uses only ground truth, so it tells whether
this package computes a protocol the way published tables do before any model is involved:

- TVSum human agreement (Otani et al., CVPR 2019): each user's per-frame scores as the prediction
  against every other user, Kendall tau-b and Spearman rho, averaged over users, then the 50 videos.
  Otani et al. report tau 0.177 and rho 0.204.
- SumMe human F1: each user's selection against the other users (max and avg over them), averaged
  over users, then the 25 videos.
- QFVS user-versus-oracle F1 per video: each user summary scored against the oracle summary with the
  concept-IoU matching, averaged over the 3 users and 45 queries of the video.
- QVHighlights validation HIT@1 and mAP of random clip scores (a fixed seed), at thresholds 2/3/4.

FiftyOne-free (numpy / scipy / h5py).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.metrics import (
    highlight_hit_at_1,
    highlight_map,
    human_agreement,
    leave_one_out_f1,
    qfvs_f1,
)
from fiftyone_clipit.readers import (
    HighlightQuery,
    QFVSVideo,
    VideoAnnotation,
    read_qfvs,
    read_qvhighlights,
    read_summe,
    read_tvsum,
    shared_data_dir,
)

#: Otani et al. (CVPR 2019), TVSum human agreement (each user against every other user).
OTANI_TVSUM_HUMAN = {"kendall": 0.177, "spearman": 0.204}
HIGHLIGHT_THRESHOLD_NAMES = {2: "Fair", 3: "Good", 4: "VeryGood"}


def tvsum_human_agreement(annotations: Sequence[VideoAnnotation]) -> dict[str, Any]:
    """Kendall tau-b and Spearman rho of each user against every other user, mean over videos.

    Returns:
        ``{"kendall": float, "spearman": float, "n_videos": int}``.
    """
    kendall = [human_agreement(a.user_scores, "kendall") for a in annotations]
    spearman = [human_agreement(a.user_scores, "spearman") for a in annotations]
    return {"kendall": float(np.mean(kendall)), "spearman": float(np.mean(spearman)), "n_videos": len(kendall)}


def summe_human_f1(annotations: Sequence[VideoAnnotation]) -> dict[str, Any]:
    """Each user's selection against the others (max and avg over them), mean over users, videos.

    Returns:
        ``{"f1_max": float, "f1_avg": float, "n_videos": int}``.
    """
    best = [leave_one_out_f1(a.user_summaries, "max") for a in annotations]
    mean = [leave_one_out_f1(a.user_summaries, "avg") for a in annotations]
    return {"f1_max": float(np.mean(best)), "f1_avg": float(np.mean(mean)), "n_videos": len(best)}


def qfvs_user_oracle_f1(videos: Sequence[QFVSVideo]) -> dict[str, dict[str, float]]:
    """Each user's query-focused summary against the oracle, mean over users and queries, per video.

    Returns:
        ``{video: {"precision", "recall", "f1", "n_queries"}}`` plus ``"mean"`` over the videos.
    """
    figures: dict[str, dict[str, float]] = {}
    for video in videos:
        scores = np.array(
            [
                qfvs_f1(user, query.oracle, video.shot_concepts)
                for query in video.queries
                for user in query.user_summaries
            ]
        )
        precision, recall, f1 = scores.mean(axis=0)
        figures[video.name] = {
            "precision": float(precision), "recall": float(recall), "f1": float(f1),
            "n_queries": len(video.queries),
        }
    figures["mean"] = {
        key: float(np.mean([v[key] for v in figures.values()])) for key in ("precision", "recall", "f1")
    }
    return figures


def qvhighlights_random_baseline(queries: Sequence[HighlightQuery], seed: int = 0) -> dict[str, dict[str, float]]:
    """HIT@1 and mAP of uniform random clip scores (``numpy.random.default_rng(seed)``).

    Returns:
        ``{"Fair" | "Good" | "VeryGood": {"hit1": float, "map": float}}`` (fractions, not percent).
    """
    rng = np.random.default_rng(seed)
    predictions = [rng.random(query.saliency.shape[0]) for query in queries]
    saliency = [query.saliency for query in queries]
    return {
        name: {
            "hit1": highlight_hit_at_1(predictions, saliency, threshold),
            "map": highlight_map(predictions, saliency, threshold),
        }
        for threshold, name in HIGHLIGHT_THRESHOLD_NAMES.items()
    }


def run_eval_check(data_dir: str | os.PathLike | None = None, seed: int = 0) -> dict[str, Any]:
    """Every reference figure that the shared data allows; a missing dataset is reported, not fatal.

    Args:
        data_dir (None): the folder holding tvsum/, summe/, qfvs/, qvhighlights/; None: the shared
            data (``$CLIPIT_SHARED_DATA`` or ``../shared/data``).
        seed (0): the seed of the QVHighlights random baseline.

    Returns:
        ``{"tvsum": {...}, "summe": {...}, "qfvs": {...}, "qvhighlights": {...}}``; a section whose
        data is missing holds ``{"missing": "<why>"}``.

    Raises:
        ClipItError: none of the datasets could be read.
    """
    root = os.fspath(data_dir) if data_dir is not None else os.fspath(shared_data_dir())
    sections = {
        "tvsum": lambda: tvsum_human_agreement(read_tvsum(os.path.join(root, "tvsum", "ydata-tvsum50.mat"))),
        "summe": lambda: summe_human_f1(read_summe(os.path.join(root, "summe", "GT"))),
        "qfvs": lambda: qfvs_user_oracle_f1(read_qfvs(os.path.join(root, "qfvs"))),
        "qvhighlights": lambda: {
            "split": "val",
            "seed": seed,
            **qvhighlights_random_baseline(
                read_qvhighlights(os.path.join(root, "qvhighlights", "highlight_val_release.jsonl")), seed
            ),
        },
    }
    results: dict[str, Any] = {}
    for name, compute in sections.items():
        try:
            results[name] = compute()
        except ClipItError as e:
            results[name] = {"missing": str(e)}
    if all("missing" in section for section in results.values()):
        raise ClipItError(f"No ground truth could be read under '{root}': {results['tvsum']['missing']}")
    return results


def format_eval_check(results: dict[str, Any]) -> str:
    """The figures of :func:`run_eval_check` as a short report to compare with the papers."""
    lines = []
    tvsum = results["tvsum"]
    if "missing" in tvsum:
        lines.append(f"TVSum: skipped ({tvsum['missing']})")
    else:
        lines.append(
            f"TVSum human agreement ({tvsum['n_videos']} videos, each user vs every other user): "
            f"Kendall tau = {tvsum['kendall']:.3f}, Spearman rho = {tvsum['spearman']:.3f} "
            f"(Otani et al. 2019: {OTANI_TVSUM_HUMAN['kendall']:.3f} / {OTANI_TVSUM_HUMAN['spearman']:.3f})"
        )
    summe = results["summe"]
    if "missing" in summe:
        lines.append(f"SumMe: skipped ({summe['missing']})")
    else:
        lines.append(
            f"SumMe human F1 ({summe['n_videos']} videos, each user vs the others): "
            f"max = {summe['f1_max']:.3f}, avg = {summe['f1_avg']:.3f}"
        )
    qfvs = results["qfvs"]
    if "missing" in qfvs:
        lines.append(f"QFVS: skipped ({qfvs['missing']})")
    else:
        lines.append("QFVS user vs oracle (concept-IoU matching, mean over 3 users x 45 queries):")
        for name, figures in qfvs.items():
            lines.append(
                f"  {name:5s} P = {figures['precision']:.3f}  R = {figures['recall']:.3f}  F1 = {figures['f1']:.3f}"
            )
    qvh = results["qvhighlights"]
    if "missing" in qvh:
        lines.append(f"QVHighlights: skipped ({qvh['missing']})")
    else:
        lines.append(f"QVHighlights {qvh['split']}, random clip scores (seed {qvh['seed']}):")
        for threshold, name in HIGHLIGHT_THRESHOLD_NAMES.items():
            lines.append(
                f"  >= {threshold} ({name:8s}) HIT@1 = {100 * qvh[name]['hit1']:.2f}  mAP = {100 * qvh[name]['map']:.2f}"
            )
    return "\n".join(lines)


def eval_check_json(results: dict[str, Any]) -> str:
    """The figures of :func:`run_eval_check` as one JSON line."""
    return json.dumps(results, sort_keys=True)

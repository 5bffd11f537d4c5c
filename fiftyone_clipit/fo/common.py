"""Helpers every FiftyOne-layer function shares: validation, progress, runs, bulk writes."""

from __future__ import annotations

import logging
import math
import os
import re
import time
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.media as fom
import fiftyone.core.runs as fors
import numpy as np
from fiftyone.core.clips import ClipsView
from fiftyone.core.frame import get_default_frame_fields
from fiftyone.core.sample import get_default_sample_fields
from fiftyone.core.video import FramesView
from pymongo.errors import BulkWriteError
from tqdm.auto import tqdm

from fiftyone_clipit.defaults import Progress
from fiftyone_clipit.errors import OVERWRITE_HINT, BatchError, ClipItError, ItemFailure
from fiftyone_clipit.store import EmbeddingStore

T = TypeVar("T")
logger = logging.getLogger("fiftyone_clipit")


EMBEDDINGS_RUN = "clipit_embeddings"
#: Seconds after declaring a field before checking that no other process's schema save dropped it.
SCHEMA_SETTLE_SECONDS = 0.2
_DECLARE_ATTEMPTS = 10
_DUPLICATE_KEY = 11000
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def video_collection(samples: foc.SampleCollection) -> foc.SampleCollection:
    """The videos to process: `samples` itself, or the source videos of a clips or frames view.

    A clips view (e.g. a summary's or a search's moments in the App) holds only some frames of
    each video; CLIP-It's stages work on whole videos, so they run on the videos those clips
    come from.

    Raises:
        ClipItError: not a sample collection, not videos, or no samples.
    """
    if not isinstance(samples, foc.SampleCollection):
        raise ClipItError(f"Expected a FiftyOne dataset or view, got {type(samples).__name__}")
    if isinstance(samples, (ClipsView, FramesView)):
        samples = root_dataset(samples).select(samples.distinct("sample_id"), ordered=True)
    if samples.media_type != fom.VIDEO:
        raise ClipItError(
            f"'{dataset_name(samples)}' holds {samples.media_type} samples; CLIP-It works on "
            f"video datasets (media type 'video')"
        )
    if len(samples) == 0:
        raise ClipItError(f"The collection of '{dataset_name(samples)}' has no samples to process")
    return samples


def existing_dataset(name: str) -> fo.Dataset:
    """The dataset `name`; a ClipItError that says how to create it when there is none."""
    if not fo.dataset_exists(name):
        raise ClipItError(f"Dataset '{name}' does not exist; create it with `fiftyone-clipit add-videos {name} PATH`")
    return fo.load_dataset(name)


def dataset_name(samples: foc.SampleCollection) -> str:
    """The name of the dataset a view or dataset belongs to."""
    return samples.name if isinstance(samples, fo.Dataset) else samples.dataset_name


def root_dataset(samples: foc.SampleCollection) -> fo.Dataset:
    """The dataset a view or dataset belongs to."""
    return samples if isinstance(samples, fo.Dataset) else fo.load_dataset(samples.dataset_name)


def check_field_name(name: str, what: str) -> str:
    """Field names are identifiers: no dots, spaces or leading digits."""
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise ClipItError(
            f"Invalid {what} '{name}': use letters, digits and '_' and start with a letter"
        )
    return name


def check_field_type(
    samples: foc.SampleCollection, path: str, ftype: type, embedded_doc_type: type | None = None
) -> None:
    """Refuses a field of another type (checked before any work is done)."""
    problem = _field_type_problem(samples, path, ftype, embedded_doc_type)
    if problem:
        raise ClipItError(problem)


def _field_type_problem(
    samples: foc.SampleCollection, path: str, ftype: type, embedded_doc_type: type | None
) -> str | None:
    field = samples.get_field(path)
    if field is None:
        return None
    ok = isinstance(field, ftype) and (
        embedded_doc_type is None or getattr(field, "document_type", None) is embedded_doc_type
    )
    if ok:
        return None
    wanted = embedded_doc_type.__name__ if embedded_doc_type else ftype.__name__
    return f"Field '{path}' already exists as {field}; choose another field name (it must be a {wanted})"


def output_field_problem(
    samples: foc.SampleCollection,
    path: str,
    owner_run: str,
    ftype: type,
    embedded_doc_type: type | None = None,
    overwrite: bool = False,
) -> str | None:
    """Why this plugin may not write `path` (None when it may), checked before any work.

    Every command and operator that writes a field checks it here, before any work. A field may
    be written when it does not exist yet, or when it is this kind of output of this plugin,
    recorded by the run `owner_run` (in its `written_fields`); any other field of the right type
    (ground truth, a summary where a search writes, say) only with `overwrite`. FiftyOne's built-in fields (filepath, metadata, frame_number, ...) and
    fields of another type never.
    """
    frames = path.startswith("frames.")
    name = path.split(".", 1)[1] if frames else path
    built_in = get_default_frame_fields() if frames else get_default_sample_fields()
    if name in built_in or name == "frames":
        kind = "frame" if frames else "sample"
        return f"'{path}' is a field FiftyOne keeps on every {kind}; choose another field name"
    problem = _field_type_problem(samples, path, ftype, embedded_doc_type)
    if problem or overwrite or samples.get_field(path) is None or _owns(root_dataset(samples), owner_run, path):
        return problem
    return (
        f"Field '{path}' exists and was not written by CLIP-It as the output of '{owner_run}': ground "
        f"truth, another stage's output or another tool's, say; choose another field name, or "
        f"{OVERWRITE_HINT} to replace its values"
    )


def _owns(dataset: fo.Dataset, owner_run: str, path: str) -> bool:
    """Whether the run `owner_run` wrote `path`: it exists and lists `path` in its
    `written_fields`. A run recorded before that list existed owns the fields whose names
    start with its key or with a field its settings name (`score_field`, `matches_field`, ...)."""
    if not dataset.has_run(owner_run):
        return False
    config = dataset.get_run_info(owner_run).config
    written = getattr(config, "written_fields", None)
    if written is not None:
        return path in written
    named = [v for k, v in config.serialize().items() if k.endswith("_field") and isinstance(v, str) and v]
    return path.split(".", 1)[-1].startswith((owner_run, *named))


def check_output_field(
    samples: foc.SampleCollection,
    path: str,
    owner_run: str,
    ftype: type,
    embedded_doc_type: type | None = None,
    overwrite: bool = False,
) -> None:
    """Raises the ClipItError of `output_field_problem` when this plugin may not write `path`."""
    problem = output_field_problem(samples, path, owner_run, ftype, embedded_doc_type, overwrite)
    if problem:
        raise ClipItError(problem)


def check_number(value: Any, name: str, minimum: float = 0.0, integer: bool = False, inclusive: bool = False) -> None:
    """Refuses a parameter that is not a finite number above `minimum` (or at it, when `inclusive`).

    Raises:
        ValueError: naming the parameter, the value and what it must be.
    """
    bound = f"{'>=' if inclusive else '>'} {minimum:g}"
    if integer:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        wanted = f"an integer {bound}"
    else:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        wanted = f"a finite number {bound}"
    if not ok or not (value >= minimum if inclusive else value > minimum):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")


def fiftyone_progress(progress: Progress, label: str):
    """`progress` as FiftyOne's methods take it: FiftyOne calls a callback with its ProgressBar,
    this project's callbacks take (fraction, label)."""
    if not callable(progress):
        return progress
    return lambda bar: progress(bar.progress or 0.0, f"{label}: {bar.iteration}/{bar.total}")


def iterate(items: Iterable[T], progress: Progress, label: str, total: int | None = None) -> Iterator[T]:
    """Yields `items` (`total` of them: their length by default), reporting progress as a tqdm
    bar or through a callback."""
    total = len(items) if total is None else total
    if progress is True:
        yield from tqdm(items, total=total, desc=label, unit="video")
        return
    for index, item in enumerate(items):
        if callable(progress):
            progress(index / max(total, 1), f"{label}: {index + 1}/{total}")
        yield item
    if callable(progress):
        progress(1.0, f"{label}: done")


def finish(action: str, failures: list[ItemFailure], n_ok: int, skip_failures: bool) -> None:
    """Raises one error naming every failed item, after the others were processed and saved."""
    if failures and not skip_failures:
        raise BatchError(action, failures, n_ok)
    for failure in failures:
        logger.warning("Skipped %s", failure)


def store_root(dataset: fo.Dataset) -> str:
    """Where a dataset's frame embeddings live: $FIFTYONE_CLIPIT_STORE_DIR or beside FiftyOne's data."""
    if dataset.has_run(EMBEDDINGS_RUN):
        return dataset.get_run_info(EMBEDDINGS_RUN).config.store_dir
    base = os.environ.get("FIFTYONE_CLIPIT_STORE_DIR") or os.path.join(
        fo.config.default_dataset_dir, "clipit-embeddings"
    )
    safe_name = re.sub(r"[^A-Za-z0-9_-]+", "_", dataset.name)
    return os.path.abspath(os.path.join(base, safe_name))


def embedding_store(samples: foc.SampleCollection) -> EmbeddingStore:
    """The embedding store of the dataset `samples` belongs to."""
    return EmbeddingStore(store_root(root_dataset(samples)))


def record_run(dataset: fo.Dataset, run_key: str, config_class: type = fors.RunConfig, **config: Any) -> None:
    """Records what made a result as a FiftyOne custom run (list_runs / get_run_info / delete_run),
    as a `config_class` (a `fiftyone.core.runs.RunConfig`) so that the run reads back typed.

    A record of another class under `run_key` (an earlier version's generic one) is replaced:
    FiftyOne refuses to overwrite a run with one of another class."""
    if dataset.has_run(run_key) and type(dataset.get_run_info(run_key).config) is not config_class:
        dataset.delete_run(run_key)
    dataset.register_run(run_key, config_class(**config), overwrite=True, cleanup=False)


def write_replacing(dataset: fo.Dataset, path: str, values_by_id: dict[str, Any]) -> None:
    """Writes `values_by_id` into the sample field `path` and clears it on every other sample, so
    the field holds one run's output (a search's matches, a reel's moments), not a mix."""
    if dataset.has_field(path):
        old = [i for i in dataset.exists(path).values("id") if i not in values_by_id]
        if old:
            write_in_chunks(dataset, path, {i: None for i in old})
    if values_by_id:
        write_in_chunks(dataset, path, values_by_id)


def write_in_chunks(
    samples: foc.SampleCollection, path: str, values_by_id: dict[str, Any], chunk: int = 32
) -> None:
    """Bulk-writes one value per sample id, `chunk` samples per database round trip."""
    ids = list(values_by_id)
    dataset = root_dataset(samples)

    def write() -> None:
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            retry_frame_inserts(
                lambda: dataset.select(part, ordered=True).set_values(path, [values_by_id[i] for i in part])
            )

    write_declared(dataset, path, write)


def retry_frame_inserts(write: Callable[[], None], attempts: int = 5) -> None:
    """Runs an idempotent write again when it lost a race to create the same frame documents.

    The first frame-field write to a video creates its frame documents; two processes writing
    different frame fields of that video at once can both try, and MongoDB's unique index on
    (sample, frame number) fails the slower one (E11000, which FiftyOne raises as a
    ValueError). The documents exist by then, so writing again only updates them.
    """
    for attempt in range(attempts):
        try:
            write()
            return
        except ValueError as e:
            if attempt == attempts - 1 or not _lost_insert_race(e):
                raise
            logger.info("Frame documents were created by another process meanwhile; writing again")
            time.sleep(0.05 * (attempt + 1))


def _lost_insert_race(error: ValueError) -> bool:
    cause = error.__cause__
    errors = cause.details.get("writeErrors", []) if isinstance(cause, BulkWriteError) else []
    return bool(errors) and all(e.get("code") == _DUPLICATE_KEY for e in errors)


def write_declared(dataset: fo.Dataset, paths: str | Sequence[str], write: Callable[[], None]) -> None:
    """Runs `write`, which may declare the fields `paths`, and makes sure the declarations last.

    FiftyOne saves a dataset's list of fields whole, so when two processes (delegated workers
    on one database) declare fields at the same moment, one save can drop the other's field:
    its values stay in MongoDB but the schema no longer names it. Fields new to this write are
    looked up again, together, once such a save could have landed, and written again until
    they hold.
    """
    paths = ensure_iterable(paths)
    new = [path for path in paths if dataset.get_field(path) is None]
    write()
    new = [path for path in new if dataset.get_field(path) is not None]  # None values declare nothing
    if not new:
        return
    for _ in range(_DECLARE_ATTEMPTS):
        time.sleep(SCHEMA_SETTLE_SECONDS)
        dataset.reload()
        if all(dataset.get_field(path) is not None for path in new):
            return
        logger.info("Fields %s of '%s' were dropped by a concurrent schema save; declaring them again", new, dataset.name)
        write()
    raise ClipItError(
        f"Fields {new} of dataset '{dataset.name}' kept being dropped by other processes' schema "
        f"saves; run the operation again once the other writers finish"
    )


def samples_info(samples: foc.SampleCollection) -> list[tuple[str, str, Any]]:
    """(id, filepath, metadata) of every sample, in one query each."""
    return list(zip(*samples.values(["id", "filepath", "metadata"]))) or []


def ensure_iterable(items: str | Iterable[str]) -> list[str]:
    """A single string becomes a one-item list."""
    return [items] if isinstance(items, str) else list(items)


#: frames read into memory at once by the stages that stream a collection's frame fields (label_scores
#: holds ~4.5 KB per frame of Classifications before it writes them: ~90 MB)
FRAMES_PER_BATCH = 20_000


def frame_batches(samples: foc.SampleCollection, max_frames: int = FRAMES_PER_BATCH) -> Iterator[list[str]]:
    """The collection's sample ids in order, in runs of whole videos of about `max_frames`
    frames (by their metadata; a longer video is a run of its own), so that a stage reading
    frame fields holds one run's frames at a time, whatever the number of videos."""
    part, n = [], 0
    for sample_id, count in zip(*samples.values(["id", "metadata.total_frame_count"])):
        if part and n + (count or 0) > max_frames:
            yield part
            part, n = [], 0
        part.append(sample_id)
        n += count or 0
    if part:
        yield part


def frame_rows(samples: foc.SampleCollection, fields: list[str]) -> Iterator[tuple]:
    """One tuple of `fields` per sample (frame fields included), read a `frame_batches` run at a time."""
    for part in frame_batches(samples):
        yield from zip(*samples.select(part, ordered=True).values(fields))

"""A per-dataset store of frame embeddings, kept outside the frame documents.

One `.npz` file per video (frame numbers, embeddings, and what made them), written to a temporary
name and renamed into place, so a file that exists is complete: a run killed mid-way loses at most
the video in flight. Every process that can read the directory can read the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO, Callable, Collection

import numpy as np

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: A temporary file untouched this long before a prune is a killed write's leftover, not a live one.
STALE_TEMP_SECONDS = 600
CAPTIONS_SUFFIX = ".captions.json"


@dataclass(frozen=True)
class FrameEmbeddings:
    """Embeddings of one video's sampled frames.

    Attributes:
        frame_numbers: int64 array (n,), 1-based, ascending.
        embeddings: float32 array (n, d), L2-normalised.
        info: what made them: model, fps, source file fingerprint, ...
    """

    frame_numbers: np.ndarray
    embeddings: np.ndarray
    info: dict

    def frames_that_exist(self, n_frames: int) -> int:
        """How many of the video's `n_frames` (its metadata's count) decode: all, or as many as
        decoded when it was embedded with on_broken="keep" and broke off; frames past those
        cannot be shown or cut."""
        if self.info.get("broken") and self.info.get("n_decoded"):
            return min(n_frames, int(self.info["n_decoded"]))
        return n_frames

    def non_finite_problem(self) -> str | None:
        """Why these features cannot be used (some are NaN or infinite: a damaged store
        file), or None when every value is finite."""
        n_bad = int((~np.isfinite(self.embeddings)).sum())
        if not n_bad:
            return None
        return (
            f"its stored frame embeddings hold {n_bad} NaN or infinite values; re-embed them "
            f"(compute_frame_embeddings with overwrite=True, fiftyone-clipit embed --overwrite)"
        )


def write_atomically(path: str, write: Callable[[IO], None], mode: str = "wb") -> None:
    """Writes a file under a temporary name in the same folder, then renames it into place, so a
    file at `path` is always complete (a killed write leaves a hidden `.tmp` file at most)."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_npz_atomically(path: str, **arrays: np.ndarray) -> None:
    """`np.savez` to `path`, complete or absent (see `write_atomically`)."""
    write_atomically(path, lambda f: np.savez(f, **arrays))


#: bytes hashed at each end of a file (container headers: mp4's moov sits at either end)
FINGERPRINT_END_BYTES = 64 * 1024
#: blocks of FINGERPRINT_BLOCK_BYTES hashed at even spacing between the ends
FINGERPRINT_BLOCKS = 64
FINGERPRINT_BLOCK_BYTES = 4096
#: what a content fingerprint starts with (earlier versions recorded "size-mtime")
FINGERPRINT_PREFIX = "sha256-sampled:"


def file_fingerprint(path: str) -> str:
    """A fingerprint of a file's content: SHA-256 of its size, both ends and evenly spaced blocks.

    Size and modification time are not trusted: a file replaced by other footage of the same
    size with its timestamp restored (as copy and sync tools do) must not pass as unchanged.
    Reading everything would cost a second per GB on every run, so a file is read in full only
    up to the sampled length (about 384 KiB) and sampled beyond it: any other footage differs
    in its headers and almost every block, while an edit of a few bytes between the blocks of a
    larger file goes unseen (docs/reliability.md says so).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest.update(size.to_bytes(8, "little"))
        sampled = 2 * FINGERPRINT_END_BYTES + FINGERPRINT_BLOCKS * FINGERPRINT_BLOCK_BYTES
        if size <= sampled:
            digest.update(f.read())
        else:
            digest.update(f.read(FINGERPRINT_END_BYTES))
            span = size - 2 * FINGERPRINT_END_BYTES - FINGERPRINT_BLOCK_BYTES
            for i in range(FINGERPRINT_BLOCKS):
                f.seek(FINGERPRINT_END_BYTES + span * i // (FINGERPRINT_BLOCKS - 1))
                digest.update(f.read(FINGERPRINT_BLOCK_BYTES))
            f.seek(size - FINGERPRINT_END_BYTES)
            digest.update(f.read(FINGERPRINT_END_BYTES))
    return FINGERPRINT_PREFIX + digest.hexdigest()


def _write_stamp(path: str) -> str:
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


class EmbeddingStore:
    """Frame embeddings of many videos under one directory, keyed by sample id."""

    def __init__(self, root: str):
        self.root = root

    def _path(self, key: str, suffix: str = ".npz") -> str:
        if not _SAFE_KEY.match(key):
            raise ValueError(f"Store keys are letters, digits, '_' and '-', got {key!r}")
        return os.path.join(self.root, f"{key}{suffix}")

    def put(self, key: str, item: FrameEmbeddings) -> None:
        """Writes one video's embeddings atomically (complete or absent, never half-written)."""
        if len(item.frame_numbers) != len(item.embeddings):
            raise ValueError(
                f"{len(item.frame_numbers)} frame numbers for {len(item.embeddings)} embeddings"
            )
        save_npz_atomically(
            self._path(key),
            frame_numbers=np.asarray(item.frame_numbers, dtype=np.int64),
            embeddings=np.asarray(item.embeddings, dtype=np.float32),
            info=np.asarray(json.dumps(item.info)),
        )

    def get(self, key: str) -> FrameEmbeddings | None:
        """One video's embeddings, or None when the store has none for it."""
        path = self._path(key)
        if not os.path.exists(path):
            return None
        with np.load(path, allow_pickle=False) as data:
            return FrameEmbeddings(
                frame_numbers=data["frame_numbers"],
                embeddings=data["embeddings"],
                info=json.loads(str(data["info"])),
            )

    def info(self, key: str) -> dict | None:
        """What made one video's embeddings, without loading them (npz members load lazily)."""
        path = self._path(key)
        if not os.path.exists(path):
            return None
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["info"]))

    def stamp(self, key: str) -> str | None:
        """Changes whenever one video's embeddings are rewritten (size and mtime of its file:
        only this store writes it, always anew, so no content needs reading)."""
        path = self._path(key)
        return _write_stamp(path) if os.path.exists(path) else None

    def put_captions(self, key: str, record: dict) -> None:
        """Keeps one video's captions (and what made them) beside its embeddings, atomically."""
        write_atomically(self._path(key, CAPTIONS_SUFFIX), lambda f: json.dump(record, f), mode="w")

    def get_captions(self, key: str) -> dict | None:
        """One video's cached captions record, or None."""
        path = self._path(key, CAPTIONS_SUFFIX)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def delete(self, key: str) -> None:
        """Forgets one video's embeddings and captions (no error when there are none)."""
        for path in (self._path(key), self._path(key, CAPTIONS_SUFFIX)):
            if os.path.exists(path):
                os.remove(path)

    def keys(self) -> list[str]:
        """The keys with stored embeddings."""
        if not os.path.isdir(self.root):
            return []
        return sorted(n[:-4] for n in os.listdir(self.root) if n.endswith(".npz") and not n.startswith("."))

    def prune(self, keep: Collection[str], written_before: float) -> list[str]:
        """Deletes the embeddings of keys not in `keep`, and leftovers of killed writes.

        Only files last written before `written_before` (a `time.time()`) go, so what another
        process writes meanwhile (a video it has just added and embedded) stays. Returns the
        keys deleted.
        """
        if not os.path.isdir(self.root):
            return []
        keep, pruned = set(keep), []
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            try:
                written = os.stat(path).st_mtime
                if name.endswith(".npz.tmp") and written < written_before - STALE_TEMP_SECONDS:
                    os.remove(path)
                elif name.endswith(".npz") and not name.startswith(".") and name[:-4] not in keep:
                    if written < written_before:
                        os.remove(path)
                        pruned.append(name[:-4])
                elif name.endswith(CAPTIONS_SUFFIX) and name[: -len(CAPTIONS_SUFFIX)] not in keep:
                    if written < written_before:
                        os.remove(path)
            except FileNotFoundError:  # deleted by another process meanwhile
                continue
        return sorted(pruned)

    def clear(self) -> None:
        """Deletes the whole store (every video's embeddings and anything kept beside them)."""
        shutil.rmtree(self.root, ignore_errors=True)

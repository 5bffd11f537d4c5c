"""Exact frame vectors read from the per-video embedding store through memory maps.

The store keeps one uncompressed `.npz` per video (`fiftyone_clipit.store`); its members are
plain `.npy` files inside a zip, so the embeddings can be mapped in place without reading the
file: a compressed index (IVF-PQ) re-ranks its best candidates with the exact vectors of the
few frames it needs, and streaming builds touch one video at a time. Only the pages of the
rows read come into memory.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections import OrderedDict
from typing import Iterable, Iterator

import numpy as np
from numpy.lib import format as npy_format

from fiftyone_clipit.errors import ClipItError

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_OPEN_MAPS = 256


def map_member(path: str, member: str) -> np.ndarray:
    """One array of an `.npz` file, memory-mapped read-only when stored uncompressed (as the
    store writes them), else loaded.

    Args:
        path: the `.npz` file.
        member: the array's name ("embeddings").

    Returns:
        the array (a read-only np.memmap when mapped).
    """
    with zipfile.ZipFile(path) as archive:
        entry = archive.getinfo(f"{member}.npy")
    if entry.compress_type != zipfile.ZIP_STORED:
        with np.load(path, allow_pickle=False) as data:
            return data[member]
    with open(path, "rb") as f:
        f.seek(entry.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        f.seek(entry.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])
        version = npy_format.read_magic(f)
        readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
        if version not in readers:
            with np.load(path, allow_pickle=False) as data:
                return data[member]
        shape, fortran, dtype = readers[version](f)
        offset = f.tell()
    if dtype.hasobject:
        raise ClipItError(f"'{path}' holds objects in '{member}'; re-embed the video")
    if 0 in shape:
        return np.empty(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class MappedStore:
    """Frame vectors of an embedding store's videos, memory-mapped on demand (see the module).

    Keeps up to 256 videos mapped (least recently used first out); a video whose file was
    rewritten since it was mapped is mapped again.

    Args:
        root: the store's directory (one `<key>.npz` per video, as `EmbeddingStore` writes).
    """

    def __init__(self, root: str):
        self.root = root
        self._maps: OrderedDict[str, tuple[tuple[int, int], np.ndarray, np.ndarray]] = OrderedDict()

    def video(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(frame numbers int64 (n,), embeddings float32 (n, d) memory-mapped) of one video.

        Raises:
            ClipItError: the store has no embeddings for `key`.
        """
        path = os.path.join(self.root, f"{key}.npz")
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise ClipItError(
                f"The embedding store '{self.root}' has no embeddings for video '{key}', which the "
                f"frame index holds; rebuild the index (build_frame_index(..., overwrite=True))"
            ) from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = self._maps.get(key)
        if cached is None or cached[0] != stamp:
            numbers = np.asarray(map_member(path, "frame_numbers"), dtype=np.int64)
            cached = (stamp, numbers, map_member(path, "embeddings"))
            self._maps[key] = cached
            while len(self._maps) > _OPEN_MAPS:
                self._maps.popitem(last=False)
        self._maps.move_to_end(key)
        return cached[1], cached[2]

    def rows(self, key: str, frame_numbers: np.ndarray) -> np.ndarray:
        """The exact vectors of some frames of one video: float32 (len(frame_numbers), d).

        Raises:
            ClipItError: a frame number the store does not hold for that video.
        """
        numbers, embeddings = self.video(key)
        wanted = np.asarray(frame_numbers, dtype=np.int64)
        rows = np.searchsorted(numbers, wanted)
        if len(wanted) and (rows.max() >= len(numbers) or (numbers[rows] != wanted).any()):
            raise ClipItError(
                f"Video '{key}' in the store lacks frames the frame index holds (re-embedded since?); "
                f"sync or rebuild the index"
            )
        return np.asarray(embeddings[rows], dtype=np.float32)

    def n_frames(self, keys: Iterable[str]) -> int:
        """How many frames the store holds for these videos (reads only the files' headers)."""
        return sum(len(self.video(key)[0]) for key in keys)

    def chunks(self, keys: Iterable[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(key, frame numbers, memory-mapped embeddings) of each video in turn."""
        for key in keys:
            numbers, embeddings = self.video(key)
            yield key, numbers, embeddings

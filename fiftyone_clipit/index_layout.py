"""How a frame index is laid out for its size: exact, IVF or compressed IVF-PQ, and its ids.

Exact search (a flat index) is kept while the index is small; past `EXACT_MAX_FRAMES` an IVF
index takes over. The switch point was measured on the 2-core machine this project is built
on (`fiftyone-clipit bench search`, frame-like 512-d vectors, one query, one thread): a flat
scan took 0.5 ms at 10,000 frames, 1.7 ms at 20,000, 3.9 ms at 50,000 and 12 ms at 100,000
(linear in size), while IVF answered in 0.1 ms at recall@10 >= 0.97. So exact search is kept
up to 20,000 frames (about 3 hours of video at 2 fps), where it is still ~2 ms. Past
`COMPRESSED_MIN_FRAMES` the index keeps 4-bit fast-scan PQ codes instead of vectors (see
`fiftyone_clipit.index`).

Each vector's FAISS id packs (video slot, frame number): `slot << 32 | frame_number`
(`pack_ids`), so a hit names its video and frame directly and a video's frames are removed
with one id range.
"""

from __future__ import annotations

import numpy as np

from fiftyone_clipit.errors import ClipItError

#: exact (flat) search up to this many frames; IVF past it (see the module docstring)
EXACT_MAX_FRAMES = 20_000
#: compressed IVF-PQ past this many frames: an IVF-Flat index holds 2 KB per 512-d frame
#: (2 GB per million, twice that while building); IVF-PQ holds ~72 bytes per frame
COMPRESSED_MIN_FRAMES = 1_000_000
#: index kinds `kind=` accepts
KINDS = ("auto", "flat", "ivf", "ivfpq")
_FRAME_BITS = 32
_FRAME_MASK = (1 << _FRAME_BITS) - 1
#: training points per IVF list (k-means' limit and the sample drawn)
TRAIN_PER_LIST = 32
_PQ_MIN_TRAIN = 10_000  # PQ codebooks of 256 centroids want >= 39 points each


def nlist_for(n_frames: int) -> int:
    """IVF lists for an index of n frames, as a power of two, at least 64: ~4 sqrt(n) up to
    1,024 lists, then ~sqrt(n) (2,048 at 4M frames, 4,096 at 10M, 8,192 at 72M), growing
    with the data.

    At 1M frame-like vectors, 1,024 lists answered as well as 2,048 or 4,096 (recall@10 0.99
    for near queries at nprobe 1, 0.96 for text-like ones at nprobe 8, both under 1 ms) and
    built in a fraction of their time (k-means cost grows with the number of lists squared);
    past that, sqrt(n) lists keep both the assignment of every frame to a list and the
    frames scanned per list growing as sqrt(n).
    """
    root = np.sqrt(max(n_frames, 1))
    target = max(min(4.0 * root, 1024.0), root)
    return int(max(64, 2 ** round(np.log2(target))))


def choose_kind(n_frames: int) -> str:
    """The index kind "auto" picks for n frames: "flat" up to EXACT_MAX_FRAMES, "ivf" up to
    COMPRESSED_MIN_FRAMES, "ivfpq" past it."""
    if n_frames <= EXACT_MAX_FRAMES:
        return "flat"
    return "ivf" if n_frames <= COMPRESSED_MIN_FRAMES else "ivfpq"


def pq_subquantizers(dim: int) -> int:
    """4-bit fast-scan PQ sub-quantizers for `dim`: the largest even divisor of dim up to dim / 4
    (half a byte each: dim / 8 bytes per frame).

    Raises:
        ClipItError: an odd dimension (no even divisor).
    """
    even = [m for m in range(2, max(2, dim // 4) + 1, 2) if dim % m == 0]
    if not even:
        raise ClipItError(f"An IVF-PQ index needs an even embedding dimension, got {dim}; use kind='ivf'")
    return max(even)


def describe_kind(kind: str, nlist: int, dim: int, opq: bool = False, m: int = 0, nbits: int = 4) -> str:
    """The FAISS layout of an index kind, in FAISS factory words ("IVF4096,PQ128x4fs ...").

    Args:
        m (0): PQ sub-quantizers; 0 takes `pq_subquantizers(dim)`.
        nbits (4): bits per sub-quantizer (4: fast-scan, "x4fs"; 8: indexes built before it).
    """
    if kind == "flat":
        return "Flat (inner product)"
    lists = f"IVF{nlist}"
    if kind == "ivf":
        return f"{lists},Flat (inner product)"
    m = m or pq_subquantizers(dim)
    codes = f"PQ{m}x4fs" if nbits == 4 else f"PQ{m}x{nbits}"
    return f"{'OPQ%d,' % m if opq else ''}{lists},{codes} (inner product, re-ranked exactly)"


def pack_ids(slot: int | np.ndarray, frame_numbers: np.ndarray) -> np.ndarray:
    """FAISS ids of frames: slot << 32 | frame number (one slot, or one per frame)."""
    numbers = np.asarray(frame_numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 1 or numbers.max() > _FRAME_MASK):
        raise ValueError(f"frame numbers must lie in [1, {_FRAME_MASK}], got {numbers.min()}..{numbers.max()}")
    return (np.asarray(slot, dtype=np.int64) << _FRAME_BITS) | numbers


def slot_id_range(slot: int) -> tuple[int, int]:
    """[first, end) of the FAISS ids of one video slot's frames."""
    return slot << _FRAME_BITS, (slot + 1) << _FRAME_BITS


def unpack_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slots, frame numbers) of FAISS ids."""
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> _FRAME_BITS, ids & _FRAME_MASK


def check_kind(kind: str, n_frames: int) -> str:
    """The concrete kind for `kind` and n frames ("auto" resolved)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown index kind '{kind}'. Available: {list(KINDS)}")
    return choose_kind(n_frames) if kind == "auto" else kind


def train_size(n_frames: int) -> int:
    """Training sample of an IVF-PQ index: 32 per list, at least 10,000 (PQ codebooks)."""
    return min(n_frames, max(TRAIN_PER_LIST * nlist_for(n_frames), _PQ_MIN_TRAIN))

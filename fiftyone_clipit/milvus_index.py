"""The frame index in Milvus: the same (video, frame) hits as the FAISS index, served by a
vector database that many machines share.

One Milvus collection holds every sampled frame of a dataset: primary key
`"<sample id>:<frame number>"`, the fields `sample_id` and `frame_number` (what a FAISS id
packs), and the L2-normalised embedding, searched by inner product (cosine). A video is
replaced by deleting `sample_id == ...` and inserting its frames again. What the collection
holds (videos, frame counts, store stamps) is kept beside it in a small JSON file, as the
FAISS index keeps its metadata, so the same code brings either in step with the dataset.

The URI is a Milvus server (`http://host:19530`, Zilliz Cloud with a token) or a local Milvus
Lite file (`/path/frames.db`, one process at a time; what the tests use). The client is
pymilvus' `MilvusClient`, called directly: FiftyOne Brain's Milvus backend keys its points by
sample or label id and filters views by listing every id, which does not fit frames that are
neither (see docs/scale.md).
"""

from __future__ import annotations

import json
import os

import numpy as np

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.index import EmptyIndexError, FrameHits
from fiftyone_clipit.index_calibration import QUERY_KINDS
from fiftyone_clipit.knn import check_vectors
from fiftyone_clipit.store import write_atomically

_META_FILE = "frame_index.json"
#: the most hits Milvus returns for one query
MAX_K = 16384
_INSERT_BATCH = 2048
_clients: dict[tuple[str, str | None], object] = {}


def connect(uri: str, token: str | None = None, timeout: float = 10.0):
    """A MilvusClient for `uri` (one per process and URI).

    Raises:
        ClipItError: the server cannot be reached within `timeout` seconds (names the URI).
    """
    from pymilvus import MilvusClient, MilvusException

    key = (uri, token)
    if key not in _clients:
        if not _is_server(uri):  # a Milvus Lite file: its folder must exist
            os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        try:
            _clients[key] = MilvusClient(uri, token=token or "", timeout=timeout)
        except (MilvusException, OSError) as error:
            raise ClipItError(
                f"Cannot reach Milvus at '{uri}' (waited up to {timeout:g} s): {error}; check the URI "
                f"and that the server is up, or build the FAISS index instead (backend='faiss')"
            ) from error
    return _clients[key]


def _is_server(uri: str) -> bool:
    """Whether `uri` names a Milvus server (else a Milvus Lite file)."""
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


class MilvusFrameIndex:
    """Frame embeddings of many videos in one Milvus collection, keyed by video (see the module).

    Use `create` for a new collection, `load` for one recorded by `save`.

    Args:
        uri: Milvus server URI or Milvus Lite file.
        collection: the collection's name (letters, digits, underscores).
        dim: embedding dimension.
        info (None): what made the embeddings (model, fps, stamps, ...).
        token (None): credentials for the server (`user:password` or an API key).
        timeout (10.0): seconds to wait for the server on every call.
    """

    kind = "milvus"

    def __init__(self, uri: str, collection: str, dim: int, info: dict | None = None,
                 token: str | None = None, timeout: float = 10.0):
        self.uri, self.collection, self.dim = uri, collection, int(dim)
        self.info = dict(info or {})
        self.token, self.timeout = token, timeout
        self.frames: dict[str, int] = {}
        self.nprobe: dict[str, int] = {}
        self.recall: dict[str, float] = {}
        self._client = connect(uri, token, timeout)

    @classmethod
    def create(cls, uri: str, collection: str, dim: int, info: dict | None = None,
               token: str | None = None, timeout: float = 10.0, overwrite: bool = False,
               index_type: str = "AUTOINDEX") -> "MilvusFrameIndex":
        """A new, empty collection (FLAT on Milvus Lite, `index_type` on a server).

        Raises:
            ClipItError: the server is unreachable, or the collection exists and not `overwrite`.
        """
        from pymilvus import DataType, MilvusClient

        self = cls(uri, collection, dim, info, token, timeout)
        client = self._client
        with self._calls("create the collection"):
            if client.has_collection(collection):
                if not overwrite:
                    raise ClipItError(
                        f"Milvus at '{uri}' already has a collection '{collection}' that no frame index "
                        f"records; build with overwrite=True to replace it, or name another collection"
                    )
                client.drop_collection(collection)
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("sample_id", DataType.VARCHAR, max_length=64)
            schema.add_field("frame_number", DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            params = client.prepare_index_params()
            params.add_index("vector", index_type=index_type if _is_server(uri) else "FLAT", metric_type="IP")
            client.create_collection(collection, schema=schema, index_params=params, consistency_level="Strong")
        return self

    def _calls(self, what: str):
        return _MilvusCalls(self.uri, what)

    def __len__(self) -> int:
        return int(sum(self.frames.values()))

    @property
    def keys(self) -> list[str]:
        """The videos in the collection."""
        return list(self.frames)

    @property
    def layout(self) -> str:
        return f"Milvus collection '{self.collection}' at {self.uri} (inner product)"

    def __contains__(self, key: str) -> bool:
        return key in self.frames

    def _check(self, vectors: np.ndarray, what: str) -> np.ndarray:
        return check_vectors(
            vectors, self.dim, what, self.info.get("model"), f"the Milvus collection '{self.collection}'",
            "rebuild it with build_frame_index(..., backend='milvus', overwrite=True)",
        )

    def needs_rebuild(self) -> bool:
        """Never: the server keeps its own index fit for its size."""
        return False

    def add(self, key: str, frame_numbers: np.ndarray, embeddings: np.ndarray) -> None:
        """Adds (or replaces) one video's frames.

        Raises:
            ClipItError: wrong dimension, non-finite values, or the server went away.
            ValueError: lengths differ.
        """
        vectors = self._check(embeddings, f"Embeddings of video '{key}'")
        if len(frame_numbers) != len(vectors):
            raise ValueError(f"{len(frame_numbers)} frame numbers for {len(vectors)} embeddings of '{key}'")
        self.frames.pop(key, None)
        with self._calls(f"replace the frames of video '{key}'"):  # also what a failed call left
            self._client.delete(self.collection, filter=f'sample_id == "{key}"', timeout=self.timeout)
        numbers = np.asarray(frame_numbers, dtype=np.int64).tolist()
        rows = [
            {"pk": f"{key}:{n}", "sample_id": key, "frame_number": n, "vector": v}
            for n, v in zip(numbers, vectors)
        ]
        with self._calls(f"insert the frames of video '{key}'"):
            for start in range(0, len(rows), _INSERT_BATCH):
                self._client.upsert(self.collection, rows[start : start + _INSERT_BATCH], timeout=self.timeout)
        self.frames[key] = len(rows)

    def remove(self, key: str) -> int:
        """Removes one video's frames; returns how many (0 for an unknown key)."""
        if key not in self.frames:
            return 0
        with self._calls(f"delete the frames of video '{key}'"):
            self._client.delete(self.collection, filter=f'sample_id == "{key}"', timeout=self.timeout)
        return self.frames.pop(key)

    def search(self, queries: np.ndarray, k: int = 10, query_kind: str = "near",
               nprobe: int | None = None) -> list[FrameHits]:
        """The k best frames for each query, as `FrameIndex.search` (scores: cosine).

        Args:
            queries: float array (m, dim) or (dim,), L2-normalised.
            k (10): frames per query, at most MAX_K (Milvus' limit).
            query_kind ("near"): accepted for FrameIndex's signature; the server has one setting.
            nprobe (None): accepted for FrameIndex's signature (the server's index decides).

        Raises:
            EmptyIndexError: no frames; ClipItError: wrong dimension or the server went away.
        """
        if query_kind not in QUERY_KINDS:
            raise ValueError(f"Unknown query kind '{query_kind}'. Available: {list(QUERY_KINDS)}")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not len(self):
            raise EmptyIndexError("The frame index holds no frames; embed videos and build the index first")
        queries = self._check(np.atleast_2d(queries), "The query")
        with self._calls("search"):
            results = self._client.search(
                self.collection, data=[q.tolist() for q in queries], limit=int(min(k, len(self), MAX_K)),
                output_fields=["sample_id", "frame_number"], search_params={"metric_type": "IP"},
                timeout=self.timeout,
            )
        return [
            FrameHits(
                [hit["entity"]["sample_id"] for hit in hits],
                np.array([hit["entity"]["frame_number"] for hit in hits], dtype=np.int64),
                np.array([hit["distance"] for hit in hits], dtype=np.float32),
            )
            for hits in results
        ]

    def save(self, directory: str) -> str:
        """Records what the collection holds in `directory` (atomically); returns the file."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, _META_FILE)
        meta = {
            "backend": "milvus", "uri": self.uri, "collection": self.collection, "dim": self.dim,
            "kind": self.kind, "layout": self.layout, "frames": self.frames, "n_frames": len(self),
            "info": self.info,
        }
        write_atomically(path, lambda f: json.dump(meta, f), mode="w")
        return path

    @classmethod
    def load(cls, directory: str, token: str | None = None, timeout: float = 10.0) -> "MilvusFrameIndex":
        """Opens the collection recorded by `save` in `directory`.

        Raises:
            ClipItError: no record, the server unreachable, or the collection gone or of
                another dimension (with how to rebuild).
        """
        path = os.path.join(directory, _META_FILE)
        if not os.path.exists(path):
            raise ClipItError(f"No Milvus frame index in '{directory}'; build it with build_frame_index")
        with open(path) as f:
            meta = json.load(f)
        self = cls(meta["uri"], meta["collection"], meta["dim"], meta.get("info"), token, timeout)
        self.frames = {key: int(n) for key, n in meta["frames"].items()}
        with self._calls("open the collection"):
            exists = self._client.has_collection(self.collection)
            fields = self._client.describe_collection(self.collection)["fields"] if exists else []
        dims = [f["params"].get("dim") for f in fields if f["name"] == "vector"]
        if not exists or dims != [self.dim]:
            raise ClipItError(
                f"The Milvus collection '{self.collection}' at '{self.uri}' is "
                f"{'gone' if not exists else f'of dimension {dims}, not {self.dim}'}; rebuild it with "
                f"build_frame_index(..., backend='milvus', overwrite=True)"
            )
        return self


class _MilvusCalls:
    """Turns a pymilvus error into one ClipItError naming the URI and the step."""

    def __init__(self, uri: str, what: str):
        self.uri, self.what = uri, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        from pymilvus import MilvusException

        if error is not None and isinstance(error, (MilvusException, OSError)):
            raise ClipItError(f"Milvus at '{self.uri}' failed to {self.what}: {error}") from error
        return False

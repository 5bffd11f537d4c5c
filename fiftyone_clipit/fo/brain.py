"""A FiftyOne Brain similarity backend over the CLIP-It frame index.

With it, FiftyOne's own `sort_by_similarity` ranks videos by their best-matching frame, for
a text prompt, a vector, or another video:

    fc.build_frame_index(dataset)                  # registers the brain key "clipit_frames"
    view = dataset.sort_by_similarity("a dog on a beach", k=5, brain_key="clipit_frames")

or, on a dataset with frame embeddings and a frame index:

    fob.compute_similarity(dataset, backend=ClipItSimilarityConfig, embeddings=False,
                           brain_key="frames")

The index itself (FAISS, frame level) is the one `build_frame_index` keeps beside the
embedding store; a data point of this backend is a video (its sample id), whose distance to a
query is 1 - the cosine similarity of its best frame. Prompts are embedded by the model that
embedded the frames. Deleting the brain run leaves the frame index alone (search_frames uses
it too); `dataset.delete_run("clipit_frame_index")` deletes that.
"""

from __future__ import annotations

import fiftyone.brain as fb
import fiftyone.core.collections as foc
import fiftyone.core.models as fom
import numpy as np
from fiftyone.brain.similarity import Similarity, SimilarityConfig, SimilarityIndex

from fiftyone_clipit.defaults import DEFAULT_BRAIN_KEY
from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.fo.common import embedding_store, root_dataset
from fiftyone_clipit.fo.index import index_dir, load_frame_index, sync_frame_index
from fiftyone_clipit.queries import best_videos, query_encoder

BACKEND = "clipit"


class ClipItSimilarityConfig(SimilarityConfig):
    """Configuration of the CLIP-It frame-index similarity backend.

    Args:
        clip_model (None): the CLIP model of the frame embeddings (recorded for reference;
            prompts always use the index's model).
        **kwargs: keyword arguments of `fiftyone.brain.similarity.SimilarityConfig`.
    """

    def __init__(self, clip_model: str | None = None, **kwargs):
        kwargs.pop("supports_prompts", None)  # prompts always work: the index knows its model
        super().__init__(supports_prompts=True, **kwargs)
        self.clip_model = clip_model

    @property
    def method(self) -> str:
        return BACKEND

    @property
    def max_k(self):
        return None

    @property
    def supports_least_similarity(self) -> bool:
        return False

    @property
    def supported_aggregations(self) -> tuple:
        return ("mean",)


class ClipItSimilarity(Similarity):
    """The backend factory FiftyOne builds from ClipItSimilarityConfig."""

    def initialize(self, samples: foc.SampleCollection, brain_key: str) -> "ClipItSimilarityIndex":
        return ClipItSimilarityIndex(samples, self.config, brain_key, backend=self)


class PromptEncoder(fom.Model, fom.PromptMixin):
    """The frame index's CLIP model as a FiftyOne model that embeds prompts (text queries)."""

    def __init__(self, encoder):
        self._encoder = encoder
        self._preprocess = False

    @property
    def media_type(self) -> str:
        return "image"

    @property
    def ragged_batches(self) -> bool:
        return False

    @property
    def transforms(self):
        return None

    @property
    def preprocess(self) -> bool:
        return self._preprocess

    @preprocess.setter
    def preprocess(self, value: bool) -> None:
        self._preprocess = value

    @property
    def can_embed_prompts(self) -> bool:
        return True

    def embed_prompt(self, prompt: str) -> np.ndarray:
        return self.embed_prompts([prompt])[0]

    def embed_prompts(self, prompts) -> np.ndarray:
        """Unit text embeddings: float32 (len(prompts), d)."""
        return self._encoder.encode_text(list(prompts))

    def predict(self, arg):
        raise NotImplementedError(
            "The CLIP-It similarity model embeds prompts only; use search_frames or "
            "compute_frame_embeddings for images and videos"
        )


class ClipItSimilarityIndex(SimilarityIndex):
    """Videos ranked by their best frame in the CLIP-It frame index."""

    def __init__(self, samples, config, brain_key, backend=None):
        self._dataset = root_dataset(samples)
        super().__init__(samples, config, brain_key, backend=backend)

    @property
    def _index(self):
        return load_frame_index(self._dataset)

    @property
    def sample_ids(self) -> np.ndarray:
        return np.array(self._index.keys)

    @property
    def total_index_size(self) -> int:
        return len(self._index.keys)

    def add_to_index(self, embeddings, sample_ids, label_ids=None, overwrite=True,
                     allow_existing=True, warn_existing=False, reload=True):
        raise ClipItError(
            "The CLIP-It backend indexes frames from the embedding store: run "
            "compute_frame_embeddings on the new videos, then build_frame_index"
        )

    def remove_from_index(self, sample_ids=None, label_ids=None, allow_missing=True,
                          warn_missing=False, reload=True):
        """Drops videos from the frame index (and saves it)."""
        index = self._index
        removed = [sid for sid in (sample_ids or []) if index.remove(sid)]
        missing = set(sample_ids or []) - set(removed)
        if missing and not allow_missing:
            raise ValueError(f"Sample ids {sorted(missing)} are not in the frame index")
        if removed:
            index.save(index_dir(self._dataset))
        if reload:
            self.reload()

    def get_embeddings(self, sample_ids=None, label_ids=None, allow_missing=True, warn_missing=False):
        """One embedding per video: the normalised mean of its frame embeddings."""
        store = embedding_store(self._dataset)
        ids = list(self._index.keys if sample_ids is None else np.atleast_1d(sample_ids))
        vectors, found = [], []
        for sample_id in ids:
            item = store.get(sample_id)
            if item is None:
                if not allow_missing:
                    raise ValueError(f"Sample id '{sample_id}' has no frame embeddings")
                continue
            mean = item.embeddings.mean(axis=0)
            vectors.append(mean / np.linalg.norm(mean))
            found.append(sample_id)
        dim = self._index.dim
        return (np.array(vectors, np.float32).reshape(-1, dim), np.array(found), None)

    def reload(self):
        sync_frame_index(self._dataset)
        super().reload()

    def cleanup(self):
        """Leaves the frame index in place: search_frames shares it."""

    def get_model(self) -> PromptEncoder:
        if self._model is None:
            self._model = PromptEncoder(query_encoder(self._index, None))
        return self._model

    def _kneighbors(self, query=None, k=None, reverse=False, aggregation=None, return_dists=False):
        if query is None:
            raise ValueError("The CLIP-It backend answers queries; full-index neighbour graphs are not supported")
        if reverse:
            raise ValueError("The CLIP-It backend does not support least-similarity queries")
        vectors, single = self._query_vectors(query)
        if aggregation == "mean" or single:
            vectors, single = vectors.mean(axis=0, keepdims=True), True
        index = self._index
        allowed = set(self.current_sample_ids.tolist())
        ids, dists = [], []
        for vector in vectors:
            vector = vector / np.linalg.norm(vector)
            # prompts arrive here already embedded, so every query gets the text setting: the
            # nprobe measured for queries far from the data (at least the near one)
            ranked = best_videos(index, vector, k, allowed, query_kind="text")
            ids.append([sid for sid, _ in ranked])
            dists.append([1.0 - frames[0][1] for _, frames in ranked])
        if single:
            ids, dists = ids[0], dists[0]
        return (ids, None, dists) if return_dists else (ids, None)

    def _query_vectors(self, query) -> tuple[np.ndarray, bool]:
        """(query vectors (m, d), whether it was one query): vectors as given; video ids as the
        normalised mean of their frame embeddings."""
        single = isinstance(query, str)
        query = np.asarray([query] if single else query)
        if np.issubdtype(query.dtype, np.number):
            return np.atleast_2d(query).astype(np.float32), query.ndim == 1
        vectors, _, _ = self.get_embeddings(list(query), allow_missing=False)
        return vectors, single

    @classmethod
    def _from_dict(cls, d, samples, config, brain_key):
        return cls(samples, config, brain_key)


def register_similarity_run(samples: foc.SampleCollection, brain_key: str = DEFAULT_BRAIN_KEY) -> None:
    """Registers (or refreshes) a Brain similarity run `brain_key` backed by the frame index."""
    dataset = root_dataset(samples)
    model = load_frame_index(dataset).info.get("model")
    if brain_key in dataset.list_brain_runs():
        info = dataset.get_brain_info(brain_key)
        if not isinstance(info.config, ClipItSimilarityConfig):
            raise ClipItError(
                f"Brain key '{brain_key}' of '{dataset.name}' belongs to another similarity run "
                f"({info.config.method}); choose another brain_key or delete it first"
            )
        if info.config.clip_model == model:
            return  # the run reads the index from disk, so it is already up to date
        dataset.delete_brain_run(brain_key)
    config = ClipItSimilarityConfig(clip_model=model)
    method = config.build()
    method.register_run(dataset, brain_key, overwrite=False)
    results = method.initialize(dataset, brain_key)
    method.save_run_results(dataset, brain_key, results)


def _register_backend() -> None:
    """Makes `backend="clipit"` a name fiftyone.brain knows (in processes that import this)."""
    fb.brain_config.similarity_backends.setdefault(
        BACKEND, {"config_cls": f"{ClipItSimilarityConfig.__module__}.{ClipItSimilarityConfig.__name__}"}
    )


_register_backend()

"""A second planted world for `bench learning`, written without the scorer's read-out in mind.

The first world (`learning.planted_world`) plants relevance as `M @ query`, a bilinear signal,
which is what the scorer's `[f, a, f * a]` fusion reads out. This world is built the other way
round, from how queries and footage relate in the wild:

- there are `N_CONCEPTS` concepts (things a query can ask for). Each has a visual direction, what
  frames showing it carry, and a separate textual direction, what a sentence naming it carries;
  the two are orthogonal (the modality gap), so a frame showing a concept does not look like the
  word for it;
- a query names two concepts: unit(common text direction + their two textual directions + noise).
  The test queries name concept pairs that no training query names: a scorer must compose what it
  learnt about single concepts;
- a shot is relevant when it shows **both** concepts of the query: relevance is an AND of two
  query directions, a non-linear function of the query;
- against the first world's shortcut, a read-out of the query's concepts summed: "loud half"
  shots show one of the two concepts at double strength (as much of the summed signal as an
  important shot, the other concept absent);
- against zero-shot similarity, "lookalike" shots carry the query's own text direction;
- against a scorer that ignores the text, "other pair" shots show two other concepts together:
  without the query they are important shots.

Background shots share the video's style. The user summary is the important shots.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from fiftyone_clipit.bench.planted import shot_plan, shots_video, unit

N_CONCEPTS = 8
TEST_PAIRS = 6  # concept pairs only test queries name
#: share of shots of each kind besides background
KIND_SHARES = {"important": 0.15, "loud_half": 0.15, "lookalike": 0.10, "other_pair": 0.10}


@dataclass(frozen=True)
class ConceptWorld:
    """The hidden truth shared by every video of one concept world.

    Attributes:
        visual: float32 (N_CONCEPTS, dim) what frames showing each concept carry (orthonormal).
        textual: float32 (N_CONCEPTS, dim) what sentences naming each concept carry (orthonormal,
            orthogonal to `visual`).
        common_text: float32 (dim,) the direction every sentence shares (CLIP's text cone).
        train_pairs, test_pairs: disjoint lists of concept pairs the queries name.
        query_noise: norm of the noise added to each query before it is normalised.
    """

    visual: np.ndarray
    textual: np.ndarray
    common_text: np.ndarray
    train_pairs: list[tuple[int, int]]
    test_pairs: list[tuple[int, int]]
    query_noise: float = 0.3

    def query(self, pair: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """A fresh unit query naming the two concepts of `pair`: float32 (dim,)."""
        noise = unit(rng.normal(size=len(self.common_text))) * self.query_noise
        return unit(self.common_text + self.textual[list(pair)].sum(axis=0) + noise).astype(np.float32)


def concept_world(dim: int = 32, seed: int = 0) -> ConceptWorld:
    """Random concept directions of dimension `dim` (>= 2 * N_CONCEPTS + 2), and the held-out pairs."""
    if dim < 2 * N_CONCEPTS + 2:
        raise ValueError(f"concept worlds need dim >= {2 * N_CONCEPTS + 2}, got {dim}")
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    pairs = list(itertools.combinations(range(N_CONCEPTS), 2))
    order = rng.permutation(len(pairs))
    return ConceptWorld(
        visual=basis[:, :N_CONCEPTS].T.astype(np.float32),
        textual=basis[:, N_CONCEPTS : 2 * N_CONCEPTS].T.astype(np.float32),
        common_text=basis[:, 2 * N_CONCEPTS].astype(np.float32),
        train_pairs=[pairs[i] for i in order[TEST_PAIRS:]],
        test_pairs=[pairs[i] for i in order[:TEST_PAIRS]],
    )


def concept_video(
    world: ConceptWorld,
    pair: tuple[int, int],
    rng: np.random.Generator,
    name: str,
    concept_weight: float = 0.8,
    lookalike_weight: float = 0.8,
    noise: float = 0.8,
):
    """One video about the concept pair `pair`, with its query as text and its important shots as the user summary.

    Args:
        world: the concepts and their directions.
        pair: the two concepts the query names.
        rng: the generator to draw from; name: the video's name.
        concept_weight (0.8): how strongly a shot shows each concept it shows (loud half shots:
            twice this).
        lookalike_weight (0.8): how strongly lookalike shots carry the query's text.
        noise (0.8): norm of the Gaussian noise added to every step.

    Returns:
        a `fiftyone_clipit.training.TrainingVideo` (16-25 shots of 3-6 steps; 15 frames a step).
    """
    query = world.query(pair, rng)
    dim = len(query)
    others = [c for c in range(N_CONCEPTS) if c not in pair]
    kinds, lengths = shot_plan(rng, KIND_SHARES)
    style = unit(rng.normal(size=dim))

    def base(kind: str) -> np.ndarray:
        content = unit(rng.normal(size=dim))
        if kind == "background":
            return style + 0.6 * content
        if kind == "important":
            return content + concept_weight * world.visual[list(pair)].sum(axis=0)
        if kind == "loud_half":
            return content + 2 * concept_weight * world.visual[pair[int(rng.integers(2))]]
        if kind == "lookalike":
            return content + lookalike_weight * query
        return content + concept_weight * world.visual[rng.choice(others, size=2, replace=False)].sum(axis=0)

    return shots_video(name, rng, kinds, lengths, base, query, noise)


def concept_videos(world: ConceptWorld, n_videos: int, seed: int, prefix: str, test: bool = False) -> list:
    """`n_videos` videos, each about a pair drawn from the training pairs (or, `test`, the held-out pairs)."""
    rng = np.random.default_rng(seed)
    pairs = world.test_pairs if test else world.train_pairs
    return [concept_video(world, pairs[int(rng.integers(len(pairs)))], rng, f"{prefix}{i}") for i in range(n_videos)]

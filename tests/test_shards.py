"""The sharding plan: consecutive, even shards that cover the target once (no database)."""

from __future__ import annotations

import pytest

from fiftyone_clipit.errors import ClipItError
from fiftyone_clipit.shards import plan_shards


def test_eight_videos_by_two_make_four_shards_in_order():
    ids = [f"v{i}" for i in range(8)]
    assert plan_shards(ids, 2) == [["v0", "v1"], ["v2", "v3"], ["v4", "v5"], ["v6", "v7"]]


@pytest.mark.parametrize("n, size, sizes", [
    (10, 4, [4, 3, 3]), (9, 4, [3, 3, 3]), (5, 5, [5]), (5, 10, [5]), (1, 1, [1]), (0, 3, []), (7, 1, [1] * 7),
])
def test_shards_are_even_and_cover_every_id_once(n, size, sizes):
    ids = [f"id{i}" for i in range(n)]
    shards = plan_shards(ids, size)
    assert [len(s) for s in shards] == sizes
    assert [i for shard in shards for i in shard] == ids


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "3", None])
def test_a_bad_shard_size_is_refused_naming_it(size):
    with pytest.raises(ClipItError, match="videos_per_shard must be an integer >= 1"):
        plan_shards(["a", "b"], size)


def test_a_repeated_id_is_refused():
    with pytest.raises(ClipItError, match=r"\['a'\] are repeated"):
        plan_shards(["a", "b", "a"], 2)

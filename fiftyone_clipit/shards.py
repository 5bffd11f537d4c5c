"""How one large operation is split into shards of videos, which several workers run at once.

FiftyOne-free: `plan_shards` splits the target's sample ids; `fiftyone_clipit.fo.shards` queues
one delegated operation per shard and keeps, in MongoDB, which shards are done.
"""

from __future__ import annotations

from typing import Sequence

from fiftyone_clipit.errors import ClipItError

#: videos per shard when a large target is scheduled and no size is given; a target of at most
#: this many videos stays one operation
DEFAULT_VIDEOS_PER_SHARD = 50
#: the operators' forms offer "videos per shard" for a target of more videos than this
SHARD_FORM_MIN = 10


def plan_shards(ids: Sequence[str], videos_per_shard: int) -> list[list[str]]:
    """Splits `ids` into consecutive shards of at most `videos_per_shard`, as even as possible.

    `ceil(n / videos_per_shard)` shards whose sizes differ by at most one (10 ids by 4 give
    4, 3, 3, not 4, 4, 2), so no worker is left with a small tail while the others wait.

    Args:
        ids: the sample ids of the target, in the order they are processed; no duplicates.
        videos_per_shard: the most videos one shard may hold (>= 1).

    Returns:
        The shards, in order; their concatenation is `ids`. Empty for empty `ids`.

    Raises:
        ClipItError: `videos_per_shard` is not an integer >= 1, or an id is repeated.
    """
    if isinstance(videos_per_shard, bool) or not isinstance(videos_per_shard, int) or videos_per_shard < 1:
        raise ClipItError(f"videos_per_shard must be an integer >= 1, got {videos_per_shard!r}")
    ids = list(ids)
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ClipItError(f"Sample ids {repeated[:5]} are repeated; a video belongs to one shard")
    n_shards = -(-len(ids) // videos_per_shard)
    if n_shards == 0:
        return []
    base, extra = divmod(len(ids), n_shards)
    shards, start = [], 0
    for index in range(n_shards):
        size = base + (1 if index < extra else 0)
        shards.append(ids[start : start + size])
        start += size
    return shards

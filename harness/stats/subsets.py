"""Fixed stratified subsets for ``--limit``: the same ids every time, whatever the order or the run.

Samples are gathered into groups that are never split (an MME image pair, an MMBench question
with its circular passes; by default each sample alone), groups into strata (a task's category).
Within a stratum, groups are ranked by a hash of the task name and group key; a group's position
is its rank as a fraction of its stratum's size (systematic allocation). Taking groups in
order of position fills every stratum in proportion to its size, and a smaller subset is always
part of a larger one. The subset keeps the samples' original order.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def stable_hash(*parts: str) -> int:
    """A 64-bit hash of the parts that does not change between processes (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def ranked_groups(
    items: Sequence[T], stratum: Callable[[T], str], group: Callable[[T], str], salt: str = ""
) -> list[tuple[str, list[int]]]:
    """Groups (key, item positions) in selection order: by position within their stratum, then by hash."""
    members: dict[str, list[int]] = defaultdict(list)
    stratum_of: dict[str, str] = {}
    for i, item in enumerate(items):
        key = group(item)
        members[key].append(i)
        stratum_of.setdefault(key, stratum(item))  # a group's stratum is its first member's
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for key in members:
        by_stratum[stratum_of[key]].append(key)
    order: list[tuple[float, int, int, str]] = []
    for name, keys in by_stratum.items():
        keys.sort(key=lambda k: (stable_hash(salt, "group", k), k))
        tie = stable_hash(salt, "stratum", name)
        for rank, key in enumerate(keys):
            order.append(((rank + 0.5) / len(keys), tie, rank, key))
    order.sort()
    return [(key, members[key]) for *_, key in order]


def stratified_subset(
    items: Sequence[T],
    limit: int,
    stratum: Callable[[T], str],
    group: Callable[[T], str],
    salt: str = "",
    count_groups: bool = False,
) -> list[T]:
    """About ``limit`` items (or ``limit`` groups with ``count_groups``), whole groups only, in item order.

    Groups are added until the count reaches ``limit``; the last group may take the subset past it.
    """
    if limit <= 0:
        return []
    chosen: list[int] = []
    count = 0
    for _, positions in ranked_groups(items, stratum, group, salt):
        if count >= limit:
            break
        chosen.extend(positions)
        count += 1 if count_groups else len(positions)
    return [items[i] for i in sorted(chosen)]

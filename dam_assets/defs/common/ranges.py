"""Targeting a batch of `media` partitions with one run (a partition key range).

Dynamic partitions are ordered by when they were added, so a range [first, last] means every
key added between them. Batches are therefore cut from contiguous stretches of that order.
"""

from __future__ import annotations

from collections.abc import Sequence

# Dagster's documented run tags for a partition range.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def range_tags(batch: Sequence[str]) -> dict[str, str]:
    return {RANGE_START_TAG: batch[0], RANGE_END_TAG: batch[-1]}


def contiguous_batches(
    wanted: Sequence[str], ordered_keys: Sequence[str], size: int
) -> list[list[str]]:
    """Split `wanted` into batches of at most `size` keys, each a contiguous stretch of
    `ordered_keys`, so a range run touches exactly the wanted partitions."""
    wanted_set = set(wanted)
    batches: list[list[str]] = []
    current: list[str] = []
    for key in ordered_keys:
        if key in wanted_set:
            current.append(key)
            if len(current) >= size:
                batches.append(current)
                current = []
        elif current:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches

"""What every asset check shares: the scope of a check (the run's partitions, or the whole
library) and how a result names the failing partitions.

A check that runs with an index run looks at that run's partitions only (its partition range),
so ingesting a library costs what its runs cost, not the square of its size. Run without a
range (the nightly `check_library` job, or from the UI), a check looks at the whole library and
so also catches damage done outside a run. A failing check names the partitions (checksums).
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetRecordsFilter,
)

from .partitions import MEDIA_PARTITIONS_NAME, media_partitions
from .ranges import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

SHOW = 20  # partitions named in a failing check's metadata


def check_result(bad: list[str], checked: int, what: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=not bad,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "checked": checked,
            "failing": len(bad),
            "partitions": ", ".join(sorted(bad)[:SHOW]) + (" …" if len(bad) > SHOW else ""),
            "rule": what,
        },
    )


def all_partitions(context: AssetCheckExecutionContext) -> list[str]:
    return list(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))


def scope_of(context: AssetCheckExecutionContext) -> list[str] | None:
    """The partitions of the run (its range, or its one partition), or None: all of them
    (also when the check is called directly, outside a run)."""
    try:
        tags = context.run.tags
    except Exception:  # invoked directly: Dagster has no run to give (its error is private)
        return None
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not start or not end:
        return None
    keys = all_partitions(context)
    first, last = keys.index(start), keys.index(end)
    return keys[first : last + 1]


def where_in(scope: list[str] | None, alias: str = "") -> tuple[str, list]:
    """A SQL condition (and its parameter) limiting rows to the scope's checksums."""
    if scope is None:
        return "TRUE", []
    return f"list_contains($1, {alias}checksum)", [scope or [""]]


FEW = 500  # partitions asked about by their own materializations, not the status cache


def materialized_keys(context: AssetCheckExecutionContext, key, keys: list[str]) -> list[str]:
    """Which of `keys` the asset has materialized. A run's few partitions are looked up by
    their materializations (Dagster's status query reads the asset's whole partition cache,
    seconds at 100,000 partitions, whatever it is asked); the whole library through it."""
    if len(keys) > FEW:
        status = context.instance.get_status_by_partition(key, keys, media_partitions) or {}
        return [k for k in keys if getattr(status.get(k), "value", None) == "MATERIALIZED"]
    seen: set[str] = set()
    cursor = None
    while keys:
        page = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=list(keys)),
            limit=1000,
            cursor=cursor,
        )
        seen.update(r.partition_key for r in page.records if r.partition_key)
        if not page.has_more or seen >= set(keys):
            break
        cursor = page.cursor
    return [k for k in keys if k in seen]

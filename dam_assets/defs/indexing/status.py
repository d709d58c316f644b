"""What the instance says about the library's partitions, for the schedules, the sensor and
`dam`: which files some asset has not materialized, which content is gone for good, which
partitions an older code version made."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from dagster import AssetRecordsFilter, DagsterInstance

from ... import settings
from ...storage import Store
from ..common.batch import TRANSIENT
from ..common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
from .jobs import MEDIA_ASSETS


def unindexed(
    instance: DagsterInstance,
    checksums: Sequence[str],
    store: Store | None = None,
    retention_days: float | None = None,
) -> list[str]:
    """Checksums some media asset has not materialized yet (new, or left by a crashed run),
    or that a run could not read (share offline, permission, changed): those are retried.
    Content whose every copy has been missing for longer than `retention_days`
    (settings.missing_retention_days) is gone for good: not retried, and its errors say so."""
    todo: set[str] = set()
    gone: set[str] = set()
    if store is not None and checksums:
        gone = set(gone_for_good(store, checksums, retention_days))
        retry = store.sql(
            "SELECT DISTINCT checksum FROM ingest_errors WHERE stage <> 'discovery'"
            " AND list_contains($1, error_type) AND list_contains($2, checksum)",
            [sorted({*TRANSIENT, GONE}), list(checksums)],
        )
        todo.update(retry.column("checksum").to_pylist())
    for assets_def in MEDIA_ASSETS:
        status = (
            instance.get_status_by_partition(assets_def.key, list(checksums), media_partitions)
            or {}
        )
        todo.update(k for k in checksums if getattr(status.get(k), "value", None) != "MATERIALIZED")
    return [k for k in checksums if k in todo and k not in gone]


GONE = "SourceGone"


def gone_for_good(
    store: Store, checksums: Sequence[str], retention_days: float | None
) -> list[str]:
    """Content with no copy seen for longer than the retention. Its `SourceMissing` errors
    become `SourceGone`, which says it is no longer retried and how to bring it back."""
    days = settings.missing_retention_days() if retention_days is None else retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    gone = store.sql(
        "SELECT checksum, max(coalesce(missing_since, last_seen)) AS since FROM media_files"
        " WHERE list_contains($1, checksum) GROUP BY checksum"
        " HAVING bool_and(missing) AND max(coalesce(missing_since, last_seen)) < $2",
        [list(checksums), cutoff],
    ).to_pylist()
    since = {r["checksum"]: r["since"] for r in gone}
    if since:
        missing = store.sql(
            "SELECT stage, checksum, path FROM ingest_errors WHERE error_type = 'SourceMissing'"
            " AND list_contains($1, checksum)",
            [list(since)],
        ).to_pylist()
        for row in missing:
            store.record_stage_error(
                row["stage"],
                row["checksum"],
                row["path"],
                GONE,
                f"No copy of this content has been seen since {since[row['checksum']]:%Y-%m-%d}"
                f" (more than {days:g} days, DAM_MISSING_RETENTION_DAYS), so it is no longer"
                " retried. Reconnect the storage or restore the file, then let the storage"
                " sensor or `dam ingest FOLDER` find it again: it is indexed then.",
            )
    return list(since)


def current_code_version(assets_def) -> str | None:
    return assets_def.code_versions_by_key.get(assets_def.key)


def outdated_partitions(instance: DagsterInstance, assets_def, keys: Sequence[str]) -> list[str]:
    """Partitions whose latest materialization was made by another code version of the asset
    (changed code, model or parameters: the version embeds them). Reads the event log once,
    in pages, oldest first, so later materializations win."""
    current = current_code_version(assets_def)
    latest: dict[str, str | None] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=assets_def.key),
            limit=5000,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            tags = record.asset_materialization.tags or {} if record.asset_materialization else {}
            latest[record.partition_key] = tags.get("dagster/code_version")
        if not page.has_more:
            break
        cursor = page.cursor
    wanted = set(keys)
    return [k for k, v in latest.items() if k in wanted and v != current]


def downstream_media_assets(assets_def) -> list:
    """The asset and every per-file asset that depends on it, in job order."""
    chosen = {assets_def.key}
    changed = True
    while changed:
        changed = False
        for other in MEDIA_ASSETS:
            if other.key not in chosen and other.dependency_keys & chosen:
                chosen.add(other.key)
                changed = True
    return [a for a in MEDIA_ASSETS if a.key in chosen]


def partition_counts(instance: DagsterInstance, assets_defs: Sequence | None = None) -> list[dict]:
    """Per per-file asset (the media assets, else `assets_defs`): partitions materialized,
    missing, failed and in progress, as `dam status` and the library page's status show them."""
    keys = list(instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    rows = []
    for assets_def in assets_defs or MEDIA_ASSETS:
        statuses = (
            (instance.get_status_by_partition(assets_def.key, keys, media_partitions) or {})
            if keys
            else {}
        )
        counts = {"MATERIALIZED": 0, "FAILED": 0, "IN_PROGRESS": 0}
        for status in statuses.values():
            if status is not None:
                counts[status.value] += 1
        rows.append(
            {
                "asset": assets_def.key.to_user_string(),
                "partitions": len(keys),
                "materialized": counts["MATERIALIZED"],
                "missing": len(keys) - sum(counts.values()),
                "failed": counts["FAILED"],
                "in_progress": counts["IN_PROGRESS"],
            }
        )
    return rows

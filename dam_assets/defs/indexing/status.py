"""What the instance says about the library's partitions, for the schedules, the sensor and
`dam`: which files some asset has not materialized, which content is gone for good, which
partitions an older code version made."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster import AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter

from ... import settings
from ...storage import Store
from ...storage.sqlite import HostOnly
from ..common.batch import TRANSIENT
from ..common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
from ..common.ranges import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from .jobs import MEDIA_ASSETS

CODE_VERSION_TAG = "dagster/code_version"
PAGE = 5000  # materializations read per query (and remembered per transaction)


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
        " WHERE checksum IN (SELECT unnest($1)) GROUP BY checksum"  # list_contains: N x M
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


def read_versions(
    instance: DagsterInstance,
    store: Store,
    assets_def,
    budget_s: float | None = None,
    page: int = PAGE,
) -> bool:
    """Bring the remembered code versions of `assets_def`'s partitions up to date: read only
    the materializations after the remembered cursor, oldest first, a page per transaction.
    Stops starting pages once `budget_s` is spent; True when it read everything there was. A
    cursor whose event Dagster no longer has (asset wiped, another instance) is dropped and
    the log read again from its start."""
    versions = store.partition_versions
    name = assets_def.key.to_user_string()
    cursor = versions.cursor(name)
    if (
        cursor is not None
        and not instance.fetch_materializations(
            AssetRecordsFilter(asset_key=assets_def.key, storage_ids=[cursor]), limit=1
        ).records
    ):
        versions.forget(name)
        cursor = None
    deadline = None if budget_s is None else time.monotonic() + budget_s
    first = True
    while True:
        # out of budget: only look whether there is more (a page is read when some is left)
        spent = deadline is not None and (
            budget_s <= 0 or (not first and time.monotonic() >= deadline)
        )
        first = False
        found = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=assets_def.key, after_storage_id=cursor),
            limit=1 if spent else page,
            ascending=True,
        )
        if not found.records:
            return True
        if spent:
            return False
        rows = []
        for record in found.records:
            tags = record.asset_materialization.tags if record.asset_materialization else None
            version = (tags or {}).get(CODE_VERSION_TAG)
            rows.append((record.partition_key, version, record.storage_id, record.timestamp))
        cursor = found.records[-1].storage_id
        versions.record(name, [r for r in rows if r[0] is not None], cursor)
        if not found.has_more:
            return True


def outdated_partitions(
    instance: DagsterInstance,
    store: Store,
    assets_def,
    keys: Sequence[str],
    budget_s: float | None = None,
) -> tuple[list[str], bool]:
    """Partitions whose latest materialization was made by another code version of the asset
    (changed code, model or parameters: the version embeds them), and whether every event was
    read (a budget cut short leaves the rest to the next call: those partitions are not called
    outdated yet)."""
    complete = read_versions(instance, store, assets_def, budget_s)
    current = current_code_version(assets_def)
    return store.partition_versions.other_than(
        assets_def.key.to_user_string(), current, keys
    ), complete


@dataclass
class States:
    """Dagster's status of an asset's partitions; the others are missing."""

    materialized: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    in_progress: set[str] = field(default_factory=set)
    count: int = 0  # materialized partitions


UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FAILED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def partition_states(
    instance: DagsterInstance,
    store: Store,
    keys: Sequence[str] | None = None,
    budget_s: float | None = None,
    order: Sequence[str] | None = None,
    counts_only: bool = False,
) -> dict[str, States]:
    """Per media asset, what Dagster shows for `keys` (default: every partition): materialized
    (its latest attempt materialized it), failed (planned in a run that failed or was canceled
    after its latest materialization) or in progress (planned in a run not finished).

    Dagster's own answer (`get_status_by_partition`) deserializes the asset's whole partition
    status cache on every call, whatever the keys asked: about 2 s an asset at 100,000
    partitions. This reads the materializations written since the last call (read_versions)
    and the runs that did not succeed, which are few, and gives the same answer. When that
    read cannot finish within `budget_s` (a first read of a large instance: minutes), it asks
    Dagster's own query instead, and the next call goes on reading. `order`: the partitions,
    when the caller has them already. `counts_only` (`dam status`): the
    materialized partitions counted in `count`, not listed."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    if order is None:
        order = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    order = list(order)
    try:
        complete = True
        for assets_def in MEDIA_ASSETS:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            complete = read_versions(instance, store, assets_def, left) and complete
    except HostOnly:  # a worker machine keeps no SQLite files of the host's
        complete = False
    if not complete:
        return dagster_states(instance, order if keys is None else list(keys))
    wanted = set(order) if keys is None else set(keys).intersection(order)
    position = {k: i for i, k in enumerate(order)}
    names = [a.key.to_user_string() for a in MEDIA_ASSETS]
    versions = store.partition_versions
    if counts_only:
        states = {n: States(count=versions.count(n)) for n in names}
    else:
        states = {n: States(materialized=versions.partitions(n) & wanted) for n in names}
    attempts: dict[tuple[str, str], tuple[float, bool]] = {}  # latest unsuccessful attempt
    records = instance.get_run_records(RunsFilter(statuses=FAILED + UNFINISHED))
    plans: dict[str | None, set[str]] = {}
    for record in records:
        run = record.dagster_run
        started = record.start_time or record.create_timestamp.timestamp()
        selected = _targets(instance, run, set(names), plans)
        for key in _run_keys(run.tags, position, order):
            if key not in wanted:
                continue
            for name in selected:
                seen = attempts.get((name, key))
                if seen is None or seen[0] < started:
                    attempts[(name, key)] = (started, run.status in UNFINISHED)
    made = {n: versions.materialized_at(n, [k for a, k in attempts if a == n]) for n in names}
    for (name, key), (started, running) in attempts.items():
        if made[name].get(key, float("-inf")) > started:
            continue  # materialized after that attempt began: by it, or by a later run
        state = states[name]
        if counts_only and key in made[name]:
            state.count -= 1
        state.materialized.discard(key)
        (state.in_progress if running else state.failed).add(key)
    for state in states.values():
        if not counts_only:
            state.count = len(state.materialized)
    return states


def dagster_states(instance: DagsterInstance, keys: list[str]) -> dict[str, States]:
    """Dagster's own answer (its partition status cache)."""
    states = {}
    for assets_def in MEDIA_ASSETS:
        status = instance.get_status_by_partition(assets_def.key, keys, media_partitions) or {}
        state = States()
        for key, value in status.items():
            found = {"MATERIALIZED": state.materialized, "FAILED": state.failed}.get(
                getattr(value, "value", ""), state.in_progress if value is not None else None
            )
            if found is not None:
                found.add(key)
        state.count = len(state.materialized)
        states[assets_def.key.to_user_string()] = state
    return states


def _targets(instance: DagsterInstance, run, names: set[str], plans: dict) -> set[str]:
    """The media assets a run planned: its asset selection, else its plan's steps (an asset's
    step key is its name), cached per plan snapshot."""
    if run.asset_selection:
        return {k.to_user_string() for k in run.asset_selection} & names
    plan_id = run.execution_plan_snapshot_id
    if plan_id not in plans:
        plan = instance.get_execution_plan_snapshot(plan_id) if plan_id else None
        plans[plan_id] = {step.key for step in plan.steps} if plan else set()
    steps = plans[plan_id]
    if run.step_keys_to_execute:
        steps = steps & set(run.step_keys_to_execute)
    return steps & names


def _run_keys(tags, position: dict[str, int], order: list[str]) -> list[str]:
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start in position and end in position:
        return order[position[start] : position[end] + 1]
    return []


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


def partition_counts(
    instance: DagsterInstance,
    store: Store,
    others: Sequence = (),
    budget_s: float | None = None,
) -> list[dict]:
    """Per media asset (from partition_states), then per asset of `others` (Dagster's own
    status query: assets off the index path, such as proxies): partitions materialized,
    missing, failed and in progress, as `dam status` and the library page show them."""
    keys = list(instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    states = partition_states(instance, store, budget_s=budget_s, order=keys, counts_only=True)
    counted = {
        name: (state.count, len(state.failed), len(state.in_progress))
        for name, state in states.items()
    }
    for assets_def in others:
        statuses = (
            (instance.get_status_by_partition(assets_def.key, keys, media_partitions) or {})
            if keys
            else {}
        )
        values = [s.value for s in statuses.values() if s is not None]
        counted[assets_def.key.to_user_string()] = tuple(
            values.count(v) for v in ("MATERIALIZED", "FAILED", "IN_PROGRESS")
        )
    return [
        {
            "asset": name,
            "partitions": len(keys),
            "materialized": made,
            "missing": len(keys) - made - failed - running,
            "failed": failed,
            "in_progress": running,
        }
        for name, (made, failed, running) in counted.items()
    ]

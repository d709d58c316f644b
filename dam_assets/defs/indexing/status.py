"""Running `index_media` for a set of partitions through the Dagster instance, in batches.

`dam ingest` uses this so its runs are real runs of the instance in $DAGSTER_HOME (visible in
the UI, with logs and partition status) without starting a daemon.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter

from ... import settings
from ...storage import TABLES, Store
from ..common.batch import TRANSIENT
from ..common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
from ..common.ranges import contiguous_batches, range_tags
from .jobs import MEDIA_ASSETS
from .planning import ORDER, errors_by_stage, lacking, materialized, plan_runs, unavailable

COMPACT_WHEN_UNITS_OVER = 500


@dataclass
class IndexOutcome:
    indexed: list[str] = field(default_factory=list)  # every asset done (or waiting for a model)
    already: int = 0
    runs: list[str] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    per_asset: list[dict] = field(default_factory=list)  # asset, indexed, failed, skipped, why
    file_errors: int = 0

    def record(self, run: tuple[str, bool]) -> bool:
        run_id, ok = run
        self.runs.append(run_id)
        if not ok:
            self.failed_runs.append(run_id)
        return ok


# Runs executed in process by `dam` carry the process that runs them: when that process is
# killed (SIGKILL, OOM) nothing in Dagster notices, and the run would stay STARTED, holding a
# run slot and its pool, forever.
OWNER_HOST, OWNER_PID, OWNER_START = "dam/host", "dam/pid", "dam/pid_start"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_tags() -> dict[str, str]:
    pid = os.getpid()
    return {
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(pid),
        OWNER_START: _process_start(pid) or "",
    }


def reap_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the runs a `dam` process of this host was executing in process when it
    died; run monitoring then frees their pool slots. Returns their run ids."""
    host = socket.gethostname()
    reaped = []
    for run in instance.get_runs(
        RunsFilter(
            statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING], tags={OWNER_HOST: host}
        )
    ):
        pid = int(run.tags.get(OWNER_PID) or 0)
        if pid and _process_start(pid) == (run.tags.get(OWNER_START) or None):
            continue  # still running
        instance.report_run_failed(
            run,
            f"The `dam` process that ran this (pid {pid} on {host}) is gone: killed or out of"
            " memory. Its files are retried by the next `dam ingest` or the nightly run.",
        )
        reaped.append(run.run_id)
    return reaped


def _execute(
    instance: DagsterInstance, job_name: str, log_level: str, source: str, **kwargs
) -> tuple[str, bool]:
    """One in-process run of a job of the code location: (run id, succeeded). The console shows
    only `log_level` and above; the full log is in the instance (UI)."""
    result = _run(instance, job_name, log_level, source, **kwargs)
    return result.run_id, result.success


def _run(instance: DagsterInstance, job_name: str, log_level: str, source: str, **kwargs):
    from ...definitions import defs  # the code location, loaded only when running

    run_config = kwargs.pop("run_config", {})
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        tags={"dam/source": source, **_owner_tags(), **kwargs.pop("tags", {})},
        raise_on_error=False,
        run_config={**run_config, "loggers": {"console": {"config": {"log_level": log_level}}}},
        **kwargs,
    )
    return result


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


MAX_ROUNDS = 4  # a step that failed for some files leaves the steps after it to a next round


def index_partitions(
    checksums: Sequence[str],
    store: Store,
    batch_size: int = 50,
    say: Callable[[str], None] = print,
    instance: DagsterInstance | None = None,
    log_level: str = "ERROR",
    rig_checksums: Sequence[str] = (),
) -> IndexOutcome:
    """Add missing partitions, then run, per batch, only the assets each file lacks
    (planning.py), in rounds: a step that failed for some files ran for the others, and the
    steps after it run for those in the next round. Nothing is tried twice in one call. The
    console shows only `log_level` and above; the runs' full logs are in the instance (UI)."""
    instance = instance or DagsterInstance.get()
    outcome = IndexOutcome()
    existing = set(instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    new = [k for k in checksums if k not in existing]
    if new:
        instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, new)
    gone = set(gone_for_good(store, checksums, None)) if checksums else set()
    keys = [k for k in dict.fromkeys(checksums) if k not in gone]
    ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    attempted: set[tuple[str, str]] = set()
    first_plan: set[str] = set()
    started = time.monotonic()
    for round_no in range(MAX_ROUNDS):
        off = unavailable(store)
        plan = lacking(
            instance, keys, store, retry_access=True, unavailable=off, attempted=attempted
        )
        if round_no == 0:
            outcome.already = len(keys) - len(plan)
            first_plan = set(plan)
        runs = plan_runs(plan, ordered, batch_size)
        if not runs:
            break
        for i, planned in enumerate(runs, 1):
            t0 = time.monotonic()
            what = "every asset" if planned.selection is None else ", ".join(planned.assets)
            say(f"[{i}/{len(runs)}] {len(planned.keys)} file(s): {what}…")
            result = _run(
                instance,
                "index_media",
                log_level,
                "dam ingest",
                tags=range_tags(planned.keys),
                asset_selection=planned.selection,
            )
            ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
            attempted |= {(a, k) for a in planned.assets if a in ran for k in planned.keys}
            outcome.record((result.run_id, result.success))
            say(
                f"    run {result.run_id[:8]} {'ok' if result.success else 'had failures'} in"
                f" {time.monotonic() - t0:.1f}s ({time.monotonic() - started:.0f}s so far)"
            )
    _summarize(instance, store, keys, outcome)
    if keys:
        outcome.indexed = [k for k in outcome.indexed if k in first_plan]  # new this time
    # `dam ingest --rig`: files indexed before now belong to a rig; new ones just got theirs
    rig_again = [c for c in rig_checksums if c in existing]
    if rig_again:
        ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
        for batch in contiguous_batches(rig_again, ordered, batch_size):
            outcome.record(
                _execute(
                    instance,
                    "index_media",
                    log_level,
                    "dam ingest --rig",
                    tags=range_tags(batch),
                    asset_selection=[AssetKey("capture_segments")],
                )
            )
    rig_rows = store.sql(
        "SELECT count(*) n FROM capture_segments WHERE list_contains($1, checksum)",
        [list(checksums) or [""]],
    ).to_pylist()[0]["n"]
    if (outcome.indexed or rig_again) and rig_rows:
        say("grouping camera-rig sessions and syncing audio…")
        outcome.record(_execute(instance, "sync_capture_sessions", log_level, "dam ingest"))
    new_tracks = store.sql(
        "SELECT count(*) n FROM face_tracks WHERE list_contains($1, checksum)",
        [outcome.indexed or [""]],
    ).to_pylist()[0]["n"]
    if new_tracks:
        say("placing new faces among people…")
        outcome.record(cluster_faces(instance, recluster=False, log_level=log_level))
    if len(store.lake.unit_keys("probe")) > COMPACT_WHEN_UNITS_OVER:
        say("compacting the lake…")
        for table in TABLES:
            store.lake.compact(table)
    return outcome


def cluster_faces(
    instance: DagsterInstance, recluster: bool, log_level: str = "ERROR", source: str = "dam"
) -> tuple[str, bool]:
    """One `cluster_faces` run (incremental, or a full re-cluster) through the instance."""
    config = {"ops": {"face_clusters": {"config": {"recluster": recluster}}}}
    return _execute(instance, "cluster_faces", log_level, source, run_config=config)


def _summarize(instance: DagsterInstance, store: Store, keys: list[str], outcome) -> None:
    """Per asset: how many of these files it indexed, how many failed (ingest_errors says
    why), how many wait for its model (and what to install), how many wait on an earlier
    asset."""
    done = materialized(instance, keys)
    errors = errors_by_stage(store, keys)
    off = unavailable(store)
    complete = set(keys)
    for name in ORDER:
        failed = set(errors.get(name, {})) - done[name]
        skipped = set(keys) - done[name] - failed if name in off else set()
        outcome.per_asset.append(
            {
                "asset": name,
                "indexed": len(done[name]),
                "failed": len(failed),
                "skipped": len(skipped),
                "waiting": len(set(keys) - done[name] - failed - skipped),
                "why": off.get(name, ""),
            }
        )
        outcome.file_errors += len(failed)
        complete &= done[name] | skipped
    outcome.indexed = [k for k in keys if k in complete]

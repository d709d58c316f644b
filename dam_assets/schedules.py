"""Nightly: finish what is missing or failed (03:00), then compact the lake (03:30)."""

import os
from datetime import datetime
from pathlib import Path

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from .jobs import MEDIA_ASSETS, face_clusters_job, index_media_job, maintain_lake
from .partitions import MEDIA_PARTITIONS_NAME
from .resources import DamStorage
from .runner import downstream_media_assets, outdated_partitions, unindexed
from .runs import contiguous_batches, range_tags

NIGHTLY_BATCH = 50


def _local_timezone() -> str:
    """`DAM_TIMEZONE`, else the machine's zone (so the default 03:00 is local time)."""
    zone = os.environ.get("DAM_TIMEZONE") or os.environ.get("TZ")
    if not zone and Path("/etc/timezone").is_file():
        zone = Path("/etc/timezone").read_text().strip()
    return zone or "UTC"


@schedule(
    name="nightly",
    cron_schedule=os.environ.get("DAM_NIGHTLY_CRON", "0 3 * * *"),
    execution_timezone=_local_timezone(),
    job=index_media_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-runs, in batches, every partition some asset has not materialized (new,"
    " failed, killed) or could not read (share offline, permission), and re-materializes"
    " partitions made by an older code version of an asset (that asset and its dependents)."
    " With nothing to do it requests nothing. Compaction runs at 03:30.",
)
def nightly(context: ScheduleEvaluationContext, storage: DamStorage):
    store = storage.store()
    store.refresh_catalog()
    keys = list(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    todo = unindexed(context.instance, keys, store) if keys else []
    day = (context.scheduled_execution_time or datetime.now()).strftime("%Y-%m-%d")
    requests = [
        RunRequest(
            run_key=f"nightly-{day}-{i}", tags={**range_tags(batch), "dam/source": "nightly"}
        )
        for i, batch in enumerate(contiguous_batches(todo, keys, NIGHTLY_BATCH))
    ]
    # Made by an older code version (code, model or parameters changed): re-run exactly that
    # asset and what depends on it, for those partitions.
    pending = set(todo)
    for assets_def in MEDIA_ASSETS:
        outdated = [
            k for k in outdated_partitions(context.instance, assets_def, keys) if k not in pending
        ]
        pending |= set(outdated)  # one run per partition, for the most upstream change
        selection = [a.key for a in downstream_media_assets(assets_def)]
        for i, batch in enumerate(contiguous_batches(outdated, keys, NIGHTLY_BATCH)):
            requests.append(
                RunRequest(
                    run_key=f"nightly-{day}-{assets_def.key.to_python_identifier()}-{i}",
                    asset_selection=selection,
                    tags={**range_tags(batch), "dam/source": "nightly", "dam/outdated": "1"},
                )
            )
    if not requests:
        return SkipReason(f"all {len(keys)} partitions are materialized and current")
    return requests


# A full re-cluster of people once the night's re-runs are in (a schedule targets one job, so
# this is its own). Ids stay stable and names are kept, so it is safe to run unattended.
nightly_face_recluster = ScheduleDefinition(
    name="nightly_face_recluster",
    job=face_clusters_job,
    cron_schedule=os.environ.get("DAM_RECLUSTER_CRON", "15 3 * * *"),
    execution_timezone=_local_timezone(),
    default_status=DefaultScheduleStatus.RUNNING,
    run_config={"ops": {"face_clusters": {"config": {"recluster": True}}}},
    description="Re-cluster every face track into people (average linkage); ids kept by"
    " overlap, names and hand-placed faces kept.",
)


# Compaction after the nightly re-runs. Views read units and segments alike, so compaction is
# about read speed only: skipping a night loses nothing.
nightly_compaction = ScheduleDefinition(
    name="nightly_compaction",
    job=maintain_lake,
    cron_schedule=os.environ.get("DAM_COMPACTION_CRON", "30 3 * * *"),
    execution_timezone=_local_timezone(),
    default_status=DefaultScheduleStatus.RUNNING,
    description="Merge small per-partition Parquet files so catalog queries stay fast.",
)

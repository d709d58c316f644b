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

from ..common.partitions import MEDIA_PARTITIONS_NAME
from ..common.ranges import range_tags
from ..resources import DamStorage
from .jobs import MEDIA_ASSETS, face_clusters_job, index_media_job, maintain_lake
from .planning import lacking, plan_runs, unavailable
from .status import gone_for_good, outdated_partitions

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
    description="Runs, per batch, exactly the assets each partition lacks: not materialized"
    " (new, killed, or a file that could not be read: share offline, permission), or made by"
    " an older code version (that asset and its dependents). Files whose content failed wait"
    " until they change; assets whose model is not installed wait for it. With nothing to do"
    " it requests nothing. Compaction runs at 03:30.",
)
def nightly(context: ScheduleEvaluationContext, storage: DamStorage):
    store = storage.store()
    keys = list(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    if not keys:
        return SkipReason("no partitions yet")
    gone = set(gone_for_good(store, keys, None))
    keys = [k for k in keys if k not in gone]
    # made by an older code version (code, model or parameters): that asset and what depends
    # on it are to do again, for those partitions
    outdated = {
        a.key.to_user_string(): set(outdated_partitions(context.instance, a, keys))
        for a in MEDIA_ASSETS
    }
    plan = lacking(
        context.instance,
        keys,
        store,
        retry_access=True,
        unavailable=unavailable(store),
        outdated=outdated,
    )
    day = (context.scheduled_execution_time or datetime.now()).strftime("%Y-%m-%d")
    requests = []
    for i, planned in enumerate(plan_runs(plan, keys, NIGHTLY_BATCH)):
        tags = {**range_tags(planned.keys), "dam/source": "nightly"}
        if any(planned.keys[0] in outdated[a] for a in planned.assets):
            tags["dam/outdated"] = "1"
        requests.append(
            RunRequest(run_key=f"nightly-{day}-{i}", asset_selection=planned.selection, tags=tags)
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


# The whole library, after compaction: the checks that index runs make look only at their own
# partitions (so ingest costs what its runs cost); this pass catches damage done outside runs.
nightly_checks = ScheduleDefinition(
    name="nightly_checks",
    job_name="check_library",
    cron_schedule=os.environ.get("DAM_CHECKS_CRON", "0 4 * * *"),
    execution_timezone=_local_timezone(),
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every asset check over the whole library.",
)

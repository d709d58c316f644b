"""Nightly: run what files lack (03:00), compact the lake (03:30), check the whole library
(04:00). People are re-clustered at 03:15 (people/jobs.py)."""

import time
from datetime import datetime

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from ...settings import cron, timezone
from ..common.partitions import FILES_PER_RUN, MEDIA_PARTITIONS_NAME
from ..common.ranges import range_tags
from ..resources import DamStorage
from .jobs import MEDIA_ASSETS, index_media_job, maintain_lake
from .planning import lacking, plan_runs, unavailable
from .status import gone_for_good, outdated_partitions

# Seconds an evaluation may spend reading materializations it has not seen (the daemon gives a
# tick 60 s); only a first read of a large instance needs more, and goes on the next time.
VERSIONS_BUDGET_S = 15.0


@schedule(
    name="nightly",
    cron_schedule=cron("NIGHTLY", "0 3 * * *"),
    execution_timezone=timezone(),
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
    # (read incrementally: only the materializations since the last evaluation)
    deadline = time.monotonic() + VERSIONS_BUDGET_S
    outdated: dict[str, set[str]] = {}
    behind = []
    for a in MEDIA_ASSETS:
        left = max(0.0, deadline - time.monotonic())
        found, complete = outdated_partitions(context.instance, store, a, keys, budget_s=left)
        outdated[a.key.to_user_string()] = set(found)
        if not complete:
            behind.append(a.key.to_user_string())
    if behind:
        context.log.warning(
            f"code versions of {', '.join(behind)} not read to the end within"
            f" {VERSIONS_BUDGET_S:g} s (a first read of a large instance): the 03:30"
            " maintain_lake run reads the rest, and the partitions not read yet are not re-made"
            " before the next evaluation"
        )
    plan = lacking(
        context.instance,
        keys,
        store,
        retry_access=True,
        unavailable=unavailable(store),
        outdated=outdated,
        budget_s=max(0.0, deadline - time.monotonic()),
    )
    day = (context.scheduled_execution_time or datetime.now()).strftime("%Y-%m-%d")
    requests = []
    for i, planned in enumerate(plan_runs(plan, keys, FILES_PER_RUN)):
        tags = {**range_tags(planned.keys), "dam/source": "nightly"}
        if any(planned.keys[0] in outdated[a] for a in planned.assets):
            tags["dam/outdated"] = "1"
        requests.append(
            RunRequest(run_key=f"nightly-{day}-{i}", asset_selection=planned.selection, tags=tags)
        )
    if not requests:
        return SkipReason(f"all {len(keys)} partitions are materialized and current")
    return requests


# Compaction after the nightly re-runs. Views read units and segments alike, so compaction is
# about read speed only: skipping a night loses nothing.
nightly_compaction = ScheduleDefinition(
    name="nightly_compaction",
    job=maintain_lake,
    cron_schedule=cron("COMPACTION", "30 3 * * *"),
    execution_timezone=timezone(),
    default_status=DefaultScheduleStatus.RUNNING,
    description="Merge small per-partition Parquet files so catalog queries stay fast, and"
    " read the code versions of materializations the nightly evaluation has not read yet.",
)


# The whole library, after compaction: the checks that index runs make look only at their own
# partitions (so ingest costs what its runs cost); this pass catches damage done outside runs.
nightly_checks = ScheduleDefinition(
    name="nightly_checks",
    job_name="check_library",
    cron_schedule=cron("CHECKS", "0 4 * * *"),
    execution_timezone=timezone(),
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every asset check over the whole library.",
)

"""The proxies job and its nightly schedule (proxies are off the default ingest path; see
proxies.py for why)."""

from datetime import datetime

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from ...media.proxy import proxy_reason
from ...settings import cron, timezone
from ..common.batch import TRANSIENT, probe_rows
from ..common.partitions import FILES_PER_RUN, MEDIA_PARTITIONS_NAME, media_partitions
from ..common.ranges import contiguous_batches, range_tags
from ..indexing.planning import errors_by_stage
from ..resources import DamStorage
from .proxies import main_video_streams, proxies

make_proxies_job = define_asset_job(
    "make_proxies",
    selection=AssetSelection.assets(proxies),
    description="Browser proxies for a range of partitions (the nightly_proxies schedule; or a"
    " backfill of `proxies` from the UI).",
)


def needing_proxies(instance, store, keys: list[str]) -> list[str]:
    """Files that need a proxy and have none materialized (content that failed waits until it
    changes; a file that could not be read is tried again)."""
    probed = probe_rows(store, keys).values()
    streams = main_video_streams(store, keys)
    need = {r["checksum"] for r in probed if proxy_reason(r, streams.get(r["checksum"]))}
    status = instance.get_status_by_partition(proxies.key, keys, media_partitions) or {}
    done = {k for k, s in status.items() if getattr(s, "value", None) == "MATERIALIZED"}
    failed = errors_by_stage(store, keys).get("proxies", {})
    return [
        k
        for k in keys
        if k in need and k not in done and (k not in failed or failed[k] in TRANSIENT)
    ]


@schedule(
    name="nightly_proxies",
    cron_schedule=cron("PROXIES", "0 1 * * *"),
    execution_timezone=timezone(),
    job=make_proxies_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Makes the browser proxies still missing (videos a browser cannot play), in"
    " batches of 50, before the 03:00 nightly run; requests nothing when none is missing.",
)
def nightly_proxies(context: ScheduleEvaluationContext, storage: DamStorage):
    store = storage.store()
    keys = list(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    todo = needing_proxies(context.instance, store, keys) if keys else []
    if not todo:
        return SkipReason(f"no proxy missing among {len(keys)} partitions")
    day = (context.scheduled_execution_time or datetime.now()).strftime("%Y-%m-%d")
    return [
        RunRequest(
            run_key=f"proxies-{day}-{i}", tags={**range_tags(batch), "dam/source": "nightly"}
        )
        for i, batch in enumerate(contiguous_batches(todo, keys, FILES_PER_RUN))
    ]

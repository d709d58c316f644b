"""The storage sensor: watched folders in, batched runs of new partitions out."""

import hashlib
import json
import os
import time
from datetime import UTC, datetime

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ...library.discovery import scan
from ...library.dupes import HASHED_VIDEOS_SQL
from ...library.rigs import load_rigs
from ...storage.paths import safe_text
from ..common.partitions import FILES_PER_RUN, MEDIA_PARTITIONS_NAME, media_partitions
from ..common.ranges import range_tags
from ..media.near_duplicates import near_duplicates_job
from ..people.jobs import face_clusters_job
from ..resources import DamStorage, MediaDiscovery
from ..rigs.jobs import capture_sessions_job
from .jobs import hash_large_files, index_media_job
from .orphans import reap_orphaned_runs
from .planning import lacking, plan_runs, unavailable

OUTSTANDING = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def batched(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


@sensor(
    jobs=[
        index_media_job,
        capture_sessions_job,
        face_clusters_job,
        near_duplicates_job,
        hash_large_files,
    ],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches DAM_WATCH_ROOTS for settled media files; adds one `media` partition per"
    " new checksum and requests batched `index_media` runs. Marks deleted files missing.",
)
def media_storage_sensor(
    context: SensorEvaluationContext, storage: DamStorage, discovery: MediaDiscovery
) -> SensorResult | SkipReason:
    store = storage.store()
    cursor = json.loads(context.cursor) if context.cursor else {}
    for run_id in reap_orphaned_runs(context.instance):  # a killed `dam ingest` held slots
        context.log.warning(f"run {run_id} of a `dam` process that died is marked failed")
    outstanding = context.instance.get_runs_count(
        RunsFilter(job_name=index_media_job.name, statuses=OUTSTANDING)
    )
    if outstanding >= discovery.max_outstanding_runs:
        return SkipReason(
            f"{outstanding} index runs queued or running (limit {discovery.max_outstanding_runs});"
            " new files wait for the next tick"
        )
    roots = discovery.roots() + _rig_roots(context)
    observations = cursor.get("observed") or {}
    report = scan(
        roots,
        store,
        settle_seconds=discovery.settle_seconds,
        observations=observations,
        budget_s=discovery.tick_budget_seconds,
        resume=cursor.get("walk"),
        defer_larger_than=int(discovery.read_in_tick_max_mb * 2**20),
    )
    # Every present content without a partition: new this tick, deferred by an earlier
    # tick's cap, or recorded by a tick that died before its partitions were added.
    existing = set(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    new = [ck for ck in store.registry.present_checksums() if ck not in existing]
    deferred = new[discovery.max_new_per_tick :]
    new = new[: discovery.max_new_per_tick]
    store.refresh_catalog()

    runs = [
        RunRequest(
            run_key=f"index:{batch[0]}:{batch[-1]}:{len(batch)}",
            job_name=index_media_job.name,
            tags=range_tags(batch),
        )
        for batch in batched(new, discovery.partitions_per_run)
    ]
    next_cursor = {
        "segments": cursor.get("segments"),
        "face_tracks": cursor.get("face_tracks"),
        "hashed_videos": cursor.get("hashed_videos"),
        "walk": report.resume,
        "observed": observations,
        "seen": report.seen,
        "backlog": len(deferred),
        "last_new": len(new),
    }
    where = f", walk continues after {safe_text(report.resume['after'])}" if report.resume else ""
    summary = (
        f"{report.seen} media files under {len(roots)} root(s): {len(new)} new,"
        f" {report.hashed} hashed, {report.renamed} renamed, {report.new_versions} with new"
        f" content, {len(report.waiting)} waiting to settle, {len(report.errors)} unreadable,"
        f" {report.missing_marked} marked missing, backlog {len(deferred)}"
        f" ({report.elapsed_s:.1f}s{where})"
    )
    context.log.info(summary)
    for skipped in report.roots_skipped:
        context.log.warning(f"watched root skipped: {safe_text(skipped)}")
    hashing = _hash_requests(report.deferred)
    if not new:
        lacking_runs = [] if outstanding else _lacking_requests(context, store, next_cursor, cursor)
        regroup = []
        if _due(context, cursor, next_cursor, "signatures_at"):
            regroup = [
                r
                for r in (
                    _sessions_request(context, store, next_cursor),
                    _people_request(store, next_cursor),
                    _dupes_request(store, next_cursor),
                )
                if r
            ]
        follow_up = hashing + lacking_runs + regroup
        if follow_up:
            return SensorResult(run_requests=follow_up, cursor=json.dumps(next_cursor))
        context.update_cursor(json.dumps(next_cursor))
        return SkipReason(summary)
    return SensorResult(
        run_requests=runs + hashing,
        dynamic_partitions_requests=[media_partitions.build_add_request(new)],
        cursor=json.dumps(next_cursor),
    )


FOLLOW_UP_EVERY_S = 300.0


# Seconds a tick may spend reading materializations not seen yet (status.partition_states);
# only a first read of a large instance needs more: it goes on at the next look.
READ_BUDGET_S = 10.0


def _due(
    context: SensorEvaluationContext,
    cursor: dict,
    next_cursor: dict,
    key: str,
    job_name: str | None = None,
) -> bool:
    """Whether to look again at what only runs change (what files lack, the tables behind the
    regroup runs): a run (of `job_name`, or any) finished since the last look under `key`, or
    `FOLLOW_UP_EVERY_S` passed. A quiet tick then costs no scan of the lake (the per-second
    table alone is millions of rows at 80,000 clips)."""
    last = float(cursor.get(key) or 0.0)
    next_cursor[key] = last
    finished = context.instance.get_runs_count(
        RunsFilter(
            job_name=job_name,
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
            updated_after=datetime.fromtimestamp(last, UTC),
        )
    )
    if not finished and time.time() - last < FOLLOW_UP_EVERY_S:
        return False
    next_cursor[key] = time.time()
    return True


def _lacking_requests(
    context: SensorEvaluationContext, store, next_cursor: dict, cursor: dict
) -> list[RunRequest]:
    """Runs of what files still lack once their index runs are over: the steps after one
    that failed for some files of a batch, or an asset whose model was installed since
    (planning.py). Looked at when index runs finished since the last look, else every five
    minutes. Files whose content failed, or that could not be read, are the nightly run's."""
    if not _due(context, cursor, next_cursor, "lacking_at", index_media_job.name):
        return []
    keys = list(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    plan = lacking(
        context.instance,
        keys,
        store,
        retry_access=False,
        unavailable=unavailable(store),
        budget_s=READ_BUDGET_S,
    )
    hour = int(time.time() // 3600)
    requests = []
    for planned in plan_runs(plan, keys, FILES_PER_RUN):
        ident = f"{','.join(planned.assets)}:{planned.keys[0]}:{planned.keys[-1]}"
        digest = hashlib.blake2s(ident.encode()).hexdigest()[:16]
        requests.append(
            RunRequest(
                run_key=f"lacking:{digest}:{hour}",  # the same gap is asked for once an hour
                job_name=index_media_job.name,
                asset_selection=planned.selection,
                tags={**range_tags(planned.keys), "dam/source": "sensor follow-up"},
            )
        )
    if requests:
        context.log.info(f"{len(plan)} file(s) lack some assets: {len(requests)} run(s)")
    return requests


HASH_FILES_PER_RUN = 20


def _hash_requests(deferred: list[dict]) -> list[RunRequest]:
    """Runs that checksum the files too large to read within a tick. The run key names the
    files as seen and the hour, so a queued run is not requested twice and a failed one is
    tried again later."""
    hour = int(time.time() // 3600)
    requests = []
    for batch in batched(sorted(deferred, key=lambda f: f["path"]), HASH_FILES_PER_RUN):
        ident = json.dumps([[f["path"], f["size"], f["mtime_ns"]] for f in batch])
        digest = hashlib.blake2s(ident.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        requests.append(
            RunRequest(
                run_key=f"hash:{digest}:{hour}",
                job_name=hash_large_files.name,
                run_config={"ops": {"hash_files": {"config": {"files": batch}}}},
            )
        )
    return requests


def _rig_roots(context: SensorEvaluationContext) -> list:
    """Rig roots from rigs.yaml; a broken rigs.yaml is logged and the watched roots are still
    scanned (a typo must not stop ingest)."""
    try:
        roots = [r.root for r in load_rigs().rigs]
    except Exception as exc:
        context.log.error(f"rigs.yaml could not be read, rig roots skipped: {safe_text(exc)}")
        return []
    return [r for r in roots if not _absent(r)]  # a rig with no root here is not watched


def _absent(path) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False  # there but unreadable (stale mount): the scan says why it skips it
    return False


def _when_changed(store, cursor: dict, name: str, sql: str, job_name: str) -> RunRequest | None:
    """A run of `job_name` if the table signature `sql` (count `n`, hash sum `h`) differs from
    the one the cursor remembers under `name`. The cursor decides; the run key only has to be
    new (a signature can come back to an earlier value)."""
    [sig] = store.sql(sql).to_pylist()
    signature = f"{sig['n']}:{sig['h']}"
    if cursor.get(name) == signature or (not sig["n"] and not cursor.get(name)):
        return None  # unchanged, or never anything (once emptied, one run tidies up)
    cursor[name] = signature
    return RunRequest(run_key=f"{name}:{signature}:{time.time():.0f}", job_name=job_name)


def _sessions_request(context: SensorEvaluationContext, store, cursor: dict) -> RunRequest | None:
    """Once the index runs have settled (nothing new this tick), regroup the rig sessions if
    the set of capture segments changed since the last request (files outside rigs do not
    count)."""
    return _when_changed(
        store,
        cursor,
        "segments",
        "SELECT count(*) n, coalesce(sum(hash(checksum || coalesce(CAST(capture_start AS"
        " VARCHAR), ''))), 0) h FROM capture_segments",
        capture_sessions_job.name,
    )


def _dupes_request(store, cursor: dict) -> RunRequest | None:
    """Once index runs have settled, look for near-duplicates again if the set of hashed
    videos changed since the last request."""
    return _when_changed(
        store,
        cursor,
        "hashed_videos",
        HASHED_VIDEOS_SQL,
        near_duplicates_job.name,
    )


def _people_request(store, cursor: dict) -> RunRequest | None:
    """Once index runs have settled, place new face tracks among people (incremental) if the
    tracks changed since the last request."""
    return _when_changed(
        store,
        cursor,
        "face_tracks",
        "SELECT count(*) n, coalesce(sum(hash(track_id || start_s || end_s || detections ||"
        " coalesce(model_id, ''))), 0) h FROM face_tracks",
        face_clusters_job.name,
    )

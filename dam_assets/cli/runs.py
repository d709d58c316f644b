"""Running jobs of the code location in this process, through the Dagster instance in
$DAGSTER_HOME, so `dam` commands make real runs (visible in the UI, with logs and partition
status) without a daemon. What to run comes from the indexing planner."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance

from ..definitions import defs
from ..defs.common.partitions import FILES_PER_RUN, MEDIA_PARTITIONS_NAME
from ..defs.common.ranges import contiguous_batches, range_tags
from ..defs.indexing.orphans import owner_tags
from ..defs.indexing.planning import (
    ORDER,
    errors_by_stage,
    lacking,
    materialized,
    plan_runs,
    unavailable,
)
from ..defs.indexing.status import gone_for_good
from ..storage import TABLES, Store

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


def _execute(
    instance: DagsterInstance, job_name: str, log_level: str, source: str, **kwargs
) -> tuple[str, bool]:
    """One in-process run of a job of the code location: (run id, succeeded). The console shows
    only `log_level` and above; the full log is in the instance (UI)."""
    result = _run(instance, job_name, log_level, source, **kwargs)
    return result.run_id, result.success


def _run(instance: DagsterInstance, job_name: str, log_level: str, source: str, **kwargs):
    run_config = kwargs.pop("run_config", {})
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        tags={"dam/source": source, **owner_tags(), **kwargs.pop("tags", {})},
        raise_on_error=False,
        run_config={**run_config, "loggers": {"console": {"config": {"log_level": log_level}}}},
        **kwargs,
    )
    return result


MAX_ROUNDS = 4  # a step that failed for some files leaves the steps after it to a next round


def index_partitions(
    checksums: Sequence[str],
    store: Store,
    batch_size: int = FILES_PER_RUN,
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


def find_near_duplicates(
    instance: DagsterInstance, log_level: str = "ERROR", source: str = "dam"
) -> tuple[str, bool]:
    """One `find_near_duplicates` run through the instance."""
    return _execute(instance, "find_near_duplicates", log_level, source)


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
    done = materialized(instance, store, keys)
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

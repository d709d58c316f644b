"""Checks of the rig assets: segments belong to a rig; sessions reference partitions."""

from dagster import AssetCheckExecutionContext, asset_check

from ..common.checks import all_partitions, check_result, scope_of, where_in
from ..resources import DamStorage
from .capture import capture_segments, capture_sessions


@asset_check(
    asset=capture_segments,
    description="Every capture segment is a file of a configured rig, with a capture start.",
)
def segments_have_rig_and_start(context: AssetCheckExecutionContext, storage: DamStorage):
    from ...library.rigs import load_rigs

    rigs = {r.name for r in load_rigs().rigs}
    where, params = where_in(scope_of(context))
    rows = (
        storage.store()
        .sql(f"SELECT checksum, rig, capture_start FROM capture_segments WHERE {where}", params)
        .to_pylist()
    )
    bad = sorted(
        {r["checksum"] for r in rows if r["rig"] not in rigs or r["capture_start"] is None}
    )
    return check_result(bad, len(rows), "segments belong to a rig and have a start")


@asset_check(asset=capture_sessions, description="Sessions reference only existing partitions.")
def sessions_reference_existing_partitions(
    context: AssetCheckExecutionContext, storage: DamStorage
):
    keys = set(all_partitions(context))
    used = (
        storage.store()
        .sql("SELECT DISTINCT checksum FROM capture_sync")
        .column("checksum")
        .to_pylist()
    )
    bad = [k for k in used if k not in keys]
    return check_result(bad, len(used), "capture_sync checksums are partitions")

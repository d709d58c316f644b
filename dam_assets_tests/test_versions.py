"""The nightly schedule's code-version read is incremental (issue 12 item 7): it reads only
the materializations after the cursor it remembers in the data folder, and gives the same
answer as reading the whole event log, after new materializations, after a code-version
change, across pages cut short by a time budget, and when the remembered cursor is wrong.

Real instance, real runs (`materialize`) of a stand-in asset with the media partitions and the
key and code versions of `probe`: the read only looks at the asset's key and code version.
"""

from __future__ import annotations

from dagster import AssetKey, DagsterInstance, asset, materialize

from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
from dam_assets.defs.indexing.status import outdated_partitions, read_versions
from dam_assets.storage import Store

KEYS = [f"{i:064x}" for i in range(1, 7)]


def stand_in(version: str):
    @asset(name="probe", partitions_def=media_partitions, code_version=version)
    def probe() -> None:
        return None

    return probe


def run(instance: DagsterInstance, assets_def, keys: list[str]) -> None:
    for key in keys:
        assert materialize([assets_def], instance=instance, partition_key=key).success


def full_read(instance: DagsterInstance, tmp_path, assets_def) -> list[str]:
    """The answer from nothing remembered: every materialization, in a fresh data folder."""
    fresh = Store(tmp_path / "fresh")
    found, complete = outdated_partitions(instance, fresh, assets_def, KEYS)
    fresh.partition_versions.forget("probe")
    assert complete
    return sorted(found)


def test_incremental_read_matches_a_full_read(instance: DagsterInstance, store, tmp_path):
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, KEYS)
    v1, v2 = stand_in("probe-1"), stand_in("probe-2")
    run(instance, v1, KEYS[:3])
    assert outdated_partitions(instance, store, v1, KEYS) == ([], True)
    cursor = store.partition_versions.cursor("probe")
    latest = instance.fetch_materializations(AssetKey("probe"), limit=1).records[0]
    assert cursor == latest.storage_id

    # the code changes: a re-made partition first (right after the cursor), then new ones
    run(instance, v2, [KEYS[0], KEYS[3], KEYS[4]])
    found, complete = outdated_partitions(instance, store, v2, KEYS)
    assert complete and sorted(found) == sorted(KEYS[1:3]) == full_read(instance, tmp_path, v2)
    # against the old code version, the other way round; nothing new is read for it
    found, _ = outdated_partitions(instance, store, v1, KEYS)
    assert sorted(found) == sorted([KEYS[0], KEYS[3], KEYS[4]]) == full_read(instance, tmp_path, v1)
    # a partition made again with the new version is no longer outdated
    run(instance, v2, [KEYS[2]])
    found, _ = outdated_partitions(instance, store, v2, KEYS)
    assert found == [KEYS[1]] == full_read(instance, tmp_path, v2)


def test_a_budget_cuts_the_read_short_and_the_next_goes_on(
    instance: DagsterInstance, store, tmp_path
):
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, KEYS)
    v1, v2 = stand_in("probe-1"), stand_in("probe-2")
    run(instance, v1, KEYS[:4])
    run(instance, v2, KEYS[:2])
    reads = 0
    while not read_versions(instance, store, v2, budget_s=1e-9, page=1):
        reads += 1
        assert reads < 10, "the cursor does not advance"
    assert reads == 5  # six materializations, one a call: the sixth call sees the end
    found, complete = outdated_partitions(instance, store, v2, KEYS)
    assert complete and sorted(found) == sorted(KEYS[2:4]) == full_read(instance, tmp_path, v2)


def test_a_wrong_cursor_is_dropped_and_the_log_read_again(
    instance: DagsterInstance, store, tmp_path
):
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, KEYS)
    v1, v2 = stand_in("probe-1"), stand_in("probe-2")
    run(instance, v1, KEYS[:3])
    outdated_partitions(instance, store, v1, KEYS)
    versions = store.partition_versions
    latest = versions.cursor("probe")
    run(instance, v2, KEYS[:2])
    # a cursor from another instance (or an asset wiped since): past every event here, and
    # one that is an event of this instance but not a materialization of this asset
    for wrong in (latest + 10_000, latest + 1):
        versions.record("probe", [], wrong)
        found, complete = outdated_partitions(instance, store, v2, KEYS)
        assert complete and found == [KEYS[2]] == full_read(instance, tmp_path, v2), wrong


def test_partition_states_are_what_dagster_shows(instance: DagsterInstance, store, tmp_path):
    """`dam status` and the planner read partition_states instead of Dagster's status cache:
    the same answer, for a failure, a failure after a success, a success after a failure, a
    range run and a partition never run."""
    from dagster import Failure

    from dam_assets.defs.common.ranges import range_tags
    from dam_assets.defs.indexing.status import partition_states

    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, KEYS)
    failing: set[str] = set()

    @asset(name="probe", partitions_def=media_partitions, code_version="probe-1")
    def probe(context) -> None:
        bad = failing & set(context.partition_keys)
        if bad:
            raise Failure(f"{sorted(bad)} failed")

    def attempt(key: str) -> None:
        materialize([probe], instance=instance, partition_key=key, raise_on_error=False)

    attempt(KEYS[0])  # materialized
    failing.update({KEYS[1], KEYS[2]})
    attempt(KEYS[1])  # failed
    attempt(KEYS[2])
    failing.discard(KEYS[2])
    attempt(KEYS[2])  # failed, then materialized
    failing.add(KEYS[0])
    attempt(KEYS[0])  # materialized, then failed
    result = materialize(
        [probe], instance=instance, tags=range_tags(KEYS[3:5]), raise_on_error=False
    )
    assert result.success  # a range run: KEYS[3], KEYS[4]; KEYS[5] never ran
    ours = partition_states(instance, store)["probe"]
    theirs = instance.get_status_by_partition(AssetKey("probe"), KEYS, media_partitions)
    expected = {
        state: {k for k, v in theirs.items() if getattr(v, "value", None) == state}
        for state in ("MATERIALIZED", "FAILED", "IN_PROGRESS")
    }
    assert expected == {
        "MATERIALIZED": {KEYS[2], KEYS[3], KEYS[4]},
        "FAILED": {KEYS[0], KEYS[1]},
        "IN_PROGRESS": set(),
    }
    assert (ours.materialized, ours.failed, ours.in_progress) == (
        expected["MATERIALIZED"],
        expected["FAILED"],
        expected["IN_PROGRESS"],
    )
    counted = partition_states(instance, store, counts_only=True)["probe"]
    assert (counted.count, counted.failed) == (len(expected["MATERIALIZED"]), expected["FAILED"])
    # asked for some keys only
    some = partition_states(instance, store, [KEYS[0], KEYS[2], KEYS[5]])["probe"]
    assert (some.materialized, some.failed) == ({KEYS[2]}, {KEYS[0]})
    # nothing read yet and no time to read: Dagster's own answer, the same
    cut = partition_states(instance, Store(tmp_path / "fresh"), budget_s=0.0)["probe"]
    assert (cut.materialized, cut.failed) == (expected["MATERIALIZED"], expected["FAILED"])

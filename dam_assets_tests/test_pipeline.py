"""Sensor ticks and asset runs on a real (temporary) Dagster instance with real media."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, SensorResult, SkipReason

from dam_assets import catalog
from dam_assets.cli.runs import index_partitions
from dam_assets.definitions import defs
from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
from dam_assets.defs.common.ranges import RANGE_END_TAG, RANGE_START_TAG, contiguous_batches
from dam_assets.defs.indexing.sensor import FOLLOW_UP_EVERY_S
from dam_assets.defs.resources import DamStorage
from dam_assets.library.discovery import scan

from .conftest import copy_settled, sensor_tick


@pytest.fixture
def watched(tmp_path, library) -> Path:
    root = tmp_path / "watched"
    for name, path in library.items():
        copy_settled(path, root / name / path.name)
    return root


_tick = sensor_tick


def test_sensor_adds_partitions_and_batches_runs(instance, data_dir, watched, library):
    result, _context = _tick(instance, data_dir, watched, partitions_per_run=4)
    assert isinstance(result, SensorResult)
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == MEDIA_PARTITIONS_NAME
    assert len(add.partition_keys) == len(library) == 6
    assert [len(_range(r, add.partition_keys)) for r in result.run_requests] == [4, 2]
    assert json.loads(result.cursor)["seen"] == 6

    # The daemon applies the add request; launch the requested runs like it would.
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, list(add.partition_keys))
    job = defs.resolve_job_def("index_media")
    for request in result.run_requests:
        assert job.execute_in_process(instance=instance, tags=request.tags).success
    probed = DamStorage(data_dir=str(data_dir)).store().sql("SELECT count(*) n FROM probe")
    assert probed.column("n")[0].as_py() == 6

    # the indexed videos' per-second hashes changed: one near-duplicates run, then nothing
    again, _ = _tick(instance, data_dir, watched, cursor=result.cursor)
    assert isinstance(again, SensorResult) and not again.dynamic_partitions_requests
    assert [r.job_name for r in again.run_requests] == ["find_near_duplicates"]
    quiet, quiet_tick = _tick(instance, data_dir, watched, cursor=again.cursor)
    assert isinstance(quiet, SkipReason) and "0 new" in quiet.skip_message

    # the lake's tables are looked at again only when a run finished, or five minutes on
    store = DamStorage(data_dir=str(data_dir)).store()
    store.lake.clear_unit("timeline_frames", add.partition_keys[0])  # a change no run made
    still, _ = _tick(instance, data_dir, watched, cursor=quiet_tick.cursor)
    assert isinstance(still, SkipReason)
    later = {**json.loads(quiet_tick.cursor), "signatures_at": time.time() - FOLLOW_UP_EVERY_S - 1}
    due, _ = _tick(instance, data_dir, watched, cursor=json.dumps(later))
    assert [r.job_name for r in due.run_requests] == ["find_near_duplicates"]


def _range(request, ordered):
    start, end = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
    keys = list(ordered)
    return keys[keys.index(start) : keys.index(end) + 1]


def test_sensor_bounds_new_partitions_per_tick(instance, data_dir, watched):
    result, _ = _tick(instance, data_dir, watched, max_new_per_tick=2, partitions_per_run=10)
    assert len(result.dynamic_partitions_requests[0].partition_keys) == 2
    assert json.loads(result.cursor)["backlog"] == 4


def test_sensor_survives_bad_files(instance, data_dir, watched, bad_files):
    for path in bad_files.values():
        copy_settled(path, watched / "bad" / path.name)
    result, _ = _tick(instance, data_dir, watched)
    assert isinstance(result, SensorResult)
    assert len(result.dynamic_partitions_requests[0].partition_keys) == 6 + 3  # not the empty one


def test_index_is_idempotent_and_records_bad_files(instance, store, watched, bad_files):
    for path in bad_files.values():
        copy_settled(path, watched / "bad" / path.name)
    report = scan([watched], store, settle_seconds=0)
    outcome = index_partitions(report.checksums, store, batch_size=4, instance=instance, say=str)
    # runs of four: those holding a bad file fail (for it), and follow-up runs do the steps
    # after probe for the good files of those batches
    assert outcome.failed_runs and len(outcome.indexed) == 6 and outcome.file_errors == 3
    snapshot = {t: store.sql(f"SELECT * FROM {t} ORDER BY ALL") for t in ("streams", "thumbnails")}
    probe_rows = store.sql("SELECT * EXCLUDE (probed_at) FROM probe ORDER BY checksum")

    errors = store.sql(
        "SELECT path, stage, error_type FROM ingest_errors ORDER BY path"
    ).to_pylist()
    by_name = {Path(e["path"]).name: (e["stage"], e["error_type"]) for e in errors}
    assert by_name == {
        "cut.mp4": ("probe", "Truncated"),
        "junk.mkv": ("probe", "Corrupt"),
        "notes.mov": ("probe", "NotMedia"),
        "empty.mp4": ("discovery", "EmptyFile"),
    }
    kinds = store.sql("SELECT media_kind, count(*) n FROM probe GROUP BY ALL ORDER BY ALL")
    assert probe_rows.num_rows == 6
    assert kinds.to_pylist() == [
        {"media_kind": "audio", "n": 1},
        {"media_kind": "image", "n": 1},
        {"media_kind": "video", "n": 4},
    ]
    # audio-only gets no thumbnails and that is not an error
    audio = store.sql(
        "SELECT count(t.checksum) n FROM probe p LEFT JOIN thumbnails t USING (checksum)"
        " WHERE p.media_kind = 'audio'"
    )
    assert audio.column("n")[0].as_py() == 0

    # A second pass finds everything materialized and runs nothing.
    assert index_partitions(report.checksums, store, instance=instance, say=str).runs == []
    # Forcing the same partitions again replaces rows instead of duplicating them.
    job = defs.resolve_job_def("index_media")
    ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    for batch in contiguous_batches(outcome.indexed, ordered, 50):  # the good files
        tags = {RANGE_START_TAG: batch[0], RANGE_END_TAG: batch[-1]}
        assert job.execute_in_process(instance=instance, tags=tags).success
    for table, before in snapshot.items():
        assert store.sql(f"SELECT * FROM {table} ORDER BY ALL").equals(before), table
    assert store.sql("SELECT * EXCLUDE (probed_at) FROM probe ORDER BY checksum").equals(probe_rows)
    assert store.sql("SELECT count(*) n FROM ingest_errors").column("n")[0].as_py() == 4


def test_duplicate_content_under_two_names_is_one_partition(instance, store, tmp_path, library):
    a = copy_settled(library["h264"], tmp_path / "w" / "a.mp4")
    b = copy_settled(library["h264"], tmp_path / "w" / "b.mp4")
    report = scan([tmp_path / "w"], store, settle_seconds=0)
    index_partitions(report.checksums, store, instance=instance, say=str)
    assert instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME) == [report.by_path[str(a)]]
    store.export_registry()
    rows = store.sql(
        "SELECT count(DISTINCT path) paths, count(DISTINCT checksum) contents FROM media_files"
    )
    assert rows.to_pylist() == [{"paths": 2, "contents": 1}]
    assert store.sql("SELECT count(*) n FROM probe").column("n")[0].as_py() == 1
    # the notebook helpers: polars frames over the same views
    present = catalog.files(store.data_dir)
    assert isinstance(present, pl.DataFrame)
    assert present["path"].to_list() == [str(a), str(b)]
    assert present["duration_s"].null_count() == 0 and present["checksum"].n_unique() == 1
    assert catalog.table("probe", store.data_dir).height == 1
    with pytest.raises(KeyError):
        catalog.table("no_such_table", store.data_dir)


def test_thumbnail_files_exist_and_poster_avoids_black_intro(instance, store, tmp_path):
    from dam_assets.demo import samples as mf

    clip = mf.age(
        mf.make_video(
            tmp_path / "w" / "fade_in.mp4", seconds=6, black_intro_s=2.5, gop=12, audio=False
        )
    )
    report = scan([tmp_path / "w"], store, settle_seconds=0)
    index_partitions(report.checksums, store, instance=instance, say=str)
    rows = store.sql("SELECT kind, time_s, path, score FROM thumbnails").to_pylist()
    assert all(Path(r["path"]).is_file() for r in rows)
    posters = [r for r in rows if r["kind"] == "poster"]
    assert len(posters) == 2 and all(r["time_s"] >= 2.5 for r in posters)
    assert clip.exists()
    tiles = [r for r in rows if r["kind"] == "tile"]
    assert len(tiles) >= 5  # keyframes every 12 frames (0.48 s), tiles every second


def test_maintain_lake_job_compacts_without_changing_rows(instance, store, watched):
    report = scan([watched], store, settle_seconds=0)
    index_partitions(report.checksums, store, instance=instance, say=str)
    before = {t: store.sql(f"SELECT * FROM {t} ORDER BY ALL") for t in ("probe", "thumbnails")}
    assert len(store.lake.unit_keys("probe")) == 6
    result = defs.resolve_job_def("maintain_lake").execute_in_process(instance=instance)
    assert result.success
    assert store.lake.unit_keys("probe") == [] and store.lake.unit_keys("thumbnails") == []
    for table, rows in before.items():
        assert store.sql(f"SELECT * FROM {table} ORDER BY ALL").equals(rows), table


def test_source_moved_or_changed_after_hashing(instance, store, tmp_path, library):
    from dam_assets.defs.common.batch import _current_path
    from dam_assets.media.errors import MediaError

    first = copy_settled(library["audio"], tmp_path / "w" / "a.m4a")
    second = copy_settled(library["audio"], tmp_path / "w" / "copy" / "a.m4a")
    report = scan([tmp_path / "w"], store, settle_seconds=0)
    [checksum] = report.checksums
    first.unlink()  # gone before the run: the other copy is used
    assert _current_path(store.locations([checksum]), checksum, str(first)) == str(second)
    with open(second, "ab") as handle:  # re-exported in place after hashing
        handle.write(b"new bytes")
    with pytest.raises(MediaError) as info:
        _current_path(store.locations([checksum]), checksum, str(second))
    assert info.value.error_type == "SourceChanged"
    # the run records it as retryable: rows stay, `dam ingest` tries again
    outcome = index_partitions(report.checksums, store, instance=instance, say=str)
    assert outcome.failed_runs and outcome.indexed == []  # failed for this file, not judged
    errors = store.sql("SELECT stage, error_type FROM ingest_errors WHERE checksum = ?", [checksum])
    assert ("probe", "SourceChanged") in [tuple(r.values()) for r in errors.to_pylist()]
    from dam_assets.defs.indexing.status import unindexed

    assert unindexed(instance, [checksum], store) == [checksum]


def test_asset_checks_pass_then_name_the_broken_partition(instance, store, watched):
    from dam_assets.defs.common.ranges import range_tags

    report = scan([watched], store, settle_seconds=0)
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    job = defs.resolve_job_def("index_media")
    result = job.execute_in_process(instance=instance, tags=range_tags(report.checksums))
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {
        "probe_one_row_per_partition",
        "thumbnail_files_exist",
        "scenes_cover_duration",
        "transcript_for_every_file_with_audio",
        "vectors_match_catalog",
    } <= set(evaluations)
    assert all(e.passed for e in evaluations.values()), {
        k: e.metadata for k, e in evaluations.items() if not e.passed
    }
    [poster, *_] = store.sql(
        "SELECT checksum, path FROM thumbnails WHERE kind = 'poster'"
    ).to_pylist()
    Path(poster["path"]).unlink()  # damage outside any run
    # A run's checks look at its own partitions only (a library's ingest must not cost the
    # square of its size): a run of the other files passes ...
    others = [k for k in report.checksums if k != poster["checksum"]]
    ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    for batch in contiguous_batches(others, ordered, 50):
        rerun = job.execute_in_process(
            instance=instance, tags=range_tags(batch), asset_selection=[AssetKey("thumbnails")]
        )
        [check] = rerun.get_asset_check_evaluations()
        assert check.passed and check.metadata["checked"].value <= len(batch) * 4
    # ... and the nightly whole-library pass names the damaged file.
    library = defs.resolve_job_def("check_library").execute_in_process(
        instance=instance, raise_on_error=False
    )
    failing = {e.check_name: e for e in library.get_asset_check_evaluations()}
    thumbs = failing["thumbnail_files_exist"]
    assert not thumbs.passed and thumbs.metadata["partitions"].value == poster["checksum"]
    # a scene list with a hole at the start, and a second probe row, are named as well
    from dagster import build_asset_check_context

    from dam_assets.defs.media.checks import probe_one_row_per_partition, scenes_cover_duration
    from dam_assets.storage.schemas import PROBE, SCENES, rows_to_table

    [video, other] = (
        store.sql("SELECT DISTINCT checksum FROM scenes ORDER BY checksum LIMIT 2")
        .column(0)
        .to_pylist()
    )
    cut = sorted(store.lake.read_units("scenes", [video]).to_pylist(), key=lambda r: r["start_s"])
    cut[0] = {**cut[0], "start_s": cut[0]["start_s"] + 1.0}
    store.lake.write_unit("scenes", video, rows_to_table(SCENES, cut))
    context = build_asset_check_context(instance=instance)
    storage = DamStorage(data_dir=str(store.data_dir))
    scenes_check = scenes_cover_duration(context, storage)
    assert not scenes_check.passed and scenes_check.metadata["partitions"].value == video
    twice = store.lake.read_units("probe", [other]).to_pylist() * 2
    store.lake.write_unit("probe", other, rows_to_table(PROBE, twice))
    probe_check = probe_one_row_per_partition(context, storage)
    assert not probe_check.passed and probe_check.metadata["partitions"].value == other


def test_nightly_reruns_what_is_missing_then_nothing(
    instance, store, watched, data_dir, monkeypatch
):
    from datetime import UTC, datetime

    from dagster import build_schedule_context

    from dam_assets.defs.indexing.schedules import nightly

    report = scan([watched], store, settle_seconds=0)
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    storage = DamStorage(data_dir=str(data_dir))

    def evaluate():
        context = build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 23, 3, tzinfo=UTC)
        )
        return nightly(context, storage=storage)

    requests = evaluate()  # six partitions added, none materialized (say a crashed sensor run)
    assert [len(_range(r, report.checksums)) for r in requests] == [6]
    job = defs.resolve_job_def("index_media")
    assert all(job.execute_in_process(instance=instance, tags=r.tags).success for r in requests)
    again = evaluate()
    assert isinstance(again, SkipReason) and "current" in again.skip_message

    # A new version of `scenes` (its code, or its detector settings): exactly scenes and what
    # depends on it (clip_embeddings, faces) are re-run, for every partition.
    from dam_assets.defs.indexing import status as runner

    real = runner.current_code_version
    monkeypatch.setattr(
        runner,
        "current_code_version",
        lambda a: "scenes-2" if a.key.to_user_string() == "scenes" else real(a),
    )
    [request] = evaluate()
    assert sorted(k.to_user_string() for k in request.asset_selection) == [
        "clip_embeddings",
        "faces",
        "scenes",
    ]
    assert len(_range(request, report.checksums)) == 6
    rerun = job.execute_in_process(
        instance=instance, tags=request.tags, asset_selection=request.asset_selection
    )
    assert {e.asset_key.to_user_string() for e in rerun.get_asset_materialization_events()} == {
        "scenes",
        "clip_embeddings",
        "faces",
    }
    monkeypatch.setattr(runner, "current_code_version", real)
    assert isinstance(evaluate(), SkipReason)


def test_sensor_waits_while_runs_are_outstanding(instance, data_dir, watched):
    from dagster import DagsterRunStatus

    result, _ = _tick(instance, data_dir, watched, max_outstanding_runs=1)
    assert isinstance(result, SensorResult)
    job = defs.resolve_job_def("index_media")
    instance.add_dynamic_partitions(
        MEDIA_PARTITIONS_NAME, list(result.dynamic_partitions_requests[0].partition_keys)
    )
    for _ in range(1):  # one run still going
        instance.create_run_for_job(
            job_def=job, status=DagsterRunStatus.STARTED, tags=result.run_requests[0].tags
        )
    copy_settled(watched / "h264" / "bars_h264.mp4", watched / "new" / "again.mp4")
    waiting, _ = _tick(instance, data_dir, watched, cursor=result.cursor, max_outstanding_runs=1)
    assert isinstance(waiting, SkipReason) and "queued or running" in waiting.skip_message

"""The storage sensor on real storage: settling across ticks, roots that fail, nested roots,
symbolic links. Each tick is a real evaluation against a temporary Dagster instance."""

from __future__ import annotations

import json
import multiprocessing
import os
import pwd
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import blake3
from dagster import SensorResult, SkipReason

from dam_assets.library.discovery import scan

from .conftest import IS_ROOT, copy_settled, sensor_tick


def test_files_settle_across_ticks_in_the_cursor(instance, data_dir, tmp_path, library):
    root = tmp_path / "w"
    clip = root / "fresh.mp4"
    clip.parent.mkdir()
    clip.write_bytes(library["h264"].read_bytes())  # copied just now
    first, context = sensor_tick(instance, data_dir, root, settle_seconds=1)
    assert isinstance(first, SkipReason) and "1 waiting to settle" in first.skip_message
    cursor = json.loads(context.cursor)  # a skipped tick stores its cursor too
    assert list(cursor["observed"]) == [str(clip)]
    time.sleep(1.2)
    second, _ = sensor_tick(instance, data_dir, root, cursor=context.cursor, settle_seconds=1)
    assert isinstance(second, SensorResult)
    assert len(second.dynamic_partitions_requests[0].partition_keys) == 1
    assert json.loads(second.cursor)["observed"] == {}


def test_broken_rigs_yaml_does_not_stop_the_watched_roots(
    instance, data_dir, tmp_path, library, monkeypatch
):
    root = tmp_path / "w"
    copy_settled(library["audio"], root / "tone.m4a")
    broken = tmp_path / "rigs.yaml"
    broken.write_text("rigs:\n  - name: stage-a\n    root: [unclosed\n")
    monkeypatch.setenv("DAM_RIGS", str(broken))
    result, _ = sensor_tick(instance, data_dir, root)
    assert isinstance(result, SensorResult)
    assert len(result.dynamic_partitions_requests[0].partition_keys) == 1


def test_nested_roots_are_walked_once(tmp_path, library, store):
    outer = tmp_path / "nas"
    rig = outer / "rigs" / "stage-a"
    copy_settled(library["h264"], rig / "camA" / "A001.mov")
    copy_settled(library["audio"], outer / "music" / "tone.m4a")
    report = scan([outer, rig], store, settle_seconds=0)
    assert report.seen == 2 and report.hashed == 2


def test_symbolic_links_are_not_followed_out_of_the_roots(tmp_path, library, store):
    root = tmp_path / "w"
    inside = copy_settled(library["h264"], root / "real" / "clip.mp4")
    outside = copy_settled(library["audio"], tmp_path / "private" / "voice.m4a")
    (root / "link_in.mp4").symlink_to(inside)
    (root / "link_out.m4a").symlink_to(outside)
    (root / "linked_folder").symlink_to(outside.parent, target_is_directory=True)
    report = scan([root], store, settle_seconds=0)
    assert set(report.by_path) == {str(inside), str(root / "link_in.mp4")}
    assert report.hashed == 1  # the link inside is the same file: recognised, not re-read
    assert len(report.checksums) == 1


def _scan_roots_as(uid: int, roots: list[str], data: str, queue) -> None:
    os.setgid(uid)
    os.setuid(uid)
    from dam_assets.storage import Store

    try:
        report = scan(roots, Store(data), settle_seconds=0)
    except Exception:  # what the old code did: the whole scan (and tick) died
        queue.put({"crash": traceback.format_exc()})
        return
    queue.put({"checksums": report.checksums, "skipped": report.roots_skipped})


def test_an_unreadable_root_is_skipped_and_the_others_scanned(library):
    """A root the indexing user cannot reach (EACCES from stat, as a stale NFS handle gives
    ESTALE) is reported and skipped; the other roots are still scanned."""
    if not IS_ROOT:  # the test drops to `nobody`; as another user the folders are ours
        return
    tmp_path = Path(tempfile.mkdtemp(prefix="dam-root-"))  # pytest's tmp is root-only
    locked_parent = tmp_path / "locked"
    hidden = locked_parent / "share"
    copy_settled(library["h264"], hidden / "clip.mp4")
    locked_parent.chmod(0o000)
    good = tmp_path / "good"
    copy_settled(library["audio"], good / "tone.m4a")
    data = tmp_path / "data"
    data.mkdir()
    for p in (tmp_path, good, data):
        p.chmod(0o777)
    (good / "tone.m4a").chmod(0o644)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(
        target=_scan_roots_as,
        args=(pwd.getpwnam("nobody").pw_uid, [str(hidden), str(good)], str(data), queue),
    )
    child.start()
    child.join(timeout=60)
    result = queue.get(timeout=5)
    locked_parent.chmod(0o755)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert "crash" not in result, result
    assert len(result["checksums"]) == 1
    assert result["skipped"] == [f"{hidden} (Permission denied)"]


def test_a_file_too_large_for_a_tick_is_hashed_by_a_run(instance, data_dir, tmp_path, library):
    """One large file over a slow share can take longer to read than a tick may run (60 s):
    the tick hands it to a `hash_large_files` run, and the next tick indexes it."""
    from dam_assets.definitions import defs

    root = tmp_path / "w"
    copy_settled(library["audio"], root / "tone.m4a")
    big = copy_settled(library["h264"], root / "A001_big.mov")
    limit = (big.stat().st_size - 1) / 2**20
    first, _ = sensor_tick(instance, data_dir, root, read_in_tick_max_mb=limit)
    assert len(first.dynamic_partitions_requests[0].partition_keys) == 1  # the small one
    [hash_run] = [r for r in first.run_requests if r.job_name == "hash_large_files"]
    files = hash_run.run_config["ops"]["hash_files"]["config"]["files"]
    assert [f["path"] for f in files] == [str(big)]
    result = defs.resolve_job_def("hash_large_files").execute_in_process(
        instance=instance, run_config=hash_run.run_config
    )
    assert result.success
    instance.add_dynamic_partitions(
        "media", list(first.dynamic_partitions_requests[0].partition_keys)
    )
    second, _ = sensor_tick(
        instance, data_dir, root, cursor=first.cursor, read_in_tick_max_mb=limit
    )
    [add] = second.dynamic_partitions_requests
    assert add.partition_keys == [blake3.blake3(big.read_bytes()).hexdigest()]
    assert not [r for r in second.run_requests if r.job_name == "hash_large_files"]


def test_sensor_follows_up_with_only_what_files_lack(
    instance, data_dir, tmp_path, library, bad_files
):
    """A corrupt file in a batch fails `probe` for itself; the steps after probe did not run
    for the batch. Once the run is over, the next tick asks for exactly those steps, for the
    good files only; after them, nothing more."""
    from dam_assets.definitions import defs

    root = tmp_path / "w"
    for name in ("h264", "audio"):
        copy_settled(library[name], root / library[name].name)
    copy_settled(bad_files["corrupt"], root / "junk.mkv")
    first, _ = sensor_tick(instance, data_dir, root)
    keys = list(first.dynamic_partitions_requests[0].partition_keys)
    instance.add_dynamic_partitions("media", keys)
    job = defs.resolve_job_def("index_media")
    [request] = first.run_requests
    assert not job.execute_in_process(
        instance=instance, tags=request.tags, raise_on_error=False
    ).success
    second, _ = sensor_tick(instance, data_dir, root, cursor=first.cursor)
    follow = [r for r in second.run_requests if r.job_name == "index_media"]
    assert follow, second
    for r in follow:
        assert "probe" not in {k.to_user_string() for k in r.asset_selection}
        assert job.execute_in_process(
            instance=instance, tags=r.tags, asset_selection=r.asset_selection
        ).success
    third, _ = sensor_tick(instance, data_dir, root, cursor=second.cursor)
    assert not [
        r for r in getattr(third, "run_requests", None) or [] if r.job_name == "index_media"
    ]

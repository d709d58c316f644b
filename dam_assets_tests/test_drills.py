"""Failure drills: a run killed with SIGKILL mid-write, then re-run, leaves the same tables
as an uninterrupted run; a full disk fails cleanly with no corrupt files."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dam_assets.demo import samples as mf
from dam_assets.storage import Store

from .conftest import copy_settled

TABLES = {
    "probe": "checksum, media_kind, duration_s, width, height, video_codec, audio_codec",
    "streams": "checksum, stream_index, codec",
    "thumbnails": "checksum, kind, size_label, time_s, width, height",
    "scenes": "checksum, scene_index, start_frame, end_frame",
    "transcripts": "checksum, status, segments",
    "clip_frames": "checksum, time_s, source, scene_index",
}


def _ingest(env, media, wait=True):
    cmd = [sys.executable, "-m", "dam_assets.cli", "ingest", str(media), "--batch", "2"]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _snapshot(data: Path) -> dict:
    store = Store(data)
    out = {
        t: store.sql(f"SELECT {cols} FROM {t} ORDER BY ALL").to_pylist()
        for t, cols in TABLES.items()
    }
    out["vectors"] = sorted(
        (r["checksum"], round(r["time_s"], 3))
        for r in store.vectors.rows(("checksum", "time_s")).to_pylist()
    )
    return out


def test_sigkill_mid_run_then_rerun_matches_clean_run(tmp_path, library):
    media = tmp_path / "media"
    for i in range(3):
        mf.age(mf.make_cut_video(media / f"cut{i}.mp4", cuts=[20 + i], frames=60))
    for name in ("h264", "audio", "still"):
        copy_settled(library[name], media / library[name].name)

    def env_for(name):
        home = tmp_path / f"home_{name}"
        home.mkdir()
        return {**os.environ, "DAGSTER_HOME": str(home), "DAM_DATA_DIR": str(tmp_path / name)}

    clean_env, killed_env = env_for("clean"), env_for("killed")
    assert _ingest(clean_env, media).returncode == 0
    process = _ingest(killed_env, media, wait=False)
    units = tmp_path / "killed" / "lake" / "thumbnails" / "v2" / "units"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(units.glob("*/[0-9a-f]*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # mid-run: some partitions written, some not
    process.wait()
    rerun = _ingest(killed_env, media)
    assert rerun.returncode == 0, rerun.stderr
    assert _snapshot(tmp_path / "killed") == _snapshot(tmp_path / "clean")
    leftovers = [p for p in (tmp_path / "killed").rglob("*.tmp")]
    assert leftovers == []


def test_full_disk_fails_cleanly(store, monkeypatch):
    """ENOSPC injected at the write layer (no loop device here): the write raises a clear
    error, the previous file stays intact, and no temporary file is left."""
    from dam_assets.storage import lake as lake_module
    from dam_assets.storage.schemas import THUMBNAILS, rows_to_table

    ck = "ab" * 32
    good = rows_to_table(THUMBNAILS, [{"checksum": ck, "kind": "poster", "time_s": 1.0}])
    store.lake.write_unit("thumbnails", ck, good)
    real_write = lake_module.pq.write_table

    def full_disk(table, where, **kwargs):
        real_write(table.slice(0, 0), where, **kwargs)  # a partial file, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lake_module.pq, "write_table", full_disk)
    with pytest.raises(OSError) as info:
        store.lake.write_unit("thumbnails", ck, good)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert store.lake.read_units("thumbnails", [ck]).num_rows == 1
    assert list(store.lake.table_dir("thumbnails").rglob("*.tmp")) == []


def _writer(root: str, prefix: str, count: int) -> None:
    from dam_assets.storage.lake import Lake
    from dam_assets.storage.schemas import THUMBNAILS, rows_to_table

    lake = Lake(root)
    for i in range(count):
        key = f"{prefix}{i:062x}"
        rows = [{"checksum": key, "kind": "tile", "time_s": float(t)} for t in range(3)]
        lake.write_unit("thumbnails", key, rows_to_table(THUMBNAILS, rows))
        if i % 10 == 0:  # and rewrite an earlier one: replaced, never duplicated
            first = f"{prefix}{0:062x}"
            again = [{**r, "checksum": first} for r in rows]
            lake.write_unit("thumbnails", first, rows_to_table(THUMBNAILS, again))


def _compactor(root: str, rounds: int) -> None:
    from dam_assets.storage.lake import Lake

    lake = Lake(root)
    for _ in range(rounds):
        lake.compact("thumbnails")
        time.sleep(0.01)


def test_concurrent_writers_and_compaction_all_land(store):
    import multiprocessing

    store.refresh_catalog()
    ctx = multiprocessing.get_context("fork")
    root = str(store.lake.root)
    procs = [ctx.Process(target=_writer, args=(root, p, 60)) for p in ("aa", "ab")]
    procs.append(ctx.Process(target=_compactor, args=(root, 30)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    counts = store.sql("SELECT checksum, count(*) n FROM thumbnails GROUP BY ALL").to_pylist()
    assert len(counts) == 120 and {c["n"] for c in counts} == {3}
    store.lake.compact("thumbnails")
    assert store.sql("SELECT count(*) n FROM thumbnails").to_pylist() == [{"n": 360}]
    assert list(store.lake.table_dir("thumbnails").rglob("*.tmp")) == []


def test_full_disk_fails_the_run_with_a_clear_message(
    instance, store, library, tmp_path, monkeypatch
):
    from dam_assets.definitions import defs
    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
    from dam_assets.defs.common.ranges import range_tags
    from dam_assets.library.discovery import scan
    from dam_assets.storage import lake as lake_module

    copy_settled(library["audio"], tmp_path / "w" / "a.m4a")
    report = scan([tmp_path / "w"], store, settle_seconds=0)
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    store.refresh_catalog()

    def full_disk(table, where, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lake_module.pq, "write_table", full_disk)
    result = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(report.checksums),
        raise_on_error=False,
        asset_selection=[defs.resolve_assets_def("probe").key],
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert "No space left on device" in message and "Free space" in message
    assert list(store.lake.root.rglob("*.tmp")) == []

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

from dam_assets import samples as mf
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
    units = tmp_path / "killed" / "lake" / "thumbnails" / "units"
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

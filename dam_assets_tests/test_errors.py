"""A problem getting at a file is never taken for bad content: share errors, memory, our own
disk and reads that hang keep a file's earlier rows and are retried; content errors clear them
only once a second read agrees; content gone for good stops being retried.

Real PyAV, real Dagster runs of the `probe` asset. Faults are injected at PyAV's entry point
(`av.open`) where the real one cannot be made here: the tests run as root (no EACCES from a
mode-000 file) and there is no network share to unplug. The injected exceptions are the ones
PyAV itself raises for those errnos (`av.error.err_check`, the function its calls into FFmpeg
go through) or, mid-read, what a file object's failing read raises through FFmpeg's I/O.
"""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import threading
import time
from pathlib import Path

import av
import av.error
import pytest
from dagster import AssetKey, asset, materialize

from dam_assets.definitions import defs
from dam_assets.defs.common.batch import run_per_partition
from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
from dam_assets.defs.common.ranges import range_tags
from dam_assets.defs.indexing.status import unindexed
from dam_assets.defs.resources import DamStorage
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.media import probe as probe_module
from dam_assets.media.watchdog import Overrun, run_with_limit

from .conftest import copy_settled

REAL_OPEN = av.open


def pyav_error(code: int, path: str) -> av.error.FFmpegError:
    """The exception PyAV raises when FFmpeg reports -code for `path`."""
    try:
        av.error.err_check(-code, path)
    except av.error.FFmpegError as exc:
        return exc
    raise AssertionError("err_check did not raise")


def invalid_data(path: str) -> av.error.InvalidDataError:
    return av.error.InvalidDataError(-0x41444E49, "Invalid data found when processing input", path)


@pytest.fixture
def indexed(instance, store, tmp_path, library):
    """Two files, probed once (so each has rows to keep or lose)."""
    folder = tmp_path / "share"
    files = [copy_settled(library[n], folder / library[n].name) for n in ("h264", "audio")]
    report = scan([folder], store, settle_seconds=0)
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    assert probe_run(instance, report.checksums).success
    by_name = {Path(p).name: ck for p, ck in report.by_path.items()}
    return {f.name: (str(f), by_name[f.name]) for f in files}


def failed_only(instance, result, failed: list[str], keys: list[str]) -> bool:
    """The run failed, for exactly the `failed` files: Dagster shows those partitions FAILED
    and the others of the run MATERIALIZED."""
    status = instance.get_status_by_partition(AssetKey("probe"), keys, media_partitions)
    wanted = {k: "FAILED" if k in failed else "MATERIALIZED" for k in keys}
    return not result.success and {k: v.value for k, v in status.items()} == wanted


def probe_run(instance, keys):
    return defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(keys),
        asset_selection=[AssetKey("probe")],
        raise_on_error=False,
    )


def rows(store, checksum: str) -> int:
    return store.sql("SELECT count(*) n FROM probe WHERE checksum = ?", [checksum]).to_pylist()[0][
        "n"
    ]


def error_of(store, checksum: str) -> tuple[str, str] | None:
    found = store.sql(
        "SELECT error_type, message FROM ingest_errors WHERE stage = 'probe' AND checksum = ?",
        [checksum],
    ).to_pylist()
    return (found[0]["error_type"], found[0]["message"]) if found else None


def fail_open(monkeypatch, target: str, make_error, times: int | None = None) -> list[str]:
    """`av.open` of `target` raises make_error(path) (`times` times, else always); the opens
    it saw are returned."""
    opened: list[str] = []

    def fake_open(file, *args, **kwargs):
        opened.append(str(file))
        if str(file) == target and (times is None or opened.count(target) <= times):
            raise make_error(str(file))
        return REAL_OPEN(file, *args, **kwargs)

    monkeypatch.setattr(probe_module.av, "open", fake_open)
    return opened


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (errno.EIO, "IOError"),
        (errno.ESTALE, "StaleHandle"),
        (errno.ENOTCONN, "ShareOffline"),
        (errno.ETIMEDOUT, "ShareTimeout"),
        (errno.EACCES, "PermissionDenied"),
    ],
)
def test_share_errors_keep_rows_and_are_retried(instance, store, indexed, code, error_type):
    path, checksum = indexed["bars_h264.mp4"]
    with pytest.MonkeyPatch.context() as share_down:
        fail_open(share_down, path, lambda p: pyav_error(code, p))
        assert failed_only(instance, probe_run(instance, [checksum]), [checksum], [checksum])
    recorded = error_of(store, checksum)
    assert recorded and recorded[0] == error_type, recorded
    assert "tried again later" in recorded[1]
    assert rows(store, checksum) == 1  # the earlier probe stays
    assert unindexed(instance, [checksum], store) == [checksum]
    assert probe_run(instance, [checksum]).success  # the share is back
    assert error_of(store, checksum) is None and rows(store, checksum) == 1


class BreaksAfterOpen(io.FileIO):
    """A file whose reads fail with EIO once FFmpeg has opened it and seeks to decode (a share
    dropping mid-read). PyAV re-raises what the read raised."""

    opened = broken = False

    def seek(self, *args):
        self.broken = self.broken or self.opened
        return super().seek(*args)

    def read(self, size: int = -1) -> bytes:
        if self.broken:
            raise pyav_error(errno.EIO, self.name)
        return super().read(size)


def test_error_mid_read_is_not_a_default_rotation(tmp_path, monkeypatch):
    """The first decoded frame gives the rotation; an I/O error there used to read as "no
    rotation" and a portrait video was indexed as landscape."""
    video = mf.make_video(tmp_path / "portrait.mp4", seconds=2, rotation=90)
    assert probe_module.probe_file(video).file["rotation"] == 90

    def flaky_open(file, *args, **kwargs):
        handle = BreaksAfterOpen(str(file), "rb")
        container = REAL_OPEN(handle, *args, **kwargs)
        handle.opened = True
        return container

    monkeypatch.setattr(probe_module.av, "open", flaky_open)
    with pytest.raises(OSError) as info:
        probe_module.probe_file(video)
    assert info.value.errno == errno.EIO


def test_out_of_memory_keeps_rows(instance, store, indexed, monkeypatch):
    path, checksum = indexed["bars_h264.mp4"]
    fail_open(monkeypatch, path, lambda p: pyav_error(errno.ENOMEM, p))
    assert failed_only(instance, probe_run(instance, [checksum]), [checksum], [checksum])
    assert error_of(store, checksum)[0] == "OutOfMemory"
    assert rows(store, checksum) == 1
    assert unindexed(instance, [checksum], store) == [checksum]


def test_bad_bytes_once_are_not_judged(instance, store, indexed, monkeypatch):
    """FFmpeg finds invalid data on the first read but not the second (a share handing back
    garbage once): the file is fine and keeps its rows."""
    path, checksum = indexed["bars_h264.mp4"]
    opened = fail_open(monkeypatch, path, invalid_data, times=1)
    assert probe_run(instance, [checksum]).success
    assert opened.count(path) == 2
    assert error_of(store, checksum) is None and rows(store, checksum) == 1


def test_bad_content_twice_clears_rows(instance, store, indexed, monkeypatch):
    path, checksum = indexed["bars_h264.mp4"]
    other_path, other = indexed["tone.m4a"]
    opened = fail_open(monkeypatch, path, invalid_data)
    run = probe_run(instance, [checksum, other])
    assert failed_only(instance, run, [checksum], [checksum, other])
    assert opened.count(path) == 2 and opened.count(other_path) == 1
    assert error_of(store, checksum)[0] == "Corrupt"
    assert rows(store, checksum) == 0  # confirmed bad: its old rows go
    assert rows(store, other) == 1 and error_of(store, other) is None


def _capped_sqlite(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
    con.execute("PRAGMA max_page_count = 3")  # a real SQLITE_FULL once it has grown
    return con


def test_sqlite_disk_full_stops_the_run(instance, store, indexed, tmp_path):
    """A real "database or disk is full" from SQLite is our disk, not the file: the run stops
    with a message that says what to do, and no file loses rows."""
    _, checksum = indexed["bars_h264.mp4"]
    forgotten: list[str] = []

    @asset(partitions_def=media_partitions, name="writes_sqlite")
    def writes_sqlite(context, storage: DamStorage) -> None:
        db = tmp_path / "full.sqlite"

        def work(key: str, source: str) -> dict:
            with _capped_sqlite(db) as con:
                con.execute("INSERT INTO t VALUES (?)", [os.urandom(64 * 1024)])
            return {}

        run_per_partition(
            context, storage.store(), "writes_sqlite", [checksum], work, forgotten.append
        )

    result = materialize(
        [writes_sqlite],
        instance=instance,
        partition_key=checksum,
        resources={"storage": DamStorage(data_dir=str(store.data_dir))},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert "database or disk is full" in message and "Free space" in message
    assert forgotten == [] and rows(store, checksum) == 1


def test_content_gone_for_good_stops_being_retried(instance, store, indexed, tmp_path):
    path, checksum = indexed["bars_h264.mp4"]
    moved = Path(path).rename(tmp_path / "elsewhere.mp4")
    month_ago = time.time() - 31 * 86400
    scan([Path(path).parent], store, settle_seconds=0, now=month_ago)  # marked missing 31 days ago
    assert failed_only(instance, probe_run(instance, [checksum]), [checksum], [checksum])
    assert error_of(store, checksum)[0] == "SourceMissing"
    assert unindexed(instance, [checksum], store, retention_days=60) == [checksum]

    assert unindexed(instance, [checksum], store) == []  # default retention: 30 days
    error_type, message = error_of(store, checksum)
    assert error_type == "SourceGone" and "no longer retried" in message
    assert rows(store, checksum) == 1  # nothing deleted, just not retried

    moved.rename(path)  # the card is back: found again, retried again
    scan([Path(path).parent], store, settle_seconds=0)
    assert unindexed(instance, [checksum], store) == [checksum]
    assert probe_run(instance, [checksum]).success
    assert error_of(store, checksum) is None


def test_a_hung_read_fails_only_that_file(instance, store, indexed, tmp_path, monkeypatch):
    """Opening a FIFO without a writer blocks in open(2) the way a read on a dead share blocks:
    the file fails as ReadTimeout after a limit that grows with its duration, and the run goes
    on to the next file."""
    path, checksum = indexed["bars_h264.mp4"]
    other_path, other = indexed["tone.m4a"]
    fifo = tmp_path / "dead_share"
    os.mkfifo(fifo)

    def hanging_open(file, *args, **kwargs):
        if str(file) == path:
            return REAL_OPEN(str(fifo), *args, **kwargs)
        return REAL_OPEN(file, *args, **kwargs)

    monkeypatch.setattr(probe_module.av, "open", hanging_open)
    monkeypatch.setenv("DAM_READ_TIMEOUT_S", "1")
    monkeypatch.setenv("DAM_READ_TIMEOUT_PER_MEDIA_S", "0.5")
    result: list = []
    runner = threading.Thread(target=lambda: result.append(probe_run(instance, [checksum, other])))
    runner.start()
    try:
        runner.join(120)  # a bound for the test, not a measure of speed
        assert not runner.is_alive(), "the run hung with the read"
    finally:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # free the abandoned reader
        runner.join(30)
    assert result and failed_only(instance, result[0], [checksum], [checksum, other])
    error_type, message = error_of(store, checksum)
    assert error_type == "ReadTimeout"
    assert "= 1s + 0.5s per second of its 3s of media" in message  # 2.5s
    assert rows(store, checksum) == 1 and unindexed(instance, [checksum], store) == [checksum]
    assert error_of(store, other) is None and rows(store, other) == 1
    assert other_path


def test_watchdog_waits_for_busy_work_and_gives_up_on_blocked_work(tmp_path):
    def busy() -> int:
        end = time.process_time() + 1.2
        while time.process_time() < end:
            pass
        return 7

    slow: list[float] = []
    assert run_with_limit(busy, 0.3, on_slow=slow.append, hard_limit_factor=100) == 7
    assert slow
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    try:
        with pytest.raises(Overrun) as info:
            run_with_limit(lambda: fifo.open("rb"), 0.2)
        assert not info.value.busy
    finally:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    with pytest.raises(ZeroDivisionError):  # errors come back to the caller
        run_with_limit(lambda: 1 / 0, 5)


def test_error_mid_decode_is_not_fewer_frames(tmp_path, monkeypatch):
    """Thumbnails, CLIP frames and faces decode through media/frames.py, which lets damaged
    data end a decode quietly; a share error there used to end it quietly too (fewer frames,
    and the file counted as done)."""
    from dam_assets.media import frames

    video = mf.make_video(tmp_path / "clip.mp4", seconds=3)
    assert len(list(frames.keyframes_at(video, [0.0, 1.0, 2.0], max_side=64))) == 3

    def flaky_open(file, *args, **kwargs):
        handle = BreaksAfterOpen(str(file), "rb")
        container = REAL_OPEN(handle, *args, **kwargs)
        handle.opened = True
        return container

    monkeypatch.setattr(frames.av, "open", flaky_open)
    with pytest.raises(OSError) as info:
        list(frames.keyframes_at(video, [0.0, 1.0, 2.0], max_side=64))
    assert info.value.errno == errno.EIO

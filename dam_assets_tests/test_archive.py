"""Verified archive copies: `dam archive DEST [--where SQL]`, `dam archive verify`, the jobs.

Real files, a real lake and catalog, real `dam` processes (the SIGKILL drill), a real Dagster
instance for the jobs. Two faults cannot be made for real here and are injected at the write
boundary of the copy (`library.archive.copying._write_all`, the call that hands bytes to the
archive disk): a disk that corrupts what it is given, and a full disk.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey

from dam_assets.definitions import defs
from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
from dam_assets.defs.common.ranges import range_tags
from dam_assets.demo import samples as mf
from dam_assets.library.archive import ArchiveError, archive_files, copying, verify_copies
from dam_assets.library.archive.layout import META
from dam_assets.library.discovery import scan
from dam_assets.media.hashing import file_checksum

from .conftest import copy_settled

DAM = [sys.executable, "-m", "dam_assets.cli"]


def identity(path: Path) -> tuple:
    """What must not change on a source: content, size, mtime, inode, mode, ctime."""
    st = os.stat(path)
    return (file_checksum(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode, st.st_ctime_ns)


def ledger(store) -> dict[str, dict]:
    return {r["checksum"]: r for r in store.sql("SELECT * FROM archive_copies").to_pylist()}


def leftovers(dest: Path) -> list[Path]:
    return [p for p in dest.rglob("*") if p.is_file() and p.name.endswith((".partial", ".tmp"))]


@pytest.fixture
def footage(tmp_path, library) -> Path:
    """A watched folder: two videos, an audio file, and the first video again under a second
    name (the same content: one partition, one archive copy)."""
    root = tmp_path / "footage"
    copy_settled(library["h264"], root / "day1" / "clip.mp4")
    copy_settled(library["prores"], root / "day1" / "master.mov")
    copy_settled(library["audio"], root / "sound" / "room.m4a")
    copy_settled(library["h264"], root / "day2" / "same_as_clip.mp4")
    return root


@pytest.fixture
def indexed(store, footage) -> dict[str, str]:
    """path -> checksum, as discovery registered them."""
    return scan([footage], store, settle_seconds=0).by_path


@pytest.fixture
def dest(tmp_path) -> Path:
    folder = tmp_path / "archive"
    folder.mkdir()
    return folder


def test_copies_each_content_once_verified_and_sources_only_read(store, footage, indexed, dest):
    before = {p: identity(Path(p)) for p in indexed}
    report = archive_files(store, dest)
    assert sorted(o.result for o in report.outcomes) == ["copied"] * 3  # 4 paths, 3 contents
    assert {p: identity(Path(p)) for p in indexed} == before  # sources: not a bit changed

    rows = ledger(store)
    assert set(rows) == set(indexed.values())
    for checksum in set(indexed.values()):
        row = rows[checksum]
        copy = dest / row["relative_path"]
        assert row["destination"] == str(copy) and row["status"] == "verified"
        assert file_checksum(copy) == checksum and row["size_bytes"] == copy.stat().st_size
        assert row["verified_at"] is not None and row["copied_at"] is not None
        assert row["archive_root"] == str(dest) and row["message"] is None
        source = Path(row["source_path"])
        assert copy.stat().st_mtime_ns == source.stat().st_mtime_ns  # kept for browsing
        assert copy.stat().st_mode & 0o777 == 0o444
    # browsable: the watched folder's name, then the path below it
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert [p for p in copied if not p.startswith(META)] == [
        "footage/day1/clip.mp4",  # the first path of the content twice indexed
        "footage/day1/master.mov",
        "footage/sound/room.m4a",
    ]
    assert leftovers(dest) == []

    inodes = {p: p.stat().st_ino for p in dest.rglob("*") if p.is_file()}
    again = archive_files(store, dest)
    assert [o.result for o in again.outcomes] == ["already"] * 3
    assert {p: p.stat().st_ino for p in dest.rglob("*") if p.is_file()} == inodes


def test_where_is_sql_over_media_files_and_probe(instance, store, indexed, dest):
    keys = list(dict.fromkeys(indexed.values()))
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, keys)
    probed = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance, tags=range_tags(keys), asset_selection=[AssetKey("probe")]
    )
    assert probed.success
    report = archive_files(store, dest, "video_codec = 'h264' AND path LIKE '%/day1/%'")
    assert [(Path(o.source).name, o.result) for o in report.outcomes] == [("clip.mp4", "copied")]
    with pytest.raises(ArchiveError, match="--where"):
        archive_files(store, dest, "no_such_column > 1")
    assert len(ledger(store)) == 1


def test_a_name_clash_gets_its_own_name_and_the_same_content_is_not_copied(
    store, footage, indexed, dest, library
):
    clash = dest / "footage" / "day1" / "clip.mp4"
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"someone else's file, not ours")
    theirs = identity(clash)
    present = dest / "footage" / "sound" / "room.m4a"  # the same content already there
    copy_settled(library["audio"], present)
    present_inode = present.stat().st_ino

    report = archive_files(store, dest)
    by_name = {Path(o.source).name: o for o in report.outcomes}
    assert identity(clash) == theirs  # never overwritten
    checksum = indexed[str(footage / "day1" / "clip.mp4")]
    beside = clash.with_name(f"clip.{checksum[:12]}.mp4")
    assert by_name["clip.mp4"].result == "copied" and by_name["clip.mp4"].destination == str(beside)
    assert file_checksum(beside) == checksum
    assert by_name["room.m4a"].result == "found" and present.stat().st_ino == present_inode
    row = ledger(store)[by_name["room.m4a"].checksum]
    assert row["status"] == "verified" and row["copied_at"] is None and row["verified_at"]


def test_verify_finds_damage_and_loss_then_archive_repairs_beside_them(store, indexed, dest):
    archive_files(store, dest)
    rows = ledger(store)
    damaged, lost, fine = (dest / r["relative_path"] for r in rows.values())
    damaged.chmod(0o644)
    with open(damaged, "r+b") as handle:  # one flipped byte, same size
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    lost.unlink()

    report = verify_copies(store, dest)
    results = {o.destination: o for o in report.outcomes}
    assert results[str(damaged)].result == "mismatch" and "damaged" in results[str(damaged)].message
    assert results[str(lost)].result == "missing" and "gone" in results[str(lost)].message
    assert results[str(fine)].result == "verified"
    statuses = {dest / r["relative_path"]: r["status"] for r in ledger(store).values()}
    assert statuses == {damaged: "mismatch", lost: "missing", fine: "verified"}

    repaired = archive_files(store, dest)
    assert sorted(o.result for o in repaired.outcomes) == ["already", "copied", "copied"]
    assert damaged.exists() and lost.exists()  # the damaged file is kept, never overwritten
    after = verify_copies(store)
    assert [o.result for o in after.outcomes] == ["verified"] * 3
    assert str(damaged) not in {o.destination for o in after.outcomes}


def test_a_repair_that_fails_keeps_the_damaged_copy_in_the_ledger(store, footage, indexed, dest):
    """The failed retry's row used to replace the one that said where the damaged copy lies."""
    archive_files(store, dest)
    [row] = [r for r in ledger(store).values() if r["source_path"].endswith("master.mov")]
    damaged = dest / row["relative_path"]
    damaged.chmod(0o644)
    with open(damaged, "r+b") as handle:
        handle.write(b"\0" * 16)
    assert "mismatch" in {o.result for o in verify_copies(store).outcomes}
    (footage / "day1" / "master.mov").unlink()  # the repair cannot read the original now
    retry = {o.checksum: o for o in archive_files(store, dest).outcomes}
    assert retry[row["checksum"]].result == "failed"
    kept = ledger(store)[row["checksum"]]
    assert kept["status"] == "failed" and kept["relative_path"] == row["relative_path"]
    assert {o.checksum: o.result for o in verify_copies(store).outcomes}[row["checksum"]] == (
        "mismatch"
    )


def test_verify_leaves_an_unmounted_archive_alone_and_follows_it_to_a_new_mount(
    store, indexed, dest, tmp_path
):
    archive_files(store, dest)
    before = ledger(store)
    moved = tmp_path / "mounted_elsewhere"
    dest.rename(moved)
    report = verify_copies(store)
    assert {o.result for o in report.outcomes} == {"unreachable"}
    assert list(report.unreachable) == [str(dest)]
    assert ledger(store) == before  # an absent disk is not lost copies
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match="not an archive"):
        verify_copies(store, tmp_path / "empty")

    found = verify_copies(store, moved)
    assert [o.result for o in found.outcomes] == ["verified"] * 3
    assert {r["archive_root"] for r in ledger(store).values()} == {str(moved)}
    assert [o.result for o in verify_copies(store).outcomes] == ["verified"] * 3


def test_a_changed_or_vanished_source_is_refused_and_nothing_half_written(
    store, footage, indexed, dest
):
    clip = footage / "day1" / "clip.mp4"
    twin = footage / "day2" / "same_as_clip.mp4"
    data = bytearray(clip.read_bytes())
    data[-1] ^= 0xFF  # re-exported: same size, other content
    for path in (clip, twin):
        stat = path.stat()
        path.write_bytes(bytes(data))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (footage / "sound" / "room.m4a").unlink()

    report = archive_files(store, dest)
    by_name = {Path(o.source).name: o for o in report.outcomes}
    assert by_name["master.mov"].result == "copied"
    changed = by_name["clip.mp4"]
    assert changed.result == "failed" and "not the indexed content" in changed.message
    assert "same_as_clip.mp4" in changed.message  # both paths of the content were tried
    assert by_name["room.m4a"].result == "failed" and "gone" in by_name["room.m4a"].message
    rows = ledger(store)
    assert rows[changed.checksum]["status"] == "failed"
    assert rows[changed.checksum]["message"] == changed.message
    assert not (dest / "footage" / "day1" / "clip.mp4").exists()
    assert leftovers(dest) == []


def test_a_copy_that_failed_for_content_the_library_no_longer_holds_stops_failing_verify(
    store, footage, indexed, dest
):
    """A failed row stays in the ledger; once no file holds that content (deleted, or changed
    and indexed under its new checksum), verify no longer reports it, or fails for ever."""
    room = footage / "sound" / "room.m4a"
    room.unlink()
    [failed] = [o for o in archive_files(store, dest).outcomes if o.result == "failed"]
    assert [o.result for o in verify_copies(store).problems] == ["not_copied"]  # still indexed
    scan([footage], store, settle_seconds=0)  # now the library knows it is gone
    checked = verify_copies(store)
    assert checked.problems == []
    assert {o.checksum: o.result for o in checked.outcomes}[failed.checksum] == "original_gone"


def test_a_disk_that_corrupts_or_fills_keeps_nothing(store, indexed, dest, monkeypatch):
    real = copying._write_all
    calls = {"n": 0}

    def faulty(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:  # one byte changes on its way to the disk
            data = memoryview(bytes([data[0] ^ 1]) + bytes(data[1:]))
        elif calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(copying, "_write_all", faulty)
    report = archive_files(store, dest)
    # the first content (in checksum order) is the clip, at two paths: the first copy did not
    # read back the same, the second found the disk full; the other two were copied
    assert [o.result for o in report.outcomes] == ["failed", "copied", "copied"]
    [failed] = report.failed
    assert "clip.mp4: the copy read back from the archive has BLAKE3" in failed.message
    assert "same_as_clip.mp4: the archive is full" in failed.message
    assert leftovers(dest) == []
    copies = [p for p in dest.rglob("*") if p.is_file() and META not in p.parts]
    assert len(copies) == 2  # only verified copies got a name
    monkeypatch.setattr(copying, "_write_all", real)
    again = archive_files(store, dest).outcomes
    assert [o.result for o in again] == ["copied", "already", "already"]


def test_refusals_before_any_copy(store, indexed, tmp_path, data_dir):
    with pytest.raises(ArchiveError, match="no such folder"):
        archive_files(store, tmp_path / "not_mounted")
    assert not (tmp_path / "not_mounted").exists()
    with pytest.raises(ArchiveError, match="DAM_DATA_DIR"):
        archive_files(store, data_dir)
    busy = tmp_path / "busy"
    busy.mkdir()
    from dam_assets.library.archive.layout import ArchiveRoot

    root = ArchiveRoot.open(busy, data_dir, create=True)
    with root.writing(), pytest.raises(ArchiveError, match="another `dam archive`"):
        archive_files(store, busy)


def test_an_original_is_never_recorded_as_its_own_copy(store, footage, indexed, tmp_path):
    """An archive above or inside a watched folder would find each original where its copy
    belongs and record it as a verified second copy: refused. A hard link of the original at
    the copy's place (`cp -al`, another mount of the share) is not a copy either."""
    from dam_assets.library.archive.layout import ArchiveRoot

    for overlapping in (footage, footage / "day1"):
        with pytest.raises(ArchiveError, match="overlaps the watched folder"):
            archive_files(store, overlapping)
    above = tmp_path / "nas"  # DEST above the watched folder (`dam archive /mnt/nas`)
    (above / "footage").mkdir(parents=True)
    with pytest.raises(ArchiveError, match="overlaps the watched folder"):
        ArchiveRoot.open(above, store.data_dir, create=True, watched=[above / "footage"])
    assert not any(p.name == META for p in tmp_path.rglob(META))
    dest = tmp_path / "archive"
    linked = dest / "footage" / "day1" / "clip.mp4"
    linked.parent.mkdir(parents=True)
    os.link(footage / "day1" / "clip.mp4", linked)
    report = archive_files(store, dest)
    [clip] = [o for o in report.outcomes if Path(o.source).name in ("clip.mp4", "same_as_clip.mp4")]
    assert clip.result == "copied" and Path(clip.destination) != linked
    assert os.stat(clip.destination).st_ino != os.stat(footage / "day1" / "clip.mp4").st_ino
    assert file_checksum(clip.destination) == clip.checksum


def test_where_is_one_condition_not_statements(store, indexed, dest, tmp_path):
    """The job's `where` comes from the launchpad: a second statement could write files."""
    written = tmp_path / "written.csv"
    sneaky = (
        f"TRUE); COPY (SELECT 1 AS x) TO '{written}';"
        " SELECT checksum, path, path_bytes, root, size_bytes FROM media_files WHERE (FALSE"
    )
    with pytest.raises(ArchiveError, match="one condition"):
        archive_files(store, dest, sneaky)
    assert not written.exists() and ledger(store) == {}


def test_a_long_name_that_clashes_is_shortened_not_the_end_of_the_run(
    store, tmp_path, library, dest
):
    """The checksum added to a 250-byte name that is taken would pass the 255-byte limit: the
    name is shortened, and the other files are archived all the same."""
    root = tmp_path / "long"
    long_name = "x" * 246 + ".mp4"
    copy_settled(library["h264"], root / long_name)
    copy_settled(library["audio"], root / "z_after.m4a")
    scan([root], store, settle_seconds=0)
    taken = dest / "long" / long_name
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"other content under that name")
    report = archive_files(store, dest)
    assert sorted(o.result for o in report.outcomes) == ["copied", "copied"]
    for outcome in report.outcomes:
        assert len(os.fsencode(Path(outcome.destination).name)) <= 255
        assert file_checksum(outcome.destination) == outcome.checksum
    assert taken.read_bytes() == b"other content under that name"


def _resident(path: str) -> int:
    """Bytes of the file in the page cache (util-linux fincore: the kernel's mincore)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[0])


@pytest.mark.skipif(shutil.which("fincore") is None, reason="util-linux fincore is not here")
def test_verifying_reads_the_disk_and_leaves_no_copy_in_the_page_cache(store, indexed, dest):
    """Hashing a copy someone just wrote reads it back from memory unless its pages are
    dropped first; reading an archive through must not fill the host's cache either."""
    report = archive_files(store, dest)
    copies = [o.destination for o in report.outcomes]
    for copy in copies:
        with open(copy, "rb") as handle:  # as if something had just read or written it
            handle.read()
    assert sum(_resident(c) for c in copies) > 0  # (tmpfs would keep them: then this fails)
    assert {o.result for o in verify_copies(store).outcomes} == {"verified"}
    assert [_resident(c) for c in copies] == [0] * len(copies)


def _dam(env, *args, **kwargs):
    return subprocess.run(
        [*DAM, *args], capture_output=True, text=True, env=env, timeout=120, **kwargs
    )


def test_sigkill_mid_copy_then_rerun_verifies_every_copy(store, tmp_path, dest, data_dir):
    """A real `dam archive` process killed while a copy is half written; the re-run removes
    the partial file and ends with every content copied and verified."""
    media = tmp_path / "big"
    rng = np.random.default_rng(16)
    for i in range(4):  # large enough that a copy takes a while (fsync included)
        path = media / f"take_{i}.mov"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.bytes(64 * 2**20))
        mf.age(path)
    indexed = scan([media], store, settle_seconds=0).by_path
    before = {p: identity(Path(p)) for p in indexed}
    env = {**os.environ, "DAM_DATA_DIR": str(data_dir)}

    staging = dest / META / "staging"
    child = subprocess.Popen(
        [*DAM, "archive", str(dest)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    killed_at = None
    deadline = time.monotonic() + 90
    while killed_at is None and child.poll() is None and time.monotonic() < deadline:
        partial = list(staging.glob("*.partial")) if staging.is_dir() else []
        if partial and partial[0].stat().st_size > 0:
            os.kill(child.pid, signal.SIGSTOP)  # freeze it, then look again: still half written?
            size = partial[0].stat().st_size if partial[0].exists() else None
            if size is not None and size < 64 * 2**20:
                os.kill(child.pid, signal.SIGKILL)
                killed_at = size
            else:
                os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.002)
    child.communicate(timeout=60)
    assert killed_at is not None and child.returncode == -signal.SIGKILL
    assert list(staging.glob("*.partial"))  # what the killed run left

    rerun = _dam(env, "archive", str(dest), "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert "removed 1 partial copy" in rerun.stderr
    outcomes = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert len(outcomes) == 4 and {o["result"] for o in outcomes} <= {"copied", "already", "found"}
    assert "copied" in {o["result"] for o in outcomes}
    assert leftovers(dest) == []
    rows = ledger(store)
    assert {r["status"] for r in rows.values()} == {"verified"} and len(rows) == 4
    for row in rows.values():
        assert file_checksum(dest / row["relative_path"]) == row["checksum"]
    assert {p: identity(Path(p)) for p in indexed} == before

    check = _dam(env, "archive", "verify")
    assert check.returncode == 0 and "4 verified" in check.stdout, check.stdout + check.stderr
    (dest / rows[next(iter(rows))]["relative_path"]).unlink()
    check = _dam(env, "archive", "verify", str(dest))
    assert check.returncode == 2 and "MISSING" in check.stdout, check.stdout + check.stderr
    usage = _dam(env, "archive", str(tmp_path / "nowhere"))
    assert usage.returncode == 1 and "no such folder" in usage.stderr


def test_jobs_run_on_a_worker_and_fail_with_the_files_that_did_not_verify(
    instance, store, indexed, dest, monkeypatch
):
    monkeypatch.setenv("DAM_ROLE", "worker")  # opening a SQLite file raises on a worker
    config = {"ops": {"archive_originals": {"config": {"dest": str(dest), "where": ""}}}}
    result = defs.resolve_job_def("archive_media").execute_in_process(
        instance=instance, run_config=config
    )
    assert result.success and result.output_for_node("archive_originals")["copied"] == 3
    row = next(iter(ledger(store).values()))
    (dest / row["relative_path"]).unlink()
    verify = defs.resolve_job_def("verify_archive").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not verify.success
    [failure] = [e for e in verify.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data.user_failure_data
    assert "1 archive copy(ies) did not verify" in data.description
    assert row["relative_path"] in data.metadata["problems"].value
    again = defs.resolve_job_def("archive_media").execute_in_process(
        instance=instance, run_config=config
    )
    assert again.output_for_node("archive_originals") == {
        "copied": 1,
        "found": 0,
        "already": 2,
        "failed": 0,
    }

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import blake3
import pytest

from dam_assets.library import discovery
from dam_assets.library.discovery import scan
from dam_assets.media.hashing import CHECKSUM_HEX_LENGTH, ChangedWhileReading, file_checksum
from dam_assets.storage import Store

from .conftest import IS_ROOT, copy_settled


def test_checksum_is_full_blake3(library):
    data = library["h264"].read_bytes()
    assert file_checksum(library["h264"]) == blake3.blake3(data).hexdigest()
    assert len(file_checksum(library["h264"])) == CHECKSUM_HEX_LENGTH == 64


def test_large_file_hashed_on_all_cores_agrees(tmp_path):
    path = tmp_path / "big.mov"
    payload = os.urandom(70 * 1024 * 1024)
    path.write_bytes(payload)
    assert file_checksum(path) == blake3.blake3(payload).hexdigest()


_HASH_WHILE_TRUNCATED = """
import sys
from dam_assets.media import hashing
print("hashing", flush=True)
try:
    hashing.file_checksum(sys.argv[1])
except getattr(hashing, "ChangedWhileReading", OSError) as exc:
    print("changed:", exc, flush=True)
else:
    print("no change seen", flush=True)
"""


def test_file_truncated_while_hashed_is_an_error_not_a_crash(tmp_path):
    """A re-export over the same name (rsync --inplace) shrinks a large file mid-hash. Mapped
    into memory, that was SIGBUS: the process (sensor code server, `dam ingest`) died."""
    import subprocess
    import sys
    import time

    path = tmp_path / "reexport.mov"
    with open(path, "wb") as handle:  # sparse: 3 GB of zeros that cost no disk
        handle.truncate(3 * 1024**3)
    child = subprocess.Popen(
        [sys.executable, "-c", _HASH_WHILE_TRUNCATED, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "hashing"
    time.sleep(0.3)  # well inside the read of 3 GB
    os.truncate(path, 1024)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0, f"the hashing process died (signal {-child.returncode})"
    assert out.startswith("changed:"), out


@pytest.fixture
def watched(tmp_path, library) -> Path:
    root = tmp_path / "watched"
    for name in ("h264", "audio", "still"):
        copy_settled(library[name], root / "sub" / library[name].name)
    (root / "notes.txt").write_text("not media, ignored")
    (root / ".hidden.mp4").write_bytes(b"rsync temp file")
    return root


def test_files_are_hashed_once(watched, store, monkeypatch):
    first = scan([watched], store, settle_seconds=0)
    assert first.seen == 3 and first.hashed == 3 and len(first.checksums) == 3
    calls = []
    monkeypatch.setattr(discovery, "file_checksum", lambda p: calls.append(p))
    second = scan([watched], store, settle_seconds=0)
    assert calls == [] and second.hashed == 0
    assert sorted(second.checksums) == sorted(first.checksums)


def test_rename_is_recognised_without_reading(watched, store, monkeypatch):
    first = scan([watched], store, settle_seconds=0)
    old = watched / "sub" / "photo.jpg"
    new = watched / "renamed" / "holiday.jpg"
    new.parent.mkdir()
    os.rename(old, new)
    monkeypatch.setattr(discovery, "file_checksum", lambda p: pytest.fail(f"re-read {p}"))
    second = scan([watched], store, settle_seconds=0)
    assert second.renamed == 1 and second.hashed == 0
    assert second.by_path[str(new)] == first.by_path[str(old)]
    rows = {r[0]: r[1] for r in _files(store)}
    assert rows[str(old)] is True  # the old name is remembered as missing, not forgotten
    assert rows[str(new)] is False


def _files(store):
    store.export_registry()
    return [
        (r["path"], r["missing"])
        for r in store.sql("SELECT path, missing FROM media_files").to_pylist()
    ]


def test_duplicate_content_is_one_checksum(tmp_path, library, store):
    a = copy_settled(library["h264"], tmp_path / "w" / "a.mp4")
    b = copy_settled(library["h264"], tmp_path / "w" / "copy of a.mp4")
    report = scan([tmp_path / "w"], store, settle_seconds=0)
    assert report.seen == 2 and len(report.checksums) == 1
    assert report.by_path[str(a)] == report.by_path[str(b)]


def test_settling_is_observed_not_read_from_the_clock(tmp_path, library, store):
    """A file is read once it looked the same in two looks `settle` apart, whatever its mtime
    says: a camera clock a day ahead does not park it, a fresh copy does not skip it."""
    root = tmp_path / "w"
    ahead = copy_settled(library["audio"], root / "camera_clock_ahead.m4a")
    stat = ahead.stat()
    os.utime(ahead, ns=(stat.st_atime_ns, stat.st_mtime_ns + 86400 * 10**9))
    fresh = root / "just_copied.mp4"
    fresh.write_bytes(library["h264"].read_bytes())  # mtime = now
    seen: dict = {}
    t0 = 1_000_000.0
    first = scan([root], store, settle_seconds=30, observations=seen, now=t0)
    assert first.checksums == [] and sorted(first.waiting) == sorted([str(ahead), str(fresh)])
    early = scan([root], store, settle_seconds=30, observations=seen, now=t0 + 10)
    assert early.checksums == []
    with open(fresh, "ab") as handle:  # the copy was still going: the clock starts again
        handle.write(b"\0" * 1024)
    later = scan([root], store, settle_seconds=30, observations=seen, now=t0 + 31)
    assert list(later.by_path) == [str(ahead)]
    assert later.waiting == [str(fresh)]
    store.export_registry()
    errors = store.sql("SELECT error_type FROM ingest_errors WHERE path = ?", [str(fresh)])
    assert errors.column("error_type").to_pylist() == ["StillBeingWritten"]
    done = scan([root], store, settle_seconds=30, observations=seen, now=t0 + 62)
    assert set(done.by_path) == {str(ahead), str(fresh)} and seen == {}
    store.export_registry()
    assert store.sql("SELECT * FROM ingest_errors WHERE path = ?", [str(fresh)]).num_rows == 0


def test_file_changing_while_hashed_is_read_again_later(tmp_path, library, store, monkeypatch):
    root = tmp_path / "w"
    path = copy_settled(library["h264"], root / "reexport.mp4")
    real = discovery.file_checksum
    calls = []

    def grows_while_read(p):  # what file_checksum raises when it happens (tested above)
        calls.append(p)
        if len(calls) == 1:
            raise ChangedWhileReading(f"{p} changed while it was read")
        return real(p)

    monkeypatch.setattr(discovery, "file_checksum", grows_while_read)
    seen: dict = {}
    report = scan([root], store, settle_seconds=5, observations=seen, now=0.0)
    assert report.waiting == [str(path)] and not report.checksums  # first look
    report = scan([root], store, settle_seconds=5, observations=seen, now=10.0)
    assert report.waiting == [str(path)] and not report.checksums  # changed while read
    report = scan([root], store, settle_seconds=5, observations=seen, now=20.0)
    assert report.checksums == [blake3.blake3(path.read_bytes()).hexdigest()]


def test_deleted_files_marked_missing_not_removed(watched, store):
    scan([watched], store, settle_seconds=0)
    (watched / "sub" / "tone.m4a").unlink()
    report = scan([watched], store, settle_seconds=0)
    assert report.missing_marked == 1
    rows = dict(_files(store))
    assert rows[str(watched / "sub" / "tone.m4a")] is True
    assert sum(rows.values()) == 1 and len(rows) == 3


def test_unmounted_or_empty_root_marks_nothing_missing(watched, store, tmp_path):
    scan([watched], store, settle_seconds=0)
    moved = tmp_path / "elsewhere"
    shutil.move(watched, moved)  # the share went away
    report = scan([watched], store, settle_seconds=0)
    assert report.missing_marked == 0 and report.roots_skipped
    watched.mkdir()  # an empty mount point
    report = scan([watched], store, settle_seconds=0)
    assert report.missing_marked == 0
    assert not any(missing for _, missing in _files(store))


def test_zero_byte_and_vanished_files_are_errors(tmp_path, store, bad_files):
    report = scan([bad_files["empty"].parent], store, settle_seconds=0)
    types = {Path(p).name: t for p, t, _ in report.errors}
    assert types["empty.mp4"] == "EmptyFile"
    # 3 other bad files still get checksums: probe decides they are not media
    assert len(report.checksums) == 3


def test_tick_budget_covers_the_walk_and_resumes_it(tmp_path, library, store):
    """A pass cut short by its budget records what it did and says where to resume; files
    missing from the stretch it walked are marked, the rest of the tree is left alone."""
    root = tmp_path / "w"
    for i in range(4):
        copy_settled(library["audio"], root / f"d{i}" / f"t{i}.m4a")
    scan([root], store, settle_seconds=0)
    new0 = copy_settled(library["still"], root / "d0" / "n0.jpg")
    new2 = copy_settled(library["h264"], root / "d2" / "n2.mp4")
    (root / "d3" / "t3.m4a").unlink()
    passes, resume = [], None
    for _ in range(5):  # a zero budget: each pass reads one new file, then stops
        report = scan([root], store, settle_seconds=0, budget_s=0.0, resume=resume)
        passes.append((report.hashed, report.missing_marked, report.resume))
        resume = report.resume
        if resume is None:
            break
    assert passes == [
        (1, 0, {"root": str(root), "after": str(new0)}),
        (1, 0, {"root": str(root), "after": str(new2)}),
        (0, 1, None),  # the end of the walk: t3, after the cut, is missing
    ]
    assert dict(_files(store))[str(root / "d3" / "t3.m4a")] is True


def test_walk_order_is_string_order_of_paths(tmp_path, library):
    root = tmp_path / "w"
    names = ["a b/x.mp3", "a/x.mp3", "a/y/z.mp3", "a-1.mp3", "ab.mp3", "b.mp3"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    walked = [e.path for e in discovery.walk(str(root), set())]
    assert walked == sorted(str(root / n) for n in names)
    after = str(root / "a" / "x.mp3")
    assert [e.path for e in discovery.walk(str(root), set(), after)] == [
        p for p in walked if p > after
    ]


def _scan_as(uid: int | None, root: str, data: str, queue) -> None:
    if uid is not None:
        os.setgid(uid)
        os.setuid(uid)
    report = scan([Path(root)], Store(data), settle_seconds=0)
    queue.put({"errors": report.errors, "checksums": report.checksums})


def test_unreadable_file_is_recorded(library):
    """No read permission: recorded with a clear message. Root reads everything, so as root
    the scan runs in a forked child that has dropped to `nobody`."""
    tmp_path = Path(tempfile.mkdtemp(prefix="dam-perm-"))  # pytest's tmp is root-only
    root = tmp_path / "w"
    ok = copy_settled(library["audio"], root / "ok.m4a")
    locked = copy_settled(library["h264"], root / "locked.mp4")
    locked.chmod(0o000)
    data = tmp_path / "data"
    data.mkdir()
    for p in (tmp_path, root, data):
        p.chmod(0o777)
    ok.chmod(0o644)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(
        target=_scan_as,
        args=(pwd.getpwnam("nobody").pw_uid if IS_ROOT else None, str(root), str(data), queue),
    )
    child.start()
    child.join(timeout=60)
    result = queue.get(timeout=5)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert len(result["checksums"]) == 1
    [(path, error_type, message)] = result["errors"]
    assert path == str(locked) and error_type == "PermissionDenied"
    assert "Permission denied" in message


def test_file_vanishing_before_read_is_recorded(tmp_path, library, store, monkeypatch):
    root = tmp_path / "w"
    copy_settled(library["audio"], root / "stays.m4a")
    gone = copy_settled(library["h264"], root / "gone.mp4")
    real = discovery.file_checksum

    def delete_then_hash(path):  # the file is moved away between the walk and the read
        if Path(path) == gone:
            gone.unlink()
        return real(path)

    monkeypatch.setattr(discovery, "file_checksum", delete_then_hash)
    report = scan([root], store, settle_seconds=0)
    assert len(report.checksums) == 1
    assert report.errors == [(str(gone), "Vanished", report.errors[0][2])]
    assert "disappeared" in report.errors[0][2]
    rows = store.sql("SELECT stage, error_type FROM ingest_errors WHERE path = ?", [str(gone)])
    assert rows.to_pylist() == [{"stage": "discovery", "error_type": "Vanished"}]


def test_reappearing_file_is_present_again(watched, store, tmp_path):
    scan([watched], store, settle_seconds=0)
    path = watched / "sub" / "tone.m4a"
    kept = tmp_path / "kept.m4a"
    shutil.move(path, kept)
    scan([watched], store, settle_seconds=0)
    assert dict(_files(store))[str(path)] is True
    shutil.move(kept, path)  # the share comes back / the file is restored
    report = scan([watched], store, settle_seconds=0)
    assert report.hashed == 0
    assert dict(_files(store))[str(path)] is False


def test_latin1_name_is_indexed_nas_folders_and_new_inode(tmp_path, library, store, monkeypatch):
    root = tmp_path / "share"
    good = copy_settled(library["audio"], root / "ok.m4a")
    raw = os.path.join(os.fsencode(root), b"caf\xe9.mp4")  # not valid UTF-8 (an old SMB share)
    with open(raw, "wb") as handle:
        handle.write(library["h264"].read_bytes())
    latin1 = os.fsdecode(raw)
    copy_settled(library["still"], root / "@eaDir" / "ok.m4a" / "SYNOFILE_THUMB_M.jpg")
    copy_settled(library["still"], root / "#recycle" / "deleted.jpg")
    report = scan([root], store, settle_seconds=0)
    assert report.seen == 2 and not report.errors
    assert report.by_path[latin1] == blake3.blake3(library["h264"].read_bytes()).hexdigest()
    row = store.sql("SELECT path, path_bytes FROM media_files WHERE path LIKE '%caf%'")
    assert row.to_pylist() == [{"path": str(root / "caf\\xe9.mp4"), "path_bytes": raw}]
    assert store.registry.present_paths(report.by_path[latin1]) == [latin1]  # opens again
    # a restore in place gives the same bytes a new inode: no re-read
    data = good.read_bytes()
    stat = good.stat()
    good.unlink()
    good.write_bytes(data)
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(discovery, "file_checksum", lambda p: pytest.fail(f"re-read {p}"))
    again = scan([root], store, settle_seconds=0)
    assert again.hashed == 0 and again.checksums == report.checksums and not again.errors

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import blake3
import pytest

from dam_assets import discovery
from dam_assets import samples as mf
from dam_assets.discovery import scan
from dam_assets.media.hashing import CHECKSUM_HEX_LENGTH, file_checksum
from dam_assets.storage import Store

from .conftest import IS_ROOT, copy_settled


def test_checksum_is_full_blake3(library):
    data = library["h264"].read_bytes()
    assert file_checksum(library["h264"]) == blake3.blake3(data).hexdigest()
    assert len(file_checksum(library["h264"])) == CHECKSUM_HEX_LENGTH == 64


def test_large_file_uses_mmap_path_and_agrees(tmp_path):
    path = tmp_path / "big.mov"
    payload = os.urandom(70 * 1024 * 1024)
    path.write_bytes(payload)
    assert file_checksum(path) == blake3.blake3(payload).hexdigest()


@pytest.fixture
def watched(tmp_path, library) -> Path:
    root = tmp_path / "watched"
    for name in ("h264", "audio", "still"):
        copy_settled(library[name], root / "sub" / library[name].name)
    (root / "notes.txt").write_text("not media, ignored")
    (root / ".hidden.mp4").write_bytes(b"rsync temp file")
    return root


def test_files_are_hashed_once(watched, store, monkeypatch):
    first = scan([watched], store)
    assert first.seen == 3 and first.hashed == 3 and len(first.checksums) == 3
    calls = []
    monkeypatch.setattr(discovery, "file_checksum", lambda p: calls.append(p))
    second = scan([watched], store)
    assert calls == [] and second.hashed == 0
    assert sorted(second.checksums) == sorted(first.checksums)


def test_rename_is_recognised_without_reading(watched, store, monkeypatch):
    first = scan([watched], store)
    old = watched / "sub" / "photo.jpg"
    new = watched / "renamed" / "holiday.jpg"
    new.parent.mkdir()
    os.rename(old, new)
    monkeypatch.setattr(discovery, "file_checksum", lambda p: pytest.fail(f"re-read {p}"))
    second = scan([watched], store)
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
    report = scan([tmp_path / "w"], store)
    assert report.seen == 2 and len(report.checksums) == 1
    assert report.by_path[str(a)] == report.by_path[str(b)]


def test_still_being_written_is_skipped_then_indexed(tmp_path, library, store):
    root = tmp_path / "w"
    path = root / "copying.mp4"
    path.parent.mkdir()
    path.write_bytes(library["h264"].read_bytes())  # mtime = now
    report = scan([root], store, settle_seconds=30)
    assert report.unsettled == [str(path)] and report.checksums == []
    store.export_registry()
    errors = store.sql("SELECT error_type FROM ingest_errors WHERE path = ?", [str(path)])
    assert errors.column("error_type").to_pylist() == ["StillBeingWritten"]
    mf.age(path)
    report = scan([root], store, settle_seconds=30)
    assert len(report.checksums) == 1
    store.export_registry()
    assert store.sql("SELECT * FROM ingest_errors WHERE path = ?", [str(path)]).num_rows == 0


def test_deleted_files_marked_missing_not_removed(watched, store):
    scan([watched], store)
    (watched / "sub" / "tone.m4a").unlink()
    report = scan([watched], store)
    assert report.missing_marked == 1
    rows = dict(_files(store))
    assert rows[str(watched / "sub" / "tone.m4a")] is True
    assert sum(rows.values()) == 1 and len(rows) == 3


def test_unmounted_or_empty_root_marks_nothing_missing(watched, store, tmp_path):
    scan([watched], store)
    moved = tmp_path / "elsewhere"
    shutil.move(watched, moved)  # the share went away
    report = scan([watched], store)
    assert report.missing_marked == 0 and report.roots_skipped
    watched.mkdir()  # an empty mount point
    report = scan([watched], store)
    assert report.missing_marked == 0
    assert not any(missing for _, missing in _files(store))


def test_zero_byte_and_vanished_files_are_errors(tmp_path, store, bad_files):
    report = scan([bad_files["empty"].parent], store)
    types = {Path(p).name: t for p, t, _ in report.errors}
    assert types["empty.mp4"] == "EmptyFile"
    # 3 other bad files still get checksums: probe decides they are not media
    assert len(report.checksums) == 3


def test_hash_budget_leaves_a_backlog_and_resumes(tmp_path, library, store):
    root = tmp_path / "w"
    for i in range(4):
        mf.age(mf.make_audio(root / f"t{i}.m4a", seconds=0.2 + i * 0.1))
    first = scan([root], store, hash_budget_s=0.0)
    assert first.hashed == 0 and len(first.backlog) == 4
    full = scan([root], store, resume_after=first.resume_after)
    assert full.hashed == 4 and not full.backlog and full.resume_after is None


def _scan_as(uid: int | None, root: str, data: str, queue) -> None:
    if uid is not None:
        os.setgid(uid)
        os.setuid(uid)
    report = scan([Path(root)], Store(data))
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
    report = scan([root], store)
    assert len(report.checksums) == 1
    assert report.errors == [(str(gone), "Vanished", report.errors[0][2])]
    assert "disappeared" in report.errors[0][2]
    rows = store.sql("SELECT stage, error_type FROM ingest_errors WHERE path = ?", [str(gone)])
    assert rows.to_pylist() == [{"stage": "discovery", "error_type": "Vanished"}]


def test_reappearing_file_is_present_again(watched, store, tmp_path):
    scan([watched], store)
    path = watched / "sub" / "tone.m4a"
    kept = tmp_path / "kept.m4a"
    shutil.move(path, kept)
    scan([watched], store)
    assert dict(_files(store))[str(path)] is True
    shutil.move(kept, path)  # the share comes back / the file is restored
    report = scan([watched], store)
    assert report.hashed == 0
    assert dict(_files(store))[str(path)] is False


def test_latin1_name_nas_folders_and_new_inode(tmp_path, library, store, monkeypatch):
    root = tmp_path / "share"
    good = copy_settled(library["audio"], root / "ok.m4a")
    latin1 = os.path.join(os.fsencode(root), b"caf\xe9.mp4")  # not valid UTF-8
    with open(latin1, "wb") as handle:
        handle.write(library["h264"].read_bytes())
    mf.age(Path(os.fsdecode(latin1)))
    copy_settled(library["still"], root / "@eaDir" / "ok.m4a" / "SYNOFILE_THUMB_M.jpg")
    copy_settled(library["still"], root / "#recycle" / "deleted.jpg")
    report = scan([root], store)
    assert report.seen == 2 and report.checksums == [report.by_path[str(good)]]
    assert [e[1] for e in report.errors] == ["UnsupportedName"]
    assert "caf\ufffd.mp4" in report.errors[0][0]
    # a restore in place gives the same bytes a new inode: no re-read
    data = good.read_bytes()
    stat = good.stat()
    good.unlink()
    good.write_bytes(data)
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(discovery, "file_checksum", lambda p: pytest.fail(f"re-read {p}"))
    again = scan([root], store)
    assert again.hashed == 0 and again.checksums == report.checksums

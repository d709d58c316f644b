"""One verified copy: staged, fsynced, re-hashed from the disk, then named without replacing.

The source is opened read-only (O_NOATIME where the kernel allows it, so even its access time
stays) and hashed while it is copied: bytes that are not the indexed content (the file was
re-exported since it was indexed) are never archived under that checksum. The staged copy is
fsynced, its cached pages dropped, and it is read back and hashed again, so what is verified is
what the disk holds, not what the page cache kept. Then it is linked to its name, which fails
instead of replacing a file that appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3

from ...media.hashing import file_checksum
from ...storage.paths import safe_text

CHUNK = 16 * 1024 * 1024
_THREADS_FROM = 64 * 1024 * 1024  # as file_checksum: hash large files on every core
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}  # exFAT, some SMB
_FULL = {errno.ENOSPC, errno.EDQUOT}

Progress = Callable[[int], None]  # bytes copied so far of the current file


class CopyFailed(Exception):
    """This content could not be archived now; the message says why and what to do."""


@dataclass(frozen=True)
class Placed:
    path: Path
    copied: bool  # False: the same content was already there under this name


NAME_MAX = 255  # bytes, on every file system an archive is likely to be


def candidates(target: Path, checksum: str) -> Iterator[Path]:
    """The name, then names that carry the checksum: a clash with other content gets its own
    (the name shortened where the checksum would make it longer than a file system allows)."""
    yield target
    stem, suffix = (target.stem, target.suffix) if target.stem else (target.name, "")

    def named(tail: str) -> Path:
        room = NAME_MAX - len(os.fsencode(tail + suffix))
        short = os.fsencode(stem)[: max(room, 1)].decode("utf-8", "ignore")
        return target.with_name(short + tail + suffix)

    yield named(f".{checksum[:12]}")
    yield named(f".{checksum}")
    for n in range(2, 1000):
        yield named(f".{checksum}.{n}")


def holds(path: Path, checksum: str, size: int, originals: Iterable[str] = ()) -> str:
    """'free', 'same' (this very content, read back and hashed) or 'other' (anything else,
    a link or a folder included: never followed, never replaced; an original itself, through
    a hard link or another mount of its folder, is not a copy of it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "free"
    except OSError as exc:  # a name too long there, a share gone: this content, not the run
        raise CopyFailed(
            f"{safe_text(path)} cannot be looked at in the archive ({exc.strerror or exc})"
        ) from exc
    if not os.path.isfile(path) or os.path.islink(path) or st.st_size != size:
        return "other"
    if any(_same_file(st, original) for original in originals):
        return "other"
    try:
        return "same" if hash_from_disk(path) == checksum else "other"
    except OSError:
        return "other"


def hash_from_disk(path: Path) -> str:
    """BLAKE3 of what the disk holds: written pages are flushed and cached ones dropped first
    (a copy just written, or rsynced there a minute ago, would be read from memory), and
    dropped again after (reading an archive through must not push the host's cache out)."""
    _drop_cached(path, flush=True)
    try:
        return file_checksum(path)
    finally:
        _drop_cached(path)


def _drop_cached(path: Path, flush: bool = False) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY)
        try:
            if flush:
                os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _same_file(st: os.stat_result, path: str) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def place_copy(
    source: str,
    checksum: str,
    size: int,
    target: Path,
    staging: Path,
    progress: Progress | None = None,
    originals: Iterable[str] = (),
) -> Placed:
    """Archive `source` (indexed as `checksum`, `size` bytes) at `target` or, when another
    content holds that name, at the first free name that carries the checksum. `originals`:
    every path the content is indexed at (`source` is always one)."""
    originals = {source, *originals}
    for candidate in candidates(target, checksum):
        for _ in range(3):  # a name taken between the look and the link: look again
            state = holds(candidate, checksum, size, originals)
            if state == "same":
                return Placed(candidate, copied=False)
            if state == "other":
                break
            try:
                copy_verified(source, checksum, size, candidate, staging, progress)
                return Placed(candidate, copied=True)
            except FileExistsError:
                continue
    raise CopyFailed(f"every name tried beside {safe_text(target)} holds other content")


def copy_verified(
    source: str,
    checksum: str,
    size: int,
    target: Path,
    staging: Path,
    progress: Progress | None = None,
) -> None:
    """Copy through a staged file in `staging` that is verified from disk, then linked to
    `target` (FileExistsError if the name was taken meanwhile; nothing is replaced)."""
    try:
        make_dirs(target.parent)
        free = shutil.disk_usage(staging).free
    except OSError as exc:
        raise CopyFailed(_write_error(exc, target)) from exc
    if free < size:
        raise CopyFailed(
            f"the archive has {free / 2**30:,.2f} GiB free and this file needs"
            f" {size / 2**30:,.2f} GiB; free space or archive to another disk"
        )
    tmp = staging / f"{checksum}.{os.getpid()}.partial"
    src = _open_source(source)
    try:
        _stage(src, checksum, size, tmp, progress)
        try:
            again = hash_from_disk(tmp)
        except OSError as exc:
            raise CopyFailed(f"the copy could not be read back: {exc.strerror or exc}") from exc
        if again != checksum:
            raise CopyFailed(
                f"the copy read back from the archive has BLAKE3 {again[:16]}…, the original"
                f" {checksum[:16]}…: the archive disk or its connection changes data; nothing"
                " was kept (check the disk and cable, then run again)"
            )
        link_no_replace(tmp, target)
        sync_dir(target.parent)
    except OSError as exc:
        if isinstance(exc, FileExistsError):
            raise
        raise CopyFailed(_write_error(exc, target)) from exc
    finally:
        os.close(src)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _open_source(source: str) -> int:
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        try:
            return os.open(source, flags | getattr(os, "O_NOATIME", 0))
        except PermissionError:  # O_NOATIME needs the owner (or root): read without it
            return os.open(source, flags)
    except FileNotFoundError as exc:
        raise CopyFailed(
            f"the original is gone from {safe_text(source)} (moved or deleted); `dam ingest`"
            " its new place, then archive again"
        ) from exc
    except OSError as exc:
        raise CopyFailed(f"cannot read the original: {exc.strerror or exc}") from exc


def _stage(src: int, checksum: str, size: int, tmp: Path, progress: Progress | None) -> None:
    """Write the source's bytes to `tmp`, hashing them; fsync, keep the original's mtime,
    make it read-only and drop its cached pages so the next read comes from the disk."""
    before = os.fstat(src)
    if before.st_size != size:
        raise CopyFailed(
            f"the original has {before.st_size:,} bytes now, {size:,} when it was indexed: it"
            " changed since; `dam ingest` it again, then archive"
        )
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if size >= _THREADS_FROM else 1)
    buffer = memoryview(bytearray(min(CHUNK, max(size, 1))))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        done = 0
        with open(src, "rb", buffering=0, closefd=False) as reader:
            while n := _read(reader, buffer):
                hasher.update(buffer[:n])
                _write_all(fd, buffer[:n])
                done += n
                if progress:
                    progress(done)
        os.fsync(fd)
        after = os.fstat(src)
        if done != size or (after.st_size, after.st_mtime_ns) != (size, before.st_mtime_ns):
            raise CopyFailed("the original changed while it was copied; archive it again later")
        if hasher.hexdigest() != checksum:
            raise CopyFailed(
                f"the original's content is not the indexed content any more (BLAKE3"
                f" {hasher.hexdigest()[:16]}…, indexed {checksum[:16]}…): it was rewritten"
                " since; `dam ingest` it again, then archive"
            )
        os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.fchmod(fd, 0o444)  # an archive copy is not for editing
        os.fsync(fd)  # `hash_from_disk` drops its cached pages before reading it back
    finally:
        os.close(fd)


def _read(reader, buffer: memoryview) -> int:
    try:
        return reader.readinto(buffer) or 0
    except OSError as exc:
        raise CopyFailed(
            f"reading the original failed: {exc.strerror or exc} (bad disk or share)"
        ) from exc


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _write_error(exc: OSError, target: Path) -> str:
    where = safe_text(target.parent)
    if exc.errno in _FULL:
        return f"the archive is full ({exc.strerror}) at {where}; free space, then run again"
    if exc.errno == errno.EXDEV:
        return (
            f"{where} is on another file system than the archive root: archive to that file"
            " system as its own destination"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write to {where} ({exc.strerror}): read-only disk or no permission"
    return f"writing the copy failed at {where}: {exc.strerror or exc}"


def link_no_replace(staged: Path, target: Path) -> None:
    """Give `staged` the name `target` unless that name exists (FileExistsError)."""
    try:
        os.link(staged, target)
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if os.path.lexists(target):  # no hard links here: the archive's lock keeps our own
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None  # runs out
        os.rename(staged, target)


def make_dirs(folder: Path) -> None:
    """`mkdir -p`, each new folder made durable in its parent."""
    if folder.is_dir():
        return
    make_dirs(folder.parent)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
        sync_dir(folder.parent)


def sync_dir(path: Path) -> None:
    """Make a folder's entries (a new name, a new sub-folder) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

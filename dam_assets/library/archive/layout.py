"""An archive root: its identity, its lock, its staging folder and where each copy goes.

`DEST/.dam-archive/archive.json` names the archive with an id, so a disk mounted elsewhere
later (`/media/usb1` today, `/media/usb0` next month) is still the same archive to the ledger.
Copies are staged in `DEST/.dam-archive/staging/` (the same file system as the copies, so a
verified copy is linked into place, never copied again) and laid out as the originals are:
`DEST/<watched folder's name>/<path below it>`, where a person would look for them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ...storage.paths import safe_text
from .copying import link_no_replace, sync_dir

META = ".dam-archive"
MARKER = "archive.json"


class ArchiveError(Exception):
    """A refusal before any copy is made: one line that says what to do."""


def _name(path: str) -> str:
    """A name that is valid UTF-8 on every archive file system: undecodable bytes of an old
    camera or SMB name become U+FFFD (the ledger keeps the original's real path)."""
    return os.fsencode(path).decode("utf-8", "replace")


def layout_path(source: str, root: str | None) -> PurePosixPath:
    """Where the copy of `source` goes below DEST: the watched folder's name and the path
    below it (`/mnt/nas/footage/2024/a.mp4` under root `/mnt/nas/footage` →
    `footage/2024/a.mp4`); a file outside its recorded root goes under its folder's name."""
    path = PurePosixPath(_name(source))
    if root:
        base = PurePosixPath(_name(root))
        with contextlib.suppress(ValueError):
            below = path.relative_to(base)
            if below.parts and ".." not in below.parts:
                return PurePosixPath(base.name or "root") / below
    return PurePosixPath(path.parent.name or "root") / path.name


@dataclass(frozen=True)
class ArchiveRoot:
    path: Path  # resolved
    archive_id: str
    created: bool = False  # made an archive by this open

    @property
    def meta(self) -> Path:
        return self.path / META

    @property
    def staging(self) -> Path:
        return self.meta / "staging"

    @classmethod
    def open(
        cls,
        dest: str | os.PathLike[str],
        data_dir: Path,
        create: bool,
        watched: Iterable[str | os.PathLike[str]] = (),
    ) -> ArchiveRoot:
        """The archive at `dest`; with `create`, make it one the first time (never `dest`
        itself: an archive disk that is not mounted must not become a folder on the system
        disk). `dest` may not overlap a `watched` folder: the copy of a file would be the
        file itself, recorded as a second copy that does not exist."""
        given = Path(dest).expanduser()
        if not given.exists():
            raise ArchiveError(
                f"{safe_text(given)}: no such folder. Mount the archive disk or create the"
                " folder first (it is never created here, so an unmounted disk cannot turn into"
                " a folder on the system disk)"
            )
        if not given.is_dir():
            raise ArchiveError(f"{safe_text(given)} is not a folder")
        path = given.resolve()
        data = data_dir.resolve()
        if path == data or data in path.parents or path in data.parents:
            raise ArchiveError(
                f"{safe_text(path)} overlaps DAM_DATA_DIR ({safe_text(data)}), which holds only"
                " what the pipeline derives and may be cleaned; archive somewhere else"
            )
        for folder in watched:
            root = Path(folder).expanduser().resolve()
            if path == root or root in path.parents or path in root.parents:
                raise ArchiveError(
                    f"{safe_text(path)} overlaps the watched folder {safe_text(root)}: a copy"
                    " there could be the original itself; archive to another disk or folder"
                )
        marker = path / META / MARKER
        created = False
        try:
            archive_id = json.loads(marker.read_text())["id"]
        except FileNotFoundError:
            if not create:
                raise ArchiveError(
                    f"{safe_text(path)} is not an archive written by `dam archive` (no"
                    f" {META}/{MARKER}); give the folder you archived to"
                ) from None
            archive_id, created = _write_marker(path), True
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{safe_text(marker)} cannot be read: {exc}") from exc
        return cls(path, str(archive_id), created)

    def on_system_disk(self) -> bool:
        """On the file system of `/`: where an archive disk's mount point is when the disk is
        not mounted."""
        try:
            return os.stat(self.path).st_dev == os.stat("/").st_dev
        except OSError:
            return False

    @contextlib.contextmanager
    def writing(self) -> Iterator[int]:
        """Hold the archive for one run (two runs never stage into it at once) and clear what
        a killed run left in the staging folder; yields how many leftovers were removed."""
        self.staging.mkdir(parents=True, exist_ok=True)
        with open(self.meta / "lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ArchiveError(
                    f"another `dam archive` run is writing to {safe_text(self.path)}; wait for"
                    " it to finish"
                ) from None
            try:
                yield self._clear_staging()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _clear_staging(self) -> int:
        removed = 0
        for entry in os.scandir(self.staging):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
        return removed


def _write_marker(path: Path) -> str:
    archive_id = uuid.uuid4().hex
    meta = path / META
    try:
        meta.mkdir(exist_ok=True)
        body = {"id": archive_id, "created": datetime.now(UTC).isoformat(), "by": "dam archive"}
        tmp = meta / f".{MARKER}.{archive_id[:8]}.tmp"
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        try:
            link_no_replace(tmp, meta / MARKER)  # another run may have named it first: theirs
        except FileExistsError:
            archive_id = json.loads((meta / MARKER).read_text())["id"]
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        sync_dir(meta)
        sync_dir(path)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ArchiveError(
                f"cannot write to {safe_text(path)} ({exc.strerror}): is the disk mounted"
                " read-only, or not yours?"
            ) from exc
        raise
    return archive_id

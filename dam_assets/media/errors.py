"""Errors about one file's content, phrased for the person who has to deal with the file."""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator
from pathlib import Path

# Problems getting at a file, not with its content: its earlier rows stay, and `dam ingest` and
# the nightly run try it again.
ACCESS_ERRORS = frozenset(
    {
        "SourceMissing",
        "SourceChanged",
        "PermissionDenied",
        "Vanished",
        "IOError",
        "ShareTimeout",
        "StaleHandle",
        "ShareOffline",
        "OutOfMemory",
        "ReadTimeout",
        "StorageError",
    }
)

_OFFLINE = "The share holding the file is not connected"
# What a network share answers when it hiccups (PyAV raises these as av.error.OSError and
# friends, which are OSErrors too).
SHARE_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ETIMEDOUT: (
        "ShareTimeout",
        "The storage timed out reading the file (a share or disk that stopped answering)",
    ),
    errno.ESTALE: (
        "StaleHandle",
        "The share's handle to the file went stale (the share was"
        " remounted, or the file replaced on the server)",
    ),
    **{
        code: ("ShareOffline", _OFFLINE)
        for code in (
            errno.ENOTCONN,
            errno.ECONNRESET,
            errno.ECONNABORTED,
            errno.ECONNREFUSED,
            errno.EHOSTDOWN,
            errno.EHOSTUNREACH,
            errno.ENETDOWN,
            errno.ENETUNREACH,
            errno.ENETRESET,
            errno.ENOLINK,
            errno.EREMOTEIO,
            errno.ESHUTDOWN,
        )
    },
}


class MediaError(Exception):
    """A file cannot be indexed at some stage. `error_type` is short and stable (for SQL);
    the message says what is wrong and, where we can tell, why."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from (`raise ... from`), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def is_access_error(exc: BaseException) -> bool:
    """Could not get at the bytes (share, permission, I/O: an OSError from the system, which
    carries an errno) or had no memory for them: nothing is known about the content, so it must
    not be judged. Pillow's OSErrors without an errno ("cannot identify image file", "image
    file is truncated") are about the content."""
    if isinstance(exc, MemoryError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno is not None


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable / len(head) > 0.95


def _isobmff_problem(path: Path, size: int) -> str | None:
    """Walk the top-level boxes of an MP4/MOV: a box running past the end of the file, or no
    `moov` box at all, means the file was cut short (interrupted copy or recording)."""
    offset = 0
    seen: list[str] = []
    with open(path, "rb") as handle:
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            name = box_type.decode("latin-1")
            if box_size == 1 and len(header) >= 16:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:
                box_size = size - offset
            if box_size < 8:
                return f"the container structure is damaged at byte {offset} (box '{name}')"
            if offset + box_size > size:
                missing = offset + box_size - size
                return (
                    f"it is cut short: its '{name}' box needs {missing:,} more bytes than the file"
                    " has (an interrupted copy or recording?)"
                )
            seen.append(name)
            offset += box_size
    if "moov" not in seen and "moof" not in seen:
        return (
            "its index (the 'moov' box) is missing: the recording or copy was interrupted"
            " before the file was finished"
        )
    return None


def diagnose_unreadable(
    path: Path, opened: bool, cause: BaseException | None = None
) -> MediaError | None:
    """Before opening (`opened=True`): raise for problems we can see in the bytes that FFmpeg
    would report vaguely or not at all. After FFmpeg failed: the best explanation we have."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head[4:8] == b"ftyp":
        problem = _isobmff_problem(path, size)
        if problem:
            error = MediaError("Truncated", f"This MP4/MOV file cannot be indexed: {problem}.")
            if opened:
                raise error
            return error
    if opened:
        return None
    if _looks_like_text(head):
        return MediaError(
            "NotMedia",
            f"This is not a media file: it contains text, despite its '{path.suffix}' extension.",
        )
    detail = f" (FFmpeg: {cause})" if cause else ""
    return MediaError(
        "Corrupt",
        "FFmpeg could not read this file as media: it is corrupt, truncated, or not the format"
        f" its '{path.suffix}' extension says{detail}.",
    )

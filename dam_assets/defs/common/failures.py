"""What one file's failure means, judged by its cause: our own storage full (stop the run),
a problem getting at the file (keep its rows, retry it), or its content (clear its rows, once a
second read agrees)."""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dagster import Failure

from ...library.discovery import explain_os_error
from ...media.errors import ACCESS_ERRORS, SHARE_ERRNOS, MediaError, causes, is_access_error

STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_SQLITE_TRANSIENT = {
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_CANTOPEN,
}
KEPT = "Earlier results are kept; it is tried again later."


@dataclass(frozen=True)
class Verdict:
    """`access`: retried, rows kept. `content`: rows cleared once confirmed. `unexpected`: not
    an error we know (log its traceback)."""

    kind: str
    error_type: str
    message: str
    unexpected: bool = False


def judge(exc: BaseException, data_dir: Path, stage: str) -> Verdict:
    """The verdict on one failure; raises Failure (stop the run) when our storage is full."""
    stop_if_full(exc, data_dir)
    for cause in causes(exc):
        if isinstance(cause, MediaError) and cause.error_type in ACCESS_ERRORS:
            return Verdict("access", cause.error_type, str(cause))
        if isinstance(cause, MemoryError):
            return Verdict(
                "access",
                "OutOfMemory",
                "Ran out of memory on this file (the machine was short of memory, or the file"
                f" needs more than it has). {KEPT}",
            )
        if isinstance(cause, sqlite3.OperationalError) and _sqlite_code(cause) in (
            _SQLITE_TRANSIENT
        ):
            return Verdict(
                "access",
                "StorageError",
                f"A database under {data_dir} could not be written ({cause}). {KEPT}",
            )
        if is_access_error(cause):
            return Verdict("access", *_explain_access(cause, data_dir))
    if isinstance(exc, MediaError):
        return Verdict("content", exc.error_type, str(exc))
    message = f"Unexpected error in {stage}: {exc}"
    return Verdict("content", type(exc).__name__, message, unexpected=True)


def stop_if_full(exc: BaseException, data_dir: Path) -> None:
    """Our disk (or quota) is full or read-only: stop the run and say what to do."""
    for cause in causes(exc):
        full = isinstance(cause, OSError) and cause.errno in STORAGE_FULL
        if full or (
            isinstance(cause, sqlite3.OperationalError)
            and _sqlite_code(cause) == sqlite3.SQLITE_FULL
        ):
            reason = cause.strerror if isinstance(cause, OSError) else str(cause)
            raise Failure(
                description=f"Cannot write under {data_dir}: {reason}. Free space (or make it"
                " writable) and re-run; nothing half-written was left (every file is written"
                " to a temporary name and renamed).",
            ) from exc


def _explain_access(exc: OSError, data_dir: Path) -> tuple[str, str]:
    filename = exc.filename if isinstance(exc.filename, str) else None
    ours = os.path.abspath(data_dir) + os.sep  # no syscalls: the share may be hanging
    if filename and os.path.abspath(filename).startswith(ours):
        return "StorageError", f"Could not use {filename}: {exc.strerror or exc}. {KEPT}"
    if exc.errno in SHARE_ERRNOS:
        error_type, text = SHARE_ERRNOS[exc.errno]
        return error_type, f"{text} ({exc.strerror}). {KEPT}"
    error_type, message = explain_os_error(exc)
    return (error_type if error_type in ACCESS_ERRORS else "IOError"), f"{message} {KEPT}"


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if code is not None else None  # extended codes share the low byte

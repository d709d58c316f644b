"""One pass over every partition of a run, so a bad file never stops the others.

A failure is judged by its cause. Our own storage full stops the run (nothing is the file's
fault). A problem getting at the file (share, permission, memory, a read that hangs) keeps its
earlier rows and is retried. A problem with the content clears its rows, but only once a second
read agrees: a share can hand back bad bytes once.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetExecutionContext, AssetObservation, Failure, MetadataValue

from .. import settings
from ..discovery import explain_os_error
from ..media.errors import ACCESS_ERRORS, SHARE_ERRNOS, MediaError, causes, is_access_error
from ..media.watchdog import Overrun, run_with_limit
from ..storage import Store

PROGRESS_EVERY_S = 10.0
# Retried by `dam ingest` and the nightly run, earlier rows kept (runner.unindexed reads it).
TRANSIENT = ACCESS_ERRORS
STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_SQLITE_TRANSIENT = {
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_CANTOPEN,
}
# A stat that does not come back within this long is a share that stopped answering.
LOCATE_TIMEOUT_S = 60.0
_KEPT = "Earlier results are kept; it is tried again later."

# work(checksum, path) -> per-partition metadata for the UI, or None when there was nothing to do
Work = Callable[[str, str], dict | None]


@dataclass
class BatchOutcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def metadata(self) -> dict:
        meta: dict = {
            "partitions": len(self.done) + len(self.failed),
            "succeeded": len(self.done),
            "failed": len(self.failed),
            "seconds": round(self.seconds, 3),
        }
        if self.failed:
            lines = [f"- `{ck[:12]}…` {msg}" for ck, msg in list(self.failed.items())[:20]]
            meta["errors"] = MetadataValue.md("\n".join(lines))
        return meta


@dataclass(frozen=True)
class Verdict:
    """Why one file failed: `access` (retried, rows kept) or `content` (rows cleared)."""

    kind: str
    error_type: str
    message: str


def run_per_partition(
    context: AssetExecutionContext,
    store: Store,
    stage: str,
    keys: list[str],
    work: Work,
    on_failure: Callable[[str], None] | None = None,
) -> BatchOutcome:
    """Call `work` for each partition, under a watchdog; record failures in `ingest_errors`
    (with a message for people), clear them on success, log progress, and observe each
    partition's metadata. `on_failure(key)` drops a file's rows once its content is known bad."""
    outcome = BatchOutcome()
    started = last_log = time.monotonic()
    paths = store.registry.paths_for_checksums(keys)
    durations = _durations(store, keys)
    for i, key in enumerate(keys, 1):
        known = paths.get(key)
        limit = _Limit(durations.get(key))

        def attempt(key: str = key, known: str | None = known, limit: _Limit = limit):
            return _attempt(context, store, stage, key, known, work, limit)

        try:
            path, meta, verdict = known, None, None
            try:
                path, meta = attempt()
            except Exception as first:
                verdict = _verdict(first, store, context, stage, known)
                if verdict.kind == "content":  # judged only when a second read agrees
                    try:
                        path, meta = attempt()
                    except Exception as second:
                        verdict = _verdict(second, store, context, stage, known)
                    else:
                        context.log.warning(
                            f"{stage}: {path}: the first read failed ({verdict.error_type}:"
                            f" {verdict.message}) but a second read worked: not the content."
                        )
                        verdict = None
            if verdict is None:
                store.clear_stage_error(stage, key)
                outcome.done.append(key)
                if meta:
                    context.log_event(
                        AssetObservation(asset_key=context.asset_key, partition=key, metadata=meta)
                    )
            else:
                if verdict.kind == "content" and on_failure:
                    on_failure(key)  # the content itself is bad (twice): drop its old rows
                store.record_stage_error(stage, key, path, verdict.error_type, verdict.message)
                outcome.failed[key] = verdict.message
                context.log.warning(f"{stage}: {path}: {verdict.message}")
        except Failure:
            raise
        except Exception as exc:  # our own bookkeeping failed: say so if the disk is full
            _stop_if_full(exc, store)
            raise
        now = time.monotonic()
        if now - last_log >= PROGRESS_EVERY_S or i == len(keys):
            rate = i / max(now - started, 1e-9)
            context.log.info(
                f"{stage}: {i}/{len(keys)} files ({rate:.1f}/s), {len(outcome.failed)} failed"
            )
            last_log = now
    outcome.seconds = time.monotonic() - started
    return outcome


class _Limit:
    """How long one file may take before a stalled read is given up on: base + per media
    second × duration (settings.read_timeout)."""

    def __init__(self, duration_s: float | None):
        self.base, self.per_media_s = settings.read_timeout()
        self.duration_s = duration_s or 0.0
        self.seconds = self.base + self.per_media_s * self.duration_s

    def __str__(self) -> str:
        return (
            f"{self.seconds:.0f}s = {self.base:g}s + {self.per_media_s:g}s per second of"
            f" its {self.duration_s:.0f}s of media (DAM_READ_TIMEOUT_S,"
            " DAM_READ_TIMEOUT_PER_MEDIA_S)"
        )


def _durations(store: Store, keys: list[str]) -> dict[str, float]:
    """Each file's duration from `probe` (none yet for a first probe: the base limit)."""
    rows = store.lake.read_units("probe", keys).select(["checksum", "duration_s"]).to_pylist()
    return {r["checksum"]: r["duration_s"] for r in rows if r["duration_s"]}


def _attempt(
    context: AssetExecutionContext,
    store: Store,
    stage: str,
    key: str,
    known: str | None,
    work: Work,
    limit: _Limit,
) -> tuple[str, dict | None]:
    """Find a present copy and do the work on it, each in a watched thread: a read blocked on
    a dead share fails this file (ReadTimeout), not the run."""

    def slow(elapsed: float) -> None:
        context.log.warning(
            f"{stage}: {known}: still working after {elapsed:.0f}s (limit {limit}), and"
            " busy rather than stuck: waiting on."
        )

    try:
        path = run_with_limit(
            lambda: _current_path(store, key, known),
            min(LOCATE_TIMEOUT_S, limit.seconds),
            name=f"dam-{stage}-stat",
        )
    except Overrun as exc:
        raise MediaError(
            "ReadTimeout",
            f"The storage did not answer within {exc.elapsed_s:.0f}s when asked for the file"
            f" (a share that stopped answering?). {_KEPT}",
        ) from None
    try:
        return path, run_with_limit(lambda: work(key, path), limit.seconds, f"dam-{stage}", slow)
    except Overrun as exc:
        what = "still not finished" if exc.busy else "reading it stopped making progress"
        raise MediaError(
            "ReadTimeout",
            f"Gave up on the file after {exc.elapsed_s:.0f}s: {what} (limit {limit}). The"
            f" storage stopped answering (a dead share?). {_KEPT}",
        ) from None


def _verdict(
    exc: BaseException,
    store: Store,
    context: AssetExecutionContext,
    stage: str,
    path: str | None,
) -> Verdict:
    _stop_if_full(exc, store)
    for cause in causes(exc):
        if isinstance(cause, MediaError) and cause.error_type in ACCESS_ERRORS:
            return Verdict("access", cause.error_type, str(cause))
        if isinstance(cause, MemoryError):
            return Verdict(
                "access",
                "OutOfMemory",
                "Ran out of memory on this file (the machine was short of memory, or the file"
                f" needs more than it has). {_KEPT}",
            )
        if isinstance(cause, sqlite3.OperationalError) and _sqlite_code(cause) in (
            _SQLITE_TRANSIENT
        ):
            return Verdict(
                "access",
                "StorageError",
                f"A database under {store.data_dir} could not be written ({cause}). {_KEPT}",
            )
        if is_access_error(cause):
            return Verdict("access", *_explain_access(cause, store.data_dir))
    if isinstance(exc, MediaError):
        return Verdict("content", exc.error_type, str(exc))
    context.log.exception(f"{stage} failed on {path}")
    return Verdict("content", type(exc).__name__, f"Unexpected error in {stage}: {exc}")


def _explain_access(exc: OSError, data_dir: Path) -> tuple[str, str]:
    filename = exc.filename if isinstance(exc.filename, str) else None
    ours = os.path.abspath(data_dir) + os.sep  # no syscalls: the share may be hanging
    if filename and os.path.abspath(filename).startswith(ours):
        return "StorageError", f"Could not use {filename}: {exc.strerror or exc}. {_KEPT}"
    if exc.errno in SHARE_ERRNOS:
        error_type, text = SHARE_ERRNOS[exc.errno]
        return error_type, f"{text} ({exc.strerror}). {_KEPT}"
    error_type, message = explain_os_error(exc)
    return (error_type if error_type in ACCESS_ERRORS else "IOError"), f"{message} {_KEPT}"


def _stop_if_full(exc: BaseException, store: Store) -> None:
    """Our disk (or quota) is full or read-only: stop the run and say what to do."""
    for cause in causes(exc):
        full = isinstance(cause, OSError) and cause.errno in STORAGE_FULL
        if full or (
            isinstance(cause, sqlite3.OperationalError)
            and _sqlite_code(cause) == sqlite3.SQLITE_FULL
        ):
            reason = cause.strerror if isinstance(cause, OSError) else str(cause)
            raise Failure(
                description=f"Cannot write under {store.data_dir}: {reason}. Free space (or"
                " make it writable) and re-run; nothing half-written was left (every file is"
                " written to a temporary name and renamed).",
            ) from exc


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if code is not None else None  # extended codes share the low byte


def visual_inputs(store: Store, keys: list[str]) -> tuple[dict, dict[str, list[dict]], list[str]]:
    """What the frame-sampling assets read: each partition's probe row, its scenes, and which
    partitions are pictures at all (videos and stills)."""
    probed = {r["checksum"]: r for r in store.lake.read_units("probe", keys).to_pylist()}
    scene_rows: dict[str, list[dict]] = {}
    for row in store.lake.read_units("scenes", keys).to_pylist():
        scene_rows.setdefault(row["checksum"], []).append(row)
    visual = [k for k in keys if k in probed and probed[k]["media_kind"] in ("video", "image")]
    return probed, scene_rows, visual


def _current_path(store: Store, checksum: str, path: str | None) -> str:
    """A present copy of this content, unchanged since it was hashed (so the bytes we read are
    the bytes the checksum names)."""
    candidates = ([path] if path else []) + store.registry.present_paths(checksum)
    for candidate in dict.fromkeys(candidates):
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if store.registry.identity(candidate) not in (None, (st.st_size, st.st_mtime_ns)):
            raise MediaError(
                "SourceChanged",
                f"{candidate} changed after it was hashed; the next scan hashes it again and"
                " indexes the new content under its own checksum.",
            )
        return candidate
    raise MediaError(
        "SourceMissing",
        "No copy of this content is present on storage any more"
        + (f" (last seen at {path})" if path else "")
        + f". It is retried until none has been seen for {settings.missing_retention_days():g}"
        " days (DAM_MISSING_RETENTION_DAYS).",
    )

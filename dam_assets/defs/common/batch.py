"""One pass over every partition of a run, so a bad file never stops the others.

Each file's work runs under a watchdog, and a failure is judged by its cause (failures.py):
only content that fails twice loses its earlier rows.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import AssetExecutionContext, Failure, MetadataValue

from ... import settings
from ...media.errors import ACCESS_ERRORS, MediaError
from ...media.watchdog import Overrun, run_with_limit
from ...storage import Store
from ...storage.locations import Locations
from ...storage.paths import display_path, safe_text
from .failures import KEPT, STORAGE_FULL, Verdict, judge, stop_if_full

PROGRESS_EVERY_S = 10.0
# Retried by `dam ingest` and the nightly run, earlier rows kept (runner.unindexed reads it).
TRANSIENT = ACCESS_ERRORS
# A stat that does not come back within this long is a share that stopped answering.
LOCATE_TIMEOUT_S = 60.0

__all__ = ["STORAGE_FULL", "TRANSIENT", "BatchOutcome", "run_per_partition", "visual_inputs"]

# work(checksum, path) -> per-partition metadata for the UI, or None when there was nothing to do
Work = Callable[[str, str], dict | None]


@dataclass
class BatchOutcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)  # per-file metadata for the UI
    seconds: float = 0.0

    def fail(self, key: str, message: str) -> None:
        if key in self.done:
            self.done.remove(key)
        self.meta.pop(key, None)
        self.failed[key] = message

    def metadata(self) -> dict:
        meta: dict = {
            "partitions": len(self.done) + len(self.failed),
            "succeeded": len(self.done),
            "failed": len(self.failed),
            "seconds": round(self.seconds, 3),
        }
        if self.failed:
            lines = [
                f"- `{ck[:12]}…` {safe_text(msg)}" for ck, msg in list(self.failed.items())[:20]
            ]
            meta["errors"] = MetadataValue.md("\n".join(lines))
        return meta


def run_per_partition(
    context: AssetExecutionContext,
    store: Store,
    stage: str,
    keys: list[str],
    work: Work,
    on_failure: Callable[[str], None] | None = None,
) -> BatchOutcome:
    """Call `work` for each partition; record failures in `ingest_errors` (with a message for
    people), clear them on success, log progress, and keep each partition's metadata.
    `on_failure(key)` drops a file's old rows once its content is known to be bad."""
    outcome = BatchOutcome()
    started = last_log = time.monotonic()
    where = store.locations(keys)
    durations = _durations(store, keys)
    for i, key in enumerate(keys, 1):
        file = _File(context, where, stage, key, work, durations.get(key), store.data_dir)
        try:
            path, meta, verdict = file.index()
            if verdict is None:
                store.clear_stage_error(stage, key)
                outcome.done.append(key)
                if meta:
                    outcome.meta[key] = meta
            else:
                if verdict.kind == "content" and on_failure:
                    on_failure(key)  # the content itself is bad (twice): drop its old rows
                shown = display_path(path)
                store.record_stage_error(stage, key, shown, verdict.error_type, verdict.message)
                outcome.failed[key] = verdict.message
                context.log.warning(f"{stage}: {safe_text(shown)}: {safe_text(verdict.message)}")
        except Failure:
            raise
        except Exception as exc:  # our own bookkeeping failed: say so if the disk is full
            stop_if_full(exc, store.data_dir)
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


def _durations(store: Store, keys: list[str]) -> dict[str, float]:
    """Each file's duration from `probe` (none yet for a first probe: the base limit)."""
    rows = store.lake.read_units("probe", keys).select(["checksum", "duration_s"]).to_pylist()
    return {r["checksum"]: r["duration_s"] for r in rows if r["duration_s"]}


class _File:
    """One partition's work in a stage: found, read and judged."""

    def __init__(
        self,
        context: AssetExecutionContext,
        where: Locations,
        stage: str,
        key: str,
        work: Work,
        duration_s: float | None,
        data_dir,
    ):
        self.context, self.where, self.stage, self.key = context, where, stage, key
        self.known, self.work, self.data_dir = where.path_for(key), work, data_dir
        # the limit on a stalled file grows with its duration (settings.read_timeout)
        self.base, self.per_media_s = settings.read_timeout()
        self.duration_s = duration_s or 0.0
        self.limit_s = self.base + self.per_media_s * self.duration_s

    def index(self) -> tuple[str | None, dict | None, Verdict | None]:
        """(path, metadata, None) on success, else the verdict. A content failure is believed
        only when a second read fails too: a share can hand back bad bytes once."""
        try:
            return (*self._attempt(), None)
        except Exception as exc:
            verdict = self._judge(exc)
        if verdict.kind != "content":
            return self.known, None, verdict
        try:
            path, meta = self._attempt()
        except Exception as exc:
            return self.known, None, self._judge(exc)
        self.context.log.warning(
            f"{self.stage}: {safe_text(path)}: the first read failed ({verdict.error_type}:"
            f" {verdict.message}) but a second read worked: not the content."
        )
        return path, meta, None

    def _judge(self, exc: Exception) -> Verdict:
        verdict = judge(exc, self.data_dir, self.stage)
        if verdict.unexpected:
            self.context.log.exception(f"{self.stage} failed on {safe_text(self.known)}")
        return verdict

    def _attempt(self) -> tuple[str, dict | None]:
        """Find a present copy and do the work on it, each in a watched thread: a read blocked
        on a dead share fails this file (ReadTimeout), not the run."""
        try:
            path = run_with_limit(
                lambda: _current_path(self.where, self.key, self.known),
                min(LOCATE_TIMEOUT_S, self.limit_s),
                name=f"dam-{self.stage}-stat",
            )
        except Overrun as exc:
            raise MediaError(
                "ReadTimeout",
                f"The storage did not answer within {exc.elapsed_s:.0f}s when asked for the"
                f" file (a share that stopped answering?). {KEPT}",
            ) from None
        try:
            meta = run_with_limit(
                lambda: self.work(self.key, path), self.limit_s, f"dam-{self.stage}", self._slow
            )
        except Overrun as exc:
            what = "still not finished" if exc.busy else "reading it stopped making progress"
            raise MediaError(
                "ReadTimeout",
                f"Gave up on the file after {exc.elapsed_s:.0f}s: {what} (limit {self._limit()})."
                f" The storage stopped answering (a dead share?). {KEPT}",
            ) from None
        return path, meta

    def _slow(self, elapsed: float) -> None:
        self.context.log.warning(
            f"{self.stage}: {safe_text(self.known)}: still working after {elapsed:.0f}s (limit"
            f" {self._limit()}), busy rather than stuck: waiting on."
        )

    def _limit(self) -> str:
        return (
            f"{self.limit_s:.0f}s = {self.base:g}s + {self.per_media_s:g}s per second of its"
            f" {self.duration_s:.0f}s of media (DAM_READ_TIMEOUT_S, DAM_READ_TIMEOUT_PER_MEDIA_S)"
        )


def probe_rows(store: Store, keys: list[str]) -> dict[str, dict]:
    """The probe row of each partition that has one (what every asset after probe reads
    first); a partition without one was not probed, or its file failed probe."""
    return {r["checksum"]: r for r in store.lake.read_units("probe", keys).to_pylist()}


def visual_inputs(store: Store, keys: list[str]) -> tuple[dict, dict[str, list[dict]], list[str]]:
    """What the frame-sampling assets read: each partition's probe row, its scenes, and which
    partitions are pictures at all (videos and stills)."""
    probed = probe_rows(store, keys)
    scene_rows: dict[str, list[dict]] = {}
    for row in store.lake.read_units("scenes", keys).to_pylist():
        scene_rows.setdefault(row["checksum"], []).append(row)
    visual = [k for k in keys if k in probed and probed[k]["media_kind"] in ("video", "image")]
    return probed, scene_rows, visual


def _current_path(where: Locations, checksum: str, path: str | None) -> str:
    """A present copy of this content, unchanged since it was hashed (so the bytes we read are
    the bytes the checksum names). Only paths that hold this content as last seen count: a
    path that now holds other content (a reused card name) is never read for it."""
    changed = None
    unreachable: OSError | None = None
    for candidate in where.present_paths(checksum):
        try:
            st = os.stat(candidate)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                unreachable = exc  # there, maybe, behind a share that does not answer
            continue
        if where.identity(candidate, checksum) == (st.st_size, st.st_mtime_ns):
            return candidate
        changed = changed or candidate
    if changed:
        raise MediaError(
            "SourceChanged",
            f"{safe_text(changed)} changed after it was hashed; the next scan hashes it again"
            " and indexes the new content under its own checksum.",
        )
    if unreachable is not None:
        raise unreachable
    raise MediaError(
        "SourceMissing",
        "No copy of this content is present on storage any more"
        + (f" (last seen at {safe_text(path)})" if path else "")
        + f". It is retried until none has been seen for {settings.missing_retention_days():g}"
        " days (DAM_MISSING_RETENTION_DAYS).",
    )

"""One pass over every partition of a run, so a bad file never stops the others."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import AssetExecutionContext, AssetObservation, Failure, MetadataValue

from ..discovery import explain_os_error
from ..media.errors import MediaError
from ..storage import Store
from ..storage.locations import Locations
from ..storage.paths import display_path, safe_text

PROGRESS_EVERY_S = 10.0
# Problems with getting at the file, not with its content: earlier rows stay, `dam ingest`
# (and the nightly re-run) try again.
TRANSIENT = frozenset({"SourceMissing", "SourceChanged", "PermissionDenied", "Vanished", "IOError"})

STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

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
    people), clear them on success, log progress, and observe each partition's metadata."""
    outcome = BatchOutcome()
    started = last_log = time.monotonic()
    where = store.locations(keys)
    for i, key in enumerate(keys, 1):
        path = where.path_for(key)
        try:
            path = _current_path(where, key, path)
            meta = work(key, path)
            store.clear_stage_error(stage, key)
            outcome.done.append(key)
            if meta:
                context.log_event(
                    AssetObservation(asset_key=context.asset_key, partition=key, metadata=meta)
                )
        except Exception as exc:  # one file's problem must never stop the batch
            if isinstance(exc, OSError) and exc.errno in STORAGE_FULL:
                # our side, not the file's: stop the run and say what to do
                raise Failure(
                    description=f"Cannot write under {store.data_dir}: {exc.strerror}. Free"
                    " space (or make it writable) and re-run; nothing half-written was left"
                    " (every file is written to a temporary name and renamed).",
                ) from exc
            if isinstance(exc, MediaError):
                error_type, message = exc.error_type, str(exc)
            elif isinstance(exc, OSError):
                error_type, message = explain_os_error(exc)
            else:
                context.log.exception(f"{stage} failed on {safe_text(path)}")
                error_type, message = type(exc).__name__, f"Unexpected error in {stage}: {exc}"
            if on_failure and error_type not in TRANSIENT and not isinstance(exc, OSError):
                on_failure(key)  # the content itself is bad: drop its old rows
            store.record_stage_error(stage, key, display_path(path), error_type, message)
            outcome.failed[key] = message
            context.log.warning(f"{stage}: {safe_text(path)}: {safe_text(message)}")
        now = time.monotonic()
        if now - last_log >= PROGRESS_EVERY_S or i == len(keys):
            rate = i / max(now - started, 1e-9)
            context.log.info(
                f"{stage}: {i}/{len(keys)} files ({rate:.1f}/s), {len(outcome.failed)} failed"
            )
            last_log = now
    outcome.seconds = time.monotonic() - started
    return outcome


def visual_inputs(store: Store, keys: list[str]) -> tuple[dict, dict[str, list[dict]], list[str]]:
    """What the frame-sampling assets read: each partition's probe row, its scenes, and which
    partitions are pictures at all (videos and stills)."""
    probed = {r["checksum"]: r for r in store.lake.read_units("probe", keys).to_pylist()}
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
    for candidate in where.present_paths(checksum):
        try:
            st = os.stat(candidate)
        except OSError:
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
    raise MediaError(
        "SourceMissing",
        "No copy of this content is present on storage any more"
        + (f" (last seen at {safe_text(path)})" if path else "")
        + ".",
    )

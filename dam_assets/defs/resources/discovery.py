from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from ...settings import watch_roots, watch_roots_configured


class MediaDiscovery(ConfigurableResource):
    """How the storage sensor finds new media."""

    watch_roots: str | None = Field(
        default=None,
        description="Folders to watch, separated by ':' (os.pathsep). Empty: $DAM_WATCH_ROOTS,"
        " else <project>/inbox.",
    )
    settle_seconds: float = Field(
        default=30.0,
        description="A file is read once its size, mtime and inode stayed the same across two"
        " looks this far apart (files still being copied are left alone; the file's own clock"
        " is never trusted).",
    )
    partitions_per_run: int = Field(
        default=25, description="New files per run: one run start-up is shared by this many."
    )
    max_new_per_tick: int = Field(
        default=1000, description="Most new partitions one tick adds; the rest wait a tick."
    )
    max_outstanding_runs: int = Field(
        default=8,
        description="Request no new runs while this many index runs are queued or running:"
        " a big ingest waits in the folder, not as thousands of queued runs.",
    )
    read_in_tick_max_mb: float = Field(
        default=2048.0,
        description="Files larger than this (MiB) are checksummed by a `hash_large_files` run"
        " instead of inside a tick: one big file over a slow share can take longer than a"
        " tick may.",
    )
    tick_budget_seconds: float = Field(
        default=30.0,
        description="Stop walking and hashing after this long in one tick (ticks must end"
        " within 60 s); the cursor resumes the walk where it stopped.",
    )

    def roots(self) -> list[Path]:
        roots = watch_roots(self.watch_roots)
        if not self.watch_roots and not watch_roots_configured():
            roots[0].mkdir(parents=True, exist_ok=True)  # the default inbox is ours to create
        return roots

"""Runs a killed `dam` process leaves behind.

`dam ingest` executes its runs in its own process. When that process is killed (SIGKILL, out of
memory) nothing in Dagster notices, and the run would stay STARTED, holding a run slot and its
pool, forever. So each such run carries the process that runs it, and the storage sensor (and
the next `dam ingest`) on that host marks it failed once that process is gone.
"""

from __future__ import annotations

import os
import socket

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

# Runs executed in process by `dam` carry the process that runs them: when that process is
# killed (SIGKILL, OOM) nothing in Dagster notices, and the run would stay STARTED, holding a
# run slot and its pool, forever.
OWNER_HOST, OWNER_PID, OWNER_START = "dam/host", "dam/pid", "dam/pid_start"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_tags() -> dict[str, str]:
    pid = os.getpid()
    return {
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(pid),
        OWNER_START: _process_start(pid) or "",
    }


def reap_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the runs a `dam` process of this host was executing in process when it
    died; run monitoring then frees their pool slots. Returns their run ids."""
    host = socket.gethostname()
    reaped = []
    for run in instance.get_runs(
        RunsFilter(
            statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING], tags={OWNER_HOST: host}
        )
    ):
        pid = int(run.tags.get(OWNER_PID) or 0)
        if pid and _process_start(pid) == (run.tags.get(OWNER_START) or None):
            continue  # still running
        instance.report_run_failed(
            run,
            f"The `dam` process that ran this (pid {pid} on {host}) is gone: killed or out of"
            " memory. Its files are retried by the next `dam ingest` or the nightly run.",
        )
        reaped.append(run.run_id)
    return reaped

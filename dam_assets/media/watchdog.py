"""Giving up on a file whose read hangs (a dead share) without giving up on a slow one.

A read blocked in the kernel cannot be interrupted from Python, so the work runs in a daemon
thread, and the caller stops waiting once the work has overrun its limit while the process
sits idle (blocked, not computing). No Dagster import.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Decoding or a model uses most of a core; a process waiting on a dead share uses next to none.
IDLE_CPU_SHARE = 0.1
# Past this many times its limit, work is given up on even while the process stays busy.
HARD_LIMIT_FACTOR = 4.0
CHECK_EVERY_S = 10.0


class Overrun(Exception):
    """The work passed its limit without finishing: idle (blocked) or, past the hard limit,
    still busy. Its thread is left behind: a daemon thread never holds the process open."""

    def __init__(self, elapsed_s: float, busy: bool):
        super().__init__(f"gave up after {elapsed_s:.0f}s ({'busy' if busy else 'idle'})")
        self.elapsed_s = elapsed_s
        self.busy = busy


def run_with_limit(
    fn: Callable[[], T],
    limit_s: float,
    name: str = "dam-work",
    on_slow: Callable[[float], None] | None = None,
    hard_limit_factor: float = HARD_LIMIT_FACTOR,
) -> T:
    """`fn()` in a daemon thread; its result or exception comes back here. Past `limit_s` it
    is abandoned (Overrun) as soon as it sat idle over one check interval (its thread not
    runnable and the process using next to no CPU), or at `hard_limit_factor` × `limit_s`
    regardless; `on_slow(elapsed)` hears once when it is past its limit but still working."""
    outcome: dict = {}
    finished = threading.Event()
    context = contextvars.copy_context()  # a thread starts with empty context variables

    def target() -> None:
        outcome["tid"] = threading.get_native_id()
        try:
            outcome["value"] = context.run(fn)
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    started = time.monotonic()
    interval = min(CHECK_EVERY_S, max(0.05, limit_s / 4))
    cpu = time.process_time()  # every thread of the process (decoders, model workers)
    warned = False
    while not finished.wait(interval):
        now_cpu = time.process_time()
        busy = now_cpu - cpu > IDLE_CPU_SHARE * interval or _runnable(outcome.get("tid"))
        cpu = now_cpu
        elapsed = time.monotonic() - started
        if elapsed < limit_s:
            continue
        if not busy or elapsed >= hard_limit_factor * limit_s:
            raise Overrun(elapsed, busy)
        if on_slow and not warned:
            on_slow(elapsed)
            warned = True
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _runnable(tid: int | None) -> bool:
    """The thread is running or waiting for a core (Linux /proc; elsewhere: unknown, False).
    A read blocked on a share sleeps (S) or waits uninterruptibly (D)."""
    if tid is None:
        return False
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "R"

"""What every benchmark script shares: progress on stderr, timing, the work folder, the options
they all take and the Markdown report, so the scripts hold only what they measure.

Not a test module: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

TABLE_HEAD = ("| Step | Result | Baseline (same run) | Ratio |", "|---|---|---|---|")

_STARTED = time.perf_counter()


# -- progress and timing ------------------------------------------------------------------------
def elapsed() -> float:
    """Seconds since the benchmark started (this module's import), for the progress lines."""
    return time.perf_counter() - _STARTED


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries nothing but the Markdown report."""
    print(f"[bench {elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one call and its result, so a check can follow what was timed."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def in_turn(items: Iterable[T], rep: int) -> list[T]:
    """`items` forward on odd passes (from 1), backward on even ones: no side always goes first,
    so the median is not biased by whatever the first run warms up for the second."""
    ordered = list(items)
    return ordered if rep % 2 else ordered[::-1]


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block, then put back what was there."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- options and the work folder ----------------------------------------------------------------
def make_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser whose usage line is the command that runs `module`, described by its docstring's
    first line, so --help and the report's Command line agree."""
    return argparse.ArgumentParser(
        prog=f"python -m dam_assets_tests.benchmarks.{module}",
        description=(doc or "").split("\n")[0],
    )


def add_out(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--out: keep the generated files for a look afterwards instead of a temp folder."""
    parser.add_argument("--out", type=Path, help=help_text)


def check_out(parser: argparse.ArgumentParser, out: Path | None) -> None:
    """Refuse a non-empty --out: the run would mix its files with (and time against) old ones."""
    if out is not None and out.exists() and any(out.iterdir()):
        parser.error(f"--out {out} is not empty")


@contextlib.contextmanager
def work_dir(out: Path | None) -> Iterator[Path]:
    """`out` (made if missing) or a fresh temp folder; a temp folder is removed afterwards even
    when a step fails, so aborted runs leave no generated media behind."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        work = out.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="dam-bench-")).resolve()
    log(f"working in {work}")
    try:
        yield work
    finally:
        if out is None:
            shutil.rmtree(work, ignore_errors=True)


# -- results and the report ---------------------------------------------------------------------
@dataclass
class Row:
    """One line of the report table; a result always stands next to its same-run baseline."""

    step: str
    result: str
    baseline: str
    ratio: str


@dataclass
class Results:
    """The table rows and the notes under them, collected as the steps run."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, step: str, result: str, baseline: str = "", ratio: str = "") -> None:
        """Record a row and echo it to stderr, so a long run shows its results as they come."""
        self.rows.append(Row(step, result, baseline or "—", ratio or "—"))
        log(f"  {step}: {result}" + (f" | {ratio}" if ratio else ""))


def ms(seconds: float) -> str:
    """Milliseconds with two decimals below 10 ms, one above: enough digits, no noise."""
    value = seconds * 1000
    return f"{value:,.{2 if value < 10 else 1}f} ms"


def usable_cores() -> int | None:
    """Cores this process may run on (affinity), which can be fewer than the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine(*versions: str) -> str:
    """The report's Machine line: platform, cores, Python and the given library versions, so
    numbers from different machines are not compared blind."""
    return ", ".join(
        [
            f"{platform.platform()} ({platform.machine()})",
            f"os.cpu_count()={os.cpu_count()}",
            f"usable cores={usable_cores()}",
            f"Python {platform.python_version()}",
            *versions,
        ]
    )


def markdown(
    title: str, intro: Sequence[str], results: Results, after_table: Sequence[str] = ()
) -> str:
    """The report every script prints: heading, intro lines, the step table, any further
    lines (another table), then the notes as a list; one layout for the whole README."""
    lines = [f"### {title}", "", *intro, "", *TABLE_HEAD]
    lines += [f"| {r.step} | {r.result} | {r.baseline} | {r.ratio} |" for r in results.rows]
    lines += [*after_table, "", *(f"- {note}" for note in results.notes)]
    return "\n".join(lines)


def finish(report: str) -> int:
    """Log the total time and print the report to stdout; the exit status for `main`."""
    log(f"done in {elapsed():.0f} s")
    print(report, flush=True)
    return 0

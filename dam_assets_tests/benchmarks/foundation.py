"""Foundation benchmarks: discovery and hashing, probe, thumbnails and Dagster's per-run cost.

Every result comes with a baseline measured in the same run on the same generated library, so
the ratios mean something on any machine:

- discovery + hashing (`scan`) and hashing alone, against reading every file's bytes once;
- an unchanged tick (a second `scan`) and `probe_file`, against that same read;
- thumbnails (`video_thumbnails`), against decoding every frame of the file once;
- Dagster: one run per file against one run for a batch of the same files.

    python -m dam_assets_tests.benchmarks.foundation [--files N] [--seconds S] [--out DIR]

Progress goes to stderr, the Markdown table (ready for the README) to stdout. Not a test
module: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import dagster
from dagster import instance_for_test

from dam_assets.cli.runs import IndexOutcome, index_partitions
from dam_assets.demo.samples import age, make_video
from dam_assets.library.discovery import scan
from dam_assets.media.frames import decode_all
from dam_assets.media.hashing import file_checksum
from dam_assets.media.probe import probe_file
from dam_assets.media.thumbnails import video_thumbnails
from dam_assets.storage import Store
from dam_assets_tests.benchmarks.common import (
    Results,
    add_out,
    check_out,
    environ,
    finish,
    log,
    machine,
    make_parser,
    markdown,
    ms,
    timed,
    work_dir,
)

SIZE = (1280, 720)
FPS = 25
READ_CHUNK = 4 * 1024 * 1024  # as file_checksum reads
DAGSTER_FILES = 50
REPEATS = 3  # passes of the quick steps (read, scan, hash, tick, probe); the median counts
FILES_PER_FOLDER = 10
MB = 1e6


# -- the library --------------------------------------------------------------------------------
@dataclass
class Library:
    root: Path
    paths: list[Path]
    total_bytes: int
    seconds: float


def copy_with_title(source: Path, target: Path, title: str) -> None:
    """Stream-copy `source` with another title tag: new bytes (so a new checksum and partition)
    around the same packets, so every file costs exactly the same to probe and decode."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        dst.metadata["title"] = title
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:  # the demuxer's empty flush packets
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)


def make_library(folder: Path, files: int, seconds: float) -> Library:
    """`files` settled 1280x720 H.264/AAC clips, one keyframe a second, ten to a folder. One
    clip is encoded; the others are stream copies of it with their own title."""
    master = make_video(
        folder / "master.mp4", seconds=seconds, size=SIZE, fps=FPS, gop=FPS, audio=True
    )
    root = folder / "library"
    paths = []
    for i in range(files):
        path = root / f"card_{i // FILES_PER_FOLDER:02d}" / f"clip_{i:04d}.mp4"
        copy_with_title(master, path, f"benchmark clip {i}")
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())  # written back, so the page cache can be dropped later
        paths.append(age(path))
    master.unlink()
    return Library(root, paths, sum(p.stat().st_size for p in paths), seconds)


def drop_page_cache(paths: Sequence[Path]) -> bool:
    """Ask the kernel to forget the files' cached pages (best effort; Linux honours it)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def read_all(paths: Sequence[Path]) -> int:
    """The I/O baseline: every byte of every file once, in the chunks file_checksum uses."""
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(READ_CHUNK):
                total += len(chunk)
    return total


# -- results ------------------------------------------------------------------------------------
def per_file_ms(seconds: float, files: int) -> str:
    return f"{ms(seconds / files)}/file"


def rate(seconds: float, files: int, nbytes: int | None = None) -> str:
    text = f"{files / seconds:,.0f} files/s"
    return text + (f", {nbytes / MB / seconds:,.0f} MB/s" if nbytes is not None else "")


# -- the steps ----------------------------------------------------------------------------------
def bench_discovery(lib: Library, work: Path, results: Results) -> float:
    """Steps 1 and 2: scan into a fresh registry and hashing alone, each against reading the
    bytes once (page cache dropped before every pass), then a tick that finds nothing new.
    Returns the read baseline in seconds."""
    n = len(lib.paths)
    reads: list[float] = []
    scans: list[float] = []
    hashes: list[float] = []
    store: Store | None = None
    dropped = False
    for rep in range(1, REPEATS + 1):
        log(f"discovery pass {rep}/{REPEATS}: read, scan (fresh registry), hash")
        dropped = drop_page_cache(lib.paths)
        seconds, nbytes = timed(lambda: read_all(lib.paths))
        assert nbytes == lib.total_bytes
        reads.append(seconds)

        drop_page_cache(lib.paths)
        store = Store(work / f"scan_{rep}")
        seconds, report = timed(lambda s=store: scan([lib.root], s, settle_seconds=0))
        if report.hashed != n or report.errors or report.unsettled:
            raise RuntimeError(f"scan hashed {report.hashed}/{n}: {report.errors[:3]}")
        scans.append(seconds)

        drop_page_cache(lib.paths)
        seconds, sums = timed(lambda: [file_checksum(p) for p in lib.paths])
        if sums != [report.by_path[str(p)] for p in lib.paths]:
            raise RuntimeError("scan and file_checksum disagree")
        hashes.append(seconds)
    assert store is not None

    ticks: list[float] = []
    for _ in range(REPEATS):
        seconds, report = timed(lambda s=store: scan([lib.root], s, settle_seconds=0))
        if report.hashed or report.seen != n:
            raise RuntimeError(f"unchanged tick hashed {report.hashed} file(s)")
        ticks.append(seconds)

    read_s, scan_s = statistics.median(reads), statistics.median(scans)
    hash_s, tick_s = statistics.median(hashes), statistics.median(ticks)
    baseline = f"read all bytes once: {rate(read_s, n, lib.total_bytes)}"
    results.add(
        "Discovery + hashing, fresh registry (`scan`)",
        rate(scan_s, n, lib.total_bytes),
        baseline,
        f"{scan_s / read_s:.2f}× read time",
    )
    results.add(
        "Hashing only (`file_checksum`, BLAKE3)",
        rate(hash_s, n, lib.total_bytes),
        baseline,
        f"{hash_s / read_s:.2f}× read time",
    )
    results.add(
        "Unchanged tick (second `scan`, nothing new)",
        f"{per_file_ms(tick_s, n)} ({tick_s * 1000:,.0f} ms for {n} files)",
        baseline,
        f"{tick_s / read_s:.3f}× read time",
    )
    cache = "dropped (posix_fadvise) before" if dropped else "NOT dropped (no posix_fadvise) for"
    results.notes.append(
        f"Read, scan and hash: page cache {cache} each pass; median of {REPEATS} passes."
    )
    return read_s


def bench_probe(lib: Library, results: Results, read_s: float) -> dict[Path, float]:
    """Step 3: probe_file over every file. Returns each file's duration for the thumbnails."""
    n = len(lib.paths)
    passes: list[float] = []
    durations: dict[Path, float] = {}
    for rep in range(1, REPEATS + 1):
        log(f"probe pass {rep}/{REPEATS}")
        seconds, probed = timed(lambda: [probe_file(p) for p in lib.paths])
        passes.append(seconds)
        durations = {p: r.file["duration_s"] for p, r in zip(lib.paths, probed, strict=True)}
    probe_s = statistics.median(passes)
    results.add(
        "Probe (`probe_file`)",
        f"{rate(probe_s, n)} ({per_file_ms(probe_s, n)})",
        f"read all bytes once: {per_file_ms(read_s, n)}",
        f"{probe_s / read_s:.2f}× read time",
    )
    return durations


def bench_thumbnails(
    lib: Library, durations: dict[Path, float], work: Path, results: Results
) -> None:
    """Step 4: poster + sprite sheet per file against decoding every frame of it once."""
    n = len(lib.paths)
    decode_s = thumbs_s = 0.0
    frames = 0
    for i, path in enumerate(lib.paths, 1):
        seconds, count = timed(lambda p=path: decode_all(p))
        decode_s += seconds
        frames += count
        out_dir = work / "thumbnails" / path.stem
        seconds, made = timed(lambda p=path, o=out_dir: video_thumbnails(p, o, durations[p]))
        thumbs_s += seconds
        if made.poster_time is None:
            raise RuntimeError(f"no poster for {path}")
        if i % 10 == 0 or i == n:
            log(f"thumbnails vs decode: {i}/{n} files")
    results.add(
        "Thumbnails: poster + sprite (`video_thumbnails`)",
        per_file_ms(thumbs_s, n),
        f"decode every frame once (`decode_all`): {per_file_ms(decode_s, n)}"
        f" ({frames / decode_s:,.0f} fps)",
        f"{thumbs_s / decode_s:.2f}× decode time",
    )


def _progress(label: str) -> Callable[[str], None]:
    """index_partitions' `say`, cut down to every tenth run."""

    def say(line: str) -> None:
        match = re.match(r"\[(\d+)/(\d+)\]", line)
        if match and (int(match[1]) % 10 == 0 or match[1] == match[2]):
            log(f"{label}: run {match[1]}/{match[2]}")

    return say


def index_once(
    lib: Library, subset: Sequence[Path], batch_size: int, folder: Path, label: str
) -> tuple[float, IndexOutcome]:
    """Scan into a fresh data dir and Dagster instance, then time index_partitions alone."""
    data_dir, home = folder / "data", folder / "dagster_home"
    home.mkdir(parents=True)
    with (
        environ(DAM_DATA_DIR=str(data_dir), DAGSTER_HOME=str(home)),
        instance_for_test(temp_dir=str(home)) as instance,
    ):
        store = Store(data_dir)
        report = scan([lib.root], store, settle_seconds=0)
        keys = [report.by_path[str(p)] for p in subset]
        seconds, outcome = timed(
            lambda: index_partitions(
                keys, store, batch_size=batch_size, say=_progress(label), instance=instance
            )
        )
    expected_runs = -(-len(keys) // batch_size)
    if outcome.failed_runs or len(outcome.indexed) != len(keys):
        raise RuntimeError(f"{label}: failed runs {outcome.failed_runs}")
    if len(outcome.runs) != expected_runs:
        raise RuntimeError(f"{label}: {len(outcome.runs)} runs, expected {expected_runs}")
    return seconds, outcome


def bench_dagster(lib: Library, work: Path, results: Results) -> None:
    """Step 5: the same files as one batched run and as one run per file."""
    n = min(len(lib.paths), DAGSTER_FILES)
    subset = lib.paths[:n]
    if not os.environ.get("DAM_CLIP_PRETRAINED"):
        # No CLIP weights can be downloaded here: the run's embedding step uses a tiny
        # random-weight model (set before the definitions are imported, as the code version
        # includes the model id).
        from dam_assets.demo.tiny_clip import write_tiny_model

        config, weights = write_tiny_model(work / "tiny_clip")
        os.environ["DAM_CLIP_MODEL"], os.environ["DAM_CLIP_PRETRAINED"] = str(config), str(weights)
    log("dagster: warm-up run (imports, definitions; not measured)")
    index_once(lib, subset[:1], 1, work / "dagster_warmup", "warm-up")
    log(f"dagster: {n} files in one run")
    batch_s, _ = index_once(lib, subset, n, work / "dagster_batch", "batched")
    log(f"dagster: {n} files, one run each")
    single_s, _ = index_once(lib, subset, 1, work / "dagster_single", "one run per file")
    results.add(
        f"Dagster `index_media`, {n} files in one run",
        f"{batch_s / n:.3f} s/file ({batch_s:.1f} s)",
    )
    results.add(
        f"Dagster `index_media`, one run per file ({n} runs)",
        f"{single_s / n:.3f} s/file ({single_s:.1f} s)",
        f"one run for all {n}: {batch_s / n:.3f} s/file",
        f"{single_s / batch_s:.2f}× batched time",
    )
    overhead = f"{(single_s - batch_s) / (n - 1):.3f} s/run" if n > 1 else "n/a (one file)"
    results.add("Dagster cost of one extra run", overhead, "(one-per-file − batched) / (n − 1)")
    results.notes.append(
        "Dagster: every per-file asset and its checks in-process (`execute_in_process`), each"
        " mode on a fresh instance and DAM_DATA_DIR after an unmeasured warm-up run."
    )


# -- report -------------------------------------------------------------------------------------
def report(results: Results, lib: Library, args: argparse.Namespace) -> str:
    mb = lib.total_bytes / MB
    versions = (f"Dagster {dagster.__version__}", f"PyAV {av.__version__}")
    intro = [
        f"Library: {len(lib.paths)} clips × {lib.seconds:g} s, {SIZE[0]}x{SIZE[1]} H.264/AAC,"
        f" {FPS} fps, one keyframe a second, {mb:,.0f} MB in all.",
        f"Machine: {machine(*versions)}.",
        f"Command: `python -m dam_assets_tests.benchmarks.foundation --files {args.files}"
        f" --seconds {args.seconds:g}`",
    ]
    return markdown("Foundation benchmark", intro, results)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("foundation", __doc__)
    parser.add_argument("--files", type=int, default=60, help="clips in the library (60)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip (10)")
    add_out(parser, "keep everything in this (new or empty) folder; default: temp")
    args = parser.parse_args(argv)
    if args.files < 1:
        parser.error("--files must be at least 1")
    if args.seconds < 2:
        parser.error("--seconds must be at least 2")
    check_out(parser, args.out)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("BetaWarning", "PreviewWarning", "SupersessionWarning"):
        category = getattr(dagster, name, None)
        if category is not None:
            warnings.filterwarnings("ignore", category=category)
    with work_dir(args.out) as work:
        log(f"generating {args.files} clips of {args.seconds:g} s (setup, not a result)")
        gen_s, lib = timed(lambda: make_library(work, args.files, args.seconds))
        log(f"generated {lib.total_bytes / MB:,.0f} MB in {gen_s:.1f} s")

        results = Results()
        read_s = bench_discovery(lib, work, results)
        durations = bench_probe(lib, results, read_s)
        bench_thumbnails(lib, durations, work, results)
        bench_dagster(lib, work, results)
    return finish(report(results, lib, args))


if __name__ == "__main__":
    sys.exit(main())

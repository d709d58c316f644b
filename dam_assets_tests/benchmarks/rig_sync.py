"""Multi-camera audio sync benchmark: speed and accuracy against baselines from the same run.

Generated camera files (`make_rig_clip`: tiny 64x48 H.264 video at 25 fps, AAC stereo) that
heard one shared sound stage (`clap_track`) for takes of 1, 5 and 15 minutes. Per take length:
a hero camera (48 kHz, from 0 s, the take plus 10 s, so it covers the others) and three other
cameras of the take's length, each with a known truth, plus an unrelated clip (another seed):

- 48 kHz, starting 1.234 s after the hero: truth offset_s = 1.234, drift 0 ppm;
- 44.1 kHz, starting 2.345 s after the hero: truth 2.345 s, drift 0 ppm;
- 48 kHz with its clock 100 ppm fast, starting 3.5 s after the hero: truth 3.5 s at the
  other's t = 0, drift 100 ppm.

Speed, per minute of audio: `scan_track` (a streamed decode + resample to 8 kHz mono and the
onset envelope; samples kept up to `KEEP_S` only) and `measure(hero, other)` (divided by the
other's minutes; for tracks past `KEEP_S` it decodes its fine windows again from seek points),
against decoding the same audio track once with plain PyAV (no resampling, no conversion).
Accuracy: offset error against the truth in milliseconds and in frames at 25 fps, drift error
in ppm, and the confidence, with that of the unrelated clip for contrast. Generating the files
(AAC encoding dominates) runs in worker processes before anything is timed and is not a result;
only the longest take is generated, the shorter ones are its files' first minutes, cut by stream
copy (no re-encode).

    python -m dam_assets_tests.benchmarks.rig_sync [--minutes 1,5,15] [--quick] [--repeats N]

Progress goes to stderr, the Markdown tables (ready for the README) to stdout. Not a test
module: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from dam_assets.demo.samples import clap_track, make_rig_clip
from dam_assets.media.audio_sync import KEEP_S, RATE, SyncResult, Track, measure, scan_track
from dam_assets_tests.benchmarks.common import (
    Results,
    add_out,
    check_out,
    finish,
    in_turn,
    log,
    machine,
    make_parser,
    markdown,
    timed,
    usable_cores,
    work_dir,
)

MINUTES = (1.0, 5.0, 15.0)
QUICK_MINUTES = (1.0, 5.0)
MASTER_RATE = 48000
HERO_EXTRA_S = 10.0  # the hero runs this much longer than the take
MASTER_EXTRA_S = 20.0  # the sound stage runs this much longer than the take
SEED = 7
UNRELATED_SEED = 99
FPS = 25
SIZE = (64, 48)
DRIFT_BAD_PPM = 25.0  # drift errors from this on are in bold, as are offset errors of a frame


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    start_s: float  # truth: offset_s (where the other's t = 0 falls on the hero's timeline)
    rate: int
    drift_ppm: float  # truth: the other's clock runs this fast


CASES = (
    Case("b48", "48 kHz", 1.234, 48000, 0.0),
    Case("c441", "44.1 kHz", 2.345, 44100, 0.0),
    Case("d100", "48 kHz, 100 ppm fast", 3.5, 48000, 100.0),
)
TIMED_RATES = ("b48", "c441")  # scan_track per camera rate; drift changes nothing in the cost


# -- generation (worker processes; setup, not a result) -----------------------------------------
@dataclass(frozen=True)
class Job:
    path: Path
    master_s: float
    seed: int
    start_s: float
    seconds: float
    rate: int = 48000
    drift_ppm: float = 0.0


@functools.lru_cache(maxsize=2)
def _master(seconds: float, seed: int) -> np.ndarray:
    return clap_track(seconds, MASTER_RATE, seed)


def _generate(job: Job) -> float:
    start = time.perf_counter()
    make_rig_clip(
        job.path,
        _master(job.master_s, job.seed),
        MASTER_RATE,
        job.start_s,
        job.seconds,
        rate=job.rate,
        drift_ppm=job.drift_ppm,
        size=SIZE,
        fps=FPS,
    )
    return time.perf_counter() - start


@dataclass
class Take:
    minutes: float
    hero: Path
    others: dict[str, Path]  # case key -> file
    unrelated: Path

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    @property
    def label(self) -> str:
        return f"{self.minutes:g} min"


def _take(folder: Path, minutes: float) -> Take:
    return Take(
        minutes,
        folder / "hero_A001.mp4",
        {c.key: folder / f"{c.key}_001.mp4" for c in CASES},
        folder / "unrelated_X001.mp4",
    )


def plan(work: Path, minutes: Sequence[float]) -> tuple[list[Take], list[Job]]:
    """Files are generated for the longest take only; the shorter takes are cut from them."""
    takes = [_take(work / f"take_{m:g}min", m) for m in sorted(set(minutes))]
    longest = takes[-1]
    seconds = longest.seconds
    master_s = seconds + MASTER_EXTRA_S
    jobs = [
        Job(longest.hero, master_s, SEED, 0.0, seconds + HERO_EXTRA_S),
        *(
            Job(longest.others[c.key], master_s, SEED, c.start_s, seconds, c.rate, c.drift_ppm)
            for c in CASES
        ),
        Job(longest.unrelated, seconds + 1, UNRELATED_SEED, 0.0, seconds),
    ]
    return takes, jobs


def cut(src: Path, dst: Path, seconds: float) -> None:
    """The first `seconds` of `src`, by stream copy (no re-encode): the same camera file as if it
    had stopped recording there. Packet times, AAC priming and the edit list carry over."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        kept = (*inp.streams.video, *inp.streams.audio)
        streams = {s.index: out.add_stream_from_template(s) for s in kept}
        for packet in inp.demux(kept):
            if packet.dts is None:  # the demuxer's flush packets
                continue
            t = packet.pts if packet.pts is not None else packet.dts
            if t * packet.time_base >= seconds:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def cut_takes(takes: list[Take]) -> None:
    longest = takes[-1]
    for take in takes[:-1]:
        pairs = [
            (longest.hero, take.hero, take.seconds + HERO_EXTRA_S),
            *((longest.others[k], take.others[k], take.seconds) for k in longest.others),
            (longest.unrelated, take.unrelated, take.seconds),
        ]
        for src, dst, seconds in pairs:
            cut(src, dst, seconds)


def generate(jobs: list[Job], workers: int) -> float:
    """Runs the jobs in `workers` processes; returns the summed per-file seconds."""
    total = 0.0
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for job, seconds in zip(jobs, pool.map(_generate, jobs), strict=True):
            total += seconds
            log(f"  generated {job.path.parent.name}/{job.path.name} in {seconds:.1f} s")
    return total


# -- measurements -------------------------------------------------------------------------------
def plain_decode(path: Path) -> int:
    """The audio track decoded once by PyAV, frames dropped: the floor `scan_track` stands on."""
    samples = 0
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            samples += frame.samples
    return samples


def load(path: Path) -> Track:
    audio = scan_track(path)
    if audio is None:
        raise RuntimeError(f"{path}: no audio")
    return audio


@dataclass
class Accuracy:
    take: str
    case: str
    truth_s: float | None
    truth_ppm: float | None
    result: SyncResult


@dataclass
class SyncResults(Results):
    """The shared step table plus the accuracy rows, which get a table of their own."""

    accuracy: list[Accuracy] = field(default_factory=list)


def per_min(seconds: float, audio_s: float) -> str:
    return f"{seconds / (audio_s / 60) * 1000:,.1f} ms/min ({audio_s / seconds:,.0f}× real time)"


def bench_take(take: Take, repeats: int, results: SyncResults) -> None:
    files = {"hero": take.hero, **take.others, "unrelated": take.unrelated}
    rates = {"hero": MASTER_RATE} | {c.key: c.rate for c in CASES}
    timed_files = {k: files[k] for k in ("hero", *TIMED_RATES)}
    # warm-up (not measured): every file decoded and loaded once, one `measure`
    duration = {k: plain_decode(p) / rates[k] for k, p in timed_files.items()}
    audio = {k: load(p) for k, p in files.items()}
    measure(audio["hero"], audio["b48"])

    plain: dict[str, list[float]] = {k: [] for k in timed_files}
    loads: dict[str, list[float]] = {k: [] for k in timed_files}
    syncs: dict[str, list[float]] = {k: [] for k in (*take.others, "unrelated")}
    found: dict[str, SyncResult] = {}
    for rep in range(1, repeats + 1):
        log(f"{take.label} pass {rep}/{repeats}: plain decode, scan_track, measure")
        # every other pass the other way round: no side always goes first
        for key in in_turn(timed_files, rep):
            path = timed_files[key]
            runs: dict[str, Callable[[], object]] = {
                "plain": lambda p=path: plain_decode(p),
                "load": lambda p=path: load(p),
            }
            for kind in in_turn(sorted(runs), rep):
                seconds, out = timed(runs[kind])
                (plain if kind == "plain" else loads)[key].append(seconds)
                if kind == "load":
                    assert isinstance(out, Track)
                    audio[key] = out
        for key in in_turn(syncs, rep):
            seconds, found[key] = timed(lambda k=key: measure(audio["hero"], audio[k]))
            syncs[key].append(seconds)

    med = {k: statistics.median(v) for k, v in plain.items()}
    for key in ("hero", *TIMED_RATES):
        kind = "hero" if key == "hero" else next(c.label for c in CASES if c.key == key)
        results.add(
            f"{take.label}: plain PyAV decode, {kind} ({duration[key] / 60:.2f} min)",
            per_min(med[key], duration[key]),
        )
        load_s = statistics.median(loads[key])
        results.add(
            f"{take.label}: `scan_track`, {kind} (decode + {RATE // 1000} kHz mono + envelope)",
            per_min(load_s, duration[key]),
            f"plain decode: {med[key] / (duration[key] / 60) * 1000:,.1f} ms/min",
            f"{load_s / med[key]:.2f}× plain decode",
        )
    base = med["b48"] / (duration["b48"] / 60)
    for key in (*take.others, "unrelated"):
        kind = (
            "unrelated clip" if key == "unrelated" else next(c.label for c in CASES if c.key == key)
        )
        sync_s = statistics.median(syncs[key])
        results.add(
            f"{take.label}: `measure(hero, other)`, {kind}",
            f"{sync_s / take.minutes * 1000:,.1f} ms/min ({sync_s * 1000:,.0f} ms per pair)",
            f"plain decode of the other (48 kHz): {base * 1000:,.1f} ms/min",
            f"{sync_s / take.minutes / base:.2f}× plain decode",
        )
    pair_s = (
        statistics.median(loads["hero"])
        + statistics.median(loads["b48"])
        + statistics.median(syncs["b48"])
    )
    results.add(
        f"{take.label}: whole pair, 48 kHz (`scan_track` × 2 + `measure`)",
        f"{pair_s / take.minutes * 1000:,.1f} ms/min ({pair_s:,.2f} s per pair)",
        f"plain decode of both: {(med['hero'] + med['b48']) * 1000:,.0f} ms",
        f"{pair_s / (med['hero'] + med['b48']):.2f}× plain decode",
    )
    for case in CASES:
        results.accuracy.append(
            Accuracy(take.label, case.label, case.start_s, case.drift_ppm, found[case.key])
        )
    results.accuracy.append(Accuracy(take.label, "unrelated clip", None, None, found["unrelated"]))
    for acc in results.accuracy[-len(CASES) - 1 :]:
        r = acc.result
        err = "" if acc.truth_s is None else f", error {(r.offset_s - acc.truth_s) * 1000:+.3f} ms"
        log(f"  {acc.take} {acc.case}: offset {r.offset_s:.5f} s{err}, conf {r.confidence:.3f}")


# -- report -------------------------------------------------------------------------------------
def accuracy_row(acc: Accuracy) -> str:
    r = acc.result
    drift = "—" if r.drift_ppm is None else f"{r.drift_ppm:+.2f}"
    if acc.truth_s is None:
        return (
            f"| {acc.take} | {acc.case} | — | {r.offset_s:.4f} | — | — | — | {drift} | — |"
            f" {r.confidence:.3f} | {len(r.windows)} |"
        )
    err_s = r.offset_s - acc.truth_s
    err_ms, err_frames = f"{err_s * 1000:+.4f}", f"{err_s * FPS:+.5f}"
    if abs(err_s) * FPS >= 1:
        err_ms, err_frames = f"**{err_ms}**", f"**{err_frames}**"
    drift_err = "—"
    if r.drift_ppm is not None:
        d = r.drift_ppm - (acc.truth_ppm or 0.0)
        drift_err = f"**{d:+.2f}**" if abs(d) >= DRIFT_BAD_PPM else f"{d:+.2f}"
    return (
        f"| {acc.take} | {acc.case} | {acc.truth_s:.3f} | {r.offset_s:.5f} | {err_ms} |"
        f" {err_frames} | {acc.truth_ppm:g} | {drift} | {drift_err} | {r.confidence:.3f} |"
        f" {len(r.windows)} |"
    )


def report(results: SyncResults, args: argparse.Namespace) -> str:
    minutes = ",".join(f"{m:g}" for m in args.minutes)
    cases = "; ".join(f"{c.label} starting {c.start_s:g} s after the hero" for c in CASES)
    ffmpeg = ".".join(str(v) for v in av.library_versions.get("libavcodec", ()))
    versions = (f"PyAV {av.__version__} (libavcodec {ffmpeg})", f"NumPy {np.__version__}")
    intro = [
        f"Takes of {minutes} min: generated {SIZE[0]}x{SIZE[1]} H.264 + AAC stereo camera files"
        f" ({FPS} fps) that heard one `clap_track` sound stage. Hero: 48 kHz, from 0 s, take +"
        f" {HERO_EXTRA_S:g} s. Others (take length): {cases}. Unrelated clip: another seed.",
        f"Machine: {machine(*versions)}.",
        f"Command: `python -m dam_assets_tests.benchmarks.rig_sync --minutes {minutes}"
        f" --repeats {args.repeats}`",
    ]
    accuracy = [
        "",
        "| Take | Other camera | Truth offset (s) | Measured (s) | Error (ms) |"
        f" Error (frames @ {FPS}) | Truth drift (ppm) | Measured drift (ppm) |"
        " Drift error (ppm) | Confidence | Fine windows |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(accuracy_row(acc) for acc in results.accuracy),
    ]
    return markdown("Multi-camera audio sync benchmark", intro, results, accuracy)


def parse_minutes(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from exc
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("minutes must be positive")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("rig_sync", __doc__)
    default = ",".join(f"{m:g}" for m in MINUTES)
    parser.add_argument(
        "--minutes",
        type=parse_minutes,
        default=MINUTES,
        help=f"take lengths in minutes, comma-separated ({default})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"takes of {','.join(f'{m:g}' for m in QUICK_MINUTES)} min only (overrides --minutes)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; median (3)")
    usable = usable_cores()
    parser.add_argument(
        "--jobs",
        type=int,
        default=usable or 1,
        help=f"processes generating the files (usable cores, {usable})",
    )
    add_out(parser, "keep the generated files here (new or empty); default: temp")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = QUICK_MINUTES
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    check_out(parser, args.out)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = os.getloadavg()[0]
    results = SyncResults()
    with work_dir(args.out) as work:
        takes, jobs = plan(work, args.minutes)
        audio_min = sum(j.seconds for j in jobs) / 60
        log(
            f"generating {len(jobs)} camera files, {audio_min:.0f} min of audio, in {args.jobs}"
            " processes (setup, not a result)"
        )
        gen_wall, gen_cpu = timed(lambda: generate(jobs, args.jobs))
        log(f"generated in {gen_wall:.1f} s wall ({gen_cpu:.1f} s summed over files)")
        cut_s, _ = timed(lambda: cut_takes(takes))
        log(f"cut the shorter takes from the longest in {cut_s:.1f} s")
        for take in sorted(takes, key=lambda t: t.minutes):
            bench_take(take, args.repeats, results)
    results.notes += [
        f"Median of {args.repeats} pass{'es' if args.repeats > 1 else ''} after an unmeasured"
        " warm-up (one plain decode per timed file, one `scan_track` per file, one"
        " `measure`); plain decode and `scan_track`, and the files, swap order every other pass;"
        " warm page cache. All files were generated before any measurement. Load average (1 min)"
        " when the run"
        f" started: {load_at_start:.2f} on {os.cpu_count()} cores (other processes).",
        "Plain PyAV decode: `container.decode(audio stream)`, frames counted and dropped (no"
        " resampling, no NumPy conversion). `measure` ms/min is per minute of the other camera's"
        " audio (the take length); `scan_track` ms/min per minute of that file's audio."
        f" Tracks up to {KEEP_S:g} s keep their samples; `measure` on longer ones decodes each"
        " fine window again after a seek (the 5-minute hero runs 10 s past that).",
        "Offset convention (`audio_sync`): hero_time = other_time + offset_s, taken at the"
        " other's t = 0; with drift, the fitted line's intercept. Drift truth: the other's clock"
        f" runs that fast. Frames = error × {FPS} fps. The unrelated clip's offset means"
        " nothing; its confidence is the contrast. Bold: an offset error of a frame or more, a"
        f" drift error of {DRIFT_BAD_PPM:g} ppm or more.",
        f"Generation (setup, not a result): the longest take's {len(jobs)} files,"
        f" {audio_min:.0f} min of audio, {gen_wall:.0f} s wall in {args.jobs} processes"
        f" ({gen_cpu:.0f} s summed; AAC encoding dominates); the shorter takes are their first"
        f" minutes, cut by stream copy in {cut_s:.1f} s.",
    ]
    return finish(report(results, args))


if __name__ == "__main__":
    sys.exit(main())

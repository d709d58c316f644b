"""Long recordings in bounded memory: an 8-hour transcription and a sync of two 8-hour cameras,
the peak memory of each in a fresh process, against the whole-track approach on shorter cuts of
the same files (it cannot run at 8 hours: see the report's notes).

Files (setup, not a result): one-minute blocks, each encoded once to AAC (48 kHz mono, PyAV),
muxed packet by packet with continuous times (no re-encode) into M4A files:

- talk: room tone, with a block of espeak-ng speech (~48 s) every 30 minutes, so Whisper has
  speech to transcribe while all 8 hours are decoded, VAD-filtered and windowed;
- camera A: `clap_track` sound stages of several seeds in a seeded random order (no period for
  the correlation to lock onto); camera B: the same packets from block 3 on, so it started 3
  blocks later and the truth offset is known to the sample.

The shorter files are the first blocks of the same sequences. Each measurement runs in a fresh
`python -m` subprocess: set-up first (imports, model load, a warm-up call), then the peak RSS
is reset (`/proc/self/clear_refs`) and the work runs; the report gives the process's resident
memory before the work, the peak during it and the wall time. The whole-track approach is
faster-whisper's `decode_audio` plus one `transcribe` call on the whole array (what the asset
did before), and, for sync, tracks scanned with `keep_s=inf` (every sample kept, as
`load_audio` held them).

    python -m dam_assets_tests.benchmarks.long_audio [--hours 8] [--cuts 10,20] [--out DIR]

Progress goes to stderr, the Markdown table (ready for the README) to stdout. Not a test
module: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dam_assets.demo.samples import clap_track, speech_samples
from dam_assets.media.audio_stream import BLOCK_S
from dam_assets.media.transcribe import WINDOW_S
from dam_assets_tests.benchmarks.common import (
    Results,
    add_out,
    check_out,
    finish,
    log,
    machine,
    make_parser,
    markdown,
    timed,
    work_dir,
)

RATE = 48000
FRAME = 1024  # AAC samples per packet
BLOCK_FRAMES = 2812  # 59.99 s: a whole number of AAC frames, so packet times stay continuous
SPEECH_EVERY = 30  # blocks: one speech block per half hour
SPEECH_AT = 5  # the first speech block's index
SPEECH_LEAD_S = 1.0
STAGES = 8  # distinct clap-track blocks for the cameras
B_LATE = 3  # camera B starts this many blocks after A
SEED = 11
TALK = (
    "The morning train was late again, so Maria walked down to the harbor instead. She bought"
    " a coffee from the small kiosk by the ferry terminal and watched the fishing boats come in."
    " The air smelled of salt and diesel, and the gulls were loud above the nets. At nine"
    " o'clock her phone rang. It was her brother, asking whether she could pick up the children"
    " after school on Thursday, because his meeting in the city had been moved. She said yes,"
    " of course, and reminded him to bring the blue bag with the swimming things. Then she"
    " finished her coffee, checked the timetable one more time, and walked up the hill towards"
    " the old library, where the new exhibition about the history of the town opens next week."
)
MB = 1 << 20


# -- generation (setup, not a result) -----------------------------------------------------------
def encode_block(path: Path, samples: np.ndarray) -> list[bytes]:
    """One block encoded once (AAC, mono); its packets' payloads, in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=RATE, layout="mono")
        for start in range(0, len(samples), FRAME):
            chunk = np.ascontiguousarray(samples[None, start : start + FRAME], np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.dts is not None]


def mux(path: Path, template: Path, blocks: list[list[bytes]], order: Sequence[int]) -> float:
    """`blocks` in `order` as one track, every packet one AAC frame after the last; seconds."""
    pts = 0
    with av.open(str(template)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.audio[0])
        for index in order:
            for payload in blocks[index]:
                packet = av.Packet(payload)
                packet.pts = packet.dts = pts
                packet.duration, packet.time_base, packet.stream = FRAME, Fraction(1, RATE), stream
                out.mux(packet)
                pts += FRAME
    return pts / RATE


@dataclass
class Files:
    talk: dict[float, Path]  # hours -> file
    cam_a: dict[float, Path]
    cam_b: dict[float, Path]
    block_s: float  # one block's length in the muxed files
    speech_blocks: dict[float, list[int]]  # hours -> indices of speech blocks
    speech_clip: Path  # one speech block alone (warm-up)


def generate(work: Path, hours: Sequence[float]) -> Files:
    n = BLOCK_FRAMES * FRAME
    rng = np.random.default_rng(SEED)
    room = rng.normal(0, 0.002, n).astype(np.float32)
    speech = speech_samples(TALK, RATE)[: n - int((SPEECH_LEAD_S + 0.5) * RATE)]
    spoken = room.copy()
    lead = int(SPEECH_LEAD_S * RATE)
    spoken[lead : lead + len(speech)] += 0.8 * speech
    talk_blocks = [encode_block(work / "blocks" / "room.m4a", room)]
    talk_blocks.append(encode_block(work / "blocks" / "speech.m4a", spoken))
    stage_blocks = [
        encode_block(work / "blocks" / f"stage{k}.m4a", clap_track(n / RATE, RATE, seed=k))
        for k in range(STAGES)
    ]
    block_s = len(talk_blocks[0]) * FRAME / RATE
    if any(len(b) != len(talk_blocks[0]) for b in (*talk_blocks, *stage_blocks)):
        raise RuntimeError("blocks encoded to different packet counts")
    template = work / "blocks" / "room.m4a"
    most = max(hours)
    count = math.ceil(most * 3600 / block_s)
    talk_order = [1 if i % SPEECH_EVERY == SPEECH_AT else 0 for i in range(count)]
    stage_order = [int(k) for k in rng.integers(0, STAGES, count + B_LATE)]
    files = Files({}, {}, {}, block_s, {}, work / "blocks" / "speech.m4a")
    for h in hours:
        blocks = math.ceil(h * 3600 / block_s)
        label = length(h).replace(" ", "")
        files.talk[h] = work / f"talk_{label}.m4a"
        files.cam_a[h] = work / f"camA_{label}.m4a"
        files.cam_b[h] = work / f"camB_{label}.m4a"
        seconds, _ = timed(
            lambda b=blocks, t=files.talk[h]: mux(t, template, talk_blocks, talk_order[:b])
        )
        mux(files.cam_a[h], template, stage_blocks, stage_order[:blocks])
        mux(files.cam_b[h], template, stage_blocks, stage_order[B_LATE : B_LATE + blocks])
        files.speech_blocks[h] = [i for i in range(blocks) if talk_order[i]]
        log(f"  muxed {label}: talk and two cameras, {blocks} blocks each ({seconds:.1f} s a file)")
    return files


# -- measurement, in a fresh process ------------------------------------------------------------
def _status() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(argv: list[str]) -> dict:
    """The work named by argv, after its set-up; what it cost, as a dict (printed as JSON)."""
    kind, *paths = argv
    if kind.startswith("transcribe"):
        from faster_whisper.audio import decode_audio

        from dam_assets.media.transcribe import (
            WhisperSettings,
            transcribe,
            transcribe_file,
        )
        from dam_assets.models.whisper import load_whisper

        settings = WhisperSettings()
        model = load_whisper(settings, Path(paths[1]))
        transcribe_file(model, paths[2], settings)  # warm-up: CTranslate2 buffers, VAD model
        before, reset = _status()["VmRSS"], _reset_peak()
        start = time.perf_counter()
        if kind == "transcribe-whole":
            result = transcribe(model, decode_audio(paths[0]), settings, window_s=None)
        else:
            result = transcribe_file(model, paths[0], settings)
        seconds = time.perf_counter() - start
        out = {
            "status": result.status,
            "duration_s": result.duration_s,
            "segments": [(s["start_s"], s["end_s"]) for s in result.segments],
            "words": len(result.words),
            "speech_s": result.speech_s,
            "windows": len(result.cuts) + 1,
        }
    else:
        from dam_assets.media.audio_sync import measure, scan_track

        keep = math.inf if kind == "sync-whole" else None
        warm = scan_track(paths[2])  # warm-up: imports, codec set-up
        if warm is not None:
            measure(warm, warm)
        before, reset = _status()["VmRSS"], _reset_peak()
        start = time.perf_counter()
        tracks = [scan_track(p) if keep is None else scan_track(p, keep_s=keep) for p in paths[:2]]
        if tracks[0] is None or tracks[1] is None:
            raise RuntimeError("no audio")
        sync = measure(tracks[0], tracks[1])
        seconds = time.perf_counter() - start
        out = {
            "offset_s": sync.offset_s,
            "confidence": sync.confidence,
            "windows": len(sync.windows),
            "duration_s": tracks[0].duration + tracks[1].duration,
        }
    # without the reset, the peak would include the set-up's
    return {**out, "seconds": seconds, "before": before, "peak": _status()["VmHWM"], "reset": reset}


def run_child(args: list[str]) -> dict:
    command = [sys.executable, "-m", "dam_assets_tests.benchmarks.long_audio", "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------
def length(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:g} h"


def mb(value: float) -> str:
    return f"{value / MB:,.0f} MB"


def grown(m: dict) -> float:
    return m["peak"] - m["before"]


def cost(m: dict) -> str:
    return f"+{mb(grown(m))} (peak {mb(m['peak'])}), {m['seconds']:,.1f} s"


def per_hour(points: dict[float, dict]) -> tuple[float, float]:
    """Least-squares line (bytes at 0 h, bytes per hour) through the work's growth."""
    hours = np.array(sorted(points))
    growth = np.array([grown(points[h]) for h in hours])
    slope, intercept = np.polyfit(hours, growth, 1) if len(hours) > 1 else (growth[0] / hours[0], 0)
    return float(intercept), float(slope)


def check_speech(files: Files, hours: float, segments: list[list[float]]) -> tuple[int, float]:
    """Speech blocks found where they were placed: (how many, worst first-segment offset)."""
    found, worst = 0, 0.0
    for index in files.speech_blocks[hours]:
        start = index * files.block_s
        inside = [s for s, _ in segments if start <= s < start + files.block_s]
        if inside:
            found += 1
            worst = max(worst, abs(min(inside) - start - SPEECH_LEAD_S))
    return found, worst


def bench_transcription(
    files: Files, work: Path, cuts: list[float], hours: float, results: Results
) -> None:
    models = str(work / "models")
    whole: dict[float, dict] = {}
    streamed: dict[float, dict] = {}
    for h in cuts:
        log(f"transcription, {length(h)}: whole track, then streamed")
        whole[h] = run_child(
            ["transcribe-whole", str(files.talk[h]), models, str(files.speech_clip)]
        )
        streamed[h] = run_child(["transcribe", str(files.talk[h]), models, str(files.speech_clip)])
        if whole[h]["segments"] == [] or streamed[h]["segments"] == []:
            raise RuntimeError(f"{length(h)}: no speech transcribed")
    log(f"transcription, {hours:g} h, streamed (the whole length, every window)")
    full = run_child(["transcribe", str(files.talk[hours]), models, str(files.speech_clip)])
    base, slope = per_hour(whole)
    for h in cuts:
        results.add(
            f"Transcription, {h * 60:g} min: `transcribe_file` ({streamed[h]['windows']} windows)",
            cost(streamed[h]),
            f"whole track: {cost(whole[h])}",
            f"{grown(streamed[h]) / grown(whole[h]):.2f}× memory,"
            f" {streamed[h]['seconds'] / whole[h]['seconds']:.2f}× time",
        )
    found, worst = check_speech(files, hours, full["segments"])
    blocks = len(files.speech_blocks[hours])
    if found != blocks:
        raise RuntimeError(f"{hours:g} h: speech found in {found} of {blocks} speech blocks")
    estimate = base + slope * hours
    results.add(
        f"Transcription, {hours:g} h talk: `transcribe_file` ({full['windows']} windows,"
        f" {len(full['segments'])} segments)",
        f"+{mb(grown(full))} (peak {mb(full['peak'])}), {full['seconds']:.0f} s"
        f" ({full['duration_s'] / full['seconds']:,.0f}× real time)",
        f"whole track, line through the cuts: +{estimate / 2**30:.1f} GB at {hours:g} h"
        f" ({slope / MB:,.0f} MB per hour)",
        f"{grown(full) / estimate:.3f}× memory",
    )
    results.notes.append(
        f"Transcription: tiny.en int8, default `WhisperSettings`, windows of {WINDOW_S:g} s. All"
        f" {hours:g} h were decoded, VAD-filtered and windowed; Whisper transcribed the"
        f" {blocks} speech blocks ({blocks * len(TALK.split())} words spoken): each was found where"
        f" it was placed (first segment within {worst:.2f} s of the speech onset), so times stay"
        f" right across {full['windows'] - 1} window cuts over {hours:g} hours."
    )


def bench_sync(files: Files, cuts: list[float], hours: float, results: Results) -> None:
    whole: dict[float, dict] = {}
    truth = B_LATE * files.block_s
    for h in cuts:
        log(f"sync, {length(h)} cameras: whole tracks kept, then streamed")
        args = [str(files.cam_a[h]), str(files.cam_b[h]), str(files.speech_clip)]
        whole[h] = run_child(["sync-whole", *args])
        streamed = run_child(["sync", *args])
        results.add(
            f"Sync, two {h * 60:g}-min cameras: `scan_track` × 2 + `measure`",
            f"+{mb(grown(streamed))} (peak {mb(streamed['peak'])}), {streamed['seconds']:.1f} s,"
            f" error {(streamed['offset_s'] - truth) * 1000:+.3f} ms",
            f"whole tracks kept: +{mb(grown(whole[h]))} (peak {mb(whole[h]['peak'])}),"
            f" {whole[h]['seconds']:.1f} s, error {(whole[h]['offset_s'] - truth) * 1000:+.3f} ms",
            f"{grown(streamed) / grown(whole[h]):.2f}× memory",
        )
    log(f"sync, two {hours:g} h cameras, streamed")
    full = run_child(
        ["sync", str(files.cam_a[hours]), str(files.cam_b[hours]), str(files.speech_clip)]
    )
    base, slope = per_hour(whole)
    estimate = base + slope * hours
    results.add(
        f"Sync, two {hours:g}-h cameras: `scan_track` × 2 + `measure`",
        f"+{mb(grown(full))} (peak {mb(full['peak'])}), {full['seconds']:.0f} s, error"
        f" {(full['offset_s'] - truth) * 1000:+.3f} ms, confidence {full['confidence']:.2f}",
        f"whole tracks kept, line through the cuts: +{estimate / 2**30:.1f} GB at {hours:g} h",
        f"{grown(full) / estimate:.3f}× memory",
    )


def report(results: Results, args: argparse.Namespace) -> str:
    versions = (f"PyAV {av.__version__}", f"NumPy {np.__version__}")
    cuts = ",".join(f"{c:g}" for c in args.cuts)
    intro = [
        f"Generated M4A files (AAC 48 kHz mono), {args.hours:g} h long, and cuts of {cuts} min"
        " of the same. Memory: resident set size of a fresh process, before the work (after its"
        " imports, model load and a warm-up call) and its peak during the work; `+` is the"
        " peak over the before. Baselines are the whole-track approach on the cuts.",
        f"Machine: {machine(*versions)}.",
        f"Command: `python -m dam_assets_tests.benchmarks.long_audio --hours {args.hours:g}"
        f" --cuts {cuts}`",
    ]
    return markdown("Long recordings benchmark", intro, results)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("long_audio", __doc__)
    parser.add_argument("--hours", type=float, default=8.0, help="the long recordings (8)")
    parser.add_argument(
        "--cuts",
        type=lambda text: [float(v) for v in text.split(",")],
        default=[10.0, 20.0],
        help="minutes of the shorter cuts the whole-track approach runs on (10,20)",
    )
    add_out(parser, "keep the generated files here (new or empty); default: temp")
    args = parser.parse_args(argv)
    if args.hours <= 0 or not args.cuts or min(args.cuts) <= 0:
        parser.error("--hours and --cuts must be positive")
    if max(args.cuts) / 60 >= args.hours:
        parser.error("--cuts must be shorter than --hours")
    check_out(parser, args.out)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        print(json.dumps(child(argv[1:])))
        return 0
    args = parse_args(argv)
    results = Results()
    cuts = [c / 60 for c in args.cuts]
    with work_dir(args.out) as work:
        log("encoding the blocks once and muxing the long files (setup, not a result)")
        gen_s, files = timed(lambda: generate(work, [*cuts, args.hours]))
        log(f"generated in {gen_s:.0f} s")
        bench_transcription(files, work, cuts, args.hours, results)
        bench_sync(files, cuts, args.hours, results)
        size = sum(p.stat().st_size for p in work.glob("*.m4a")) / MB
    results.notes += [
        f"What transcription holds: the decoded audio as {BLOCK_S:g} s blocks and one window of"
        f" at most {WINDOW_S:g} s ({WINDOW_S * 16000 * 4 / MB:.1f} MB as float32), handed to"
        " faster-whisper, whose VAD and log-Mel features of that window are the rest. Whole track:"
        " the float32 samples (230 MB per hour), their 16-bit copy, and Silero VAD's copies of"
        " the whole recording; it runs on the cuts only (at 8 h: gigabytes and many minutes),"
        " and its 8-hour figure is the line through them.",
        "What sync holds per camera: its 10 ms onset envelope (400 bytes per second of audio,"
        " 11.5 MB for 8 h) and no samples past 5 min; the coarse FFT of two envelopes is the"
        " largest transient; fine windows (8 s) are decoded again from a seek point. Whole"
        " tracks kept: 32 kB per second of each camera.",
        f"Generation (setup, not a result): {gen_s:.0f} s, {size:,.0f} MB of files.",
    ]
    return finish(report(results, args))


if __name__ == "__main__":
    sys.exit(main())

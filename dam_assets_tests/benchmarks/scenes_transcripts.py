"""Scene detection and transcription benchmarks, each against baselines from the same run.

Scenes (`detect_scenes`, `write_keyframes`) on generated clips with hard cuts, 720p and 1080p,
for the PyAV and OpenCV backends:

- against decoding every frame once (`decode_all`): what detection costs beyond the decode it
  cannot avoid;
- against plain `scenedetect.detect(path, ContentDetector(), backend=...)`: the overhead of our
  quality sampler; the cuts must be identical (and equal the generated ones) or the run fails;
- the faster backend per resolution, checked against the default (`SceneSettings.backend`).

Transcription (`transcribe`, faster-whisper) of a ~50 s clip of dense synthesized speech, with
the default `WhisperSettings` and with beam 1 and VAD off, against decoding the audio once
(`load_audio`); model load is timed once. Word error rate against the spoken text shows what
the faster settings cost in accuracy.

    python -m dam_assets_tests.benchmarks.scenes_transcripts [--repeats N] [--out DIR]

Progress goes to stderr, the Markdown table (ready for the README) to stdout. Not a test
module: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import av
import av.logging
import ctranslate2
import cv2
import faster_whisper
import scenedetect
from scenedetect import ContentDetector

from dam_assets.demo.samples import make_cut_video, make_speech_video
from dam_assets.media.frames import decode_all
from dam_assets.media.scenes import (
    SceneDetection,
    SceneSettings,
    detect_scenes,
    write_keyframes,
)
from dam_assets.media.transcribe import (
    SAMPLE_RATE,
    WhisperSettings,
    load_audio,
    transcribe,
)
from dam_assets.models.whisper import load_whisper
from dam_assets_tests.benchmarks.common import (
    Results,
    add_out,
    check_out,
    elapsed,
    finish,
    in_turn,
    log,
    machine,
    make_parser,
    markdown,
    timed,
    work_dir,
)

Backend = Literal["pyav", "opencv"]

SIZES = ((1280, 720), (1920, 1080))
FPS = 25
FRAMES = 250  # 10 s
SHOT = 50  # a hard cut every 50 frames
BACKENDS: tuple[Backend, ...] = ("pyav", "opencv")
TIE = 0.05  # backends closer than this (relative) count as a tie ...
CLEAR = 0.8  # ... and so does a winner that was faster in fewer of the passes than this
SPEECH = (
    "The morning train was late again, so Maria walked down to the harbor instead. She bought"
    " a coffee from the small kiosk by the ferry terminal and watched the fishing boats come in."
    " The air smelled of salt and diesel, and the gulls were loud above the nets. At nine"
    " o'clock her phone rang. It was her brother, asking whether she could pick up the children"
    " after school on Thursday, because his meeting in the city had been moved. She said yes,"
    " of course, and reminded him to bring the blue bag with the swimming things. Then she"
    " finished her coffee, checked the timetable one more time, and walked up the hill towards"
    " the old library, where the new exhibition about the history of the town opens next week."
)


@contextlib.contextmanager
def quiet_ffmpeg() -> Iterator[None]:
    """Plain `scenedetect.detect` with PyAV puts FFmpeg's own (printing) log callback back;
    reinstall PyAV's at the level it had, so later encoders stay quiet."""
    level = av.logging.get_level()
    try:
        yield
    finally:
        av.logging.set_level(level)


# -- results ------------------------------------------------------------------------------------
def fps_rt(seconds: float, frames: int) -> str:
    return f"{frames / seconds:,.0f} fps, {frames / FPS / seconds:,.1f}× real time"


# -- scenes -------------------------------------------------------------------------------------
@dataclass
class Clip:
    path: Path
    size: tuple[int, int]
    cuts: list[int]
    frames: int

    @property
    def label(self) -> str:
        return f"{self.size[1]}p"


def make_clips(work: Path, frames: int) -> list[Clip]:
    cuts = list(range(SHOT, frames, SHOT))
    clips = []
    for w, h in SIZES:
        path = make_cut_video(work / f"cuts_{h}p.mp4", cuts=cuts, frames=frames, size=(w, h))
        clips.append(Clip(path, (w, h), cuts, frames))
    return clips


def plain_detect(path: Path, backend: Backend) -> list[tuple[int, int]]:
    with quiet_ffmpeg():
        scenes = scenedetect.detect(str(path), ContentDetector(), backend=backend)
    return [(start.frame_num, end.frame_num) for start, end in scenes]


def bench_scenes(clip: Clip, work: Path, repeats: int, results: Results) -> None:
    expected = list(zip([0, *clip.cuts], [*clip.cuts, clip.frames], strict=True))
    for backend in BACKENDS:  # warm-up: imports, codec and detector set-up; not measured
        detect_scenes(clip.path, SceneSettings(backend=backend))
        plain_detect(clip.path, backend)
    decode: list[float] = []
    times: dict[str, dict[Backend, list[float]]] = {
        kind: {b: [] for b in BACKENDS} for kind in ("ours", "plain")
    }
    keyframes: list[float] = []
    scenes = 0
    for rep in range(1, repeats + 1):
        log(f"scenes {clip.label} pass {rep}/{repeats}: decode, then ours and plain per backend")
        seconds, count = timed(lambda: decode_all(clip.path))
        if count != clip.frames:
            raise RuntimeError(f"decode_all gave {count} frames, expected {clip.frames}")
        decode.append(seconds)
        for backend in in_turn(BACKENDS, rep):  # every other pass in reverse: no side goes first
            runs: dict[str, Callable[[], object]] = {
                "ours": lambda b=backend: detect_scenes(clip.path, SceneSettings(backend=b)),
                "plain": lambda b=backend: plain_detect(clip.path, b),
            }
            out: dict[str, object] = {}
            for kind in in_turn(sorted(runs), rep):
                seconds, out[kind] = timed(runs[kind])
                times[kind][backend].append(seconds)
            found, reference = out["ours"], out["plain"]
            assert isinstance(found, SceneDetection)
            got = [(s.start_frame, s.end_frame) for s in found.scenes]
            if got != reference or got != expected:
                raise RuntimeError(
                    f"{clip.label} {backend}: ours {got}, plain {reference}, generated {expected}"
                )
            if found.frames != clip.frames:
                raise RuntimeError(f"{clip.label} {backend}: {found.frames} frames processed")
            if backend == "pyav":
                out_dir = work / "keyframes" / clip.label
                seconds, _ = timed(lambda d=found, o=out_dir: write_keyframes(clip.path, d, o))
                if any(s.keyframe_path is None for s in found.scenes):
                    raise RuntimeError(f"{clip.label}: a scene has no keyframe")
                keyframes.append(seconds)
                scenes = len(found.scenes)

    n = clip.frames
    decode_s = statistics.median(decode)
    base = f"decode once (`decode_all`): {fps_rt(decode_s, n)}"
    medians = {b: statistics.median(times["ours"][b]) for b in BACKENDS}
    for backend in BACKENDS:
        ours_s, plain_s = medians[backend], statistics.median(times["plain"][backend])
        results.add(
            f"Scenes {clip.label}, `detect_scenes` ({backend})",
            fps_rt(ours_s, n),
            base,
            f"{ours_s / decode_s:.2f}× decode time",
        )
        results.add(
            f"Scenes {clip.label}, plain `scenedetect.detect` ({backend})",
            fps_rt(plain_s, n),
            f"ours ({backend}): {n / ours_s:,.0f} fps",
            f"ours/plain {ours_s / plain_s:.2f}×",
        )
    kf_s = statistics.median(keyframes)
    results.add(
        f"Keyframes {clip.label}, `write_keyframes` ({scenes} scenes)",
        f"{kf_s / scenes * 1000:,.1f} ms/scene ({kf_s * 1000:,.0f} ms)",
        f"decode once: {decode_s * 1000:,.0f} ms",
        f"{kf_s / decode_s:.2f}× decode time",
    )
    fast, slow = sorted(BACKENDS, key=medians.__getitem__)
    margin = medians[slow] / medians[fast] - 1
    wins = sum(f < s for f, s in zip(times["ours"][fast], times["ours"][slow], strict=True))
    default = SceneSettings().backend
    verdict = f"{fast}, {margin:.0%} faster than {slow} (faster in {wins}/{repeats} passes)"
    if margin < TIE or wins < CLEAR * repeats:
        verdict, support = f"no clear winner: {verdict}", "neither supports nor contradicts"
    else:
        verdict = f"**{verdict}**"
        support = "supports" if fast == default else "does not support"
    results.add(
        f"Faster backend at {clip.label}", verdict, f"default `{default}`", f"{support} the default"
    )


# -- transcription ------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def bench_transcripts(speech: Path, work: Path, repeats: int, results: Results) -> None:
    settings = WhisperSettings()
    load_s, model = timed(lambda: load_whisper(settings, work / "models"))
    results.add(f"Whisper model load (`load_whisper`, {settings.model}, once)", f"{load_s:.2f} s")
    decode: list[float] = []
    for _ in range(repeats):
        seconds, audio = timed(lambda: load_audio(speech))
        decode.append(seconds)
    decode_s = statistics.median(decode)
    audio_s = len(audio) / SAMPLE_RATE
    results.add(
        "Audio decode (`load_audio`, 16 kHz mono)",
        f"{decode_s * 1000:,.0f} ms for {audio_s:.1f} s, {audio_s / decode_s:,.0f}× real time",
    )
    log("transcribe: first call (warm-up, loads the VAD model)")
    first_s, _ = timed(lambda: transcribe(model, audio, settings))
    results.add("`transcribe`, first call (warm-up, VAD model load)", f"{first_s:.2f} s")

    variants = {
        "default": settings,
        "beam_size=1": replace(settings, beam_size=1),
        "vad_filter=False": replace(settings, vad_filter=False),
    }
    default_s = 0.0
    for name, variant in variants.items():
        times: list[float] = []
        for rep in range(1, repeats + 1):
            log(f"transcribe {name} pass {rep}/{repeats}")
            seconds, transcript = timed(lambda v=variant: transcribe(model, audio, v))
            if transcript.status != "ok":
                raise RuntimeError(f"transcribe {name}: status {transcript.status}")
            times.append(seconds)
        text = " ".join(seg["text"] for seg in transcript.segments)
        median = statistics.median(times)
        default_s = default_s or median
        vs_default = "" if variant is settings else f"; {median / default_s:.2f}× default time"
        vad = "on" if variant.vad_filter else "off"
        results.add(
            f"`transcribe` {name} (beam {variant.beam_size}, VAD {vad})",
            f"{audio_s / median:,.1f}× real time ({median:.2f} s), WER {wer(SPEECH, text):.1%}",
            f"decode audio once: {decode_s * 1000:,.0f} ms",
            f"{median / decode_s:,.0f}× decode time{vs_default}",
        )
    results.notes.append(
        "Whisper settings: "
        + ", ".join(f"{k}={v!r}" for k, v in asdict(settings).items())
        + f" (cpu_threads 0 = all {os.cpu_count()} cores); word timestamps on, as in the assets."
    )


# -- report -------------------------------------------------------------------------------------
def report(results: Results, args: argparse.Namespace, speech_s: float) -> str:
    sizes = " and ".join(f"{w}x{h}" for w, h in SIZES)
    versions = (
        f"PySceneDetect {scenedetect.__version__}",
        f"PyAV {av.__version__}",
        f"OpenCV {cv2.__version__}",
        f"faster-whisper {faster_whisper.__version__}",
        f"CTranslate2 {ctranslate2.__version__}",
    )
    intro = [
        f"Scenes: {sizes} H.264 clips, {args.frames} frames at {FPS} fps"
        f" ({args.frames / FPS:g} s), a hard cut every {SHOT} frames; `SceneSettings()` defaults"
        " (content detector, threshold 27) with each backend.",
        f"Transcripts: {speech_s:.1f} s of espeak-ng speech ({len(words(SPEECH))} words) in an"
        " H.264/AAC clip.",
        f"Machine: {machine(*versions)}.",
        "Command: `python -m dam_assets_tests.benchmarks.scenes_transcripts"
        f" --repeats {args.repeats} --frames {args.frames}`",
    ]
    return markdown("Scenes and transcripts benchmark", intro, results)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("scenes_transcripts", __doc__)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; median (5)")
    parser.add_argument(
        "--frames", type=int, default=FRAMES, help=f"frames per cut clip ({FRAMES})"
    )
    add_out(parser, "keep everything in this (new or empty) folder; default: temp")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.frames < 2 * SHOT:
        parser.error(f"--frames must be at least {2 * SHOT} (one cut)")
    check_out(parser, args.out)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results()
    with work_dir(args.out) as work:
        log("generating the cut clips and the speech clip (setup, not a result)")
        gen_s, clips = timed(lambda: make_clips(work, args.frames))
        speech = make_speech_video(work / "speech.mp4", SPEECH)
        log(f"generated in {elapsed():.1f} s (cut clips {gen_s:.1f} s)")
        for clip in clips:
            bench_scenes(clip, work, args.repeats, results)
        bench_transcripts(speech, work, args.repeats, results)
        speech_s = len(load_audio(speech)) / SAMPLE_RATE
    results.notes.append(
        f"Median of {args.repeats} passes after an unmeasured warm-up; ours and plain, and"
        " the two backends, swap order every other pass; warm page cache."
    )
    return finish(report(results, args, speech_s))


if __name__ == "__main__":
    sys.exit(main())

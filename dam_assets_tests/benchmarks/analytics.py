"""What the timeline and scene quality cost: the scenes pass with and without the per-frame
measures, and transcription's audio stream with and without the loudness meter, same run.

The footage is generated to cost what camera files cost to analyse: a detailed texture (fine
grain to broad shapes), a camera that pans and jitters, moving film grain on every frame and a
hard cut every 4 s, H.264 at 720p and 1080p. Baselines:

- PySceneDetect alone (SceneManager + ContentDetector on the PyAV backend, as `scenes` uses);
- the scenes pass as it was before the timeline (ContentDetector + the keyframe sampler);
- `detect_scenes` now (+ FrameStats: timeline, scene quality, hashes);
- decoding transcription's 16 kHz stream (`stream_audio`) alone, and with `LoudnessMeter`.

    python -m dam_assets_tests.benchmarks.analytics [--repeats N] [--seconds S] [--out DIR]

Progress goes to stderr, the Markdown table to stdout. Not a test module.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import scenedetect
from scenedetect import ContentDetector, SceneManager, open_video

from dam_assets.demo.samples import _mux, make_audio, texture
from dam_assets.media.loudness import LoudnessMeter
from dam_assets.media.scenes import QualitySampler, detect_scenes
from dam_assets.media.transcribe import SAMPLE_RATE, stream_audio
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
    work_dir,
)

CUT_EVERY_S = 4


def make_footage(path: Path, seconds: float, size: tuple[int, int], fps: int = 25) -> Path:
    """Panning, jittering, grainy texture with a hard cut every CUT_EVERY_S, streamed to H.264."""
    width, height = size
    rng = np.random.default_rng(0)
    margin = width // 10
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "20"}
        canvas = None
        for i in range(round(seconds * fps)):
            shot = i // (CUT_EVERY_S * fps)
            if i % (CUT_EVERY_S * fps) == 0:
                grey = texture(width + 3 * margin, height + 3 * margin, seed=shot)
                tint = np.array([1.0, 0.8 + 0.1 * (shot % 3), 0.7 + 0.15 * (shot % 2)])
                canvas = (grey[..., None] * tint).astype(np.uint8)
            x = margin + (i % (CUT_EVERY_S * fps)) // 2 + int(rng.integers(-3, 4))
            y = margin + int(rng.integers(-3, 4))
            img = canvas[y : y + height, x : x + width].astype(np.int16)
            img += rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            _mux(container, vs, frame)
        _mux(container, vs)
    return path


def scenedetect_alone(path: Path) -> int:
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video=open_video(str(path), backend="pyav", suppress_output=True))
    return len(manager.get_scene_list(start_in_scene=True))


def scenes_before(path: Path) -> int:
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.add_detector(QualitySampler())
    manager.detect_scenes(video=open_video(str(path), backend="pyav", suppress_output=True))
    return len(manager.get_scene_list(start_in_scene=True))


def scenes_now(path: Path) -> int:
    return len(detect_scenes(path).scenes)


def decode_only(path: Path) -> int:
    return sum(len(block) for block in stream_audio(path))


def decode_metered(path: Path) -> int:
    meter = LoudnessMeter(SAMPLE_RATE)
    count = sum(len(block) for block in meter.watch(stream_audio(path)))
    return count if meter.seconds() else -1


def median_times(runs: dict, path: Path, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    counts: dict[str, set] = {name: set() for name in runs}
    for rep in range(1, repeats + 1):
        for name in in_turn(runs, rep):
            seconds, count = timed(lambda fn=runs[name]: fn(path))
            times[name].append(seconds)
            counts[name].add(count)
    if len({frozenset(c) for c in counts.values()}) != 1:
        raise SystemExit(f"the variants disagree on {path.name}: {counts}")
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("analytics", __doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each clip")
    add_out(parser, "keep the generated clips here")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    results = Results()
    with work_dir(args.out) as work:
        for label, size in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
            log(f"generating {args.seconds:.0f} s of {label} footage")
            clip = make_footage(work / f"footage_{label}.mp4", args.seconds, size)
            runs = {"alone": scenedetect_alone, "before": scenes_before, "now": scenes_now}
            t = median_times(runs, clip, args.repeats)
            fps = round(args.seconds * 25 / t["now"])
            results.add(
                f"{label} scenes pass with timeline + quality ({fps} fps)",
                f"{t['now']:.2f} s",
                f"PySceneDetect alone {t['alone']:.2f} s",
                f"{t['now'] / t['alone']:.3f}×",
            )
            results.add(
                f"{label} cost of the per-frame measures",
                f"{t['now']:.2f} s",
                f"scenes before (cuts + keyframe sampler) {t['before']:.2f} s",
                f"{t['now'] / t['before']:.3f}×",
            )
        log("generating 10 min of audio")
        audio = make_audio(work / "tone.m4a", seconds=600)
        t = median_times({"decode": decode_only, "metered": decode_metered}, audio, args.repeats)
        results.add(
            "10 min AAC: 16 kHz stream + loudness per second",
            f"{t['metered']:.2f} s",
            f"stream alone {t['decode']:.2f} s",
            f"{t['metered'] / t['decode']:.3f}×",
        )
    results.notes.append(
        f"medians of {args.repeats} runs, alternating order; footage: texture with grain,"
        f" pan + jitter, a cut every {CUT_EVERY_S} s, H.264 veryfast crf 20, 25 fps"
    )
    intro = [
        f"Machine: {machine(f'PySceneDetect {scenedetect.__version__}', f'PyAV {av.__version__}')}",
        "Command: `python -m dam_assets_tests.benchmarks.analytics`",
    ]
    return finish(markdown("Timeline and scene quality: added cost", intro, results))


if __name__ == "__main__":
    sys.exit(main())

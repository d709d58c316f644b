"""Near-duplicate video: precision and recall on generated derivatives, and the grouping's cost
at library scale, same run.

Originals: textured footage with film grain, a pan and hard cuts (benchmarks.analytics). For
each original: a low bit-rate re-encode, half size, a 10% crop each side scaled back, a
Matroska remux, a trim from 7.4 s to 70% of the length (must be found inside the original at
7.4 s), and two negatives that must not match: another clip of the same scene (the same
places, framed 20% aside and panned the other way, cut at other times) and unrelated footage.
Signatures come from `detect_scenes` (the scenes pass), as the pipeline makes them.

Cost: `find_near_duplicates` on N synthetic signatures (random per-second hashes of the whole
picture and of its middle, 60 s each, with a planted trimmed copy and a planted cropped copy in
every 100 files, a few bits flipped per second), against building the signatures' arrays
alone.

    python -m dam_assets_tests.benchmarks.near_dupes [--originals N] [--files N] [--out DIR]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dam_assets.demo.samples import make_derivative, texture
from dam_assets.media.near_dupes import Signature, find_near_duplicates
from dam_assets.media.scenes import detect_scenes
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

FPS = 25
SIZE = (640, 360)


def make_take(path: Path, seed: int, seconds: float, aside: float = 0.0, cuts_s: int = 5) -> Path:
    """Footage of `seed`'s places: shot k shows place k; `aside` frames it that share of the
    width to the right and pans the other way (another take of the same scene)."""
    width, height = SIZE
    rng = np.random.default_rng(seed * 7 + int(aside * 100))
    margin = width // 3
    places = [texture(width + 2 * margin, height + margin, seed=seed * 100 + k) for k in range(20)]
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "20"}
        for i in range(round(seconds * FPS)):
            shot, t = divmod(i, cuts_s * FPS)
            place = places[shot % len(places)]
            pan = t // 2 if not aside else (cuts_s * FPS - t) // 2
            x = int(margin // 2 + aside * width) + pan - (margin // 2 if aside else 0)
            x = max(0, min(x, place.shape[1] - width))
            img = place[margin // 2 : margin // 2 + height, x : x + width].astype(np.int16)
            tint = np.array([1.0, 0.8 + 0.1 * (shot % 3), 0.7 + 0.15 * (shot % 2)])
            img = img[..., None] * tint + rng.integers(-6, 7, (height, width, 1))
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode(None):
            container.mux(packet)
    return path


def remux(source: Path, path: Path) -> Path:
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return path


def signature(path: Path, checksum: str) -> Signature:
    seconds = detect_scenes(path).seconds
    return Signature.from_seconds(
        checksum,
        [s.second for s in seconds],
        [s.dhash for s in seconds],
        [s.dhash_centre for s in seconds],
    )


def synthetic(files: int, seconds: int = 60, seed: int = 0) -> list[Signature]:
    """Random per-second hashes (whole picture and middle); file 100k+1 is a near copy of
    file 100k trimmed by 5 s, file 100k+2 a cropped copy of it (its whole picture is the
    middle of file 100k's)."""
    rng = np.random.default_rng(seed)

    def random(n: int) -> np.ndarray:
        hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
        return hashes ^ (rng.integers(0, 2, n).astype(np.uint64) << np.uint64(63))

    def nearly(hashes: np.ndarray) -> np.ndarray:
        flips = np.zeros(len(hashes), np.uint64)
        for _ in range(3):
            flips |= np.uint64(1) << rng.integers(0, 64, len(hashes)).astype(np.uint64)
        return hashes ^ flips

    def sig(name: str, hashes: np.ndarray, centre: np.ndarray) -> Signature:
        ones = np.ones(len(hashes), bool)
        return Signature(name, hashes, ones, Signature(name, centre, ones))

    sigs: list[Signature] = []
    for i in range(files):
        if i % 100 == 1:
            base = sigs[-1]
            hashes, centre = nearly(base.hashes[5:]), nearly(base.centre.hashes[5:])
        elif i % 100 == 2:
            hashes, centre = nearly(sigs[-2].centre.hashes), random(seconds)
        else:
            hashes, centre = random(seconds), random(seconds)
        sigs.append(sig(f"{i:08d}", hashes, centre))
    return sigs


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("near_dupes", __doc__)
    parser.add_argument("--originals", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--files", type=int, default=100_000, help="synthetic signatures")
    add_out(parser, "keep the generated clips here")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    results = Results()
    kinds_found: list[str] = []
    with work_dir(args.out) as work:
        files: dict[str, Path] = {}
        expected: set[frozenset[str]] = set()
        offsets: dict[frozenset[str], float] = {}
        for n in range(args.originals):
            log(f"original {n + 1}/{args.originals} and its derivatives")
            base = make_take(work / f"o{n}.mp4", seed=n, seconds=args.seconds)
            derived = {
                f"o{n}_lowrate": make_derivative(
                    base, work / f"o{n}_lowrate.mp4", options={"b": "150k"}
                ),
                f"o{n}_half": make_derivative(base, work / f"o{n}_half.mp4", scale=0.5),
                f"o{n}_crop": make_derivative(base, work / f"o{n}_crop.mp4", crop=0.1),
                f"o{n}_remux": remux(base, work / f"o{n}_remux.mkv"),
                f"o{n}_trim": make_derivative(
                    base, work / f"o{n}_trim.mp4", start_s=7.4, end_s=0.7 * args.seconds
                ),
            }
            files[f"o{n}"] = base
            files.update(derived)
            family = [f"o{n}", *derived]
            expected |= {frozenset((a, b)) for a in family for b in family if a < b}
            offsets[frozenset((f"o{n}", f"o{n}_trim"))] = 7.4
            files[f"o{n}_othertake"] = make_take(
                work / f"o{n}_othertake.mp4", seed=n, seconds=args.seconds, aside=0.2, cuts_s=6
            )
        files["unrelated"] = make_take(work / "unrelated.mp4", seed=99, seconds=args.seconds)
        log(f"signatures of {len(files)} files (the scenes pass)")
        sigs = [signature(path, name) for name, path in files.items()]
        seconds, matches = timed(lambda: find_near_duplicates(sigs))
        found = {frozenset((m.checksum_a, m.checksum_b)): m for m in matches}
        true = set(found) & expected
        precision = len(true) / len(found) if found else 1.0
        recall = len(true) / len(expected)
        results.add(
            f"pairs found among {len(files)} files",
            f"precision {precision:.3f}, recall {recall:.3f}",
            f"{len(expected)} true pairs, {len(found)} reported",
        )
        for name in ("lowrate", "half", "crop", "remux", "trim"):
            hit = sum(frozenset((f"o{n}", f"o{n}_{name}")) in found for n in range(args.originals))
            results.add(f"{name} found beside its original", f"{hit}/{args.originals}")
        wrong = [p for p in found if p not in expected]
        results.add("other takes / unrelated reported", f"{len(wrong)}", "must be 0")
        errors = [abs(found[p].offset_s - off) for p, off in offsets.items() if p in found]
        kinds_found = sorted({found[p].kind for p in offsets if p in found})
        if errors:
            results.add(
                "trim offset error (true 7.4 s)",
                f"max {max(errors):.2f} s",
                f"kind {', '.join(kinds_found)}",
            )
        results.notes.append(f"grouping these {len(files)} signatures took {seconds * 1000:.0f} ms")
    log(f"{args.files:,} synthetic signatures")
    build_s, sigs = timed(lambda: synthetic(args.files))
    group_s, matches = timed(lambda: find_near_duplicates(sigs))
    # each hundred: file 0, its trimmed copy 1, its cropped copy 2 (which shows the middle of
    # 1's picture too): three related pairs
    planted = 3 * len(range(2, args.files, 100))
    caught = sum(
        int(m.checksum_a) // 100 == int(m.checksum_b) // 100
        and {int(m.checksum_a) % 100, int(m.checksum_b) % 100} <= {0, 1, 2}
        for m in matches
    )
    results.add(
        f"grouping {args.files:,} files × 60 s (whole and middle hashes)",
        f"{group_s:.1f} s, {caught}/{planted} pairs of planted copies (trimmed, cropped),"
        f" {len(matches) - caught} others",
        f"making the signatures {build_s:.1f} s",
        f"{group_s / build_s:.1f}×",
    )
    intro = [
        f"Machine: {machine(f'PyAV {av.__version__}', f'numpy {np.__version__}')}",
        "Command: `python -m dam_assets_tests.benchmarks.near_dupes`",
    ]
    return finish(markdown("Near-duplicate video", intro, results))


if __name__ == "__main__":
    sys.exit(main())

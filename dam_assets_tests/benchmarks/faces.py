"""Faces benchmarks: frames through detection + recognition, and people clustering at scale.

Throughput, on a generated 1280x720 H.264 clip (25 fps) with two faces per shot, at the default
settings (2 samples per second plus scene keyframes, detection size 640):

- decoding every frame once is the baseline; then decoding only the sampled frames
  (`frames_along`), then the whole faces step (`find_faces`: detect, filter, align, crop,
  recognise in batches) with two packs:
  - the tiny test pack (`face_pack_tiny`): the models cost nothing, so this is our own cost
    (decoding, alignment, crops, batching);
  - a compute proxy for buffalo_l: a random-weight ResNet18 trunk on the detector input (about
    15 GFLOPs at 640, SCRFD-10GF is 10) and a ResNet50 recognizer at 112 px with a stride-1 stem
    (about 4 GFLOPs; buffalo_l's R50 is about 6), added (times zero) to the tiny pack's outputs
    so detections stay the same. insightface's weights cannot be downloaded here.

Clustering (`update_people`) on generated track embeddings of known people (within-person
cosine similarity about 0.6, across people about 0, 3–13 tracks per person):

- a full re-cluster of N tracks (10k, 100k) against the incremental path placing 1,000 new
  tracks among the people found (the step run after every ingest); pairwise precision and
  recall against the known people.

    python -m dam_assets_tests.benchmarks.faces [--quick] [--out DIR]

Progress goes to stderr, the Markdown table to stdout. Not a test module.
"""

from __future__ import annotations

import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from dam_assets.demo import samples as mf
from dam_assets.demo.tiny_face_pack import write_tiny_face_pack
from dam_assets.media.face_clusters import PeopleState, knn_graph, unit, update_people
from dam_assets.media.faces import face_batcher, find_faces, sample_times
from dam_assets.media.frames import decode_all, frames_along
from dam_assets.models.faces import FaceModel, FaceSettings

from .common import (
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

DIM = 512


def write_proxy_pack(folder: Path) -> Path:
    """The tiny pack's graphs with buffalo_l-sized compute added (see the module docstring)."""
    import torch
    import torchvision

    class Zero(torch.nn.Module):
        """A network's cost, none of its effect: its output's mean times zero."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).mean() * 0.0

    detector = torch.nn.Sequential(*list(torchvision.models.resnet18().children())[:-2])
    recognizer = torchvision.models.resnet50(num_classes=DIM)
    recognizer.conv1.stride = (1, 1)  # 112 px input costs what 224 px does with the usual stem
    recognizer.maxpool = torch.nn.Identity()
    return write_tiny_face_pack(folder, extra=(Zero(detector), Zero(recognizer)))


def throughput(results: Results, work: Path, seconds: float) -> None:
    shots = [
        [("red", (320, 256)), ("green", (896, 448))],
        [("blue", (640, 320)), ("red", (192, 512))],
    ] * max(1, round(seconds / 6))
    clip = mf.make_face_video(
        work / "faces720.mp4",
        shots,
        shot_seconds=3.0,
        fps=25,
        size=(1280, 720),
        scale=2,
        grain=12,
    )
    duration = 3.0 * len(shots)
    decode_s, frames = timed(lambda: decode_all(clip))
    results.add(
        f"decode every frame ({frames} at 1280x720)",
        f"{decode_s:.2f} s",
        "baseline",
        f"{frames / decode_s:.0f} fps",
    )
    cuts = [3.0 * i for i in range(1, len(shots))]
    times = sample_times(duration, 2.0, [c + 0.04 for c in cuts])
    sample_s, sampled = timed(lambda: sum(1 for _ in frames_along(clip, times)))
    results.add(
        f"decode only the sampled frames ({sampled}: 2/s + keyframes)",
        f"{sample_s:.2f} s",
        f"{decode_s:.2f} s",
        f"{sample_s / decode_s:.2f}x",
    )
    packs = {"tiny test pack": write_tiny_face_pack(work / "tiny")}
    packs["compute proxy for buffalo_l"] = write_proxy_pack(work / "proxy")
    for label, pack in packs.items():
        model = FaceModel(FaceSettings(model=str(pack)), work).load()
        batcher = face_batcher(model)

        def run(model=model, batcher=batcher):
            found, looked = find_faces(frames_along(clip, times), model, batcher, work / "crops")
            batcher.flush()
            return found, looked

        run_s, (found, looked) = timed(run)
        results.add(
            f"faces step, {label} ({len(found)} faces)",
            f"{looked / run_s:.1f} sampled frames/s",
            f"{decode_s:.2f} s decode",
            f"{run_s / decode_s:.2f}x decode; {duration / run_s:.1f}x real time",
        )


def identities(n_tracks: int, seed: int) -> tuple[list[str], np.ndarray, list[int]]:
    """Tracks of known people, harder than clean clusters: people come in look-alike pairs
    (centres 0.4 alike) and each track strays from its person's centre by its own amount
    (similarity to the centre 0.65–0.9, as profile or blurred faces do)."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n_tracks:
        sizes.append(int(rng.integers(3, 14)))
    base = unit(rng.normal(size=(len(sizes), DIM)))
    other = unit(rng.normal(size=(len(sizes), DIM)))
    twins = unit(0.4 * np.roll(base, 1, axis=0) + np.sqrt(1 - 0.4**2) * other)
    centres = np.where((np.arange(len(sizes)) % 2 == 1)[:, None], twins, base)
    truth = np.repeat(np.arange(len(sizes)), sizes)[:n_tracks]
    stray = rng.uniform(0.5, 1.2, size=(n_tracks, 1))  # norm of the deviation
    noise = unit(rng.normal(size=(n_tracks, DIM))) * stray
    x = unit(centres[truth] + noise)
    return [f"t{seed}-{i}" for i in range(n_tracks)], x, truth.tolist()


def precision_recall(assignments, ids, truth) -> tuple[float, float]:
    """Pairwise, counted per person (no n² loop): pairs within found groups vs true groups."""
    found = np.array(
        [assignments[t].person_id if t in assignments else -1 - i for i, t in enumerate(ids)]
    )
    truth = np.asarray(truth)

    def pairs(labels):
        _, counts = np.unique(labels, return_counts=True)
        return int((counts * (counts - 1) // 2).sum())

    joint = found.astype(np.int64) * (truth.max() + 1) + truth
    both = pairs(joint)
    return both / max(pairs(found), 1), both / max(pairs(truth), 1)


def clustering(results: Results, n: int) -> None:
    ids, x, truth = identities(n, seed=n)
    frames = [frozenset({i}) for i in range(n)]
    knn_s, _ = timed(partial(knn_graph, x, 24, 0.5))
    full_s, full = timed(partial(update_people, ids, x, frames, PeopleState(), full=True))
    p, r = precision_recall(full.assignments, ids, truth)
    state = PeopleState(
        assignments=full.assignments,
        names={pid: None for pid in full.centroids},
        centroids=full.centroids,
        next_id=max(full.centroids, default=0) + 1,
    )
    new_ids, new_x, _ = identities(1000, seed=n)  # the same people (same seed), new tracks
    new_ids = [t + "-new" for t in new_ids]
    new_x = unit(new_x + np.random.default_rng(1).normal(scale=0.01, size=new_x.shape))
    all_frames = frames + [frozenset({n + i}) for i in range(1000)]
    inc_s, inc = timed(
        partial(update_people, ids + new_ids, np.vstack([x, new_x]), all_frames, state)
    )
    placed = sum(1 for t in new_ids if t in inc.assignments)
    results.add(
        f"re-cluster {n:,} tracks ({len(set(truth)):,} people)",
        f"{full_s:.1f} s (neighbour graph {knn_s:.1f} s); precision {p:.3f}, recall {r:.3f}",
        f"incremental, 1,000 new tracks: {inc_s:.2f} s ({placed} placed)",
        f"{full_s / inc_s:.0f}x",
    )


def main() -> int:
    parser = make_parser("faces", __doc__)
    parser.add_argument("--quick", action="store_true", help="12 s clip, 10k tracks only")
    add_out(parser, "keep the generated clip and packs here")
    args = parser.parse_args()
    check_out(parser, args.out)
    warnings.simplefilter("ignore")
    results = Results()
    with work_dir(args.out) as work:
        log("throughput")
        throughput(results, work, 12.0 if args.quick else 60.0)
        log("clustering")
        for n in [10_000] if args.quick else [10_000, 100_000]:
            clustering(results, n)
    import insightface
    import onnxruntime

    report = markdown(
        "Faces",
        [
            "Command: `python -m dam_assets_tests.benchmarks.faces"
            + (" --quick`" if args.quick else "`"),
            "Machine: "
            + machine(
                f"insightface {insightface.__version__}", f"onnxruntime {onnxruntime.__version__}"
            ),
        ],
        results,
    )
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())

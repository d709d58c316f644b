"""Library page benchmarks (`dam serve`), each against a baseline from the same run.

Search API: `GET /api/search?q=…` of a real uvicorn server (the app `dam serve` runs, in a
thread of this process, one kept-alive HTTP connection) over a library of 100,000 CLIP frames
(1,000 files of 100 frames, 512-d, IVF_PQ index built by `VectorStore.ensure_index` as
`clip_embeddings` does past `INDEX_MIN_ROWS`), with every file registered and its scenes and
posters in the lake (the page looks them up for each result):

- against the LanceDB query alone (`VectorStore.search` with the query's vector and the
  candidate count `search_moments` asks for): what embedding the words, grouping frames into
  moments, paths, pictures and JSON add to the vector search;
- the text embedding alone (`ClipModel.embed_text`) and `Library.search` without HTTP, to
  show where the difference goes.

CLIP is ViT-B-32 with random weights (no download here: the same compute as trained weights,
only the vectors mean nothing), so the query text finds arbitrary frames.

Proxies (`make_proxy`, the `proxies` asset's work) of camera-like originals that a browser
cannot play: 1080p ProRes 422 HQ and 1080p 10-bit 4:2:2 H.264 (XAVC-like), colour bars under
moving grain, against decoding the original once (`decode_all`, threaded).

    python -m dam_assets_tests.benchmarks.library_page [--frames 100000] [--seconds 4] [--quick]

Progress goes to stderr, the Markdown table (ready for the README) to stdout. Not a test
module: pytest collects nothing here.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import av
import numpy as np
import torch
import uvicorn

from dam_assets.demo.samples import bars_frame
from dam_assets.media.frames import decode_all
from dam_assets.media.proxy import make_proxy
from dam_assets.models.clip import ClipModel, ClipSettings
from dam_assets.storage import Store
from dam_assets.storage.registry import FileStat
from dam_assets.storage.schemas import SCENES, THUMBNAILS, rows_to_table
from dam_assets.web.app import create_app
from dam_assets.web.library import Library, Query
from dam_assets_tests.benchmarks.clip_search import ARCH, write_random_checkpoint
from dam_assets_tests.benchmarks.common import (
    Results,
    add_out,
    check_out,
    environ,
    finish,
    in_turn,
    log,
    machine,
    make_parser,
    markdown,
    ms,
    timed,
    work_dir,
)

DIM = 512
FRAMES_PER_FILE = 100
LIMIT = 24  # the page's default
QUERIES = ("a crowd at night", "dog on a beach", "close-up of hands", "red car in the rain")
REPEATS = 15
GRAIN = 10


# -- search ---------------------------------------------------------------------------------------
def build_library(store: Store, model_id: str, frames: int) -> bool:
    """`frames` random unit vectors over frames/100 registered files with scenes and posters."""
    files = frames // FRAMES_PER_FILE
    checksums = [f"{i:064x}" for i in range(1, files + 1)]
    now = time.time()
    store.registry.record_files(
        (FileStat(f"/library/day{i // 100:02d}/clip_{i:05d}.mp4", 10**8, 1, i, 1), ck, None,
         "video") for i, ck in enumerate(checksums)
    )  # fmt: skip
    rng = np.random.default_rng(0)
    rows = []
    for i in range(frames):
        vector = rng.standard_normal(DIM, dtype=np.float32)
        rows.append({
            "checksum": checksums[i // FRAMES_PER_FILE], "time_s": float(i % FRAMES_PER_FILE),
            "scene_index": (i % FRAMES_PER_FILE) // 10, "source": "interval", "thumbnail": "",
            "model_id": model_id, "vector": vector / np.linalg.norm(vector),
        })  # fmt: skip
    store.vectors.replace(model_id, checksums, rows, dim=DIM)
    build_s, built = timed(lambda: store.vectors.ensure_index(dim=DIM))
    log(f"IVF_PQ index built in {build_s:.1f} s" if built else "no index (brute force)")
    thumbs = store.thumbnails_dir
    for ck in checksums:
        folder = store.media_dir(thumbs, ck)
        scenes = [
            {"checksum": ck, "scene_index": s, "start_s": 10.0 * s, "end_s": 10.0 * s + 10,
             "start_frame": 250 * s, "end_frame": 250 * s + 250, "duration_s": 10.0, "fps": 25.0,
             "detector": "content", "params_json": "{}",
             "keyframe_path": str(folder / f"scene_{s:04d}.jpg"), "keyframe_time_s": 10.0 * s,
             "keyframe_score": 1.0}
            for s in range(10)
        ]  # fmt: skip
        store.lake.write_unit("scenes", ck, rows_to_table(SCENES, scenes))
        poster = {"checksum": ck, "kind": "poster", "size_label": "small", "time_s": 1.0,
                  "width": 320, "height": 180, "path": str(folder / "poster.jpg")}  # fmt: skip
        store.lake.write_unit("thumbnails", ck, rows_to_table(THUMBNAILS, [poster]))
    for table in ("scenes", "thumbnails"):
        store.lake.compact(table)
    store.refresh_catalog(force=True)
    log(f"library: {frames:,} frames over {files:,} files in {time.time() - now:.0f} s")
    return built


def serve(app) -> tuple[uvicorn.Server, int]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, port


def bench_search(work: Path, frames: int, results: Results) -> None:
    log(f"search: writing a random-weight {ARCH} checkpoint (setup)")
    checkpoint, _ = write_random_checkpoint(work / "models")
    with environ(DAM_CLIP_MODEL=ARCH, DAM_CLIP_PRETRAINED=str(checkpoint)):
        store = Store(work / "data")
        model = ClipModel(ClipSettings(model=ARCH, pretrained=str(checkpoint)), store.models_dir)
        model.load()
        log(f"search: building a library of {frames:,} frames (setup)")
        indexed = build_library(store, model.id, frames)
        library = Library(work / "data", clip_model=model)  # loaded once, as `dam serve` keeps it
        server, port = serve(create_app(library))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def api(text: str) -> list[dict]:
            connection.request("GET", f"/api/search?q={quote(text)}&limit={LIMIT}")
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"/api/search answered {response.status}: {body[:300]!r}")
            return json.loads(body)["results"]

        vectors = {q: model.embed_text([q])[0] for q in QUERIES}
        candidates = max(LIMIT * 10, 50)  # what search_moments asks LanceDB for

        def lance(text: str) -> list[dict]:
            return store.vectors.search(vectors[text], model.id, limit=candidates)

        def direct(text: str) -> list[dict]:
            return library.search(Query(q=text, limit=LIMIT))

        def embed(text: str):
            return model.embed_text([text])

        steps = {"api": api, "lance": lance, "direct": direct, "embed": embed}
        for fn in steps.values():  # warm-up: caches, the catalog views, the index
            fn(QUERIES[0])
        times: dict[str, list[float]] = {k: [] for k in steps}
        for rep in range(1, REPEATS + 1):
            text = QUERIES[rep % len(QUERIES)]
            for name in in_turn(steps, rep):
                seconds, out = timed(lambda f=steps[name], t=text: f(t))
                times[name].append(seconds)
                if name == "api" and not (0 < len(out) <= LIMIT and "thumbnail" in out[0]):
                    raise RuntimeError(f"/api/search gave {len(out)} moments")
        connection.close()
        server.should_exit = True
    med = {k: statistics.median(v) for k, v in times.items()}
    base = f"LanceDB query alone: {ms(med['lance'])}"
    label = f"{frames:,} frames, {frames // FRAMES_PER_FILE:,} files"
    results.add(
        f"`GET /api/search?q=…` ({label}, limit {LIMIT})",
        ms(med["api"]),
        base,
        f"{med['api'] / med['lance']:.1f}× the LanceDB query",
    )
    results.add(
        "`Library.search` (no HTTP)",
        ms(med["direct"]),
        base,
        f"{med['direct'] / med['lance']:.1f}×",
    )
    results.add("`ClipModel.embed_text` (one query)", ms(med["embed"]), base,
                f"{med['embed'] / med['lance']:.1f}×")  # fmt: skip
    results.notes.append(
        f"Search: median of {REPEATS} queries per step (steps in alternating order) after one"
        f" warm-up; LanceDB asked for {max(LIMIT * 10, 50)} candidates as `search_moments` does;"
        + (
            " IVF_PQ index (refine ×10);"
            if indexed
            else " no index (brute force, under `INDEX_MIN_ROWS`);"
        )
        + f" torch threads {torch.get_num_threads()}."
    )


# -- proxies --------------------------------------------------------------------------------------
def camera_clip(path: Path, codec: str, pix_fmt: str, seconds: float, size=(1920, 1080)) -> Path:
    """Bars under moving grain (sensor noise costs what real footage costs to code), streamed
    to the encoder frame by frame."""
    width, height = size
    rng = np.random.default_rng(1)
    fps = 25
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"profile": "3"} if codec == "prores_ks" else {"preset": "veryfast"}
        for i in range(round(seconds * fps)):
            noise = rng.integers(-GRAIN, GRAIN + 1, (height, width, 1), dtype=np.int16)
            img = np.clip(bars_frame(width, height, i) + noise, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def bench_proxies(work: Path, seconds: float, results: Results) -> None:
    sources = {
        "ProRes 422 HQ 1080p": ("prores_ks", "yuv422p10le", "prores.mov"),
        "H.264 10-bit 4:2:2 1080p (XAVC-like)": ("libx264", "yuv422p10le", "xavc.mp4"),
    }
    for label, (codec, pix_fmt, name) in sources.items():
        log(f"proxies: generating {seconds:g} s of {label} (setup)")
        source = camera_clip(work / name, codec, pix_fmt, seconds)
        decode, proxy = [], []
        for rep in range(1, 4):
            for step in in_turn(("decode", "proxy"), rep):
                if step == "decode":
                    decode.append(timed(lambda s=source: decode_all(s))[0])
                else:
                    made = make_proxy(source, work / f"{name}.proxy.mp4")
                    proxy.append(made.seconds)
        d, p = statistics.median(decode), statistics.median(proxy)
        results.add(
            f"proxy of {seconds:g} s {label} → {made.width}x{made.height} H.264",
            f"{p:.2f} s ({seconds / p:.1f}× real time, {made.bytes / 1e3:,.0f} kB)",
            f"one decode: {d:.2f} s ({source.stat().st_size / 1e6:.0f} MB original)",
            f"{p / d:.2f}× one decode",
        )
    results.notes.append(
        "Proxies: median of 3 passes, decode and proxy in alternating order; video only (an"
        " original's audio adds an AAC encode, small next to the picture)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("library_page", __doc__)
    parser.add_argument("--frames", type=int, default=100_000, help="CLIP frames (100000)")
    parser.add_argument("--seconds", type=float, default=4.0, help="proxy source length (4)")
    parser.add_argument("--quick", action="store_true", help="10,000 frames, 2 s sources")
    add_out(parser, "keep the generated library and clips here")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    frames, seconds = (10_000, 2.0) if args.quick else (args.frames, args.seconds)
    results = Results()
    with work_dir(args.out) as work:
        bench_search(work / "search", frames, results)
        bench_proxies(work, seconds, results)
    intro = [
        "Command: `python -m dam_assets_tests.benchmarks.library_page"
        + (" --quick" if args.quick else "") + "`",
        f"Machine: {machine(f'PyAV {av.__version__}', f'torch {torch.__version__}')}",
    ]  # fmt: skip
    return finish(markdown("Library page: search API and proxies", intro, results))


if __name__ == "__main__":
    sys.exit(main())

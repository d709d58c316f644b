"""CLIP benchmarks: frame embedding and vector search, each against baselines from the same run.

Embedding (`ClipModel.embed_images`, open_clip ViT-B-32 on the CPU) of generated 1280x720
frames, loaded through `ClipModel.load()` from a local checkpoint:

- against the model's own preprocessing alone (resize, crop, normalize the same images, as
  `embed_images` does): what the network costs beyond the preprocessing it cannot avoid;
- batch 8 against batch 32 (the default `ClipSettings.batch_size`).

No weights can be downloaded here, so the checkpoint is the architecture with random weights
(`create_model_and_transforms("ViT-B-32", pretrained=None)`, saved with `torch.save`): the
compute is the same as with trained weights, only the vectors mean nothing.

Search (`VectorStore.search`, LanceDB, cosine, limit 50) over N random L2-normalized 512-d
vectors, loaded with `VectorStore.replace` in commits of at most 100k rows:

- the load, against writing the same rows with a plain `table.add` (no merge);
- brute force (no index) and after `VectorStore.ensure_index` built IVF_PQ (build timed),
  against numpy brute force on the same matrix (`matrix @ query`, `argpartition` top 50);
  recall@10 against the exact numpy result;
- where brute force stops being fast enough (over 50 ms a query), which is what
  `INDEX_MIN_ROWS` in `dam_assets/storage/vectors.py` should follow.

    python -m dam_assets_tests.benchmarks.clip_search [--sizes 10000,100000,1000000] [--quick]

Progress goes to stderr, the Markdown table (ready for the README) to stdout. Not a test
module: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import lancedb
import numpy as np
import open_clip
import pyarrow as pa
import torch
from PIL import Image

from dam_assets.demo.samples import bars_frame
from dam_assets.models.clip import ClipModel, ClipSettings
from dam_assets.storage.vectors import INDEX_MIN_ROWS, VectorStore, frame_schema
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
    ms,
    timed,
    work_dir,
)

ARCH = "ViT-B-32"
FRAME_SIZE = (1280, 720)
FRAMES = 128
BATCHES = (32, 8)  # the default first: the others are compared with it
DIM = 512
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
CHUNK = 100_000  # rows per `replace` commit
ROWS_PER_FILE = 100  # frames per checksum (partition)
LIMIT = 50
RECALL_AT = 10
QUERIES = 20
BRUTE_BUDGET_S = 15.0  # slow brute-force searches stop after this long (at least MIN_QUERIES)
MIN_QUERIES = 5
NOISE = 0.01  # per component: a query is a stored vector moved by about 0.23 (cosine ~0.97)
FAST_MS = 50.0  # a brute-force search slower than this is not fast enough
SLOW_BUILD_S = 180.0
MODEL_ID = "ViT-B-32/benchmark-random"


# -- results ------------------------------------------------------------------------------------
def count(n: int) -> str:
    """10k, 100k, 1M: short row labels."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


# -- embedding ----------------------------------------------------------------------------------
def make_frames(n: int) -> list[Image.Image]:
    w, h = FRAME_SIZE
    return [Image.fromarray(bars_frame(w, h, i)) for i in range(n)]


def write_random_checkpoint(folder: Path) -> tuple[Path, Callable[[Image.Image], torch.Tensor]]:
    """ViT-B-32 with random weights as a local checkpoint, and the model's eval preprocess."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    path = folder / f"{ARCH}-random.pt"
    torch.save(model.state_dict(), path)
    return path, preprocess


def preprocess_only(
    preprocess: Callable[[Image.Image], torch.Tensor], images: Sequence[Image.Image], batch: int
) -> int:
    """The baseline: exactly the preprocessing `embed_images` does, batch by batch."""
    done = 0
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        done += len(torch.stack([preprocess(im.convert("RGB")) for im in chunk]))
    return done


def bench_embedding(work: Path, frames: int, repeats: int, results: Results) -> None:
    log(f"CLIP: writing a random-weight {ARCH} checkpoint (setup, not a result)")
    checkpoint, preprocess = write_random_checkpoint(work / "models")
    images = make_frames(frames)
    settings = ClipSettings(model=ARCH, pretrained=str(checkpoint))
    load_s, model = timed(lambda: ClipModel(settings, work / "models").load())
    results.add(f"CLIP load (`ClipModel.load`, {ARCH}, local checkpoint, once)", f"{load_s:.2f} s")
    default = settings.batch_size

    def embed_with(batch: int) -> np.ndarray:
        model.settings = replace(settings, batch_size=batch)  # the same loaded network
        return model.embed_images(images)

    log("CLIP: warm-up embedding (not measured)")
    model.embed_images(images[: min(8, frames)])

    embed: dict[int, list[float]] = {b: [] for b in BATCHES}
    pre: list[float] = []
    for rep in range(1, repeats + 1):
        for batch in in_turn(BATCHES, rep):  # no batch size always goes first
            log(f"CLIP pass {rep}/{repeats}: embed {frames} frames, batch {batch}")
            seconds, vectors = timed(lambda b=batch: embed_with(b))
            if vectors.shape != (frames, DIM):
                raise RuntimeError(f"embed_images gave {vectors.shape}, expected {(frames, DIM)}")
            if not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4):
                raise RuntimeError("embed_images returned vectors that are not L2-normalized")
            embed[batch].append(seconds)
        seconds, done = timed(lambda: preprocess_only(preprocess, images, default))
        assert done == frames
        pre.append(seconds)

    pre_s = statistics.median(pre)
    base_s = statistics.median(embed[default])
    baseline = f"preprocess only: {frames / pre_s:,.1f} images/s"
    for batch in BATCHES:
        seconds = statistics.median(embed[batch])
        ratio = f"{seconds / pre_s:.1f}× preprocess time; network {1 - pre_s / seconds:.0%}"
        if batch != default:
            ratio += f"; {base_s / seconds:.2f}× batch-{default} throughput"
        results.add(
            f"CLIP embed (`embed_images`, batch {batch}{', default' if batch == default else ''})",
            f"{frames / seconds:,.1f} images/s ({ms(seconds / frames)}/image)",
            baseline,
            ratio,
        )
    results.notes.append(
        f"CLIP: {frames} generated {FRAME_SIZE[0]}x{FRAME_SIZE[1]} frames (`bars_frame`), median"
        f" of {repeats} pass(es) after an unmeasured warm-up, torch threads"
        f" {torch.get_num_threads()}. Random weights ({ARCH} built with `pretrained=None`, saved"
        " and loaded through `ClipModel.load`): the same compute as trained weights."
    )


# -- search -------------------------------------------------------------------------------------
@dataclass
class SizeResult:
    n: int
    brute_s: float
    numpy_s: float
    indexed_s: float | None = None
    build_s: float | None = None
    recall: float | None = None


def random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, CHUNK):
        block = rng.standard_normal((min(CHUNK, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def make_queries(rng: np.random.Generator, vectors: np.ndarray, k: int) -> np.ndarray:
    picks = rng.choice(len(vectors), size=k, replace=False)
    queries = vectors[picks] + NOISE * rng.standard_normal((k, DIM), dtype=np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def checksum(n: int, i: int) -> str:
    return f"bench{n}-{i // ROWS_PER_FILE:07d}"


def chunk_rows(n: int, vectors: np.ndarray, start: int) -> tuple[list[str], list[dict]]:
    """One commit's worth: CHUNK rows, ROWS_PER_FILE to a checksum, none shared with another
    chunk (CHUNK is a multiple of ROWS_PER_FILE)."""
    stop = min(start + CHUNK, n)
    rows = [
        {
            "checksum": checksum(n, i),
            "time_s": float(i % ROWS_PER_FILE),
            "scene_index": i % ROWS_PER_FILE,
            "source": "interval",
            "thumbnail": "",
            "model_id": MODEL_ID,
            "vector": vectors[i],
        }
        for i in range(start, stop)
    ]
    return sorted({r["checksum"] for r in rows}), rows


def row_key(n: int, i: int) -> tuple[str, float]:
    return checksum(n, i), float(i % ROWS_PER_FILE)


def numpy_search(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The baseline: exact cosine (dot product of unit vectors), top LIMIT, best first."""
    scores = vectors @ query
    top = np.argpartition(-scores, LIMIT)[:LIMIT]
    return top[np.argsort(-scores[top])]


def load_plain(path: Path, n: int, vectors: np.ndarray) -> None:
    """The load baseline: the same rows (with the same row ids) through `table.add`."""
    db = lancedb.connect(str(path))
    table = db.create_table("plain", schema=frame_schema(DIM))
    for start in range(0, n, CHUNK):
        _, rows = chunk_rows(n, vectors, start)
        for row in rows:
            ms = round(row["time_s"] * 1000)
            row["row_id"] = f"{MODEL_ID}|{row['checksum']}|{row['source']}|{ms}"
        table.add(pa.Table.from_pylist(rows, schema=frame_schema(DIM)))


def store_search(
    store: VectorStore, queries: np.ndarray, budget_s: float | None
) -> tuple[list[float], list[list[dict]]]:
    """Time `VectorStore.search` per query after one unmeasured warm-up search; with a budget,
    stop once it is spent (but not before MIN_QUERIES)."""
    store.search(queries[-1], MODEL_ID, limit=LIMIT)
    times: list[float] = []
    found: list[list[dict]] = []
    for query in queries:
        seconds, hits = timed(lambda q=query: store.search(q, MODEL_ID, limit=LIMIT))
        times.append(seconds)
        found.append(hits)
        if budget_s is not None and len(times) >= MIN_QUERIES and sum(times) > budget_s:
            break
    return times, found


def recall_at(n: int, found: list[list[dict]], exact: list[np.ndarray], k: int) -> float:
    hits = 0
    for got, want in zip(found, exact, strict=False):
        got_keys = {(h["checksum"], float(h["time_s"])) for h in got[:k]}
        hits += len(got_keys & {row_key(n, int(i)) for i in want[:k]})
    return hits / (k * len(found))


def bench_size(
    n: int, rng: np.random.Generator, work: Path, max_index_rows: int, results: Results
) -> SizeResult:
    label = count(n)
    log(f"search {label}: generating {n:,} random unit vectors (setup, not a result)")
    vectors = random_unit(rng, n)
    queries = make_queries(rng, vectors, QUERIES)

    numpy_search(vectors, queries[-1])  # warm-up
    numpy_times: list[float] = []
    exact: list[np.ndarray] = []
    for query in queries:
        seconds, top = timed(lambda q=query: numpy_search(vectors, q))
        numpy_times.append(seconds)
        exact.append(top)
    numpy_s = statistics.median(numpy_times)
    numpy_base = f"numpy `matrix @ q` + argpartition: {ms(numpy_s)}"

    store = VectorStore(work / f"lancedb_{label}")
    commits = -(-n // CHUNK)
    log(f"search {label}: loading through `replace` ({commits} commit(s))")
    load_s = 0.0
    for start in range(0, n, CHUNK):
        checksums, rows = chunk_rows(n, vectors, start)
        seconds, _ = timed(lambda c=checksums, r=rows: store.replace(MODEL_ID, c, r, dim=DIM))
        load_s += seconds
    if store.count(MODEL_ID) != n:
        raise RuntimeError(f"{label}: {store.count(MODEL_ID)} rows stored, expected {n}")
    log(f"search {label}: the same rows through plain `table.add` (load baseline)")
    plain_dir = work / f"plain_{label}"
    plain_s, _ = timed(lambda: load_plain(plain_dir, n, vectors))
    shutil.rmtree(plain_dir, ignore_errors=True)
    results.add(
        f"Load {label} (`replace`, {commits} commit(s) of ≤{count(CHUNK)})",
        f"{n / load_s:,.0f} rows/s ({load_s:.1f} s)",
        f"plain `table.add`: {n / plain_s:,.0f} rows/s ({plain_s:.1f} s)",
        f"{load_s / plain_s:.2f}× add time",
    )

    log(f"search {label}: brute force (no index)")
    times, found = store_search(store, queries, BRUTE_BUDGET_S)
    brute_s = statistics.median(times)
    brute_recall = recall_at(n, found, exact, RECALL_AT)
    verdict = "fast enough" if brute_s * 1000 <= FAST_MS else f"over {FAST_MS:g} ms"
    results.add(
        f"Search {label}, brute force (`search`, no index)",
        f"{ms(brute_s)} median of {len(times)}, recall@{RECALL_AT} {brute_recall:.2f} ({verdict})",
        numpy_base,
        f"{brute_s / numpy_s:.1f}× numpy",
    )
    result = SizeResult(n, brute_s, numpy_s)

    if n > max_index_rows:
        reason = f"skipped: {n:,} rows > --max-index-rows {max_index_rows:,}"
        log(f"search {label}: IVF_PQ {reason}")
        results.add(f"IVF_PQ build {label} (`ensure_index`)", reason)
    else:
        log(f"search {label}: building IVF_PQ (`ensure_index(min_rows=0)`)")
        build_s, built = timed(lambda: store.ensure_index(min_rows=0))
        if not built:
            raise RuntimeError(f"{label}: ensure_index built no index")
        slow = f"; over {SLOW_BUILD_S:g} s" if build_s > SLOW_BUILD_S else ""
        results.add(
            f"IVF_PQ build {label} (`ensure_index`)",
            f"{build_s:.1f} s",
            f"load (`replace`): {load_s:.1f} s",
            f"{build_s / load_s:.1f}× load time{slow}",
        )
        log(f"search {label}: with the index")
        times, found = store_search(store, queries, None)
        indexed_s = statistics.median(times)
        recall = recall_at(n, found, exact, RECALL_AT)
        top1 = sum(
            bool(got) and (got[0]["checksum"], float(got[0]["time_s"])) == row_key(n, int(w[0]))
            for got, w in zip(found, exact, strict=True)
        )
        results.add(
            f"Search {label}, IVF_PQ (`search`, index)",
            f"{ms(indexed_s)} median of {len(times)}, recall@{RECALL_AT} {recall:.2f},"
            f" top-1 exact {top1}/{len(times)}",
            f"{numpy_base}; brute force: {ms(brute_s)}",
            f"{indexed_s / numpy_s:.1f}× numpy; {brute_s / indexed_s:.1f}× faster than brute",
        )
        result = replace(result, indexed_s=indexed_s, build_s=build_s, recall=recall)
    shutil.rmtree(store.path, ignore_errors=True)
    return result


def crossing(sizes: Sequence[SizeResult]) -> float | None:
    """Rows at which brute force reaches FAST_MS, from a straight line (latency = a + b·N)
    through the two measured sizes around it (or the nearest two; through the origin with one
    size). None when the line never gets there."""
    points = sorted((s.n, s.brute_s * 1000) for s in sizes)
    if len(points) == 1:
        ((n, t),) = points
        return n * FAST_MS / t
    pairs = list(itertools.pairwise(points))
    pair = next((p for p in pairs if p[0][1] <= FAST_MS < p[1][1]), None)
    if pair is None:
        pair = pairs[0] if points[0][1] > FAST_MS else pairs[-1]
    (n0, t0), (n1, t1) = pair
    slope = (t1 - t0) / (n1 - n0)
    if slope <= 0:
        return None
    return max(0.0, n0 + (FAST_MS - t0) / slope)


def nice_floor(value: float) -> int:
    """The largest 1, 2 or 5 × 10^k not above value."""
    if value < 1:
        return 0
    power = 10 ** math.floor(math.log10(value))
    return max(m * power for m in (1, 2, 5) if m * power <= value)


def recommend(sizes: Sequence[SizeResult], results: Results) -> None:
    fast = [s.n for s in sizes if s.brute_s * 1000 <= FAST_MS]
    slow = [s.n for s in sizes if s.brute_s * 1000 > FAST_MS]
    measured = ", ".join(f"{count(s.n)} {ms(s.brute_s)}" for s in sizes)
    at = crossing(sizes)
    if at is None:
        verdict = f"brute force never reaches {FAST_MS:g} ms on these sizes ({measured})"
        advice, ratio = "keep", "—"
    else:
        suggested = nice_floor(at)
        where = "interpolated" if fast and slow else "extrapolated"
        verdict = f"brute force passes {FAST_MS:g} ms at about {at:,.0f} rows ({where}; {measured})"
        if fast:
            verdict += f"; fast enough up to the {count(max(fast))} measured"
        advice = f"**INDEX_MIN_ROWS ≈ {suggested:,}**"
        if suggested == INDEX_MIN_ROWS:
            ratio = "supports the current value"
        else:
            direction = "lower" if suggested < INDEX_MIN_ROWS else "higher"
            ratio = f"{direction} than current ({INDEX_MIN_ROWS:,})"
    indexed = [s for s in sizes if s.indexed_s is not None]
    if at is not None and indexed:
        near = min(indexed, key=lambda s: abs(math.log(s.n / max(at, 1))))
        advice += (
            f" (at {count(near.n)} the index answers in {ms(near.indexed_s)}, recall@"
            f"{RECALL_AT} {near.recall:.2f}, after a {near.build_s:.0f} s build)"
        )
    results.add(
        f"Where brute force stops being fast enough (> {FAST_MS:g} ms/query)",
        f"{verdict}. Recommend {advice}",
        f"`INDEX_MIN_ROWS` = {INDEX_MIN_ROWS:,}",
        ratio,
    )


def bench_search(
    sizes: Sequence[int], work: Path, max_index_rows: int, results: Results
) -> list[SizeResult]:
    rng = np.random.default_rng(0)
    out = [bench_size(n, rng, work, max_index_rows, results) for n in sizes]
    recommend(out, results)
    results.notes.append(
        f"Search: `VectorStore.search(vector, model_id, limit={LIMIT})` (cosine, model-id"
        f" prefilter, opening the table per call as the app does); queries are stored vectors"
        f" plus Gaussian noise ({NOISE} per component), median after one unmeasured warm-up;"
        f" brute force stops after {BRUTE_BUDGET_S:g} s of queries (at least {MIN_QUERIES})."
        f" {ROWS_PER_FILE} rows per checksum. Warm page cache."
    )
    results.notes.append(
        f"Recall@{RECALL_AT} is against the exact numpy top {RECALL_AT}. Uniform random vectors"
        " have no neighbourhoods: apart from the query's own source vector, the true top 10 are"
        " near-ties, which product quantization cannot order, so IVF_PQ recall here is a"
        " pessimistic floor; on clustered real embeddings (frames of one shot) it should be"
        " higher (not measured here)."
        " IVF_PQ uses `ensure_index`'s LanceDB defaults (no tuning of partitions or nprobes)."
    )
    return out


# -- report -------------------------------------------------------------------------------------
def report(results: Results, args: argparse.Namespace) -> str:
    sizes = ",".join(str(n) for n in args.sizes)
    versions = (
        f"torch {torch.__version__}",
        f"open_clip {open_clip.__version__}",
        f"LanceDB {lancedb.__version__}",
        f"numpy {np.__version__}",
    )
    intro = [
        f"Embedding: open_clip {ARCH} (random weights) on the CPU, {args.frames} frames of"
        f" {FRAME_SIZE[0]}x{FRAME_SIZE[1]}.",
        f"Search: {', '.join(count(n) for n in args.sizes)} random unit {DIM}-d vectors in"
        f" LanceDB, limit {LIMIT}, {QUERIES} queries.",
        f"Machine: {machine(*versions)}.",
        f"Command: `python -m dam_assets_tests.benchmarks.clip_search --sizes {sizes}"
        f" --frames {args.frames} --repeats {args.repeats}"
        f" --max-index-rows {args.max_index_rows}`",
    ]
    return markdown("CLIP embedding and search benchmark", intro, results)


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part.replace("_", "")) for part in text.split(",") if part}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not sizes or sizes[0] < 2 * LIMIT:
        raise argparse.ArgumentTypeError(f"sizes must be at least {2 * LIMIT}")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("clip_search", __doc__)
    default_sizes = ",".join(str(n) for n in SIZES)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=SIZES,
        help=f"vector counts, comma-separated ({default_sizes})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {','.join(str(n) for n in QUICK_SIZES)} only (overrides --sizes)",
    )
    parser.add_argument("--frames", type=int, default=FRAMES, help=f"frames to embed ({FRAMES})")
    parser.add_argument("--repeats", type=int, default=2, help="embedding passes; median (2)")
    parser.add_argument(
        "--max-index-rows",
        type=int,
        default=max(SIZES),
        help=f"skip the IVF_PQ build above this many rows ({max(SIZES)})",
    )
    parser.add_argument(
        "--skip-embedding", action="store_true", help="search benchmarks only (no CLIP model)"
    )
    add_out(parser, "keep the work folder here (new or empty); default: temp")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = QUICK_SIZES
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    check_out(parser, args.out)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results()
    with work_dir(args.out) as work:
        if not args.skip_embedding:
            bench_embedding(work, args.frames, args.repeats, results)
        bench_search(args.sizes, work, args.max_index_rows, results)
    return finish(report(results, args))


if __name__ == "__main__":
    sys.exit(main())

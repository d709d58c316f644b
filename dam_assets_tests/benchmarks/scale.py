"""Scale benchmark: discovery, partitions, sensor tick, `dam status` and the UI at N files.

N tiny files (a few bytes each, distinct contents, .jpg/.mp4/.mov/.wav) spread over N/500
folders, mtimes backdated an hour so they are settled. Measured, each against a baseline from
the same run where one makes sense:

- building the tree (setup, not a result);
- `discovery.scan` of all of it: the first scan (hashes everything) and a second one with
  nothing new, against `os.walk` + `os.stat` over the same tree;
- `add_dynamic_partitions("media", N keys)` and `get_dynamic_partitions` on a SQLite
  DagsterInstance, against plain `sqlite3` inserting / reading the same keys;
- a full `media_storage_sensor` tick with nothing new (goal: <= 5 s);
- `dam status --json` (in process and as a subprocess), `get_status_by_partition` for one
  asset, `export_registry` and catalog queries;
- `dagster-webserver` on loopback: start-up and GraphQL partition health of `probe`.

    python -m dam_assets_tests.benchmarks.scale [--files N] [--quick] [--repeats N]

Progress goes to stderr, the Markdown table (ready for the README) to stdout. Not a test
module: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
from dam_assets_tests.webserver import free_port, graphql, wait_for_server, webserver

FILES = 100_000
QUICK_FILES = 10_000
PER_FOLDER = 500
EXTENSIONS = (".jpg", ".mp4", ".mov", ".wav")
BACKDATE_S = 3600.0
TICK_GOAL_S = 5.0
PARTITIONS = "media"

STATUS_QUERY = """
query {
  assetNodeOrError(assetKey: {path: ["probe"]}) {
    ... on AssetNode {
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses {
          materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions
        }
      }
    }
  }
}
"""
STATS_QUERY = """
query {
  assetNodeOrError(assetKey: {path: ["probe"]}) {
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    }
  }
}
"""
VERSION_QUERY = "query { version }"


# -- the tree (setup) ---------------------------------------------------------------------------
def build_tree(root: Path, files: int) -> int:
    """`files` tiny files with distinct contents over files/PER_FOLDER folders, mtimes backdated
    so discovery takes them as settled. Returns the number of folders."""
    when = time.time() - BACKDATE_S
    folders = max(1, -(-files // PER_FOLDER))
    for i in range(files):
        folder = root / f"card_{i % folders:04d}"
        if i < folders:
            folder.mkdir(parents=True)
        path = folder / f"clip_{i:07d}{EXTENSIONS[i % len(EXTENSIONS)]}"
        path.write_bytes(f"dam {i}\n".encode())
        os.utime(path, (when, when))
    return folders


def walk_stat(root: Path) -> int:
    """Baseline: list and stat every file, which any discovery must do at least."""
    count = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


# -- helpers ------------------------------------------------------------------------------------
def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        seconds, out = timed(fn)
        times.append(seconds)
    return statistics.median(times), out


def secs(seconds: float) -> str:
    return f"{seconds:,.2f} s" if seconds >= 1 else ms(seconds)


def ratio(value: float, base: float, what: str) -> str:
    return f"{value / base:,.1f}× {what}" if base > 0 else "—"


def sqlite_baseline(path: Path, keys: list[str], repeats: int) -> tuple[float, float]:
    """Plain sqlite3: insert the keys in one transaction, then read them back (median)."""
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL, key TEXT UNIQUE)")

        def insert() -> None:
            with con:
                con.executemany(
                    "INSERT INTO p (name, key) VALUES (?, ?)", ((PARTITIONS, k) for k in keys)
                )

        insert_s, _ = timed(insert)
        read_s, rows = median_time(
            lambda: con.execute("SELECT key FROM p WHERE name = ?", (PARTITIONS,)).fetchall(),
            repeats,
        )
        assert len(rows) == len(keys)
        return insert_s, read_s
    finally:
        con.close()


# -- the steps ----------------------------------------------------------------------------------
def run(work: Path, args: argparse.Namespace, results: Results) -> None:
    root, data_dir, home = work / "watched", work / "data", work / "dagster_home"
    data_dir.mkdir()
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    n = args.files
    env = {
        "DAGSTER_HOME": str(home),
        "DAM_DATA_DIR": str(data_dir),
        "DAM_RIGS": str(work / "no-rigs.yaml"),  # missing: no rig roots are watched
        "DAM_WATCH_ROOTS": str(root),
    }
    with environ(**env):
        _steps(work, root, data_dir, n, args, results)


def _steps(
    work: Path, root: Path, data_dir: Path, n: int, args: argparse.Namespace, results: Results
) -> None:
    from dagster import AssetKey, DagsterInstance, SkipReason, build_sensor_context

    from dam_assets import cli
    from dam_assets.defs.common.partitions import media_partitions
    from dam_assets.defs.indexing.sensor import media_storage_sensor
    from dam_assets.defs.resources import DamStorage, MediaDiscovery
    from dam_assets.library.discovery import scan
    from dam_assets.storage import Store

    reps = args.repeats

    # 1. the tree
    log(f"building {n:,} files under {root}")
    build_s, folders = timed(lambda: build_tree(root, n))
    results.add(
        f"Setup: build the tree ({n:,} files, {folders:,} folders)", f"{secs(build_s)} (setup)"
    )

    # 2. discovery
    log("baseline: os.walk + os.stat (once to warm the cache, then timed)")
    walk_stat(root)
    walk_s, counted = median_time(lambda: walk_stat(root), reps)
    assert counted == n, counted
    results.add(f"Baseline: `os.walk` + `os.stat` over {n:,} files", secs(walk_s))
    log("first scan (hashes everything)")
    store = Store(data_dir)
    first_s, report = timed(lambda: scan([root], store, settle_seconds=0))
    assert report.seen == n and report.hashed == n and len(report.checksums) == n, report.seen
    walk_str = f"os.walk + stat: {secs(walk_s)}"
    results.add(
        f"`scan` first (hashes all {n:,})",
        f"{secs(first_s)} ({n / first_s:,.0f} files/s)",
        walk_str,
        ratio(first_s, walk_s, "walk + stat"),
    )
    log("second scan (nothing new)")
    second_s, again = median_time(lambda: scan([root], Store(data_dir), settle_seconds=0), reps)
    assert again.hashed == 0 and again.seen == n, (again.hashed, again.seen)
    results.add(
        "`scan` again, nothing new",
        secs(second_s),
        walk_str,
        ratio(second_s, walk_s, "walk + stat"),
    )
    checksums = list(report.checksums)

    # 3. partitions
    instance = DagsterInstance.get()
    base_insert, base_read = sqlite_baseline(work / "baseline.sqlite", checksums, reps)
    log(f"add_dynamic_partitions({PARTITIONS!r}, {n:,} keys)")
    add_s, _ = timed(lambda: instance.add_dynamic_partitions(PARTITIONS, checksums))
    results.add(
        f"`add_dynamic_partitions` ({n:,} keys)",
        secs(add_s),
        f"sqlite3 executemany insert: {secs(base_insert)}",
        ratio(add_s, base_insert, "sqlite3"),
    )
    get_first_s, _ = timed(lambda: instance.get_dynamic_partitions(PARTITIONS))
    get_s, keys = median_time(lambda: instance.get_dynamic_partitions(PARTITIONS), reps)
    assert len(keys) == n, len(keys)
    results.add(
        f"`get_dynamic_partitions` ({n:,} keys)",
        f"{secs(get_s)} (first call {secs(get_first_s)})",
        f"sqlite3 SELECT: {secs(base_read)}",
        ratio(get_s, base_read, "sqlite3"),
    )

    # 4. a sensor tick with nothing new
    def tick() -> object:
        context = build_sensor_context(
            instance=instance,
            resources={
                "storage": DamStorage(data_dir=str(data_dir)),
                "discovery": MediaDiscovery(watch_roots=str(root), settle_seconds=0),
            },
        )
        return media_storage_sensor(context)

    log("sensor tick, nothing new")
    tick_s, outcome = median_time(tick, reps)
    assert isinstance(outcome, SkipReason), outcome
    verdict = "meets" if tick_s <= TICK_GOAL_S else "**misses**"
    results.add(
        "`media_storage_sensor` tick, nothing new",
        f"{secs(tick_s)} ({verdict} the ≤ {TICK_GOAL_S:g} s goal)",
        walk_str,
        ratio(tick_s, walk_s, "walk + stat"),
    )
    results.notes.append(f"Sensor tick said: {outcome.skip_message}")

    # 5. dam status and the catalog
    log("get_status_by_partition(probe)")
    part_s, _ = median_time(
        lambda: instance.get_status_by_partition(AssetKey("probe"), keys, media_partitions), reps
    )
    get_str = f"get_dynamic_partitions: {secs(get_s)}"
    results.add(
        f"`get_status_by_partition` (probe, {n:,} partitions)",
        secs(part_s),
        get_str,
        ratio(part_s, get_s, "get_dynamic_partitions"),
    )

    def status() -> list:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = cli.main(["status", "--json"])
        assert code == 0, code
        return json.loads(buffer.getvalue())

    log("dam status --json (in process)")
    status_s, rows = median_time(status, reps)
    rows = rows["assets"] if isinstance(rows, dict) and "assets" in rows else rows
    results.add(
        f"`dam status --json` in process ({len(rows)} assets × {n:,})",
        secs(status_s),
        get_str,
        ratio(status_s, get_s, "get_dynamic_partitions"),
    )
    log("dam status --json (subprocess)")
    cmd = [sys.executable, "-m", "dam_assets.cli", "status", "--json"]
    sub_s, done = timed(lambda: subprocess.run(cmd, capture_output=True, check=False))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    ver = [sys.executable, "-m", "dam_assets.cli", "--help"]
    help_s, _ = timed(lambda: subprocess.run(ver, capture_output=True, check=False))
    results.add(
        "`python -m dam_assets.cli status --json` (subprocess, once)",
        secs(sub_s),
        f"`python -m dam_assets.cli --help`: {secs(help_s)}",
        ratio(sub_s, help_s, "`--help`"),
    )

    log("export_registry + catalog queries")
    export_s, _ = timed(store.export_registry)
    results.add(f"`export_registry` ({n:,} rows, setup for the queries)", secs(export_s))
    store.refresh_catalog()

    def base_count() -> int:
        with contextlib.closing(sqlite3.connect(data_dir / "registry.sqlite")) as con:
            return con.execute("SELECT count(*) FROM files").fetchone()[0]

    base_count_s, counted = median_time(base_count, reps)
    assert counted == n, counted
    count_s, table = median_time(lambda: store.sql("SELECT count(*) n FROM media_files"), reps)
    assert table.column("n")[0].as_py() == n
    reg_str = f"sqlite3 count(*) on the registry: {secs(base_count_s)}"
    results.add(
        "Catalog `SELECT count(*) FROM media_files`",
        secs(count_s),
        reg_str,
        ratio(count_s, base_count_s, "sqlite3"),
    )
    join = (
        "SELECT m.media_kind, count(*) AS files, count(p.checksum) AS probed"
        " FROM media_files m LEFT JOIN probe p USING (checksum) GROUP BY ALL ORDER BY ALL"
    )
    join_s, grouped = median_time(lambda: store.sql(join), reps)
    assert sum(grouped.column("files").to_pylist()) == n
    results.add(
        "Catalog join + group (media_files ⟕ probe by media_kind)",
        secs(join_s),
        reg_str,
        ratio(join_s, base_count_s, "sqlite3"),
    )

    # 6. the UI
    if args.no_webserver:
        results.notes.append("Webserver step skipped (--no-webserver).")
        return
    port = free_port()
    log(f"starting dagster-webserver on 127.0.0.1:{port}")
    with webserver(port, work / "webserver.log") as proc:
        start = time.perf_counter()
        try:
            wait_for_server(port, proc)
        except (RuntimeError, TimeoutError) as exc:
            tail = (work / "webserver.log").read_text(errors="replace")[-2000:]
            log(f"webserver failed: {exc}\n{tail}")
            results.notes.append(f"Webserver step failed: {exc}")
            return
        ready_s = time.perf_counter() - start
        results.add("Setup: `dagster-webserver` until /server_info answers", f"{secs(ready_s)}")
        graphql(port, VERSION_QUERY)  # warm-up: the code location is loaded lazily
        version_s, _ = median_time(lambda: graphql(port, VERSION_QUERY), reps)
        results.add("GraphQL `{ version }` round trip", secs(version_s))
        part_str = f"get_status_by_partition in process: {secs(part_s)}"
        for label, query in (
            ("GraphQL `assetPartitionStatuses` (probe)", STATUS_QUERY),
            ("GraphQL `partitionStats` (probe)", STATS_QUERY),
        ):
            log(label)
            try:
                q_s, data = median_time(lambda q=query: graphql(port, q), reps)
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                results.add(label, f"failed: {exc}"[:200])
                continue
            node = data["assetNodeOrError"]
            if "assetPartitionStatuses" in node:
                counts = {k: len(v) for k, v in node["assetPartitionStatuses"].items()}
                detail = ", ".join(
                    f"{k.removesuffix('Partitions')} {v:,}" for k, v in counts.items()
                )
            else:
                detail = ", ".join(f"{k} {v:,}" for k, v in node["partitionStats"].items())
            results.add(f"{label}: {detail}", secs(q_s), part_str, ratio(q_s, part_s, "in process"))


# -- report -------------------------------------------------------------------------------------
def report(results: Results, args: argparse.Namespace) -> str:
    import dagster

    intro = [
        f"{args.files:,} tiny files (a few bytes, distinct contents, {'/'.join(EXTENSIONS)}) in"
        f" folders of {PER_FOLDER}, mtimes backdated {BACKDATE_S:g} s; a SQLite Dagster instance"
        " in a fresh DAGSTER_HOME; no rigs. Times are medians of"
        f" {args.repeats} (the first scan, `add_dynamic_partitions`, the subprocess and"
        " `export_registry` run once).",
        f"Machine: {machine(f'Dagster {dagster.__version__}')}.",
        f"Command: `python -m dam_assets_tests.benchmarks.scale --files {args.files}"
        f" --repeats {args.repeats}`",
    ]
    return markdown("Scale benchmark", intro, results)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("scale", __doc__)
    parser.add_argument("--files", type=int, default=FILES, help=f"files in the tree ({FILES})")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_FILES:,} files (overrides --files)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; median (3)")
    parser.add_argument(
        "--no-webserver", action="store_true", help="skip starting dagster-webserver"
    )
    add_out(parser, "keep the tree, data and instance here instead of a temp folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.files = QUICK_FILES
    if args.files < 1 or args.repeats < 1:
        parser.error("--files and --repeats must be positive")
    check_out(parser, args.out)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results()
    with work_dir(args.out) as work:
        run(work, args, results)
    return finish(report(results, args))


if __name__ == "__main__":
    sys.exit(main())

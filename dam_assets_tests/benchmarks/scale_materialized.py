"""Scale benchmark at N materialized files: status, nightly, sensor, UI and ingest on top.

An instance in which N partitions are materialized for every per-file asset, with the events
real runs leave (a planned and a materialization event per asset and partition with the
code-version and data-version tags, check planned and evaluation events per run, run records
and status events; index runs emit no observations), built by `materialized.py` from real
runs of real media and cached under --cache (key: the build's version, N, Dagster's version and
the assets' code versions). Each run measures a copy of it. Every step stands next to a plain
query of the same storage in the same run (sqlite3 on the instance's own index shard), or, for
`dam ingest`, the same ingest into an empty instance:

- `dam status --json`, in process and as a command (goal <= 1 s);
- the nightly schedule's evaluation (goal <= 10 s): the first one (nothing remembered yet),
  one with nothing new, and one after a code version changed;
- the storage sensor's tick with nothing new;
- the UI's GraphQL for an asset's partition statuses (goal <= 2 s) and partition counts;
- `dam ingest` of 50 new files on top.

    python -m dam_assets_tests.benchmarks.scale_materialized [--files N] [--quick]

Progress goes to stderr, the Markdown table to stdout. Not a test module.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dam_assets_tests.benchmarks import materialized as mat
from dam_assets_tests.benchmarks.common import (
    Results,
    environ,
    finish,
    log,
    machine,
    make_parser,
    markdown,
    timed,
    work_dir,
)
from dam_assets_tests.benchmarks.scale import (
    STATS_QUERY,
    STATUS_QUERY,
    VERSION_QUERY,
    build_tree,
    median_time,
    ratio,
    secs,
)

BUILD_VERSION = "2"
FILES = 100_000
QUICK_FILES = 10_000
CACHE = Path("/tmp/dam-scale-materialized")
INGEST_FILES = 50
GOALS = {"status": 1.0, "nightly": 10.0, "graphql": 2.0}


def now() -> datetime:
    return datetime.now(UTC)


def verdict(seconds: float, goal: str) -> str:
    met = "meets" if seconds <= GOALS[goal] else "**misses**"
    return f"{secs(seconds)} ({met} ≤ {GOALS[goal]:g} s)"


# -- the instance (built once, cached) ----------------------------------------------------------
def code_versions() -> dict[str, str | None]:
    from dam_assets.defs.indexing.jobs import MEDIA_ASSETS

    return {a.key.to_user_string(): a.code_versions_by_key.get(a.key) for a in MEDIA_ASSETS}


def cache_key(files: int) -> str:
    import dagster

    return mat.fingerprint(
        BUILD_VERSION, files, mat.BATCH, mat.FAIL_EVERY, dagster.__version__, code_versions()
    )


def capture(folder: Path) -> list[mat.Template]:
    """The real runs of real media, kept in `folder` for every build: their media, data
    folder (registry, lake) and scratch instance."""
    saved = folder / "templates.json"
    if not saved.exists():
        shutil.rmtree(folder, ignore_errors=True)
        home = folder / "home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text(mat.YAML)
        with environ(DAGSTER_HOME=str(home), DAM_DATA_DIR=str(folder / "data")):
            seconds, templates = timed(
                lambda: mat.capture_templates(home, folder / "data", folder / "media")
            )
        log(f"real template runs in {seconds:.0f} s")
        saved.write_text(json.dumps([vars(t) for t in templates]))
    return [mat.Template(**t) for t in json.loads(saved.read_text())]


def generate(target: Path, captured: Path, files: int) -> dict:
    """Build the instance for `files` partitions at `target` (via a .partial folder)."""
    from dagster import DagsterInstance

    from dam_assets.library.discovery import scan
    from dam_assets.storage import Store

    started = time.perf_counter()
    templates = capture(captured)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    home, data, cards = partial / "dagster_home", partial / "data", partial / "cards"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(mat.YAML)
    shutil.copytree(captured / "data", data)  # the real files' registry rows and lake
    stats: dict[str, Any] = {"files": files}
    with environ(DAGSTER_HOME=str(home), DAM_DATA_DIR=str(data)):
        store = Store(data)
        tiny_n = files - mat.REAL
        log(f"tree of {tiny_n:,} tiny files")
        build_tree(cards, tiny_n)
        report = scan([cards], store, settle_seconds=0)
        assert len(report.checksums) == tiny_n, len(report.checksums)
        paths = {ck: path for path, ck in report.by_path.items()}
        seconds, built = timed(
            lambda: mat.build(captured / "home", home, store, templates, report.checksums, paths)
        )
        stats.update(copy_s=seconds, runs=built.runs, events=built.events)
        log(f"copied {built.runs:,} runs, {built.events:,} events in {seconds:.0f} s")
        with DagsterInstance.from_config(str(home)) as instance:
            seconds, seen = timed(lambda: mat.verify(instance, built))
        stats.update(cold_status_s=seconds, status=seen, failed=len(built.failed))
        log(f"Dagster sees {seen} (cold status cache: {seconds:.1f} s)")
        expected = {"MATERIALIZED": files - len(built.failed), "FAILED": len(built.failed)}
        assert seen["probe"] == expected, (seen["probe"], expected)
        store.export_registry()
        store.refresh_catalog(force=True)
    stats["build_s"] = time.perf_counter() - started
    (partial / "manifest.json").write_text(json.dumps(stats))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return stats


def prepare(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """The cached instance for args.files (built when missing or --rebuild) and the folder of
    the real runs it was made from."""
    captured = args.cache / f"capture-{cache_key(0)}"
    target = args.cache / f"{args.files}-{cache_key(args.files)}"
    manifest = target / "manifest.json"
    if args.rebuild or not manifest.exists():
        log(f"building the instance at {target} (cached for later runs)")
        stats = generate(target, captured, args.files)
        stats["built_now"] = True
        return target, captured, stats
    log(f"reusing the instance at {target}")
    return target, captured, json.loads(manifest.read_text())


def copy_instance(source: Path, work: Path) -> tuple[Path, Path]:
    """A copy of the instance and data folder (the steps change them); the tree stays."""
    home, data = work / "dagster_home", work / "data"
    shutil.copytree(source / "dagster_home", home, symlinks=True)
    shutil.copytree(source / "data", data, symlinks=True)
    return home, data


# -- baselines: plain queries of the same storage ----------------------------------------------
def plain(home: Path, sql: str, params: Sequence = ()) -> Callable[[], list]:
    def query() -> list:
        with contextlib.closing(sqlite3.connect(mat.index_db(home))) as con:
            return con.execute(sql, params).fetchall()

    return query


COUNT_SQL = (
    "SELECT count(DISTINCT partition) FROM event_logs"
    " WHERE asset_key = ? AND dagster_event_type = 'ASSET_MATERIALIZATION'"
)
READ_SQL = (
    "SELECT asset_key, partition, event FROM event_logs"
    " WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
)
ONE_ASSET_SQL = (
    "SELECT DISTINCT partition FROM event_logs"
    " WHERE asset_key = ? AND dagster_event_type = 'ASSET_MATERIALIZATION'"
)
NEWER_SQL = "SELECT count(*) FROM event_logs WHERE dagster_event_type = ? AND id > ?"


# -- the steps ----------------------------------------------------------------------------------
def measure(work: Path, source: Path, captured: Path, home: Path, data: Path, args, results):
    from dagster import DagsterInstance, SkipReason, build_sensor_context

    from dam_assets import cli
    from dam_assets.defs.indexing.sensor import media_storage_sensor
    from dam_assets.defs.resources import DamStorage, MediaDiscovery

    reps = args.repeats
    n = args.files
    instance = DagsterInstance.get()

    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
    from dam_assets.defs.indexing.jobs import MEDIA_ASSETS
    from dam_assets.defs.indexing.status import read_versions
    from dam_assets.storage import Store

    store = Store(data)

    def counts() -> list:
        return [plain(home, COUNT_SQL, [a.key.to_string()])()[0][0] for a in MEDIA_ASSETS]

    base_s, found = median_time(counts, reps)
    assert all(c >= 0.99 * n for c in found), found
    count_str = f"sqlite3 count of materialized partitions, 7 assets: {secs(base_s)}"
    read_s, rows = median_time(plain(home, READ_SQL), reps)
    read_str = f"sqlite3 read of every materialization event ({len(rows):,}): {secs(read_s)}"
    del rows

    # what Dagster's own queries cost (what `dam status` and the planner asked before)
    keys = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)

    def dagster_status() -> None:
        for a in MEDIA_ASSETS:
            instance.get_status_by_partition(a.key, keys, media_partitions)

    theirs_s, _ = median_time(dagster_status, reps)
    results.add(
        f"Dagster `get_status_by_partition`, 7 assets × {n:,} (status cache warm)",
        secs(theirs_s),
        count_str,
        ratio(theirs_s, base_s, "sqlite3"),
    )
    few_s, _ = median_time(
        lambda: [
            instance.get_status_by_partition(a.key, keys[-50:], media_partitions)
            for a in MEDIA_ASSETS
        ],
        reps,
    )
    results.add(
        "Dagster `get_status_by_partition`, 7 assets × 50 keys",
        secs(few_s),
        count_str,
        ratio(few_s, base_s, "sqlite3"),
    )

    # the first read of every materialization's code version (what the nightly did on every
    # evaluation before; now once, then only what is new)
    log("first read of the code versions (every materialization event)")
    first_read_s, _ = timed(lambda: [read_versions(instance, store, a) for a in MEDIA_ASSETS])
    results.add(
        "Code versions: first read of every materialization (`fetch_materializations`, all"
        " 7 assets; the nightly's read on every evaluation before)",
        secs(first_read_s),
        read_str,
        ratio(first_read_s, read_s, "sqlite3 read"),
    )

    def status() -> dict:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert cli.main(["status", "--json"]) == 0
        return json.loads(buffer.getvalue())

    log("dam status --json (in process)")
    status_s, out = median_time(status, reps)
    probe = next(r for r in out["assets"] if r["asset"] == "probe")
    assert probe["materialized"] + probe["failed"] == n, probe
    results.add(
        f"`dam status --json` in process (7 assets × {n:,}; probe: {probe['materialized']:,}"
        f" materialized, {probe['failed']:,} failed)",
        verdict(status_s, "status"),
        count_str,
        ratio(status_s, base_s, "sqlite3"),
    )
    cmd = [sys.executable, "-m", "dam_assets.cli", "status", "--json"]
    sub_s, done = median_time(lambda: subprocess.run(cmd, capture_output=True), reps)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    helper = [sys.executable, "-m", "dam_assets.cli", "--help"]
    help_s, _ = median_time(lambda: subprocess.run(helper, capture_output=True), reps)
    results.add(
        "`dam status --json` as a command",
        verdict(sub_s, "status"),
        f"`dam --help` as a command: {secs(help_s)}",
        ratio(sub_s, help_s, "`--help`"),
    )

    # the nightly schedule
    storage = DamStorage(data_dir=str(data))

    def evaluate():
        return evaluate_nightly(instance, storage)

    log("nightly evaluation with nothing remembered (its read budget)")
    ledger = data / "partition_versions.sqlite"
    aside = work / "ledger-aside"
    aside.mkdir()
    for path in data.glob("partition_versions.sqlite*"):
        path.rename(aside / path.name)
    first_s, outcome = timed(evaluate)
    for path in data.glob("partition_versions.sqlite*"):
        path.unlink()
    for path in aside.iterdir():
        path.rename(data / path.name)
    assert ledger.exists()
    results.add(
        f"nightly evaluation with nothing remembered ({_said(outcome)})",
        verdict(first_s, "nightly"),
        read_str,
        ratio(first_s, read_s, "sqlite3 read"),
    )
    log("nightly evaluation, nothing new")
    again_s, outcome = median_time(evaluate, reps)
    assert isinstance(outcome, SkipReason), outcome
    results.add(
        f"nightly evaluation, nothing new ({_said(outcome)})",
        verdict(again_s, "nightly"),
        count_str,
        ratio(again_s, base_s, "sqlite3 count"),
    )

    # the sensor tick
    roots = os.pathsep.join([str(captured / "media"), str(source / "cards")])

    def tick():
        context = build_sensor_context(
            instance=instance,
            resources={
                "storage": storage,
                "discovery": MediaDiscovery(watch_roots=roots, settle_seconds=0),
            },
        )
        return media_storage_sensor(context)

    for _ in range(10):  # the built tree was moved once: the first ticks register renames
        said = getattr(tick(), "skip_message", None) or ""
        if " 0 renamed" in said or "renamed" not in said:
            break
    log("sensor tick, nothing new")
    tick_s, outcome = median_time(tick, reps)
    from dam_assets_tests.benchmarks.scale import walk_stat

    walk_s, _ = median_time(lambda: walk_stat(source / "cards"), reps)
    results.add(
        f"storage sensor tick, nothing new ({_said(outcome)})",
        secs(tick_s),
        f"os.walk + stat of the tree: {secs(walk_s)}",
        ratio(tick_s, walk_s, "walk + stat"),
    )

    # the UI
    if not args.no_webserver:
        ui(work, home, reps, results)

    # dam ingest of 50 new files on top, against the same into an empty instance
    if not args.no_ingest:
        ingest(work, results)

    # a code version changes: the nightly re-makes every partition of that asset
    log("nightly evaluation after a code version changed (scene threshold)")
    changed = dict(os.environ, DAM_SCENE_THRESHOLD="31")
    code = "from dam_assets_tests.benchmarks.scale_materialized import time_nightly as t; t()"
    done = subprocess.run([sys.executable, "-c", code], env=changed, capture_output=True)
    if done.returncode == 0:
        seconds, requests = json.loads(done.stdout.decode().strip().splitlines()[-1])
        results.add(
            f"nightly evaluation after a code version changed ({requests:,} run requests)",
            verdict(seconds, "nightly"),
            read_str,
            ratio(seconds, read_s, "sqlite3 read"),
        )
    else:
        results.notes.append(f"code-version step failed: {done.stderr.decode()[-500:]}")


def evaluate_nightly(instance, storage):
    from dagster import build_schedule_context

    from dam_assets.defs.indexing.schedules import nightly

    with build_schedule_context(
        instance=instance, resources={"storage": storage}, scheduled_execution_time=now()
    ) as context:
        return nightly(context)


def time_nightly() -> None:
    """One nightly evaluation in this process's environment: prints [seconds, requests]."""
    from dagster import DagsterInstance

    from dam_assets.defs.resources import DamStorage

    with DagsterInstance.get() as instance:
        seconds, out = timed(lambda: evaluate_nightly(instance, DamStorage()))
    print(json.dumps([seconds, len(out) if isinstance(out, list) else 0]))


def _said(outcome) -> str:
    if isinstance(outcome, list):
        return f"{len(outcome):,} run requests"
    message = getattr(outcome, "skip_message", None) or type(outcome).__name__
    return message if len(message) < 80 else message[:77] + "…"


def ui(work: Path, home: Path, reps: int, results: Results) -> None:
    from dam_assets_tests.webserver import free_port, graphql, wait_for_server, webserver

    port = free_port()
    log(f"dagster-webserver on 127.0.0.1:{port}")
    with webserver(port, work / "webserver.log") as proc:
        try:
            wait_for_server(port, proc)
        except (RuntimeError, TimeoutError) as exc:
            results.notes.append(f"Webserver step failed: {exc}")
            return
        graphql(port, VERSION_QUERY)
        version_s, _ = median_time(lambda: graphql(port, VERSION_QUERY), reps)
        base_s, _ = median_time(plain(home, ONE_ASSET_SQL, ['["probe"]']), reps)
        base_str = f"sqlite3 distinct materialized partitions of probe: {secs(base_s)}"
        for label, query in (
            ("GraphQL `assetPartitionStatuses` (probe's partition page)", STATUS_QUERY),
            ("GraphQL `partitionStats` (probe)", STATS_QUERY),
        ):
            log(label)
            q_s, answer = median_time(lambda q=query: graphql(port, q), reps)
            node = answer["assetNodeOrError"]
            if "assetPartitionStatuses" in node:
                found = {k: len(v) for k, v in node["assetPartitionStatuses"].items()}
            else:
                found = node["partitionStats"]
            detail = ", ".join(f"{k.removesuffix('Partitions')} {v:,}" for k, v in found.items())
            results.add(
                f"{label}: {detail}",
                verdict(q_s, "graphql"),
                base_str,
                ratio(q_s, base_s, "sqlite3"),
            )
        results.notes.append(f"GraphQL `{{ version }}` round trip: {secs(version_s)}.")


def ingest(work: Path, results: Results) -> None:
    """`dam ingest` of INGEST_FILES new real files as a command, on top, against other files
    of the same kinds and sizes ingested into an empty instance (its own home and data)."""
    cmd = [sys.executable, "-m", "dam_assets.cli", "ingest"]
    empty = work / "empty"
    (empty / "home").mkdir(parents=True)
    (empty / "home" / "dagster.yaml").write_text(mat.YAML)
    alone = dict(os.environ, DAGSTER_HOME=str(empty / "home"), DAM_DATA_DIR=str(empty / "data"))
    times = {}
    for name, env, first in (("empty", alone, 9000), ("top", dict(os.environ), 9500)):
        media = work / f"new_media_{name}"
        mat.make_real_media(media, INGEST_FILES, first=first)
        log(f"dam ingest of {INGEST_FILES} files ({name})")
        times[name], done = timed(
            lambda m=media, e=env: subprocess.run([*cmd, str(m)], env=e, capture_output=True)
        )
        out = done.stdout.decode()[-1500:] + done.stderr.decode()[-1500:]
        assert done.returncode == 0, out
    results.add(
        f"`dam ingest` of {INGEST_FILES} new files on top",
        secs(times["top"]),
        f"{INGEST_FILES} such files into an empty instance: {secs(times['empty'])}",
        ratio(times["top"], times["empty"], "empty instance"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    models = mat.tiny_models(args.cache / "models")
    with environ(**models, DAM_RIGS=str(args.cache / "no-rigs.yaml")):
        source, captured, stats = prepare(args)
        results = Results()
        results.add(
            f"Setup: the instance ({stats['runs']:,} runs, {stats['events']:,} index events,"
            f" {stats['failed']:,} failed files)",
            f"built in {secs(stats['build_s'])}" + ("" if stats.get("built_now") else " (cached)"),
            f"Dagster's first status query (cold cache): {secs(stats['cold_status_s'])}",
        )
        with work_dir(args.out) as work:
            seconds, (home, data) = timed(lambda: copy_instance(source, work))
            log(f"copied the instance in {seconds:.0f} s")
            env = {"DAGSTER_HOME": str(home), "DAM_DATA_DIR": str(data)}
            with environ(**env):
                measure(work, source, captured, home, data, args, results)
    return finish(report(results, args, stats))


def report(results: Results, args: argparse.Namespace, stats: dict) -> str:
    import dagster

    intro = [
        f"Command: `python -m dam_assets_tests.benchmarks.scale_materialized --files {args.files}`"
        f" (medians of {args.repeats}).",
        f"Machine: {machine(f'Dagster {dagster.__version__}')}.",
    ]
    return markdown("Scale: materialized", intro, results)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = make_parser("scale_materialized", __doc__)
    parser.add_argument("--files", type=int, default=FILES, help=f"partitions ({FILES:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FILES:,} partitions")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; median (3)")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"built instances ({CACHE})")
    parser.add_argument("--rebuild", action="store_true", help="build the instance again")
    parser.add_argument("--no-webserver", action="store_true", help="skip the GraphQL steps")
    parser.add_argument("--no-ingest", action="store_true", help="skip the `dam ingest` step")
    parser.add_argument("--out", type=Path, help="keep the copy measured here")
    args = parser.parse_args(argv)
    if args.quick:
        args.files = QUICK_FILES
    if args.files < mat.REAL + mat.BATCH or (args.files - mat.REAL) % mat.BATCH:
        parser.error(f"--files must be {mat.REAL} plus a multiple of {mat.BATCH}")
    return args


if __name__ == "__main__":
    sys.exit(main())

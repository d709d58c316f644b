"""`dam ingest`: discover, checksum, and index what each file lacks, through Dagster."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyarrow as pa

from .. import settings
from ..storage.paths import display_path, safe_text
from .common import (
    EXIT_CRASH,
    EXIT_OK,
    EXIT_SOME_ERRORS,
    open_instance,
    print_table,
    say,
    use_instance_home,
)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ..defs.indexing.orphans import reap_orphaned_runs
    from ..library.discovery import scan_until_settled
    from ..storage import Store
    from .runs import index_partitions

    paths = [Path(p).expanduser().absolute() for p in args.paths]
    for p in paths:
        if not p.exists():
            say(f"dam ingest: {safe_text(p)}: no such file or folder")
            return EXIT_CRASH
    use_instance_home()
    instance = open_instance()  # an unreachable instance is said before any work is done
    for run_id in reap_orphaned_runs(instance):
        say(f"run {run_id[:8]} of a `dam` process that was killed is marked failed")
    store = Store(settings.data_dir())
    last = [0.0]

    def progress(done: int, total: int, path: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 2 or done == total:
            of = f" / {total / 2**20:,.0f}" if total else ""
            say(f"  hashing {done / 2**20:,.0f}{of} MiB  {safe_text(Path(path).name)}")
            last[0] = now

    def waiting(report, pause: float) -> None:
        names = ", ".join(safe_text(Path(p).name) for p in report.waiting[:3])
        more = f" and {len(report.waiting) - 3} more" if len(report.waiting) > 3 else ""
        say(
            f"  waiting for {len(report.waiting)} new or changing file(s) to stay the same for"
            f" {args.settle:g}s ({report.waiting_bytes / 2**20:,.0f} MiB: {names}{more})…"
        )

    if args.rig:
        from ..library.rigs import load_rigs

        try:
            rig = load_rigs().by_name(args.rig)
        except KeyError as exc:
            say(f"dam ingest: {exc.args[0]}")
            return EXIT_CRASH
    say(f"Scanning {len(paths)} path(s)…")
    report = scan_until_settled(
        paths,
        store,
        settle_seconds=args.settle,
        max_wait_s=args.max_wait,
        on_wait=waiting,
        progress=progress,
    )
    for skipped in report.roots_skipped:
        say(f"  skipped {safe_text(skipped)}")
    rig_checksums: list[str] = []
    if args.rig:
        for root in paths:  # a card offload laid out like the rig's root
            under = [p for p in report.by_path if p == str(root) or p.startswith(f"{root}/")]
            store.registry.set_rig(
                [(p, report.by_path[p]) for p in under],
                rig.name,
                str(root if root.is_dir() else root.parent),
            )
            rig_checksums += [report.by_path[p] for p in under]
        store.export_registry()  # runs read the hints from the registry's snapshot
    say(
        f"Found {report.seen} media files ({len(report.checksums)} distinct contents):"
        f" {report.hashed} hashed, {report.renamed} recognised renames,"
        f" {report.new_versions} with new content under an old name,"
        f" {len(report.waiting)} still being written, {len(report.errors)} unreadable."
    )
    outcome = index_partitions(
        report.checksums,
        store,
        batch_size=args.batch,
        say=say,
        instance=instance,
        log_level="INFO" if args.verbose else "ERROR",
        rig_checksums=list(dict.fromkeys(rig_checksums)),
    )
    store.refresh_catalog()
    error_rows = store.sql(
        "SELECT stage, path, error_type, message FROM ingest_errors"
        " WHERE list_contains($1, checksum) OR list_contains($2, path) ORDER BY stage, path",
        [
            report.checksums or [""],
            [e[0] for e in report.errors] + [display_path(p) for p in report.waiting] or [""],
        ],
    )
    print(
        f"Indexed {len(outcome.indexed)} new file(s) in {len(outcome.runs)} run(s);"
        f" {outcome.already} already indexed; {error_rows.num_rows} problem(s)."
    )
    if outcome.per_asset and outcome.runs:
        print_table(
            pa.Table.from_pylist(
                [{k: v for k, v in r.items() if k != "why"} for r in outcome.per_asset]
            )
        )
    for row in outcome.per_asset:
        if row["why"]:
            print(f"{row['asset']}: {row['skipped']} file(s) wait for a model: {row['why']}")
    if error_rows.num_rows:
        print_table(error_rows, max_width=100)
    if outcome.failed_runs and not (outcome.file_errors or error_rows.num_rows):
        say(
            f"{len(outcome.failed_runs)} run(s) failed: "
            + ", ".join(outcome.failed_runs)
            + " (see the Dagster UI for their logs)"
        )
        return EXIT_CRASH
    return EXIT_SOME_ERRORS if error_rows.num_rows else EXIT_OK

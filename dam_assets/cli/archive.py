"""`dam archive DEST [--where SQL]` and `dam archive verify [DEST]`.

Exit status as `dam ingest`: 0 all good, 2 some copies failed or did not verify, 1 a usage
error or a refusal before any copy (no such folder, a bad condition, the archive is busy).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from .. import settings
from ..storage.paths import safe_text
from .common import EXIT_CRASH, EXIT_OK, EXIT_SOME_ERRORS, say

USAGE = "dam archive DEST [--where SQL] [--json]\n       dam archive verify [DEST] [--json]"


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "archive",
        usage=USAGE,
        help="verified copies of the originals in an archive folder; `verify` re-checks them",
        description="Copy the originals (one copy per content) to DEST/<watched folder>/<path>,"
        " each verified by reading it back from disk, and record them in `archive_copies`;"
        " `dam archive verify` re-hashes every recorded copy. Sources are only read.",
    )
    parser.add_argument("dest", metavar="DEST", help="the archive folder (it must exist)")
    parser.add_argument("verify_dest", nargs="?", metavar="DEST", help=argparse.SUPPRESS)
    parser.add_argument(
        "--where",
        help='SQL condition on media_files and probe columns, e.g. "duration_s > 60 AND'
        " path LIKE '/mnt/nas/2024/%%'\" (default: every present file)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per copy")
    parser.set_defaults(func=cmd_archive)


def cmd_archive(args: argparse.Namespace) -> int:
    from ..library.archive import ArchiveError, archive_files, verify_copies
    from ..storage import Store

    verify = args.dest == "verify"
    if args.verify_dest is not None and not verify:
        say(f"dam archive: one DEST, not two (usage: {USAGE.splitlines()[0]})")
        return EXIT_CRASH
    if verify and args.where:
        say("dam archive verify: --where selects what to copy; verify checks every copy")
        return EXIT_CRASH
    store = Store(settings.data_dir())
    try:
        if verify:
            report = verify_copies(store, args.verify_dest, say=say)
        else:
            report = archive_files(store, args.dest, args.where, say=say)
    except ArchiveError as exc:
        say(f"dam archive{' verify' if verify else ''}: {exc}")
        return EXIT_CRASH
    if args.json:
        for o in report.outcomes:
            print(json.dumps(o.__dict__))
    out = say if args.json else print  # with --json, stdout carries only the JSON lines
    if verify:
        _print_verify(report, out)
        bad = report.problems or report.unreachable
    else:
        _print_archive(report, out)
        bad = report.failed
    return EXIT_SOME_ERRORS if bad else EXIT_OK


def _print_archive(report, _out: Callable[[str], None]) -> None:
    if report.leftovers_removed:
        _out(f"removed {report.leftovers_removed} partial copy(ies) left by an interrupted run")
    _out(
        f"Archive {safe_text(report.root)}: {report.count('copied')} copied"
        f" ({report.copied_bytes / 2**30:,.2f} GiB), {report.count('found')} found there with"
        f" the same content, {report.count('already')} already archived,"
        f" {len(report.failed)} failed."
    )
    for o in report.failed:
        _out(f"  FAILED {safe_text(o.source)}\n         {safe_text(o.message)}")


def _print_verify(report, _out: Callable[[str], None]) -> None:
    counts = ", ".join(
        f"{report.count(r)} {r.replace('_', ' ')}"
        for r in (
            "verified",
            "mismatch",
            "missing",
            "unreadable",
            "not_copied",
            "unreachable",
            "original_gone",
        )
        if report.count(r) or r == "verified"
    )
    _out(f"Checked {len(report.outcomes)} recorded cop(ies): {counts}.")
    for root, why in report.unreachable.items():
        _out(f"  archive {safe_text(root)} {why}")
    for o in report.problems:
        if o.result != "unreachable":
            _out(f"  {o.result.upper()} {safe_text(o.destination or o.source)}\n    {o.message}")

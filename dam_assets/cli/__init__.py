"""`dam`: the command line for people who live in a terminal.

Indexing goes through the Dagster instance in $DAGSTER_HOME (default: the project root, whose
dagster.yaml keeps storage under data/dagster_home), so every run shows in the web UI. One
module per command group; `runs.py` executes jobs in this process.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence

from .archive import add_parser as add_archive_parser
from .common import EXIT_CRASH, InstanceUnreachable, Parser, print_table, say
from .dupes import cmd_dupes
from .export import cmd_export, export_output_args, filter_args
from .faces import cmd_faces
from .ingest import cmd_ingest
from .rigs import cmd_rigs
from .search import cmd_search
from .serve import serve_args
from .sql import cmd_compact, cmd_sql
from .status import cmd_status

__all__ = ["build_parser", "main", "print_table"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dam", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="index files or folders through Dagster")
    ingest.add_argument("paths", nargs="+", help="files or folders to index")
    ingest.add_argument("--batch", type=int, default=50, help="files per Dagster run (50)")
    ingest.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="a file is read once it stayed the same this many seconds (still being copied; 2)",
    )
    ingest.add_argument(
        "--max-wait",
        type=float,
        default=600.0,
        help="stop waiting for files still being copied after this many seconds (600)",
    )
    ingest.add_argument("--rig", help="the files are a card offload of this rig (rigs.yaml)")
    ingest.add_argument("-v", "--verbose", action="store_true", help="show the runs' logs")
    ingest.set_defaults(func=cmd_ingest)

    status = sub.add_parser("status", help="per asset: materialized, missing, failed partitions")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    sql = sub.add_parser("sql", help="run SQL on the DuckDB catalog")
    sql.add_argument("query")
    fmt = sql.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    sql.set_defaults(func=cmd_sql)

    search = sub.add_parser("search", help="find moments by meaning, by a still, or by words")
    search.add_argument("query", nargs="?", help="what to look for, e.g. 'a dog on a beach'")
    search.add_argument("--image", help="find moments that look like this still")
    search.add_argument("--text", help="words to find in transcripts (full-text)")
    search.add_argument("--person", help="files and times where this person (name or id) appears")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--json", action="store_true")
    filter_args(search)
    search.set_defaults(func=cmd_search)

    dupes = sub.add_parser("dupes", help="near-duplicate video groups (re-encodes, trims)")
    dupes.add_argument("--json", action="store_true")
    dupes.set_defaults(func=cmd_dupes)

    export = sub.add_parser("export", help="hand-off to the edit: timelines for NLEs")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    moments = export_sub.add_parser(
        "moments", help="search hits as a timeline: one clip per moment, a marker on each"
    )
    moments.add_argument("query", nargs="?", help="what to look for, e.g. 'a dog on a beach'")
    moments.add_argument("--text", help="words spoken (full-text search of transcripts)")
    moments.add_argument("--image", help="moments that look like this still")
    moments.add_argument("--person", help="where this person (name or id) appears")
    moments.add_argument("--limit", type=int, default=50, help="moments at most (50)")
    moments.add_argument(
        "--handles",
        default="2",
        help="media kept before and after each moment: seconds (2, 1.5s) or frames (48f)",
    )
    moments.add_argument("--title", help="timeline name (default: the query)")
    filter_args(moments)
    export_output_args(moments)
    one = export_sub.add_parser(
        "file", help="one file: markers for scenes, transcript, people and capture facts"
    )
    one.add_argument("file", help="path of an indexed file, or its checksum (8+ hex digits)")
    one.add_argument("--subclips", action="store_true", help="one clip per scene")
    one.add_argument("--unnamed-people", action="store_true", help="mark people without a name too")
    export_output_args(one)
    export.set_defaults(func=cmd_export)

    rigs = sub.add_parser("rigs", help="camera rigs: capture sessions and their exports")
    rigs_sub = rigs.add_subparsers(dest="rigs_command", required=True)
    sessions = rigs_sub.add_parser("sessions", help="list capture sessions")
    sessions.add_argument("--json", action="store_true", help="with every segment's sync")
    session = rigs_sub.add_parser(
        "export",
        help="a session as a synced multicam timeline (-o FILE); without -o, print the"
        " paths of its JSON and CSV exports",
    )
    session.add_argument("session")
    export_output_args(session, required=False)
    rigs.set_defaults(func=cmd_rigs)

    faces = sub.add_parser("faces", help="people found in the library: list, name, merge")
    faces_sub = faces.add_subparsers(dest="faces_command", required=True)
    listing = faces_sub.add_parser("list", help="people, with a face crop and where they appear")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--files", type=int, default=5, help="files shown per person (5)")
    listing.add_argument("--limit", type=int, default=50, help="people shown (50; 0: all)")
    label = faces_sub.add_parser("label", help="name a person (kept by every re-cluster)")
    label.add_argument("person", help="person id (or current name)")
    label.add_argument("name")
    merge = faces_sub.add_parser("merge", help="the same person twice: merge into the first")
    merge.add_argument("keep", help="person id (or name) that stays")
    merge.add_argument("other", help="person id (or name) merged into it")
    faces_sub.add_parser("recluster", help="re-cluster everyone now (also runs nightly)")
    faces.set_defaults(func=cmd_faces)

    serve_args(sub.add_parser("serve", help="the library page: search, watch, name people"))

    compact = sub.add_parser("compact", help="merge small Parquet files (also runs nightly)")
    compact.set_defaults(func=cmd_compact)

    add_archive_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster warns that parameters we use (backfill policies, pools) are in beta: that is for
    # this project's developers (the test suite sees it), not for the person at the terminal.
    warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InstanceUnreachable as exc:
        say(f"dam {args.command}: {exc}")
        return EXIT_CRASH
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_CRASH

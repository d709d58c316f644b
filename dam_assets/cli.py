"""`dam`: the command line for people who live in a terminal.

Indexing goes through the Dagster instance in $DAGSTER_HOME (default: the project root, whose
dagster.yaml keeps storage under data/dagster_home), so every run shows in the web UI.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa

from . import settings
from .storage.paths import display_path, safe_text

EXIT_OK, EXIT_CRASH, EXIT_SOME_ERRORS = 0, 1, 2


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _use_instance_home() -> None:
    """DAGSTER_HOME defaults to the project root. Dagster resolves the relative storage folders
    of its dagster.yaml against the working directory, so work from DAGSTER_HOME (else `cd
    /mnt/card && dam ingest .` starts a second instance there); what the working directory
    decides (data folder, rigs.yaml) is settled first."""
    from .rigs import rigs_path

    os.environ["DAM_DATA_DIR"] = str(settings.data_dir())
    os.environ["DAM_RIGS"] = str(rigs_path().absolute())
    home = Path(os.environ.get("DAGSTER_HOME") or settings.project_root()).expanduser()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    os.chdir(home)


class InstanceUnreachable(Exception):
    """The Dagster instance's database cannot be reached: one line says so."""


def _instance():
    """The Dagster instance of $DAGSTER_HOME. When it lives in PostgreSQL and the server does
    not answer, say so in seconds instead of waiting through the driver's retries."""
    import socket

    from dagster import DagsterInstance

    address = settings.instance_postgres_address()
    if address:
        try:
            socket.create_connection(address, timeout=3).close()
        except OSError as exc:
            raise InstanceUnreachable(
                f"the Dagster instance's PostgreSQL server {address[0]}:{address[1]} is"
                f" unreachable ({exc.strerror or exc}); start it, or check dagster.yaml and"
                " DAGSTER_PG_URL"
            ) from exc
    return DagsterInstance.get()


# -- output -------------------------------------------------------------------------------------
def _jsonable(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def print_table(table: pa.Table, fmt: str = "text", max_width: int = 60) -> None:
    rows = table.to_pylist()
    if fmt == "json":
        print(json.dumps([{k: _jsonable(v) for k, v in r.items()} for r in rows], indent=1))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(table.column_names)
        writer.writerows([[_jsonable(v) for v in r.values()] for r in rows])
        return
    cols = table.column_names
    cells = [[_cell(r[c], max_width) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _cell(value, max_width: int) -> str:
    if value is None:
        return ""
    text = f"{value:.3f}" if isinstance(value, float) else safe_text(_jsonable(value))
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


# -- ingest -------------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    from .discovery import scan_until_settled
    from .runner import index_partitions, reap_orphaned_runs
    from .storage import Store

    paths = [Path(p).expanduser().absolute() for p in args.paths]
    for p in paths:
        if not p.exists():
            _say(f"dam ingest: {safe_text(p)}: no such file or folder")
            return EXIT_CRASH
    _use_instance_home()
    instance = _instance()  # an unreachable instance is said before any work is done
    for run_id in reap_orphaned_runs(instance):
        _say(f"run {run_id[:8]} of a `dam` process that was killed is marked failed")
    store = Store(settings.data_dir())
    last = [0.0]

    def progress(done: int, total: int, path: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 2 or done == total:
            of = f" / {total / 2**20:,.0f}" if total else ""
            _say(f"  hashing {done / 2**20:,.0f}{of} MiB  {safe_text(Path(path).name)}")
            last[0] = now

    def waiting(report, pause: float) -> None:
        names = ", ".join(safe_text(Path(p).name) for p in report.waiting[:3])
        more = f" and {len(report.waiting) - 3} more" if len(report.waiting) > 3 else ""
        _say(
            f"  waiting for {len(report.waiting)} new or changing file(s) to stay the same for"
            f" {args.settle:g}s ({report.waiting_bytes / 2**20:,.0f} MiB: {names}{more})…"
        )

    if args.rig:
        from .rigs import load_rigs

        try:
            rig = load_rigs().by_name(args.rig)
        except KeyError as exc:
            _say(f"dam ingest: {exc.args[0]}")
            return EXIT_CRASH
    _say(f"Scanning {len(paths)} path(s)…")
    report = scan_until_settled(
        paths,
        store,
        settle_seconds=args.settle,
        max_wait_s=args.max_wait,
        on_wait=waiting,
        progress=progress,
    )
    for skipped in report.roots_skipped:
        _say(f"  skipped {safe_text(skipped)}")
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
    _say(
        f"Found {report.seen} media files ({len(report.checksums)} distinct contents):"
        f" {report.hashed} hashed, {report.renamed} recognised renames,"
        f" {report.new_versions} with new content under an old name,"
        f" {len(report.waiting)} still being written, {len(report.errors)} unreadable."
    )
    outcome = index_partitions(
        report.checksums,
        store,
        batch_size=args.batch,
        say=_say,
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
        _say(
            f"{len(outcome.failed_runs)} run(s) failed: "
            + ", ".join(outcome.failed_runs)
            + " (see the Dagster UI for their logs)"
        )
        return EXIT_CRASH
    return EXIT_SOME_ERRORS if error_rows.num_rows else EXIT_OK


# -- status -------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:

    from .jobs import MEDIA_ASSETS
    from .partitions import MEDIA_PARTITIONS_NAME, media_partitions
    from .storage import Store

    _use_instance_home()
    store = Store(settings.data_dir())
    instance = _instance()
    keys = list(instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
    errors = store.sql(
        "SELECT stage, count(DISTINCT checksum) AS n FROM ingest_errors"
        " WHERE checksum IS NOT NULL GROUP BY stage"
    )
    recorded = {r["stage"]: r["n"] for r in errors.to_pylist()}
    rows = []
    for assets_def in MEDIA_ASSETS:
        key = assets_def.key
        statuses = (
            (instance.get_status_by_partition(key, keys, media_partitions) or {}) if keys else {}
        )
        counts = {"MATERIALIZED": 0, "FAILED": 0, "IN_PROGRESS": 0}
        for status in statuses.values():
            if status is not None:
                counts[status.value] += 1
        rows.append(
            {
                "asset": key.to_user_string(),
                "partitions": len(keys),
                "materialized": counts["MATERIALIZED"],
                "missing": len(keys) - sum(counts.values()),
                "failed": counts["FAILED"],
                "in_progress": counts["IN_PROGRESS"],
                "file_errors": recorded.get(key.to_user_string(), 0),
            }
        )
    files = store.sql(
        "SELECT count(*) FILTER (WHERE NOT missing) AS files,"
        " count(DISTINCT path) FILTER (WHERE missing AND NOT replaced) AS missing,"
        " count(DISTINCT path) FILTER (WHERE replaced) AS replaced,"
        " count(DISTINCT checksum) FILTER (WHERE content_present) AS contents,"
        " count(DISTINCT checksum) FILTER (WHERE NOT content_present) AS contents_gone"
        " FROM media_files"
    ).to_pylist()[0]
    discovery = store.sql(
        "SELECT count(*) AS n FROM ingest_errors WHERE stage = 'discovery'"
    ).to_pylist()[0]["n"]
    people = store.sql(
        "SELECT (SELECT count(*) FROM people WHERE faces > 0 OR name IS NOT NULL) AS people,"
        " (SELECT count(*) FROM people WHERE name IS NOT NULL) AS named,"
        " (SELECT count(*) FROM face_tracks) AS tracks,"
        " (SELECT count(*) FROM face_clusters) AS tracks_placed"
    ).to_pylist()[0]
    if args.json:
        out = {"assets": rows, "files": files, "discovery_errors": discovery, "people": people}
        print(json.dumps(out))
        return EXIT_OK
    print_table(pa.Table.from_pylist(rows))
    print(
        f"people: {people['people']} ({people['named']} named); {people['tracks_placed']} of"
        f" {people['tracks']} face tracks placed (`dam faces list`)."
    )
    print(
        f"files: {files['files']} present, {files['contents']} distinct contents;"
        f" {files['missing']} gone, {files['replaced']} now hold other content (the earlier"
        f" content is kept in file_versions), {files['contents_gone']} content(s) no longer"
        f" on storage; {discovery} file(s) could not be read at discovery."
        "\n'file_errors' counts files recorded in ingest_errors: `dam sql \"SELECT * FROM"
        ' ingest_errors"` lists them.'
    )
    return EXIT_OK


# -- sql / compact ------------------------------------------------------------------------------
def cmd_sql(args: argparse.Namespace) -> int:
    from .storage import Store

    store = Store(settings.data_dir())
    try:
        table = store.sql(args.query)
    except Exception as exc:  # duckdb errors carry a useful message already
        _say(f"dam sql: {exc}")
        return EXIT_CRASH
    print_table(table, "json" if args.json else "csv" if args.csv else "text")
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    from .storage import TABLES, Store

    store = Store(settings.data_dir())
    for name in TABLES:
        stats = store.lake.compact(name)
        if stats["units_merged"]:
            print(
                f"{name}: merged {stats['units_merged']} files into"
                f" {stats['segments_written']} segment(s)"
            )
    store.refresh_catalog(force=True)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .web import serve

    _use_instance_home()  # the status page reads the Dagster instance, as `dam status` does
    return serve(args.host, args.port)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 1 (2 means "some files had problems")
        self.print_usage(sys.stderr)
        self.exit(EXIT_CRASH, f"{self.prog}: error: {message}\n")


def cmd_search(args: argparse.Namespace) -> int:
    from .media.transcribe import ModelUnavailable
    from .search import search_moments, search_transcripts

    if args.person:
        return _search_person(args)
    if args.text:
        hits = search_transcripts(args.text, limit=args.limit)
        if args.json:
            print(json.dumps(hits, indent=1))
        elif not hits:
            print(f"No transcript segment contains: {args.text}")
        for hit in [] if args.json else hits:
            span = f"{_clock(hit['start'])}–{_clock(hit['end'])}"
            print(
                f"{safe_text(hit['path'] or hit['checksum'])}  {span}\n    {safe_text(hit['text'])}"
            )
        return EXIT_OK
    if bool(args.query) == bool(args.image):
        _say('dam search: give a query ("a dog on a beach"), --image FILE, or --text "words"')
        return EXIT_CRASH
    try:
        moments = search_moments(
            text=args.query, image=args.image, limit=args.limit, filters=_filters(args)
        )
    except ModelUnavailable as exc:
        _say(f"dam search: {exc}")
        return EXIT_CRASH
    if args.json:
        print(json.dumps(moments, indent=1))
        return EXIT_OK
    if not moments:
        print("No matching moments (is clip_embeddings materialized for this model?)")
    for m in moments:
        span = f"{_clock(m['start'])}–{_clock(m['end'])}"
        where = safe_text(m["path"] or m["checksum"])
        print(f"{m['score']:.3f}  {where}  {span}\n       {safe_text(m['thumbnail'])}")
    return EXIT_OK


def cmd_rigs(args: argparse.Namespace) -> int:
    from .storage import Store

    store = Store(settings.data_dir())
    if args.rigs_command == "sessions":
        sessions = store.sql(
            'SELECT session_id, rig, start, "end", segments, cameras, export_json'
            " FROM capture_sessions ORDER BY start"
        )
        if not args.json:
            print_table(sessions, max_width=80)
            return EXIT_OK
        sync = store.sql("SELECT * FROM capture_sync ORDER BY session_id, camera").to_pylist()
        out = []
        for session in sessions.to_pylist():
            session["sync"] = [
                {k: _jsonable(v) for k, v in r.items()}
                for r in sync
                if r["session_id"] == session["session_id"]
            ]
            out.append({k: _jsonable(v) for k, v in session.items()})
        print(json.dumps(out, indent=1))
        return EXIT_OK
    if args.output:
        from .exports import ExportError, format_for, session_timeline

        try:
            spec = format_for(None if args.output == "-" else args.output, args.format)
            _check_destination(args.output, args.force)
            return _deliver(session_timeline(store, args.session), args, spec, "dam rigs export")
        except ExportError as exc:
            _say(f"dam rigs export: {exc}")
            return EXIT_CRASH
    rows = store.sql(
        "SELECT export_json, export_csv FROM capture_sessions WHERE session_id = ?",
        [args.session],
    ).to_pylist()
    if not rows:
        _say(f"dam rigs export: no session {args.session!r} (see `dam rigs sessions`)")
        return EXIT_CRASH
    print(rows[0]["export_json"])
    print(rows[0]["export_csv"])
    return EXIT_OK


# -- export -------------------------------------------------------------------------------------
def _filters(args: argparse.Namespace):
    from .search import Filters

    return Filters(
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        min_height=args.min_height,
        camera=args.camera,
        since=args.since,
        until=args.until,
        has_speech=args.has_speech,
    )


def _check_destination(output: str, force: bool) -> None:
    """Refuse before any work when the file is there (or its folder is not)."""
    from .exports import ExportError

    if output == "-":
        return
    path = Path(output).expanduser().absolute()
    if not path.parent.is_dir():
        raise ExportError(f"{safe_text(path.parent)}: no such folder (create it first)")
    if path.exists() and not force:
        raise ExportError(f"{safe_text(path)} exists; add --force to replace it")


def _deliver(timeline, args: argparse.Namespace, spec, command: str) -> int:
    from .exports import placed_clips, render, write_atomic

    data = render(timeline, spec)
    clips = len(placed_clips(timeline))
    facts = timeline.metadata.get("dam", {})
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        where = "standard output"
    else:
        where = safe_text(write_atomic(args.output, data, force=args.force))
    note = f"{command}: wrote {where} ({spec.description}): {clips} clip(s)"
    skipped = list(facts.get("skipped") or [])
    if skipped:
        note += f"; left out {len(skipped)}: " + "; ".join(safe_text(s) for s in skipped[:5])
    if args.output == "-":
        _say(note)
    else:
        print(note)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .exports import ExportError, file_timeline, find_checksum, format_for
    from .media.transcribe import ModelUnavailable
    from .storage import Store

    command = f"dam export {args.export_command}"
    store = Store(settings.data_dir())
    try:
        spec = format_for(None if args.output == "-" else args.output, args.format)
        _check_destination(args.output, args.force)
        if args.export_command == "moments":
            timeline = _moments_timeline(args, store)
        else:
            checksum = find_checksum(store, args.file)
            timeline = file_timeline(store, checksum, args.subclips, args.unnamed_people)
        return _deliver(timeline, args, spec, command)
    except (ExportError, ModelUnavailable) as exc:
        _say(f"{command}: {exc}")
        return EXIT_CRASH


def _moments_timeline(args: argparse.Namespace, store):
    from .exports import ExportError, Handles, moments_timeline
    from .people import appearances
    from .search import allowed_checksums, search_moments, search_transcripts
    from .storage.people import PersonNotFound

    given = [x for x in (args.query, args.text, args.image, args.person) if x]
    if len(given) != 1:
        raise ExportError(
            'give one of: a query ("a dog on a beach"), --text WORDS, --image FILE, --person NAME'
        )
    handles = Handles.parse(args.handles)
    filters = _filters(args)
    allowed = set(allowed_checksums(store, filters) or []) if filters.active() else None
    if args.text:
        query = args.text
        hits = search_transcripts(args.text, limit=args.limit * (5 if allowed is not None else 1))
    elif args.person:
        try:
            person = store.people.resolve(args.person)
        except PersonNotFound as exc:
            raise ExportError(str(exc)) from None
        named = store.sql("SELECT name FROM people WHERE person_id = ?", [person]).to_pylist()
        query = (named[0]["name"] if named else None) or f"person {person}"
        hits = [
            {"checksum": f["checksum"], "start": a, "end": b, "score": None}
            for f in appearances(store, [person])[person]
            for a, b in f["ranges"]
        ]
    else:
        if args.image and not Path(args.image).is_file():
            raise ExportError(f"{safe_text(args.image)}: no such image")
        query = args.query or f"looks like {Path(args.image).name}"
        hits = search_moments(text=args.query, image=args.image, limit=args.limit, filters=filters)
    if allowed is not None:
        hits = [h for h in hits if h["checksum"] in allowed]
    hits = hits[: args.limit]
    if not hits:
        raise ExportError(f"no moment matches {query!r}: nothing written")
    return moments_timeline(store, hits, query, handles, args.title)


def _export_output_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=required,
        help="file to write; its extension picks the format (.otio .fcpxml .xml .edl .ale"
        " .csv .json); '-' writes to standard output (give --format)",
    )
    parser.add_argument("--format", help="the format, whatever the file's extension")
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")


def _filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-duration", type=float, help="seconds")
    parser.add_argument("--max-duration", type=float, help="seconds")
    parser.add_argument("--min-height", type=int, help="resolution, e.g. 1080 (short side)")
    parser.add_argument("--camera", help="camera make or model contains this")
    parser.add_argument("--since", help="captured on or after (YYYY-MM-DD)")
    parser.add_argument("--until", help="captured on or before (YYYY-MM-DD)")
    speech = parser.add_mutually_exclusive_group()
    speech.add_argument("--has-speech", dest="has_speech", action="store_true", default=None)
    speech.add_argument("--no-speech", dest="has_speech", action="store_false")


# -- people -------------------------------------------------------------------------------------
def _ranges(ranges: list[list[float]]) -> str:
    return ", ".join(f"{_clock(a)}–{_clock(b)}" for a, b in ranges)


def _search_person(args: argparse.Namespace) -> int:
    from .people import appearances
    from .storage import Store
    from .storage.people import PersonNotFound

    store = Store(settings.data_dir())
    try:
        person = store.people.resolve(args.person)
    except PersonNotFound as exc:
        _say(f"dam search: {exc}")
        return EXIT_CRASH
    files = appearances(store, [person])[person][: args.limit]
    if args.json:
        print(json.dumps(files, indent=1))
        return EXIT_OK
    if not files:
        print(f"Person {person} appears in no indexed file.")
    for f in files:
        print(f"{safe_text(f['path'] or f['checksum'])}\n    {_ranges(f['ranges'])}")
    return EXIT_OK


def cmd_faces(args: argparse.Namespace) -> int:
    from .people import appearances, export_people
    from .storage import Store
    from .storage.people import PersonNotFound

    store = Store(settings.data_dir())
    if args.faces_command == "recluster":
        from .runner import cluster_faces

        _use_instance_home()
        _say("re-clustering every face track (names and hand-placed faces are kept)…")
        run_id, ok = cluster_faces(_instance(), recluster=True, source="dam faces")
        _say(f"run {run_id[:8]} {'ok' if ok else 'FAILED (see the run in the UI)'}")
        return EXIT_OK if ok else EXIT_CRASH
    try:
        if args.faces_command == "label":
            person = store.people.resolve(args.person)
            store.people.label(person, args.name)
            export_people(store)
            name = safe_text(args.name)
            print(f"person {person} is now {name!r}; re-clusters keep its faces together")
            return EXIT_OK
        if args.faces_command == "merge":
            keep, other = store.people.resolve(args.keep), store.people.resolve(args.other)
            name = store.people.merge(keep, other)
            export_people(store)
            print(f"person {other} merged into {keep}" + (f" ({safe_text(name)})" if name else ""))
            return EXIT_OK
    except (PersonNotFound, ValueError) as exc:
        _say(f"dam faces {args.faces_command}: {exc}")
        return EXIT_CRASH
    people = store.sql(
        "SELECT person_id, name, faces, files, detections, first_seen, last_seen, crop"
        " FROM people WHERE faces > 0 OR name IS NOT NULL ORDER BY faces DESC, person_id"
    ).to_pylist()
    where = appearances(store, [p["person_id"] for p in people])
    if args.json:
        for p in people:
            p["appearances"] = where[p["person_id"]]
        print(json.dumps([{k: _jsonable(v) for k, v in p.items()} for p in people], indent=1))
        return EXIT_OK
    if not people:
        print("No people yet (faces are grouped after `dam ingest`; see `dam status`).")
    hidden = people[args.limit :] if args.limit else []
    for p in people[: args.limit or None]:
        name = safe_text(p["name"] or "(unnamed)")
        print(f"{p['person_id']:>5}  {name}  {p['faces']} appearance(s) in {p['files']} file(s)")
        print(f"       {safe_text(p['crop'] or '')}")
        shown = where[p["person_id"]]
        for f in shown[: args.files]:
            print(f"       {safe_text(f['path'] or f['checksum'])}  {_ranges(f['ranges'])}")
        if len(shown) > args.files:
            print(f"       … {len(shown) - args.files} more (dam search --person {p['person_id']})")
    if hidden:
        print(f"… and {len(hidden)} more people (--limit 0 lists everyone)")
    return EXIT_OK


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes:d}:{secs:05.2f}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dam", description=__doc__.splitlines()[0])
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
    _filter_args(search)
    search.set_defaults(func=cmd_search)

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
    _filter_args(moments)
    _export_output_args(moments)
    one = export_sub.add_parser(
        "file", help="one file: markers for scenes, transcript, people and capture facts"
    )
    one.add_argument("file", help="path of an indexed file, or its checksum (8+ hex digits)")
    one.add_argument("--subclips", action="store_true", help="one clip per scene")
    one.add_argument("--unnamed-people", action="store_true", help="mark people without a name too")
    _export_output_args(one)
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
    _export_output_args(session, required=False)
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

    serve = sub.add_parser("serve", help="the library page: search, watch, name people")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (8765)")
    serve.set_defaults(func=cmd_serve)

    compact = sub.add_parser("compact", help="merge small Parquet files (also runs nightly)")
    compact.set_defaults(func=cmd_compact)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InstanceUnreachable as exc:
        _say(f"dam {args.command}: {exc}")
        return EXIT_CRASH
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main())

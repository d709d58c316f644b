"""`dam export`: search hits, a file, or a session as an editing timeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import settings
from ..storage.paths import safe_text
from .common import (
    EXIT_CRASH,
    EXIT_OK,
    say,
)


def filters_from(args: argparse.Namespace):
    from ..library.search import Filters

    return Filters(
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        min_height=args.min_height,
        camera=args.camera,
        since=args.since,
        until=args.until,
        has_speech=args.has_speech,
        sharp=args.sharp,
        well_exposed=args.well_exposed,
        steady=args.steady,
    )


def check_destination(output: str, force: bool) -> None:
    """Refuse before any work when the file is there (or its folder is not)."""
    from ..library.exports import ExportError

    if output == "-":
        return
    path = Path(output).expanduser().absolute()
    if not path.parent.is_dir():
        raise ExportError(f"{safe_text(path.parent)}: no such folder (create it first)")
    if path.exists() and not force:
        raise ExportError(f"{safe_text(path)} exists; add --force to replace it")


def deliver(timeline, args: argparse.Namespace, spec, command: str) -> int:
    from ..library.exports import placed_clips, render, write_atomic

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
        say(note)
    else:
        print(note)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from ..library.exports import ExportError, file_timeline, find_checksum, format_for
    from ..models.base import ModelUnavailable
    from ..storage import Store

    command = f"dam export {args.export_command}"
    store = Store(settings.data_dir())
    try:
        spec = format_for(None if args.output == "-" else args.output, args.format)
        check_destination(args.output, args.force)
        if args.export_command == "moments":
            timeline = _moments_timeline(args, store)
        else:
            checksum = find_checksum(store, args.file)
            timeline = file_timeline(store, checksum, args.subclips, args.unnamed_people)
        return deliver(timeline, args, spec, command)
    except (ExportError, ModelUnavailable) as exc:
        say(f"{command}: {exc}")
        return EXIT_CRASH


def _moments_timeline(args: argparse.Namespace, store):
    from ..library.exports import ExportError, Handles, moments_timeline
    from ..library.people import appearances
    from ..library.search import (
        allowed_checksums,
        in_good_scenes,
        search_moments,
        search_transcripts,
    )
    from ..storage.people import PersonNotFound

    given = [x for x in (args.query, args.text, args.image, args.person) if x]
    if len(given) != 1:
        raise ExportError(
            'give one of: a query ("a dog on a beach"), --text WORDS, --image FILE, --person NAME'
        )
    handles = Handles.parse(args.handles)
    filters = filters_from(args)
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
    hits = in_good_scenes(store, filters, hits)[: args.limit]
    if not hits:
        raise ExportError(f"no moment matches {query!r}: nothing written")
    return moments_timeline(store, hits, query, handles, args.title)


def export_output_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=required,
        help="file to write; its extension picks the format (.otio .fcpxml .xml .edl .ale"
        " .csv .json); '-' writes to standard output (give --format)",
    )
    parser.add_argument("--format", help="the format, whatever the file's extension")
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")


def filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-duration", type=float, help="seconds")
    parser.add_argument("--max-duration", type=float, help="seconds")
    parser.add_argument("--min-height", type=int, help="resolution, e.g. 1080 (short side)")
    parser.add_argument("--camera", help="camera make or model contains this")
    parser.add_argument("--since", help="captured on or after (YYYY-MM-DD)")
    parser.add_argument("--until", help="captured on or before (YYYY-MM-DD)")
    speech = parser.add_mutually_exclusive_group()
    speech.add_argument("--has-speech", dest="has_speech", action="store_true", default=None)
    speech.add_argument("--no-speech", dest="has_speech", action="store_false")
    # thresholds: media/frame_stats.py (README > Scene quality)
    parser.add_argument(
        "--sharp", action="store_true", help="only in sharp scenes (variance of Laplacian >= 100)"
    )
    parser.add_argument(
        "--well-exposed",
        action="store_true",
        help="only in scenes with <= 10%% of pixels crushed and <= 5%% blown",
    )
    parser.add_argument("--steady", action="store_true", help="only in scenes without camera shake")

"""`dam rigs`: capture sessions and their exports."""

from __future__ import annotations

import argparse
import json

from .. import settings
from .common import (
    EXIT_CRASH,
    EXIT_OK,
    jsonable,
    print_table,
    say,
)
from .export import check_destination, deliver


def cmd_rigs(args: argparse.Namespace) -> int:
    from ..storage import Store

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
                {k: jsonable(v) for k, v in r.items()}
                for r in sync
                if r["session_id"] == session["session_id"]
            ]
            out.append({k: jsonable(v) for k, v in session.items()})
        print(json.dumps(out, indent=1))
        return EXIT_OK
    if args.output:
        from ..library.exports import ExportError, format_for, session_timeline

        try:
            spec = format_for(None if args.output == "-" else args.output, args.format)
            check_destination(args.output, args.force)
            return deliver(session_timeline(store, args.session), args, spec, "dam rigs export")
        except ExportError as exc:
            say(f"dam rigs export: {exc}")
            return EXIT_CRASH
    rows = store.sql(
        "SELECT export_json, export_csv FROM capture_sessions WHERE session_id = ?",
        [args.session],
    ).to_pylist()
    if not rows:
        say(f"dam rigs export: no session {args.session!r} (see `dam rigs sessions`)")
        return EXIT_CRASH
    print(rows[0]["export_json"])
    print(rows[0]["export_csv"])
    return EXIT_OK

"""`dam faces`: list, name, merge and re-cluster people."""

from __future__ import annotations

import argparse
import json

from .. import settings
from ..storage.paths import safe_text
from .common import (
    EXIT_CRASH,
    EXIT_OK,
    jsonable,
    open_instance,
    ranges,
    say,
    use_instance_home,
)


def cmd_faces(args: argparse.Namespace) -> int:
    from ..library.people import appearances, label_person, list_people, merge_people
    from ..storage import Store
    from ..storage.people import PersonNotFound

    store = Store(settings.data_dir())
    if args.faces_command == "recluster":
        from .runs import cluster_faces

        use_instance_home()
        say("re-clustering every face track (names and hand-placed faces are kept)…")
        run_id, ok = cluster_faces(open_instance(), recluster=True, source="dam faces")
        say(f"run {run_id[:8]} {'ok' if ok else 'FAILED (see the run in the UI)'}")
        return EXIT_OK if ok else EXIT_CRASH
    try:
        if args.faces_command == "label":
            person, name = label_person(store, args.person, args.name)
            shown = safe_text(name)
            print(f"person {person} is now {shown!r}; re-clusters keep its faces together")
            return EXIT_OK
        if args.faces_command == "merge":
            keep, other, name = merge_people(store, args.keep, args.other)
            print(f"person {other} merged into {keep}" + (f" ({safe_text(name)})" if name else ""))
            return EXIT_OK
    except (PersonNotFound, ValueError) as exc:
        say(f"dam faces {args.faces_command}: {exc}")
        return EXIT_CRASH
    people = list_people(store)
    where = appearances(store, [p["person_id"] for p in people])
    if args.json:
        for p in people:
            p["appearances"] = where[p["person_id"]]
        print(json.dumps([{k: jsonable(v) for k, v in p.items()} for p in people], indent=1))
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
            print(f"       {safe_text(f['path'] or f['checksum'])}  {ranges(f['ranges'])}")
        if len(shown) > args.files:
            print(f"       … {len(shown) - args.files} more (dam search --person {p['person_id']})")
    if hidden:
        print(f"… and {len(hidden)} more people (--limit 0 lists everyone)")
    return EXIT_OK

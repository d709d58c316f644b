"""`dam search`: by meaning, by a still, by spoken words, or by person."""

from __future__ import annotations

import argparse
import json

from .. import settings
from ..storage.paths import safe_text
from .common import (
    EXIT_CRASH,
    EXIT_OK,
    clock,
    ranges,
    say,
)
from .export import filters_from


def cmd_search(args: argparse.Namespace) -> int:
    from ..library.search import search_moments, search_transcripts
    from ..models.base import ModelUnavailable

    if args.person:
        return _search_person(args)
    filters = filters_from(args)
    if args.text:
        hits = search_transcripts(args.text, limit=args.limit, filters=filters)
        if args.json:
            print(json.dumps(hits, indent=1))
        elif not hits:
            among = " among the files the filters allow" if filters.active() else ""
            print(f"No transcript segment contains: {args.text}{among}")
        for hit in [] if args.json else hits:
            span = f"{clock(hit['start'])}–{clock(hit['end'])}"
            print(
                f"{safe_text(hit['path'] or hit['checksum'])}  {span}\n    {safe_text(hit['text'])}"
            )
        return EXIT_OK
    if bool(args.query) == bool(args.image):
        say('dam search: give a query ("a dog on a beach"), --image FILE, or --text "words"')
        return EXIT_CRASH
    try:
        moments = search_moments(
            text=args.query, image=args.image, limit=args.limit, filters=filters
        )
    except ModelUnavailable as exc:
        say(f"dam search: {exc}")
        return EXIT_CRASH
    if args.json:
        print(json.dumps(moments, indent=1))
        return EXIT_OK
    if not moments:
        print("No matching moments (is clip_embeddings materialized for this model?)")
    for m in moments:
        span = f"{clock(m['start'])}–{clock(m['end'])}"
        where = safe_text(m["path"] or m["checksum"])
        print(f"{m['score']:.3f}  {where}  {span}\n       {safe_text(m['thumbnail'])}")
    return EXIT_OK


def _search_person(args: argparse.Namespace) -> int:
    from ..library.people import appearances
    from ..library.search import appearances_meeting
    from ..storage import Store
    from ..storage.people import PersonNotFound

    store = Store(settings.data_dir())
    try:
        person = store.people.resolve(args.person)
    except PersonNotFound as exc:
        say(f"dam search: {exc}")
        return EXIT_CRASH
    files = appearances_meeting(store, filters_from(args), appearances(store, [person])[person])
    files = files[: args.limit]
    if args.json:
        print(json.dumps(files, indent=1))
        return EXIT_OK
    if not files:
        print(f"Person {person} appears in no indexed file.")
    for f in files:
        print(f"{safe_text(f['path'] or f['checksum'])}\n    {ranges(f['ranges'])}")
    return EXIT_OK

"""`dam dupes`: near-duplicate video groups (re-encodes, resizes, trimmed copies)."""

from __future__ import annotations

import argparse
import json

from .. import settings
from ..storage.paths import safe_text
from .common import EXIT_OK


def cmd_dupes(args: argparse.Namespace) -> int:
    from ..library.dupes import duplicate_groups
    from ..storage import Store

    found = duplicate_groups(Store(settings.data_dir()))
    if args.json:
        print(json.dumps({"groups": found}, indent=1, default=str))
        return EXIT_OK
    if not found:
        print("No near-duplicate video found (dam ingest looks for it after indexing).")
    for n, group in enumerate(found, 1):
        print(f"group {n}: {len(group['files'])} files")
        for f in group["files"]:
            how = ""
            if f.get("kind") == "contained":
                how = f"  (trimmed copy, starts at {f['offset_s']:.1f} s, score {f['score']:.2f})"
            elif f.get("kind"):
                how = f"  ({f['kind']}, score {f['score']:.2f})"
            print(f"  {safe_text(f['path'] or f['checksum'])}{how}")
    return EXIT_OK

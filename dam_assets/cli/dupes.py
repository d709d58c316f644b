"""`dam dupes`: near-duplicate video groups (re-encodes, resizes, trimmed copies)."""

from __future__ import annotations

import argparse
import json

from .. import settings
from ..storage.paths import safe_text
from .common import EXIT_CRASH, EXIT_OK, open_instance, say, use_instance_home


def cmd_dupes(args: argparse.Namespace) -> int:
    from dagster import AssetKey

    from ..library.dupes import duplicate_groups, hashed_videos, without_middle_hashes
    from ..storage import Store
    from .runs import find_near_duplicates

    use_instance_home()
    store = Store(settings.data_dir())
    instance = open_instance()
    event = instance.get_latest_materialization_event(AssetKey("near_duplicates"))
    made = event.asset_materialization.metadata.get("hashed_videos") if event else None
    if (made.value if made else None) != hashed_videos(store):  # new videos since: group again
        say("grouping near-duplicate video (run find_near_duplicates)…")
        run_id, ok = find_near_duplicates(instance, source="dam dupes")
        if not ok:
            say(f"dam dupes: run {run_id[:8]} failed (see it in the UI)")
            return EXIT_CRASH
    found = duplicate_groups(store)
    older = without_middle_hashes(store)
    if older:
        say(
            f"{older} video(s) were indexed before cropped copies could be found: their crops"
            " are not matched until their scenes are made again (backfill `scenes` in the UI)"
        )
    if args.json:
        print(json.dumps({"groups": found}, indent=1, default=str))
        return EXIT_OK
    if not found:
        print("No near-duplicate video found.")
    for n, group in enumerate(found, 1):
        print(f"group {n}: {len(group['files'])} files")
        for f in group["files"]:
            how = ""
            if f.get("kind") == "contained":
                how = f"  (trimmed copy, starts at {f['offset_s']:.1f} s, score {f['score']:.2f})"
            elif f.get("kind") == "cropped":
                at = f", starts at {f['offset_s']:.1f} s" if abs(f["offset_s"]) >= 0.5 else ""
                how = f"  (cropped copy{at}, score {f['score']:.2f})"
            elif f.get("kind"):
                how = f"  ({f['kind']}, score {f['score']:.2f})"
            print(f"  {safe_text(f['path'] or f['checksum'])}{how}")
    return EXIT_OK

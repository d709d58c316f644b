"""Near-duplicate video across the library: signatures from `timeline_frames`, pairs and
groups (media/near_dupes.py), and the groups people see in `dam dupes`."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from ..media.near_dupes import Match, Signature, find_near_duplicates, groups
from ..storage import Store
from ..storage.schemas import NEAR_DUPLICATES, rows_to_table

# Which videos have hashes: the grouping is out of date when this changes.
HASHED_VIDEOS_SQL = (
    "SELECT count(DISTINCT checksum) n, coalesce(sum(DISTINCT hash(checksum)), 0) h"
    " FROM timeline_frames"
)


def hashed_videos(store: Store) -> str:
    [row] = store.sql(HASHED_VIDEOS_SQL).to_pylist()
    return f"{row['n']}:{row['h']}"


def without_middle_hashes(store: Store) -> int:
    """Videos hashed before the middle hashes existed: they are not matched as crops."""
    [row] = store.sql(
        "SELECT count(*) n FROM (SELECT checksum FROM timeline_frames GROUP BY checksum"
        " HAVING count(dhash) > 0 AND count(dhash_centre) = 0)"
    ).to_pylist()
    return int(row["n"])


def signatures(store: Store) -> list[Signature]:
    """One per video with hashed seconds, from the scenes pass's per-second hashes (videos
    hashed before the middle hashes existed have none: they are not matched as crops until
    their scenes are made again)."""
    table = store.sql(
        "SELECT checksum, second, coalesce(dhash, 0) AS dhash, dhash IS NOT NULL AS known,"
        " coalesce(dhash_centre, 0) AS centre, dhash_centre IS NOT NULL AS centre_known"
        " FROM timeline_frames ORDER BY checksum, second"
    )
    if not table.num_rows:
        return []
    col = {n: table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}
    checksums = col["checksum"]
    starts = np.flatnonzero(np.r_[True, checksums[1:] != checksums[:-1]])
    ends = np.r_[starts[1:], len(checksums)]
    return [
        Signature.from_arrays(
            str(checksums[a]),
            col["second"][a:b],
            col["dhash"][a:b],
            col["known"][a:b],
            (col["centre"][a:b], col["centre_known"][a:b]),
        )
        for a, b in zip(starts, ends, strict=True)
    ]


def refresh_near_duplicates(store: Store) -> list[Match]:
    """Find every pair again and replace table `near_duplicates` (one snapshot, atomic)."""
    matches = find_near_duplicates(signatures(store))
    group_of = {ck: group[0] for group in groups(matches) for ck in group}
    now = datetime.now(UTC)
    rows = [{"group_id": group_of[m.checksum_a], **vars(m), "found_at": now} for m in matches]
    store.lake.write_snapshot("near_duplicates", rows_to_table(NEAR_DUPLICATES, rows))
    return matches


def duplicate_groups(store: Store) -> list[dict]:
    """Groups as `dam dupes` shows them: each file's checksum and path (the longest first,
    then each with how it relates to the group's first file when a pair says so)."""
    pairs = store.sql("SELECT * FROM near_duplicates ORDER BY group_id, score DESC").to_pylist()
    members: dict[str, dict[str, dict]] = {}
    for p in pairs:
        files = members.setdefault(p["group_id"], {})
        files.setdefault(p["checksum_a"], {"checksum": p["checksum_a"]})
        files.setdefault(
            p["checksum_b"],
            {
                "checksum": p["checksum_b"],
                "kind": p["kind"],
                "of": p["checksum_a"],
                "offset_s": p["offset_s"],
                "score": p["score"],
            },
        )
    paths = store.registry.paths_for_checksums(ck for g in members.values() for ck in g)
    out = []
    for group_id, files in members.items():
        listed = [{**f, "path": paths.get(f["checksum"])} for f in files.values()]
        out.append(
            {
                "group_id": group_id,
                "files": listed,
                "pairs": [
                    {
                        k: p[k]
                        for k in (
                            "checksum_a",
                            "checksum_b",
                            "kind",
                            "score",
                            "offset_s",
                            "overlap_s",
                        )
                    }
                    for p in pairs
                    if p["group_id"] == group_id
                ],
            }
        )
    return sorted(out, key=lambda g: (-len(g["files"]), g["group_id"]))

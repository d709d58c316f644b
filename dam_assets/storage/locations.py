"""Where each content is on storage, as discovery last saw it, for runs.

Runs read the registry's Parquet snapshot (`file_versions`, exported after every scan, before
any partition is added), never `registry.sqlite` itself: a run may execute on a worker machine
that shares `DAM_DATA_DIR` over NFS or SMB, where SQLite's locking (and WAL's shared memory)
does not hold. Only the host that runs discovery writes or opens the registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from .lake import Lake

_COLUMNS = [
    "path", "path_bytes", "checksum", "size_bytes", "mtime_ns", "last_seen", "current",
    "present", "rig", "rig_root",
]  # fmt: skip


class Locations:
    """The snapshot rows of some contents, read once per run."""

    def __init__(self, lake: Lake, checksums: Iterable[str]):
        wanted = pa.array(sorted(set(checksums)), pa.string())
        self._by_checksum: dict[str, list[dict]] = {}
        if len(wanted):
            table = lake.read_snapshot("file_versions", _COLUMNS)
            rows = table.filter(pc.is_in(table["checksum"], value_set=wanted)).to_pylist()
            for row in sorted(rows, key=lambda r: r["last_seen"], reverse=True):
                if row["path_bytes"]:  # the real name of a name that is not UTF-8
                    row["path"] = os.fsdecode(row["path_bytes"])
                self._by_checksum.setdefault(row["checksum"], []).append(row)

    def present_paths(self, checksum: str) -> list[str]:
        """Every path that held this content when last seen there, newest first."""
        return [r["path"] for r in self._by_checksum.get(checksum, []) if r["present"]]

    def path_for(self, checksum: str) -> str | None:
        """A present path, else where the content was last seen (for messages)."""
        rows = self._by_checksum.get(checksum, [])
        present = [r for r in rows if r["present"]]
        return (present or rows or [{"path": None}])[0]["path"]

    def _current(self, path: str, checksum: str) -> dict | None:
        for row in self._by_checksum.get(checksum, []):
            if row["path"] == path and row["current"]:
                return row
        return None

    def identity(self, path: str, checksum: str) -> tuple[int, int] | None:
        """(size, mtime_ns) the file had when this content was hashed at this path."""
        row = self._current(path, checksum)
        return (row["size_bytes"], row["mtime_ns"]) if row else None

    def rig_hint(self, path: str, checksum: str) -> tuple[str, str] | None:
        """(rig, root) given by `dam ingest --rig` for this content at this path."""
        for row in self._by_checksum.get(checksum, []):
            if row["path"] == path and row["rig"]:
                return row["rig"], row["rig_root"]
        return None

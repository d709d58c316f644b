"""The file registry: (path, size, mtime_ns, inode) -> checksum, so a file is hashed once.

SQLite (WAL) because the sensor, `dam ingest` and runs touch it from different processes and
it must answer 100k look-ups per tick in well under a second. The `media_files` view reads a
Parquet snapshot of it, exported after each change.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from .sqlite import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    root TEXT,
    media_kind TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    missing INTEGER NOT NULL DEFAULT 0,
    missing_since REAL
);
CREATE INDEX IF NOT EXISTS files_identity ON files (device, inode, size, mtime_ns);
CREATE INDEX IF NOT EXISTS files_checksum ON files (checksum);
CREATE INDEX IF NOT EXISTS files_root ON files (root);
CREATE TABLE IF NOT EXISTS rig_hints (
    path TEXT PRIMARY KEY,
    rig TEXT NOT NULL,
    root TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS discovery_errors (
    path TEXT PRIMARY KEY,
    size INTEGER,
    mtime_ns INTEGER,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    occurred_at REAL NOT NULL
);
"""

# last_seen is refreshed at most this often, so a tick over an unchanged 100k-file tree does
# not rewrite 100k rows.
LAST_SEEN_RESOLUTION_S = 3600.0


@dataclass(frozen=True)
class FileStat:
    path: str
    size: int
    mtime_ns: int
    inode: int
    device: int


@dataclass(frozen=True)
class KnownFile:
    checksum: str
    size: int
    mtime_ns: int
    inode: int
    missing: bool
    last_seen: float


class Registry(SqliteFile):
    def __init__(self, path: str | Path):
        super().__init__(path, _SCHEMA)

    # -- look-ups ----------------------------------------------------------------------------
    def known_files(self, under: Iterable[str] | None = None) -> dict[str, KnownFile]:
        """Every registered path (optionally only those under some folders) with its identity."""
        query = "SELECT path, checksum, size, mtime_ns, inode, missing, last_seen FROM files"
        with self._connect() as con:
            rows = con.execute(query).fetchall()
        prefixes = tuple(p.rstrip("/") + "/" for p in under) if under is not None else None
        return {
            r[0]: KnownFile(r[1], r[2], r[3], r[4], bool(r[5]), r[6])
            for r in rows
            if prefixes is None or r[0].startswith(prefixes)
        }

    def checksum_for_identity(self, stat: FileStat) -> str | None:
        """A file already hashed under another name with the same inode, size and mtime: a
        rename or move within one filesystem. Its content is known without reading it."""
        with self._connect() as con:
            row = con.execute(
                "SELECT checksum FROM files WHERE device=? AND inode=? AND size=? AND mtime_ns=?"
                " LIMIT 1",
                (stat.device, stat.inode, stat.size, stat.mtime_ns),
            ).fetchone()
        return row[0] if row else None

    def paths_for_checksums(self, checksums: Iterable[str]) -> dict[str, str]:
        """One present path per checksum (the most recently seen), for display and decoding."""
        wanted = list(dict.fromkeys(checksums))
        found: dict[str, str] = {}
        with self._connect() as con:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = con.execute(
                    f"SELECT checksum, path FROM files WHERE checksum IN ({marks})"
                    " ORDER BY missing DESC, last_seen ASC",
                    chunk,
                ).fetchall()
                found.update(dict(rows))  # later rows (present, newest) win
        return found

    def present_paths(self, checksum: str) -> list[str]:
        """Every path registered for this content and not known to be missing, newest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT path FROM files WHERE checksum = ? AND missing = 0 ORDER BY last_seen DESC",
                (checksum,),
            ).fetchall()
        return [r[0] for r in rows]

    def identity(self, path: str) -> tuple[int, int] | None:
        """(size, mtime_ns) the file had when it was hashed."""
        with self._connect() as con:
            row = con.execute("SELECT size, mtime_ns FROM files WHERE path = ?", (path,)).fetchone()
        return (row[0], row[1]) if row else None

    def set_rig(self, paths: Iterable[str], rig: str, root: str) -> None:
        """`dam ingest --rig`: these files (a card offload) belong to `rig`, laid out as under
        its root but below `root`."""
        with self._connect() as con:
            con.executemany(
                "INSERT OR REPLACE INTO rig_hints VALUES (?,?,?)", [(p, rig, root) for p in paths]
            )

    def rig_hints(self) -> dict[str, tuple[str, str]]:
        with self._connect() as con:
            rows = con.execute("SELECT path, rig, root FROM rig_hints").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def discovery_errors(self) -> dict[str, tuple[int | None, int | None, float]]:
        """path -> (size, mtime_ns, when) of files that failed at discovery."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT path, size, mtime_ns, occurred_at FROM discovery_errors"
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    # -- updates -----------------------------------------------------------------------------
    def record_files(
        self,
        entries: Iterable[tuple[FileStat, str, str | None, str | None]],
        now: float | None = None,
    ) -> None:
        """Register (stat, checksum, root, media_kind) as present now; clears their errors."""
        now = time.time() if now is None else now
        rows = [
            (s.path, ck, s.size, s.mtime_ns, s.inode, s.device, root, kind, now, now)
            for s, ck, root, kind in entries
        ]
        if not rows:
            return
        with self._connect() as con:
            con.execute("BEGIN")
            con.executemany(
                "INSERT INTO files (path, checksum, size, mtime_ns, inode, device, root,"
                " media_kind, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(path) DO UPDATE SET checksum=excluded.checksum, size=excluded.size,"
                " mtime_ns=excluded.mtime_ns, inode=excluded.inode, device=excluded.device,"
                " root=COALESCE(excluded.root, files.root), media_kind=excluded.media_kind,"
                " last_seen=excluded.last_seen, missing=0, missing_since=NULL",
                rows,
            )
            con.executemany("DELETE FROM discovery_errors WHERE path=?", [(r[0],) for r in rows])
            con.execute("COMMIT")

    def touch(self, paths: Iterable[str], now: float | None = None) -> int:
        """Mark unchanged files seen (coarsely, see LAST_SEEN_RESOLUTION_S); un-miss them."""
        now = time.time() if now is None else now
        with self._connect() as con:
            con.execute("BEGIN")
            cur = con.executemany(
                "UPDATE files SET last_seen=?, missing=0, missing_since=NULL"
                " WHERE path=? AND (missing=1 OR last_seen < ?)",
                [(now, p, now - LAST_SEEN_RESOLUTION_S) for p in paths],
            )
            con.execute("COMMIT")
            return cur.rowcount

    def mark_missing(self, paths: Iterable[str], now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._connect() as con:
            con.execute("BEGIN")
            cur = con.executemany(
                "UPDATE files SET missing=1, missing_since=? WHERE path=? AND missing=0",
                [(now, p) for p in paths],
            )
            con.execute("COMMIT")
            return cur.rowcount

    def record_error(
        self, path: str, size: int | None, mtime_ns: int | None, error_type: str, message: str
    ) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO discovery_errors VALUES (?,?,?,?,?,?)",
                (path, size, mtime_ns, error_type, message, time.time()),
            )

    def clear_errors(self, paths: Iterable[str]) -> None:
        with self._connect() as con:
            con.executemany("DELETE FROM discovery_errors WHERE path=?", [(p,) for p in paths])

    # -- exports for the catalog -------------------------------------------------------------
    def media_files_table(self) -> pa.Table:
        with self._connect() as con:
            rows = con.execute(
                "SELECT path, checksum, size, mtime_ns, inode, root, media_kind, first_seen,"
                " last_seen, missing, missing_since FROM files ORDER BY path"
            ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(11)]
        return pa.table(
            {
                "path": pa.array(cols[0], pa.string()),
                "checksum": pa.array(cols[1], pa.string()),
                "size_bytes": pa.array(cols[2], pa.int64()),
                "mtime_ns": pa.array(cols[3], pa.int64()),
                "inode": pa.array(cols[4], pa.int64()),
                "root": pa.array(cols[5], pa.string()),
                "media_kind": pa.array(cols[6], pa.string()),
                "first_seen": _timestamps(cols[7]),
                "last_seen": _timestamps(cols[8]),
                "missing": pa.array([bool(v) for v in cols[9]], pa.bool_()),
                "missing_since": _timestamps(cols[10]),
            }
        )

    def discovery_errors_table(self) -> pa.Table:
        with self._connect() as con:
            rows = con.execute(
                "SELECT path, error_type, message, occurred_at FROM discovery_errors ORDER BY path"
            ).fetchall()
        return pa.table(
            {
                "path": pa.array([r[0] for r in rows], pa.string()),
                "checksum": pa.nulls(len(rows), pa.string()),
                "stage": pa.array(["discovery"] * len(rows), pa.string()),
                "error_type": pa.array([r[1] for r in rows], pa.string()),
                "message": pa.array([r[2] for r in rows], pa.string()),
                "occurred_at": _timestamps([r[3] for r in rows]),
            }
        )


def _timestamps(values: Iterable[float | None]) -> pa.Array:
    return pa.array(
        [datetime.fromtimestamp(v, UTC) if v is not None else None for v in values],
        pa.timestamp("us", tz="UTC"),
    )

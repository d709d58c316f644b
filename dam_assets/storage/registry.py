"""The file registry: which content every path has held, so a file is hashed once and no
provenance is ever lost.

One row per *version* of a path: the content (checksum) it held from when it was first seen
with it until it held something else. Camera cards reuse names (card A's `DCIM/C0001.MP4`,
then card B's at the same mount point), so a path is not an identity: a new content at a path
starts version n+1 and version n stays, marked replaced. The `current` version of a path is
what it holds now (or held when last seen, if it is gone: `missing`). Rig hints are kept per
(path, checksum) by the same rule.

SQLite (WAL) because the sensor, `dam ingest` and runs touch it from different processes and
it must answer 100k look-ups per tick in well under a second. The `media_files` and
`file_versions` views read Parquet snapshots of it, exported after each change. Names that are
not valid UTF-8 are stored as their raw bytes (see paths.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from .paths import display_path, from_db, raw_bytes, to_db
from .sqlite import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_versions (
    path TEXT NOT NULL,
    version INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    root TEXT,
    media_kind TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    current INTEGER NOT NULL DEFAULT 1,
    missing INTEGER NOT NULL DEFAULT 0,
    missing_since REAL,
    replaced_at REAL,
    PRIMARY KEY (path, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS versions_current ON file_versions (path) WHERE current = 1;
CREATE INDEX IF NOT EXISTS versions_identity
    ON file_versions (device, inode, size, mtime_ns) WHERE current = 1;
CREATE INDEX IF NOT EXISTS versions_checksum ON file_versions (checksum);
CREATE TABLE IF NOT EXISTS content_rig_hints (
    path TEXT NOT NULL,
    checksum TEXT NOT NULL,
    rig TEXT NOT NULL,
    root TEXT NOT NULL,
    PRIMARY KEY (path, checksum)
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

# Registries written before versions existed keyed everything by path: each path's one row
# becomes its version 1 (the content it held when last seen), rig hints its content's hint.
_MIGRATE_V1 = """
INSERT INTO file_versions (path, version, checksum, size, mtime_ns, inode, device, root,
    media_kind, first_seen, last_seen, current, missing, missing_since)
SELECT path, 1, checksum, size, mtime_ns, inode, device, root, media_kind, first_seen,
    last_seen, 1, missing, missing_since FROM files;
INSERT OR IGNORE INTO content_rig_hints (path, checksum, rig, root)
SELECT h.path, f.checksum, h.rig, h.root FROM rig_hints h JOIN files f USING (path);
DROP TABLE rig_hints;
DROP TABLE files;
"""

# last_seen is refreshed at most this often, so a tick over an unchanged 100k-file tree does
# not rewrite 100k rows.
LAST_SEEN_RESOLUTION_S = 3600.0
_PRESENT = "current = 1 AND missing = 0"


@dataclass(frozen=True)
class FileStat:
    path: str
    size: int
    mtime_ns: int
    inode: int
    device: int


@dataclass(frozen=True)
class KnownFile:
    """A path's current version."""

    checksum: str
    size: int
    mtime_ns: int
    inode: int
    missing: bool
    last_seen: float


class Registry(SqliteFile):
    def __init__(self, path: str | Path):
        super().__init__(path, _SCHEMA)
        old = "SELECT 1 FROM sqlite_master WHERE name = 'files'"
        with self._connect() as con:
            if con.execute(old).fetchone():
                con.execute("BEGIN IMMEDIATE")  # one process migrates, the others see it done
                if con.execute(old).fetchone():
                    for statement in _MIGRATE_V1.split(";"):
                        if statement.strip():
                            con.execute(statement)
                con.execute("COMMIT")

    # -- look-ups ----------------------------------------------------------------------------
    def known_files(self, under: Iterable[str] | None = None) -> dict[str, KnownFile]:
        """Every registered path's current version (optionally only under some folders)."""
        query = (
            "SELECT path, checksum, size, mtime_ns, inode, missing, last_seen FROM file_versions"
            " WHERE current = 1"
        )
        with self._connect() as con:
            rows = con.execute(query).fetchall()
        prefixes = tuple(p.rstrip("/") + "/" for p in under) if under is not None else None
        known = {}
        for r in rows:
            path = from_db(r[0])
            if prefixes is None or path.startswith(prefixes):
                known[path] = KnownFile(r[1], r[2], r[3], r[4], bool(r[5]), r[6])
        return known

    def checksum_for_identity(self, stat: FileStat) -> str | None:
        """A file already hashed under another name with the same inode, size and mtime: a
        rename or move within one filesystem. Its content is known without reading it.
        Only current versions count: a replaced version describes a file that is gone."""
        with self._connect() as con:
            row = con.execute(
                "SELECT checksum FROM file_versions WHERE device=? AND inode=? AND size=?"
                " AND mtime_ns=? AND current = 1 LIMIT 1",
                (stat.device, stat.inode, stat.size, stat.mtime_ns),
            ).fetchone()
        return row[0] if row else None

    def paths_for_checksums(self, checksums: Iterable[str]) -> dict[str, str]:
        """One path per checksum for display and decoding: a present one (most recently seen)
        when there is one, else where the content was last seen."""
        wanted = list(dict.fromkeys(checksums))
        found: dict[str, str] = {}
        with self._connect() as con:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = con.execute(
                    f"SELECT checksum, path FROM file_versions WHERE checksum IN ({marks})"
                    f" ORDER BY ({_PRESENT}) ASC, last_seen ASC",
                    chunk,
                ).fetchall()
                found.update({ck: from_db(p) for ck, p in rows})  # later rows win
        return found

    def present_paths(self, checksum: str) -> list[str]:
        """Every path that holds this content now (as last seen), newest first."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT path FROM file_versions WHERE checksum = ? AND {_PRESENT}"
                " ORDER BY last_seen DESC",
                (checksum,),
            ).fetchall()
        return [from_db(r[0]) for r in rows]

    def present_checksums(self) -> list[str]:
        """Every content some path holds now, in the order it was first seen."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT checksum FROM file_versions WHERE {_PRESENT}"
                " GROUP BY checksum ORDER BY min(first_seen), checksum"
            ).fetchall()
        return [r[0] for r in rows]

    def identity(self, path: str) -> tuple[int, int] | None:
        """(size, mtime_ns) the path's current content had when it was hashed."""
        with self._connect() as con:
            row = con.execute(
                "SELECT size, mtime_ns FROM file_versions WHERE path = ? AND current = 1",
                (to_db(path),),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def set_rig(self, entries: Iterable[tuple[str, str]], rig: str, root: str) -> None:
        """`dam ingest --rig`: these (path, checksum) (a card offload) belong to `rig`, laid
        out as under its root but below `root`. Another content at the same path later is
        not assumed to be the same card."""
        with self._connect() as con:
            con.executemany(
                "INSERT OR REPLACE INTO content_rig_hints VALUES (?,?,?,?)",
                [(to_db(p), ck, rig, root) for p, ck in entries],
            )

    def rig_hints(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(path, checksum) -> (rig, root)."""
        with self._connect() as con:
            rows = con.execute("SELECT path, checksum, rig, root FROM content_rig_hints")
            return {(from_db(r[0]), r[1]): (r[2], r[3]) for r in rows.fetchall()}

    def discovery_errors(self) -> dict[str, tuple[int | None, int | None, float]]:
        """path -> (size, mtime_ns, when) of files that failed at discovery."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT path, size, mtime_ns, occurred_at FROM discovery_errors"
            ).fetchall()
        return {from_db(r[0]): (r[1], r[2], r[3]) for r in rows}

    # -- updates -----------------------------------------------------------------------------
    def record_files(
        self,
        entries: Iterable[tuple[FileStat, str, str | None, str | None]],
        now: float | None = None,
    ) -> int:
        """Register (stat, checksum, root, media_kind) as present now and clear their errors.
        A path that held other content keeps that as an older version. Returns how many paths
        got a new version."""
        now = time.time() if now is None else now
        entries = list(entries)
        if not entries:
            return 0
        new_versions = 0
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            for s, ck, root, kind in entries:
                key = to_db(s.path)
                cur = con.execute(
                    "SELECT version, checksum FROM file_versions WHERE path=? AND current=1",
                    (key,),
                ).fetchone()
                if cur and cur[1] == ck:
                    con.execute(
                        "UPDATE file_versions SET size=?, mtime_ns=?, inode=?, device=?,"
                        " root=COALESCE(?, root), media_kind=?, last_seen=?, missing=0,"
                        " missing_since=NULL WHERE path=? AND version=?",
                        (s.size, s.mtime_ns, s.inode, s.device, root, kind, now, key, cur[0]),
                    )
                    continue
                if cur:  # the path now holds other content: the old one is kept, replaced
                    con.execute(
                        "UPDATE file_versions SET current=0, replaced_at=? WHERE path=?"
                        " AND version=?",
                        (now, key, cur[0]),
                    )
                    new_versions += 1
                con.execute(
                    "INSERT INTO file_versions (path, version, checksum, size, mtime_ns, inode,"
                    " device, root, media_kind, first_seen, last_seen) VALUES (?,"
                    " (SELECT coalesce(max(version), 0) + 1 FROM file_versions WHERE path=?),"
                    " ?,?,?,?,?,?,?,?,?)",
                    (key, key, ck, s.size, s.mtime_ns, s.inode, s.device, root, kind, now, now),
                )
            con.executemany(
                "DELETE FROM discovery_errors WHERE path=?", [(to_db(e[0].path),) for e in entries]
            )
            con.execute("COMMIT")
        return new_versions

    def touch(self, paths: Iterable[str], now: float | None = None) -> int:
        """Mark unchanged files seen (coarsely, see LAST_SEEN_RESOLUTION_S); un-miss them."""
        now = time.time() if now is None else now
        with self._connect() as con:
            con.execute("BEGIN")
            cur = con.executemany(
                "UPDATE file_versions SET last_seen=?, missing=0, missing_since=NULL"
                " WHERE path=? AND current=1 AND (missing=1 OR last_seen < ?)",
                [(now, to_db(p), now - LAST_SEEN_RESOLUTION_S) for p in paths],
            )
            con.execute("COMMIT")
            return cur.rowcount

    def mark_missing(self, paths: Iterable[str], now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._connect() as con:
            con.execute("BEGIN")
            cur = con.executemany(
                "UPDATE file_versions SET missing=1, missing_since=? WHERE path=? AND current=1"
                " AND missing=0",
                [(now, to_db(p)) for p in paths],
            )
            con.execute("COMMIT")
            return cur.rowcount

    def record_error(
        self, path: str, size: int | None, mtime_ns: int | None, error_type: str, message: str
    ) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO discovery_errors VALUES (?,?,?,?,?,?)",
                (to_db(path), size, mtime_ns, error_type, message, time.time()),
            )

    def clear_errors(self, paths: Iterable[str]) -> None:
        with self._connect() as con:
            con.executemany(
                "DELETE FROM discovery_errors WHERE path=?", [(to_db(p),) for p in paths]
            )

    # -- exports for the catalog -------------------------------------------------------------
    def media_files_table(self) -> pa.Table:
        """One row per (path, checksum) ever seen, from its latest version at that path:
        `missing` unless the path holds it now, `replaced` when the path holds other content,
        `content_present` when some path still holds it."""
        with self._connect() as con:
            rows = con.execute(
                f"""
                WITH present AS (SELECT DISTINCT checksum FROM file_versions WHERE {_PRESENT}),
                ranked AS (
                    SELECT *,
                        row_number() OVER (PARTITION BY path, checksum ORDER BY version DESC) rn,
                        count(*) OVER (PARTITION BY path, checksum) versions,
                        min(first_seen) OVER (PARTITION BY path, checksum) first_ever
                    FROM file_versions
                )
                SELECT path, checksum, size, mtime_ns, inode, root, media_kind, first_ever,
                    last_seen, NOT ({_PRESENT}),
                    CASE WHEN current = 1 THEN missing_since ELSE replaced_at END,
                    current = 0, checksum IN (SELECT checksum FROM present), versions
                FROM ranked WHERE rn = 1 ORDER BY path, first_ever
                """
            ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(14)]
        paths = [from_db(p) for p in cols[0]]
        return pa.table(
            {
                "path": pa.array([display_path(p) for p in paths], pa.string()),
                "checksum": pa.array(cols[1], pa.string()),
                "size_bytes": pa.array(cols[2], pa.int64()),
                "mtime_ns": pa.array(cols[3], pa.int64()),
                "inode": pa.array(cols[4], pa.int64()),
                "root": pa.array([display_path(r) for r in cols[5]], pa.string()),
                "media_kind": pa.array(cols[6], pa.string()),
                "first_seen": _timestamps(cols[7]),
                "last_seen": _timestamps(cols[8]),
                "missing": pa.array([bool(v) for v in cols[9]], pa.bool_()),
                "missing_since": _timestamps(cols[10]),
                "replaced": pa.array([bool(v) for v in cols[11]], pa.bool_()),
                "content_present": pa.array([bool(v) for v in cols[12]], pa.bool_()),
                "versions": pa.array(cols[13], pa.int32()),
                "path_bytes": pa.array([raw_bytes(p) for p in paths], pa.binary()),
            }
        )

    def file_versions_table(self) -> pa.Table:
        """Per path, each content it held, in order (version 1, 2, …)."""
        with self._connect() as con:
            rows = con.execute(
                f"""
                SELECT v.path, version, v.checksum,
                    lag(v.checksum) OVER (PARTITION BY v.path ORDER BY version),
                    size, mtime_ns, first_seen, last_seen, current, ({_PRESENT}),
                    CASE WHEN current = 1 THEN missing_since ELSE replaced_at END,
                    v.checksum IN (SELECT checksum FROM file_versions WHERE {_PRESENT}),
                    h.rig, h.root
                FROM file_versions v LEFT JOIN content_rig_hints h
                    ON h.path = v.path AND h.checksum = v.checksum
                ORDER BY v.path, version
                """
            ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(14)]
        paths = [from_db(p) for p in cols[0]]
        return pa.table(
            {
                "path": pa.array([display_path(p) for p in paths], pa.string()),
                "version": pa.array(cols[1], pa.int32()),
                "checksum": pa.array(cols[2], pa.string()),
                "previous_checksum": pa.array(cols[3], pa.string()),
                "size_bytes": pa.array(cols[4], pa.int64()),
                "mtime_ns": pa.array(cols[5], pa.int64()),
                "first_seen": _timestamps(cols[6]),
                "last_seen": _timestamps(cols[7]),
                "current": pa.array([bool(v) for v in cols[8]], pa.bool_()),
                "present": pa.array([bool(v) for v in cols[9]], pa.bool_()),
                "gone_since": _timestamps(cols[10]),
                "content_present": pa.array([bool(v) for v in cols[11]], pa.bool_()),
                "rig": pa.array(cols[12], pa.string()),
                "rig_root": pa.array([display_path(r) for r in cols[13]], pa.string()),
                "path_bytes": pa.array([raw_bytes(p) for p in paths], pa.binary()),
            }
        )

    def discovery_errors_table(self) -> pa.Table:
        with self._connect() as con:
            rows = con.execute(
                "SELECT path, error_type, message, occurred_at FROM discovery_errors ORDER BY path"
            ).fetchall()
        return pa.table(
            {
                "path": pa.array([display_path(from_db(r[0])) for r in rows], pa.string()),
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

"""Full-text index over transcript segments (SQLite FTS5, Porter stemming).

DuckDB's fts extension is downloaded on first use, which an offline library cannot do; SQLite
ships FTS5 with Python. The index is a cache of the lake's `transcript_segments`, kept on the
machine that searches: `sync()` brings it up to date with the files whose transcript changed
(by `transcripts.transcribed_at`) before each search. Runs never write it, so a transcription
step on a worker machine never opens a SQLite file on a shared (NFS/SMB) folder, and a lost or
damaged index is rebuilt by the next search.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .sqlite import SqliteFile

_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS segments USING fts5(
    text, checksum UNINDEXED, segment_index UNINDEXED, start_s UNINDEXED, end_s UNINDEXED,
    tokenize = 'porter unicode61'
);
CREATE TABLE IF NOT EXISTS indexed (checksum TEXT PRIMARY KEY, signature TEXT NOT NULL);
"""


class TextIndex(SqliteFile):
    def __init__(self, path: str | Path):
        super().__init__(path, _SCHEMA)

    def replace(self, checksum: str, segments: Iterable[dict]) -> None:
        """One transaction: a reader sees the old rows or the new ones, never a mix."""
        rows = [
            (s["text"], checksum, s["segment_index"], s["start_s"], s["end_s"]) for s in segments
        ]
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM segments WHERE checksum = ?", (checksum,))
            con.executemany("INSERT INTO segments VALUES (?,?,?,?,?)", rows)
            con.execute("COMMIT")

    def sync(
        self, current: dict[str, str], segments_of: Callable[[list[str]], Iterable[dict]]
    ) -> int:
        """Make the index hold exactly the files of `current` (checksum -> signature of its
        transcript): re-index those whose signature changed, drop those gone. `segments_of`
        reads the segments of some files from the lake. Returns how many files changed."""
        with self._connect() as con:
            indexed = dict(con.execute("SELECT checksum, signature FROM indexed").fetchall())
        stale = [k for k, sig in current.items() if indexed.get(k) != sig]
        gone = [k for k in indexed if k not in current]
        if not stale and not gone:
            return 0
        rows: dict[str, list[tuple]] = {k: [] for k in stale}
        for i in range(0, len(stale), 1000):
            for s in segments_of(stale[i : i + 1000]):
                rows[s["checksum"]].append(
                    (s["text"], s["checksum"], s["segment_index"], s["start_s"], s["end_s"])
                )
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")  # a reader sees the old rows or the new ones
            for key in stale + gone:
                con.execute("DELETE FROM segments WHERE checksum = ?", (key,))
            con.executemany("DELETE FROM indexed WHERE checksum = ?", [(k,) for k in gone])
            for key in stale:
                con.executemany("INSERT INTO segments VALUES (?,?,?,?,?)", rows[key])
            con.executemany(
                "INSERT OR REPLACE INTO indexed VALUES (?, ?)", [(k, current[k]) for k in stale]
            )
            con.execute("COMMIT")
        return len(stale) + len(gone)

    def search(
        self, text: str, limit: int = 20, checksums: Sequence[str] | None = None
    ) -> list[dict]:
        """Segments containing every word of `text` (stemmed), best BM25 match first; only of
        the files `checksums` names, when given."""
        query = fts_query(text)
        if not query or (checksums is not None and not checksums):
            return []
        among = "" if checksums is None else " AND checksum IN (SELECT value FROM json_each(?))"
        params = (query,) + (() if checksums is None else (json.dumps(list(checksums)),))
        with self._connect() as con:
            rows = con.execute(
                "SELECT checksum, segment_index, start_s, end_s, text, bm25(segments) AS rank"
                f" FROM segments WHERE segments MATCH ?{among} ORDER BY rank LIMIT ?",
                (*params, limit),
            ).fetchall()
        keys = ("checksum", "segment_index", "start", "end", "text", "rank")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def count(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT count(*) FROM segments").fetchone()[0]


def fts_query(text: str) -> str:
    """User words to an FTS5 query: each word quoted (no operator injection), all required;
    a quoted "phrase" in the input stays a phrase."""
    parts = []
    for phrase, word in re.findall(r'"([^"]+)"|(\w+)', text):
        token = phrase or word
        if token.strip():
            parts.append('"' + token.replace('"', "") + '"')
    return " ".join(parts)

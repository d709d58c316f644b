"""Full-text index over transcript segments (SQLite FTS5, Porter stemming).

DuckDB's fts extension is downloaded on first use, which an offline library cannot do; SQLite
ships FTS5 with Python. The transcripts asset replaces a file's rows here in the same step that
writes its Parquet unit, and `rebuild()` recreates the index from the lake at any time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .sqlite import SqliteFile

_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS segments USING fts5(
    text, checksum UNINDEXED, segment_index UNINDEXED, start_s UNINDEXED, end_s UNINDEXED,
    tokenize = 'porter unicode61'
);
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

    def search(self, text: str, limit: int = 20) -> list[dict]:
        """Segments containing every word of `text` (stemmed), best BM25 match first."""
        query = fts_query(text)
        if not query:
            return []
        with self._connect() as con:
            rows = con.execute(
                "SELECT checksum, segment_index, start_s, end_s, text, bm25(segments) AS rank"
                " FROM segments WHERE segments MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
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

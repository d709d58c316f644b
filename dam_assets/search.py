"""Search the library from Python (notebooks) and from `dam search`."""

from __future__ import annotations

import os

from . import settings
from .storage import Store


def search_transcripts(
    text: str, limit: int = 20, data_dir: str | os.PathLike[str] | None = None
) -> list[dict]:
    """Transcript segments containing every word of `text` (stemmed; "quoted phrases" stay
    phrases), best match first, each with the file's current path."""
    store = Store(settings.data_dir(data_dir))
    hits = store.text_index.search(text, limit=limit)
    paths = store.registry.paths_for_checksums(h["checksum"] for h in hits)
    return [
        {
            "checksum": h["checksum"],
            "path": paths.get(h["checksum"]),
            "start": h["start"],
            "end": h["end"],
            "text": h["text"],
            "segment_index": h["segment_index"],
            "score": round(-h["rank"], 4),  # BM25: higher is better
        }
        for h in hits
    ]

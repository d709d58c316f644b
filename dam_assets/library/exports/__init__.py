"""Editor hand-off: search moments, one file, and a synced capture session as timelines an
editing program opens at the right frame (OpenTimelineIO, FCPXML, FCP 7 XML, EDL, ALE, CSV,
JSON). Pure code over catalog rows, no Dagster: `dam export`, `dam rigs export` and a web
handler call the same functions. With `dest=None` they return the bytes (to send as a
download, with `FORMATS[name].media_type`); with a path they write it atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import opentimelineio as otio

from ...storage import Store
from .formats import FORMATS, Format, format_for, render, write_atomic
from .sources import ExportError, find_checksum
from .timelines import (
    DEFAULT_HANDLES,
    Handles,
    file_timeline,
    moments_timeline,
    placed_clips,
    session_timeline,
)

__all__ = [
    "FORMATS",
    "ExportError",
    "Format",
    "Handles",
    "deliver",
    "export_file",
    "export_moments",
    "export_session",
    "file_timeline",
    "find_checksum",
    "format_for",
    "moments_timeline",
    "placed_clips",
    "render",
    "session_timeline",
    "write_atomic",
]

Destination = str | os.PathLike[str] | BinaryIO | None


def deliver(
    timeline: otio.schema.Timeline, dest: Destination = None, fmt: str | None = None,
    force: bool = False,
) -> bytes | Path:  # fmt: skip
    """Render a timeline in `fmt` (else the format `dest`'s extension names) and return the
    bytes (dest None), write them to a binary file object, or write a file atomically (an
    existing one only with `force`). Nothing is written when rendering fails."""
    is_path = isinstance(dest, str | os.PathLike)
    spec = format_for(dest if is_path else None, fmt)
    data = render(timeline, spec)
    if dest is None:
        return data
    if not is_path:
        dest.write(data)
        return data
    return write_atomic(dest, data, force)


def export_moments(
    store: Store,
    moments: list[dict],
    dest: Destination = None,
    fmt: str | None = None,
    query: str = "",
    handles: Handles = DEFAULT_HANDLES,
    title: str | None = None,
    force: bool = False,
) -> bytes | Path:
    """Search results (`checksum`, `start`, `end`, `score`, optional `text`) as a timeline."""
    return deliver(moments_timeline(store, moments, query, handles, title), dest, fmt, force)


def export_file(
    store: Store,
    checksum: str,
    dest: Destination = None,
    fmt: str | None = None,
    subclips: bool = False,
    unnamed_people: bool = False,
    force: bool = False,
) -> bytes | Path:
    """One file with its scene, transcript, people and capture markers."""
    timeline = file_timeline(store, checksum, subclips, unnamed_people)
    return deliver(timeline, dest, fmt, force)


def export_session(
    store: Store,
    session_id: str,
    dest: Destination = None,
    fmt: str | None = None,
    force: bool = False,
) -> bytes | Path:
    """A capture session as a synced multicam timeline."""
    return deliver(session_timeline(store, session_id), dest, fmt, force)

"""Which files are media, by extension (cheap enough to run on every file of a 100k tree)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

MediaKind = Literal["video", "audio", "image"]

VIDEO_EXTENSIONS = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".mkv",
        ".webm",
        ".avi",
        ".mxf",
        ".mts",
        ".m2ts",
        ".ts",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".3gp",
        ".dv",
        ".r3d",
        ".braw",
        ".insv",
        ".lrv",
    ]
)
AUDIO_EXTENSIONS = frozenset(
    [
        ".wav",
        ".bwf",
        ".aif",
        ".aiff",
        ".mp3",
        ".m4a",
        ".aac",
        ".flac",
        ".ogg",
        ".opus",
        ".wma",
        ".caf",
    ]
)
IMAGE_EXTENSIONS = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".png",
        ".tif",
        ".tiff",
        ".webp",
        ".bmp",
        ".gif",
        ".heic",
        ".heif",
        ".dng",
        ".cr2",
        ".cr3",
        ".nef",
        ".arw",
    ]
)


def kind_for_path(path: str | Path) -> MediaKind | None:
    """The media kind an extension promises, or None for files we do not index."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def is_hidden_or_partial(name: str) -> bool:
    """Dotfiles (rsync temp files, macOS `._` forks) and common in-progress copy names."""
    lowered = name.lower()
    return name.startswith(".") or lowered.endswith((".part", ".partial", ".crdownload", ".tmp"))

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


# Folders that hold NAS housekeeping, trash, snapshots or NLE caches, never footage: Synology
# makes several thumbnail JPEGs per file in @eaDir, and a recycle bin would bring deleted files
# back. Matched case-insensitively on the folder name.
EXCLUDED_DIRS = frozenset(
    name.lower()
    for name in (
        "@eaDir",
        "#recycle",
        "#snapshot",
        "@Recycle",
        "@Recently-Snapshot",
        "$RECYCLE.BIN",
        "System Volume Information",
        "lost+found",
        "Media Cache Files",
        "Media Cache",
        "Adobe Premiere Pro Auto-Save",
        "Render Files",
        "Transcoded Media",
        "Proxy Media",
        "Peaks Files",
        "CacheClip",
    )
)
EXCLUDED_DIR_SUFFIXES = (".fcpbundle", ".fcpcache", ".photoslibrary", ".dvcc")


def is_excluded_dir(name: str) -> bool:
    lowered = name.lower()
    return lowered in EXCLUDED_DIRS or lowered.endswith(EXCLUDED_DIR_SUFFIXES)


def is_hidden_or_partial(name: str) -> bool:
    """Dotfiles (rsync temp files, macOS `._` forks) and common in-progress copy names."""
    lowered = name.lower()
    return name.startswith(".") or lowered.endswith((".part", ".partial", ".crdownload", ".tmp"))

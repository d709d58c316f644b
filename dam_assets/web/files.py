"""Which file on disk answers a URL. A URL names a checksum (and, for pictures, a name in that
checksum's own thumbnails folder), never a path; only registered checksums are served.

An original is served from a present copy whose size and mtime are still those it had when it
was hashed, so the bytes sent are the bytes the checksum names (a file re-exported since is
not served under its old checksum).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..media.proxy import proxy_path
from ..storage.paths import display_path
from .library import Library, NotServed, checked

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}")
# Browsers play QuickTime MOV with H.264 as they play MP4; named video/quicktime, some refuse.
MEDIA_TYPES = {".mov": "video/mp4", ".m4v": "video/mp4", ".mts": "video/mp2t", ".vtt": "text/vtt"}


def original(library: Library, checksum: str) -> tuple[Path, os.stat_result]:
    checksum = checked(checksum)
    registry = library.store.registry
    if not registry.paths_for_checksums([checksum]):
        raise NotServed(404, "no file with this checksum is registered")
    changed = None
    for candidate in registry.present_paths(checksum):
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if registry.identity(candidate) == (st.st_size, st.st_mtime_ns):
            return Path(candidate), st
        changed = candidate
    if changed:
        raise NotServed(
            409,
            f"{display_path(changed)} changed after it was hashed; it is served again once the"
            " next scan has hashed it",
        )
    raise NotServed(410, "no copy of this content is present on storage now")


def proxy(library: Library, checksum: str) -> Path:
    checksum = checked(checksum)
    path = proxy_path(library.store.data_dir / "proxies", checksum)
    if not library.registered(checksum) or not path.is_file():
        raise NotServed(404, "no proxy for this file (see the clip page)")
    return path


def picture(library: Library, checksum: str, names: list[str]) -> Path:
    """A file in the checksum's thumbnails folder (posters, sprite, scene keyframes, face
    crops below `faces/`): plain names only, at most one folder deep."""
    checksum = checked(checksum)
    if not 1 <= len(names) <= 2 or not all(NAME.fullmatch(n) for n in names):
        raise NotServed(404, "no such picture")
    if len(names) == 2 and names[0] != "faces":
        raise NotServed(404, "no such picture")
    folder = library.store.media_dir(library.store.thumbnails_dir, checksum).resolve()
    path = folder.joinpath(*names).resolve()
    if not path.is_relative_to(folder) or not path.is_file() or not library.registered(checksum):
        raise NotServed(404, "no such picture")
    return path


def captions(library: Library, checksum: str) -> Path:
    checksum = checked(checksum)
    path = library.store.captions_dir / f"{checksum}.vtt"
    if not path.is_file() or not library.registered(checksum):
        raise NotServed(404, "no captions for this file")
    return path


def media_type(path: Path) -> str | None:
    return MEDIA_TYPES.get(path.suffix.lower())

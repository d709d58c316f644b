"""Content identity: the BLAKE3 digest of a file's full contents."""

from __future__ import annotations

import os
from pathlib import Path

import blake3

# The full 256-bit digest, 64 hex characters: identical to what `b3sum FILE` prints, so a user
# can verify any partition key by hand.
CHECKSUM_HEX_LENGTH = 64
_CHUNK = 4 * 1024 * 1024


def file_checksum(path: str | os.PathLike[str]) -> str:
    """BLAKE3 of the whole file. Memory-maps large files (lets BLAKE3 use several threads);
    streams small ones, where mapping costs more than it saves."""
    path = Path(path)
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    size = path.stat().st_size
    if size >= 16 * _CHUNK:
        hasher.update_mmap(path)
    else:
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
    return hasher.hexdigest()


def is_checksum(value: str) -> bool:
    return len(value) == CHECKSUM_HEX_LENGTH and all(c in "0123456789abcdef" for c in value)

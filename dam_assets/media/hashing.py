"""Content identity: the BLAKE3 digest of a file's full contents."""

from __future__ import annotations

import os
from pathlib import Path

import blake3

# The full 256-bit digest, 64 hex characters: identical to what `b3sum FILE` prints, so a user
# can verify any partition key by hand.
CHECKSUM_HEX_LENGTH = 64
_CHUNK = 4 * 1024 * 1024
_MMAP_FROM = 64 * 1024 * 1024


def file_checksum(path: str | os.PathLike[str]) -> str:
    """BLAKE3 of the whole file. Large files are memory-mapped and hashed on all cores; small
    ones are streamed on one thread, where threads and mapping cost more than they save."""
    path = Path(path)
    size = path.stat().st_size
    if size >= _MMAP_FROM:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        return hasher.hexdigest()
    hasher = blake3.blake3()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def is_checksum(value: str) -> bool:
    return len(value) == CHECKSUM_HEX_LENGTH and all(c in "0123456789abcdef" for c in value)

"""Content identity: the BLAKE3 digest of a file's full contents.

Files are read in chunks, never memory-mapped: a mapped file that shrinks while it is hashed
(a re-export over the same name, `rsync --inplace`) or a share that fails a read turns the
next page fault into SIGBUS, which kills the whole process (the sensor's code server, `dam
ingest`). A read error is an ordinary OSError instead, and BLAKE3 on large chunks is still
far faster than any disk.
"""

from __future__ import annotations

import os

import blake3

# The full 256-bit digest, 64 hex characters: identical to what `b3sum FILE` prints, so a user
# can verify any partition key by hand.
CHECKSUM_HEX_LENGTH = 64
_CHUNK = 16 * 1024 * 1024
# From this size a chunk is hashed on all cores (BLAKE3's tree lets it); below, threads cost
# more than they save.
_THREADS_FROM = 64 * 1024 * 1024


class ChangedWhileReading(OSError):
    """The file's size or mtime changed while it was read: the digest names no real content."""


def file_checksum(path: str | os.PathLike[str]) -> str:
    """BLAKE3 of the whole file, or ChangedWhileReading when the file is being rewritten."""
    with open(path, "rb", buffering=0) as handle:
        before = os.fstat(handle.fileno())
        threads = blake3.blake3.AUTO if before.st_size >= _THREADS_FROM else 1
        hasher = blake3.blake3(max_threads=threads)
        buffer = memoryview(bytearray(min(_CHUNK, max(before.st_size, 1))))
        total = 0
        while n := handle.readinto(buffer):
            hasher.update(buffer[:n])
            total += n
        after = os.fstat(handle.fileno())
    if total != before.st_size or (after.st_size, after.st_mtime_ns) != (
        before.st_size,
        before.st_mtime_ns,
    ):
        raise ChangedWhileReading(
            f"{os.fspath(path)!r} changed while it was read ({before.st_size:,} bytes at the"
            f" start, {total:,} read, {after.st_size:,} at the end)"
        )
    return hasher.hexdigest()


def is_checksum(value: str) -> bool:
    return len(value) == CHECKSUM_HEX_LENGTH and all(c in "0123456789abcdef" for c in value)

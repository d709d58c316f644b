"""Verified archive copies of the originals (`dam archive`, the `archive_media` job).

A copy is written under a temporary name inside the archive, fsynced, read back from the disk
and hashed (BLAKE3, the file's partition key), and only then given its name, without ever
replacing a file. The ledger (`archive_copies`, a lake table) records each copy as soon as it
is verified, so a run that is killed resumes where it stopped. Sources are opened read-only
and never changed, moved or renamed. No Dagster here: the job and the CLI call these.
"""

from __future__ import annotations

from .layout import ArchiveError
from .runs import ArchiveReport, Outcome, VerifyReport, archive_files, verify_copies

__all__ = [
    "ArchiveError",
    "ArchiveReport",
    "Outcome",
    "VerifyReport",
    "archive_files",
    "verify_copies",
]

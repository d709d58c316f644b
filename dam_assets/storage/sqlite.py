"""The SQLite files next to the lake (registry, text index), opened the same way everywhere."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..settings import is_worker


class HostOnly(RuntimeError):
    """A worker machine tried to open one of the host's SQLite files."""


class SqliteFile:
    """A WAL-mode database that several processes (sensor, runs, `dam`) of one machine use at
    once; writers wait up to a minute for each other instead of failing. WAL needs memory
    shared between the processes, so only the host opens these files: a worker machine
    (`DAM_ROLE=worker`) refuses to, instead of corrupting them over NFS or SMB."""

    def __init__(self, path: str | Path, schema: str):
        if is_worker():
            raise HostOnly(
                f"{Path(path).name} belongs to the host: this machine is a worker"
                " (DAM_ROLE=worker), which reads the registry's snapshot in the lake and never"
                " opens the host's SQLite files. Run this on the host."
            )
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(schema)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            yield con
        finally:
            con.close()

"""Which code version made each partition's latest materialization, as read from Dagster's
event log so far, and how far it has been read (the cursor: the last storage id read).

Reading every materialization event of seven assets costs about 1 ms an event (Dagster
deserializes each), 12 minutes at 100,000 files: far more than a schedule's tick. Remembered
here, the nightly run reads only the events written since. Nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from .sqlite import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS partition_versions (
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,
    code_version TEXT,
    storage_id INTEGER NOT NULL,
    materialized_at REAL NOT NULL,
    PRIMARY KEY (asset, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS version_cursors (
    asset TEXT PRIMARY KEY,
    storage_id INTEGER NOT NULL
);
"""


class PartitionVersions(SqliteFile):
    def __init__(self, path: str | Path):
        super().__init__(path, SCHEMA)

    def cursor(self, asset: str) -> int | None:
        """The storage id of the last materialization read for `asset`; None: none read."""
        with self._connect() as con:
            row = con.execute(
                "SELECT storage_id FROM version_cursors WHERE asset = ?", [asset]
            ).fetchone()
        return row[0] if row else None

    def record(self, asset: str, rows: Iterable[tuple[str, str | None, int]], cursor: int) -> None:
        """(partition, code version, storage id) of materializations read up to `cursor`, in
        one transaction with the cursor, so a crash never leaves a cursor past unread rows. A
        row only replaces an older one (higher storage id wins)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                "INSERT INTO partition_versions VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (asset, partition) DO UPDATE SET"
                " code_version = excluded.code_version, storage_id = excluded.storage_id,"
                " materialized_at = excluded.materialized_at"
                " WHERE excluded.storage_id > partition_versions.storage_id",
                ((asset, p, v, s, t) for p, v, s, t in rows),
            )
            con.execute(
                "INSERT INTO version_cursors VALUES (?, ?)"
                " ON CONFLICT (asset) DO UPDATE SET storage_id = excluded.storage_id"
                " WHERE excluded.storage_id > version_cursors.storage_id",
                [asset, cursor],
            )
            con.execute("COMMIT")

    def forget(self, asset: str) -> None:
        """Drop what was read for `asset` (its events were wiped, or the cursor belongs to
        another instance): the next read starts from the beginning."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM partition_versions WHERE asset = ?", [asset])
            con.execute("DELETE FROM version_cursors WHERE asset = ?", [asset])
            con.execute("COMMIT")

    def versions(self, asset: str) -> dict[str, str | None]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT partition, code_version FROM partition_versions WHERE asset = ?",
                [asset],
            ).fetchall()
        return dict(rows)

    def count(self, asset: str) -> int:
        with self._connect() as con:
            return con.execute(
                "SELECT count(*) FROM partition_versions WHERE asset = ?", [asset]
            ).fetchone()[0]

    def partitions(self, asset: str) -> set[str]:
        """The partitions of `asset` with a materialization read."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT partition FROM partition_versions WHERE asset = ?", [asset]
            ).fetchall()
        return {r[0] for r in rows}

    def materialized_at(self, asset: str, partitions: Sequence[str]) -> dict[str, float]:
        """partition -> when its latest materialization read was written, for `partitions`."""
        found: dict[str, float] = {}
        with self._connect() as con:
            for start in range(0, len(partitions), 500):
                chunk = list(partitions[start : start + 500])
                marks = ",".join("?" * len(chunk))
                found.update(
                    con.execute(
                        "SELECT partition, materialized_at FROM partition_versions"
                        f" WHERE asset = ? AND partition IN ({marks})",
                        [asset, *chunk],
                    ).fetchall()
                )
        return found

    def other_than(self, asset: str, current: str | None, keys: Sequence[str]) -> list[str]:
        """Of `keys`, those whose latest materialization read had another code version."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT partition FROM partition_versions WHERE asset = ?"
                " AND code_version IS NOT ?",
                [asset, current],
            ).fetchall()
        wanted = set(keys)
        return [r[0] for r in rows if r[0] in wanted]

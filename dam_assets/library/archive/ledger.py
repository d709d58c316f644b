"""The ledger of archive copies: lake table `archive_copies`, one unit per content.

A unit holds one row per archive the content was copied to. Runs for two archives (or a verify
beside an archive run) may update the same content's unit, so each update re-reads the unit
under a lock and replaces only its archive's row. Parquet in the lake, never SQLite: a worker
(`DAM_ROLE=worker`) that runs the job over a shared `DAM_DATA_DIR` can write it.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator

from ...storage import Store
from ...storage.schemas import ARCHIVE_COPIES, rows_to_table

TABLE = ARCHIVE_COPIES.name
STATUSES = ("verified", "mismatch", "missing", "unreadable", "failed")


class Ledger:
    def __init__(self, store: Store):
        self.store = store

    def rows(self, archive_id: str | None = None) -> list[dict]:
        """Every recorded copy (of one archive), through the catalog (one query, any size)."""
        if archive_id is None:
            return self.store.sql(
                f"SELECT * FROM {TABLE} ORDER BY archive_id, checksum"
            ).to_pylist()
        query = f"SELECT * FROM {TABLE} WHERE archive_id = ? ORDER BY checksum"
        return self.store.sql(query, [archive_id]).to_pylist()

    def record(self, row: dict, only_if: Callable[[dict | None], bool] | None = None) -> bool:
        """Replace this content's row for this archive (False: `only_if` refused the current
        row, e.g. a verify that hashed a copy an archive run has replaced since)."""
        lake = self.store.lake
        with self._locked():
            current = lake.read_units(TABLE, [row["checksum"]]).to_pylist()
            mine = [r for r in current if r["archive_id"] == row["archive_id"]]
            if only_if is not None and not only_if(mine[0] if mine else None):
                return False
            kept = [r for r in current if r["archive_id"] != row["archive_id"]]
            lake.write_unit(TABLE, row["checksum"], rows_to_table(ARCHIVE_COPIES, [*kept, row]))
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        folder = self.store.lake.table_dir(TABLE)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".ledger.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

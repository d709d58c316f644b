"""LanceDB store for CLIP frame vectors (`DAM_DATA_DIR/lancedb`, table `clip_frames`).

A run replaces the vectors of its partitions in one `merge_insert` commit (insert new rows,
update matched ones, delete the partitions' rows that are gone), so a reader sees the old set or
the new set, never a gap or duplicates. Every row carries its model id; searches filter on it,
so vectors of two models never meet. A model with a different vector size moves the old table
aside as `clip_frames__<dim>d` rather than deleting it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

FRAMES_TABLE = "clip_frames"
# Measured (make bench, 2 cores, 512-d): LanceDB's exact search takes ~38 ms at 10k vectors,
# ~280 ms at 100k, ~2.2 s at 1M; it crosses 50 ms near 14k. Past this line an IVF_PQ index is
# built (4 s at 10k, 43 s at 100k, 64 s at 1M) and searches take 6–64 ms.
INDEX_MIN_ROWS = 15_000
# With an index, re-rank this many times the requested candidates by exact distance: PQ
# distances are coarse, the re-rank restores the order among near neighbours.
REFINE_FACTOR = 10


def frame_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("row_id", pa.string()),
            ("checksum", pa.string()),
            ("time_s", pa.float64()),
            ("scene_index", pa.int32()),
            ("source", pa.string()),  # scene | interval | query
            ("thumbnail", pa.string()),
            ("model_id", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


class VectorStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _db(self):
        import lancedb

        self.path.mkdir(parents=True, exist_ok=True)
        return lancedb.connect(str(self.path))

    def _open(self, dim: int | None = None, create: bool = False):
        """`clip_frames`, or for a model whose vectors have another size than the table's,
        `clip_frames_<dim>d` (LanceDB cannot rename tables, and old vectors are kept)."""
        db = self._db()
        names = set(db.list_tables().tables)
        if FRAMES_TABLE not in names:
            return db.create_table(FRAMES_TABLE, schema=frame_schema(dim)) if create else None
        table = db.open_table(FRAMES_TABLE)
        if dim is None or table.schema.field("vector").type.list_size == dim:
            return table
        other = f"{FRAMES_TABLE}_{dim}d"
        if other in names:
            return db.open_table(other)
        return db.create_table(other, schema=frame_schema(dim)) if create else None

    def replace(self, model_id: str, checksums: Sequence[str], rows: list[dict], dim: int) -> None:
        """Make the vectors of these partitions exactly `rows`, in one commit."""
        if not checksums:
            return
        table = self._open(dim, create=True)
        # every model's rows of these files: a new model replaces the old one's vectors
        where = f"checksum IN ({_sql_list(checksums)})"
        if not rows:
            table.delete(where)
            return
        for row in rows:
            ms = round(row["time_s"] * 1000)
            row["row_id"] = f"{model_id}|{row['checksum']}|{row['source']}|{ms}"
        data = pa.Table.from_pylist(rows, schema=frame_schema(dim))
        (
            table.merge_insert("row_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(where)
            .execute(data)
        )

    def _tables(self) -> list:
        """`clip_frames` and the tables of models with another vector size."""
        db = self._db()
        return [
            db.open_table(n)
            for n in sorted(db.list_tables().tables)
            if n == FRAMES_TABLE or n.startswith(f"{FRAMES_TABLE}_")
        ]

    def count(self, model_id: str | None = None) -> int:
        where = None if model_id is None else f"model_id IN ({_sql_list([model_id])})"
        return sum(t.count_rows(where) if where else t.count_rows() for t in self._tables())

    def rows(self, columns: Sequence[str] = ("checksum", "time_s", "model_id")) -> pa.Table:
        """All rows without vectors (for checks and the catalog mirror)."""
        parts = [t.search().select(list(columns)).limit(None).to_arrow() for t in self._tables()]
        if not parts:
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        return pa.concat_tables(parts)

    def search(
        self, vector: np.ndarray, model_id: str, limit: int, checksums: Sequence[str] | None = None
    ) -> list[dict]:
        """Nearest frames by cosine distance among this model's vectors (optionally only these
        files), best first. Uses the ANN index when one exists, exact search otherwise."""
        table = self._open(len(vector))
        if table is None:
            return []
        where = f"model_id IN ({_sql_list([model_id])})"
        if checksums is not None:
            if not checksums:
                return []
            where += f" AND checksum IN ({_sql_list(checksums)})"
        query = (
            table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
            .distance_type("cosine")
            .where(where, prefilter=True)
            .refine_factor(REFINE_FACTOR)
            .limit(limit)
            .select(["checksum", "time_s", "scene_index", "source", "thumbnail", "_distance"])
        )
        return query.to_list()

    def ensure_index(self, dim: int | None = None, min_rows: int = INDEX_MIN_ROWS) -> bool:
        """Build (or rebuild) the IVF_PQ index once the table is past brute-force size."""
        table = self._open(dim)
        if table is None or table.count_rows() < min_rows:
            return False
        indexed = any("vector" in (i.columns or []) for i in table.list_indices())
        if not indexed:
            table.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_PQ")
            return True
        table.optimize()  # folds new rows into the existing index
        return False

"""LanceDB vector tables under `DAM_DATA_DIR/lancedb`: CLIP frames (`clip_frames`), faces
(`faces`) and face tracks (`face_tracks`).

A run replaces the vectors of its partitions in one `merge_insert` commit (insert new rows,
update matched ones, delete the partitions' rows that are gone), so a reader sees the old set or
the new set, never a gap or duplicates. Every row carries its model id; searches filter on it,
so vectors of two models never meet. A model with a different vector size gets its own table
(`clip_frames_<dim>d`) rather than deleting the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from .schemas import CLIP_FRAMES

FRAMES_TABLE = "clip_frames"
# Measured (make bench, 2 cores, 512-d): LanceDB's exact search takes ~38 ms at 10k vectors,
# ~280 ms at 100k, ~2.2 s at 1M; it crosses 50 ms near 14k. Past this line an IVF_PQ index is
# built (4 s at 10k, 43 s at 100k, 64 s at 1M) and searches take 6–64 ms.
INDEX_MIN_ROWS = 15_000
# With an index, re-rank this many times the requested candidates by exact distance: PQ
# distances are coarse, the re-rank restores the order among near neighbours.
REFINE_FACTOR = 10


FRAME_FIELDS = [(field.name, field.type) for field in CLIP_FRAMES.schema]  # the catalog's mirror
FACE_FIELDS = [
    ("checksum", pa.string()),
    ("time_s", pa.float64()),
    ("track_id", pa.string()),
    ("model_id", pa.string()),
]
TRACK_FIELDS = [
    ("checksum", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("detections", pa.int32()),
    ("model_id", pa.string()),
]


def frame_row_id(model_id: str, row: dict) -> str:
    return f"{model_id}|{row['checksum']}|{row['source']}|{round(row['time_s'] * 1000)}"


def frame_schema(dim: int, fields: Sequence = FRAME_FIELDS) -> pa.Schema:
    return pa.schema([("row_id", pa.string()), *fields, ("vector", pa.list_(pa.float32(), dim))])


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


class VectorStore:
    """One vector table (and its siblings for other vector sizes)."""

    def __init__(
        self,
        path: str | Path,
        name: str = FRAMES_TABLE,
        fields: Sequence = FRAME_FIELDS,
        row_id: Callable[[str, dict], str] = frame_row_id,
    ):
        self.path = Path(path)
        self.name = name
        self.fields = list(fields)
        self.row_id = row_id

    def schema(self, dim: int) -> pa.Schema:
        return frame_schema(dim, self.fields)

    def _db(self):
        import lancedb

        self.path.mkdir(parents=True, exist_ok=True)
        return lancedb.connect(str(self.path))

    def _open(self, dim: int | None = None, create: bool = False):
        """The table, or for a model whose vectors have another size than the table's,
        `<name>_<dim>d` (LanceDB cannot rename tables, and old vectors are kept)."""
        db = self._db()
        names = set(db.list_tables().tables)
        if self.name not in names:
            return db.create_table(self.name, schema=self.schema(dim)) if create else None
        table = db.open_table(self.name)
        if dim is None or table.schema.field("vector").type.list_size == dim:
            return table
        other = f"{self.name}_{dim}d"
        if other in names:
            return db.open_table(other)
        return db.create_table(other, schema=self.schema(dim)) if create else None

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
            row["row_id"] = self.row_id(model_id, row)
        data = pa.Table.from_pylist(rows, schema=self.schema(dim))
        (
            table.merge_insert("row_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(where)
            .execute(data)
        )

    def delete(self, checksums: Sequence[str]) -> None:
        """Drop every vector of these files (any model)."""
        if checksums:
            for table in self._tables():
                table.delete(f"checksum IN ({_sql_list(checksums)})")

    def _tables(self) -> list:
        """This table and its siblings for models with another vector size."""
        db = self._db()
        return [
            db.open_table(n)
            for n in sorted(db.list_tables().tables)
            if n == self.name or (n.startswith(f"{self.name}_") and n.endswith("d"))
        ]

    def count(self, model_id: str | None = None) -> int:
        where = None if model_id is None else f"model_id IN ({_sql_list([model_id])})"
        return sum(t.count_rows(where) if where else t.count_rows() for t in self._tables())

    def rows(
        self,
        columns: Sequence[str] = ("checksum", "time_s", "model_id"),
        checksums: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows without vectors (for checks and the catalog mirror): all, or those of some
        files."""
        parts = []
        for table in self._tables():
            query = table.search()
            if checksums is not None:
                query = query.where(f"checksum IN ({_sql_list(list(checksums) or [''])})")
            parts.append(query.select(list(columns)).limit(None).to_arrow())
        if not parts:
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        return pa.concat_tables(parts)

    def vectors(self, model_id: str | None, row_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """These rows' vectors (made by `model_id`), in the order given; absent ones skipped."""
        wanted = set(row_ids)
        found: dict[str, np.ndarray] = {}
        where = f"model_id IN ({_sql_list([model_id or ''])})"
        for table in self._tables():
            data = table.search().where(where).select(["row_id", "vector"]).limit(None).to_arrow()
            if not data.num_rows:
                continue
            matrix = data.column("vector").combine_chunks().values.to_numpy()
            matrix = matrix.reshape(data.num_rows, -1)
            for i, rid in enumerate(data.column("row_id").to_pylist()):
                if rid in wanted:
                    found[rid] = matrix[i]
        ids = [r for r in row_ids if r in found]
        dim = len(next(iter(found.values()))) if found else 0
        return ids, np.stack([found[r] for r in ids]) if ids else np.zeros((0, dim), np.float32)

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
            .select([name for name, _ in self.fields] + ["row_id", "_distance"])
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

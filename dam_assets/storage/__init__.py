"""All storage in one place: the Parquet lake, the DuckDB catalog, the file registry, and the
folders for derived files. Nothing here imports Dagster."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa

from .catalog import ensure_catalog, session
from .lake import Lake
from .locations import Locations
from .partition_versions import PartitionVersions
from .people import PeopleStore
from .registry import Registry
from .schemas import ASSET_SKIPS, INGEST_ERRORS, TABLES, rows_to_table
from .text_index import TextIndex
from .vectors import FACE_FIELDS, TRACK_FIELDS, VectorStore

__all__ = ["TABLES", "Lake", "Registry", "Store"]

# the assets that need a model someone installs (they skip, not fail, without it)
SKIPPABLE = ("transcripts", "clip_embeddings", "faces")


class Store:
    """Everything under one `DAM_DATA_DIR`."""

    def __init__(self, data_dir: str | os.PathLike[str]):
        self.data_dir = Path(data_dir)
        self.lake = Lake(self.data_dir / "lake")
        self.catalog_path = self.data_dir / "catalog.duckdb"
        self.thumbnails_dir = self.data_dir / "thumbnails"
        self.captions_dir = self.data_dir / "captions"
        self.models_dir = self.data_dir / "models"
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.data_dir / "registry.sqlite")
        return self._registry

    def locations(self, checksums) -> Locations:
        """Where these contents are, from the registry's snapshot (what runs read: they may
        run on a worker machine, which never opens the registry's SQLite file)."""
        return Locations(self.lake, checksums)

    @property
    def vectors(self) -> VectorStore:
        return VectorStore(self.data_dir / "lancedb")

    @property
    def face_vectors(self) -> VectorStore:
        """One vector per detected face (LanceDB `faces`)."""
        return VectorStore(
            self.data_dir / "lancedb", "faces", FACE_FIELDS, lambda _m, row: row["face_id"]
        )

    @property
    def track_vectors(self) -> VectorStore:
        """The mean vector of each face track (LanceDB `face_tracks`): what people cluster."""
        return VectorStore(
            self.data_dir / "lancedb", "face_tracks", TRACK_FIELDS, lambda _m, row: row["track_id"]
        )

    @property
    def partition_versions(self) -> PartitionVersions:
        """Code versions of the partitions' latest materializations read from Dagster."""
        return PartitionVersions(self.data_dir / "partition_versions.sqlite")

    @property
    def people(self) -> PeopleStore:
        return PeopleStore(self.data_dir / "people.sqlite")

    def text_index(self) -> TextIndex:
        """The full-text index, brought up to date with the lake's transcripts first."""
        index = TextIndex(self.data_dir / "transcripts_fts.sqlite")
        current = {
            r["checksum"]: str(r["transcribed_at"])
            for r in self.sql("SELECT checksum, transcribed_at FROM transcripts").to_pylist()
        }
        index.sync(
            current, lambda keys: self.lake.read_units("transcript_segments", keys).to_pylist()
        )
        return index

    def media_dir(self, root: Path, checksum: str) -> Path:
        """Per-file folder for derived files, sharded so no folder holds 80k entries."""
        return root / checksum[:2] / checksum

    # -- catalog -----------------------------------------------------------------------------
    def refresh_catalog(self, force: bool = False) -> bool:
        """Rebuild `catalog.duckdb` if its tables or sources changed (True when it did), and
        delete the lake files whose grace period ran out (Lake.purge_due)."""
        rebuilt = ensure_catalog(self.catalog_path, self.lake, force=force)
        self.lake.purge_due()
        return rebuilt

    def sql(self, query: str, params: list | None = None) -> pa.Table:
        """Run a query on the catalog's views and return Arrow.

        The views live in an in-memory database made for this query (catalog.session), never
        in `catalog.duckdb`, which a person's SQL tool may hold; the lake's readers lock keeps
        `purge` from deleting a file the query listed."""
        self.refresh_catalog()
        with self.lake.reading():
            con = session(self.lake, query)
            try:
                return con.sql(query, params=params or None).to_arrow_table()
            finally:
                con.close()

    def frame(self, query: str, params: list | None = None) -> pl.DataFrame:
        """`sql` as a polars frame (zero-copy from Arrow)."""
        return pl.from_arrow(self.sql(query, params))  # type: ignore[return-value]

    # -- errors ------------------------------------------------------------------------------
    def record_stage_error(
        self, stage: str, checksum: str, path: str | None, error_type: str, message: str
    ) -> None:
        """Record why one partition failed a stage; replaces that stage's earlier error."""
        row = {
            "path": path,
            "checksum": checksum,
            "stage": stage,
            "error_type": error_type,
            "message": message,
            "occurred_at": datetime.now(UTC),
        }
        self.lake.write_unit(
            "ingest_errors", f"{stage}--{checksum}", rows_to_table(INGEST_ERRORS, [row])
        )

    def record_skip(self, stage: str, model: str, message: str) -> None:
        """`stage` did nothing: its model is not installed (see defs/common/results.py)."""
        row = {"stage": stage, "model": model, "message": message, "since": datetime.now(UTC)}
        previous = self.lake.read_units("asset_skips", [stage]).to_pylist()
        if previous and previous[0]["model"] == model:
            row["since"] = previous[0]["since"]
        self.lake.write_unit("asset_skips", stage, rows_to_table(ASSET_SKIPS, [row]))

    def clear_skip(self, stage: str) -> None:
        if self.lake.read_units("asset_skips", [stage]).num_rows:
            self.lake.delete_unit("asset_skips", stage)

    def skips(self) -> dict[str, dict]:
        """stage -> its skip row, for every asset waiting for a model."""
        table = self.lake.read_units("asset_skips", sorted(SKIPPABLE))
        return {r["stage"]: r for r in table.to_pylist()}

    def clear_stage_error(self, stage: str, checksum: str) -> None:
        self.lake.delete_unit("ingest_errors", f"{stage}--{checksum}")

    def export_registry(self) -> None:
        """Snapshot the registry into the lake so the catalog's `media_files`,
        `file_versions` and `ingest_errors` views show it."""
        self.lake.write_snapshot("media_files", self.registry.media_files_table())
        self.lake.write_snapshot("file_versions", self.registry.file_versions_table())
        self.lake.write_unit("ingest_errors", "discovery", self.registry.discovery_errors_table())

"""The index from a notebook, as polars frames.

Every query runs on the catalog's views in an in-memory DuckDB session (never a connection
held on `catalog.duckdb`, which would stop the pipeline rebuilding it), so a notebook can stay
open for days. Frames come zero-copy from Arrow; `.to_pandas()` converts when needed.

    from dam_assets import catalog
    catalog.files().filter(pl.col("duration_s") > 60)
    catalog.query("SELECT make, model, count(*) AS n FROM probe GROUP BY ALL")
"""

from __future__ import annotations

import os

import polars as pl

from . import settings
from .storage import Store
from .storage.schemas import PROBE


def _store(data_dir: str | os.PathLike[str] | None) -> Store:
    return Store(settings.data_dir(data_dir))


def query(
    sql: str, params: list | None = None, data_dir: str | os.PathLike[str] | None = None
) -> pl.DataFrame:
    """Any SQL over the catalog's views (README > Tables), `?` placeholders bound to
    `params`."""
    return _store(data_dir).frame(sql, params)


def table(name: str, data_dir: str | os.PathLike[str] | None = None) -> pl.DataFrame:
    """One table or view whole (`probe`, `scenes`, `transcripts`, `file_versions`, …)."""
    store = _store(data_dir)
    if name not in store.sql("SELECT view_name FROM duckdb_views()").column(0).to_pylist():
        raise KeyError(f"no table or view named {name!r} in the catalog")
    return store.frame(f'SELECT * FROM "{name}"')


def files(data_dir: str | os.PathLike[str] | None = None) -> pl.DataFrame:
    """Every file present now, with its probe facts: one row per path."""
    mine = ["path", "checksum", "size_bytes", "media_kind"]
    facts = ", ".join(f'p."{c}"' for c in PROBE.schema.names if c not in mine)
    return query(
        f"SELECT {', '.join('f.' + c for c in mine)}, {facts}"
        " FROM media_files f LEFT JOIN probe p USING (checksum)"
        " WHERE NOT f.missing ORDER BY f.path",
        data_dir=data_dir,
    )


def failures(data_dir: str | os.PathLike[str] | None = None) -> pl.DataFrame:
    """What failed, per stage and file, newest first, with the path it was read from."""
    return query("SELECT * FROM ingest_errors ORDER BY occurred_at DESC", data_dir=data_dir)

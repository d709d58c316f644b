"""The DuckDB catalog: a small file of views over the lake, replaced by rename.

DuckDB refuses to open a file for writing while any other process holds it, even read-only
(a notebook left open would stop the pipeline). So the pipeline never writes to the catalog in
place: it builds a new file and renames it over the old one. Readers keep the old inode until
they reconnect; the views read Parquet, so they see new partitions without any rewrite.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

import duckdb

from .lake import Lake
from .schemas import TABLES, TableSpec

CATALOG_VERSION = 1


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def view_sql(lake: Lake, spec: TableSpec) -> str:
    if spec.layout == "snapshot":
        body = f"SELECT * FROM read_parquet({_sql_str(str(lake.snapshot_path(spec.name)))})"
    else:
        units = _sql_str(lake.unit_glob(spec.name))
        body = f"SELECT * FROM read_parquet({units}, union_by_name = true)"
        if spec.compactable:
            segments = _sql_str(lake.segment_glob(spec.name))
            # A unit file replaces the segment rows of its checksum (see lake.py).
            body += (
                "\nUNION ALL BY NAME"
                f"\nSELECT s.* FROM read_parquet({segments}, union_by_name = true) s"
                f"\nANTI JOIN (SELECT parse_filename(file, true) AS unit_key FROM glob({units})) u"
                "\nON s.checksum = u.unit_key"
            )
    return f"CREATE OR REPLACE VIEW {spec.name} AS\n{body}"


def _signature(lake: Lake) -> dict:
    return {
        "version": CATALOG_VERSION,
        "lake": str(lake.root),
        "tables": {name: str(spec.schema) for name, spec in sorted(TABLES.items())},
    }


def ensure_catalog(path: Path, lake: Lake, force: bool = False) -> bool:
    """(Re)build the catalog when it is missing or its tables or lake path changed.
    Returns True when a new file was written."""
    sidecar = path.with_suffix(".json")
    signature = _signature(lake)
    if not force and path.exists() and sidecar.exists():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(sidecar.read_text()) == signature:
                return False
    lake.ensure_all()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            for spec in TABLES.values():
                con.execute(view_sql(lake, spec))
                if spec.description:
                    con.execute(f"COMMENT ON VIEW {spec.name} IS {_sql_str(spec.description)}")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
        tmp_sidecar = sidecar.with_name(f".{sidecar.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp_sidecar.write_text(json.dumps(signature, indent=1))
        os.replace(tmp_sidecar, sidecar)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with contextlib.suppress(FileNotFoundError):
            tmp.with_name(tmp.name + ".wal").unlink()
    return True


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection: many readers at once, and the pipeline never waits on them."""
    return duckdb.connect(str(path), read_only=True)

"""The DuckDB views over the lake: in `catalog.duckdb` for people, in memory for the pipeline.

DuckDB refuses to open a file for writing while any other process holds it, and the DuckDB CLI
and DBeaver open files read-write by default, which then makes even read-only opens fail. So
the pipeline never opens `catalog.duckdb`: `Store.sql` runs the same views (`view_sql`, one
source of truth) in an in-memory database (`session`). The file is rebuilt as a new file
renamed over the old one, which works while someone holds it; they keep the old views until
they reconnect, and the views read Parquet, so new rows show up.

Each view takes one listing of its table's files, picks each partition's current file from it
(the rule in lake.py) and keeps only rows read from those files. In the file the listing is a
glob that ignores files newer than the query's start (DuckDB expands globs lazily, partly at
execution, so two globs in one query see different moments). For `Store.sql` it is taken in
Python just before the query (lake.listing) and the scans read only the files it picked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb

from .lake import ANCHOR, GEN_WIDTH, Lake, Source
from .schemas import TABLES, VIEWS, TableSpec

CATALOG_VERSION = 2
FILE_COLUMN = "_dam_file"  # the column read_parquet adds with each row's file; no table has it
_KINDS = {
    ("snapshot", False): ("snapshot",),
    ("units", False): ("unit",),
    ("units", True): ("unit", "segment"),
}
_INTROSPECTION = re.compile(r"\b(show|duckdb_\w+|information_schema|pragma_\w+)\b", re.I)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _globs(table: str, kind: str, globs: Sequence[str]) -> str:
    return "[" + ", ".join(_sql_str(g) for g in globs) + "]"


def _listed(table: str, kind: str, globs: Sequence[str]) -> str:
    return f"getvariable('{_variable(table, kind)}')"


def _variable(table: str, kind: str) -> str:
    return f"_dam_{table}_{kind}_files"


def _listing(sources: Sequence[Source], kind: str) -> list[str]:
    """One row per file: its kind, shard, key and generation, parsed from its path."""
    stem = "parse_filename(file, true)"
    name = f"split_part({stem}, '@', 1)"
    selects = []
    for src in sources:
        gen = f"split_part({stem}, '@', 2)"
        if src.gen is not None:  # the old layout: one generation for all, anchors below it
            gen = f"CASE WHEN {stem} = '{ANCHOR}' THEN '' ELSE {_sql_str(src.gen)} END"
        shard, key = {
            "unit": ("parse_filename(parse_dirpath(file))", name),
            "segment": (name, "NULL"),
            "snapshot": ("NULL", "NULL"),
        }[kind]
        selects.append(
            f"SELECT file, '{kind}' AS kind, {shard} AS shard, {key} AS key, {gen} AS gen"
            f" FROM glob({_sql_str(src.glob)})"
        )
    return selects


Files = Callable[[str, str, Sequence[str]], str]  # (table, kind, globs) -> read_parquet's list


def _scan(spec: TableSpec, kind: str, sources: Sequence[Source], files: Files) -> str:
    """The rows of `kind` files (aliased by the kind's initial), each with its file's path."""
    found = files(spec.name, kind, [s.glob for s in sources])
    options = f"filename = {_sql_str(FILE_COLUMN)}, union_by_name = true"
    return f"read_parquet({found}, {options}) {kind[0]}"


def view_sql(
    lake: Lake,
    spec: TableSpec,
    listing: str | None = None,
    files: Files | None = None,
) -> str:
    """The view of one table. It picks from `listing` (a relation with lake.listing's
    columns) and reads the files in the connection's `_dam_<table>_<kind>_files` variables,
    or else globs, ignoring files newer than the query. `files` renders what the data scans
    read instead (a list of globs, say)."""
    files = files or (_globs if listing is None else _listed)
    src = lake.sources(spec.name)
    columns = lambda alias: ", ".join(f'{alias}."{c}"' for c in spec.schema.names)  # noqa: E731
    if listing is not None:
        found = f"SELECT file, kind, shard, key, gen FROM {listing}"
    else:
        globs = [
            *_listing(src.units, "unit"),
            *_listing(src.segments, "segment"),
            *_listing(src.snapshots, "snapshot"),
        ]
        found = (
            "SELECT * FROM (\n    " + "\n    UNION ALL ".join(globs) + "\n  )"
            f"\n  WHERE gen <= lpad(CAST(epoch_ns(now()) AS VARCHAR), {GEN_WIDTH}, '0')"
        )
    head = f"WITH listing AS MATERIALIZED (\n  {found}\n)"
    if spec.layout == "snapshot":
        body = (
            f"{head},\nnewest AS (SELECT arg_max(file, gen) AS file FROM listing)\n"
            f"SELECT {columns('s')} FROM newest w"
            f"\nJOIN {_scan(spec, 'snapshot', src.snapshots, files)}"
            f" ON s.{FILE_COLUMN} = w.file"
        )
    elif not spec.compactable:
        body = (
            f"{head},\nunit AS (SELECT key, arg_max(file, gen) AS file FROM listing GROUP BY key)\n"
            f"SELECT {columns('u')} FROM unit w"
            f"\nJOIN {_scan(spec, 'unit', src.units, files)} ON u.{FILE_COLUMN} = w.file"
        )
    else:  # a unit is current when newer than its shard's newest segment (lake.py)
        body = (
            f"{head},\nsegment AS (\n"
            "  SELECT shard, max(gen) AS gen, arg_max(file, gen) AS file\n"
            "  FROM listing WHERE kind = 'segment' GROUP BY shard\n),\n"
            "unit AS (\n"
            "  SELECT n.key, n.file FROM (\n"
            "    SELECT key, any_value(shard) AS shard, max(gen) AS gen,\n"
            "      arg_max(file, gen) AS file FROM listing WHERE kind = 'unit' GROUP BY key\n"
            "  ) n LEFT JOIN segment s ON s.shard = n.shard\n"
            "  WHERE s.gen IS NULL OR n.gen > s.gen\n)\n"
            f"SELECT {columns('u')} FROM unit w"
            f"\nJOIN {_scan(spec, 'unit', src.units, files)} ON u.{FILE_COLUMN} = w.file"
            f"\nUNION ALL\nSELECT {columns('s')} FROM segment w"
            f"\nJOIN {_scan(spec, 'segment', src.segments, files)} ON s.{FILE_COLUMN} = w.file"
            "\nANTI JOIN unit k ON s.checksum = k.key"
        )
    return f"CREATE OR REPLACE VIEW {spec.name} AS\n{body}"


def _signature(lake: Lake) -> dict:
    return {
        "version": CATALOG_VERSION,
        "lake": str(lake.root),
        "tables": {name: str(spec.schema) for name, spec in sorted(TABLES.items())},
        "sources": {name: repr(lake.sources(name)) for name in sorted(TABLES)},
        "views": {name: view.sql for name, view in sorted(VIEWS.items())},
    }


def ensure_catalog(path: Path, lake: Lake, force: bool = False) -> bool:
    """(Re)build the catalog when it is missing or its tables, sources or lake path changed.
    Returns True when a new file was written."""
    sidecar = path.with_suffix(".json")
    if not force and path.exists() and sidecar.exists():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(sidecar.read_text()) == _signature(lake):
                return False
    lake.ensure_all()
    signature = _signature(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            for spec in TABLES.values():
                con.execute(view_sql(lake, spec))
                if spec.description:
                    con.execute(f"COMMENT ON VIEW {spec.name} IS {_sql_str(spec.description)}")
            for view in VIEWS.values():
                con.execute(f"CREATE OR REPLACE VIEW {view.name} AS {view.sql}")
                if view.description:
                    con.execute(f"COMMENT ON VIEW {view.name} IS {_sql_str(view.description)}")
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


def tables_in(query: str) -> list[TableSpec]:
    """The tables a query names, directly or through a view over them (VIEWS)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query)}
    words |= {t for name, view in VIEWS.items() if name in words for t in view.tables}
    return [spec for name, spec in TABLES.items() if name in words]


_databases: dict[int, duckdb.DuckDBPyConnection] = {}  # per process: making one costs ~40 ms
_views: set[tuple[int, str]] = set()  # (process, table) whose view it holds
_lock = threading.Lock()


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's may have been held when it forked


os.register_at_fork(after_in_child=_after_fork)


def _listing_name(spec: TableSpec) -> str:
    return f"_dam_listing_{spec.name}"


def _hand_over(con: duckdb.DuckDBPyConnection, lake: Lake, spec: TableSpec) -> None:
    """Give this connection the table's current files: the listing its view picks from and
    the file lists its scans read (so DuckDB opens no file the query does not need)."""
    listing = _listing_name(spec)
    con.register(listing, lake.listing(spec.name))
    for kind in _KINDS[spec.layout, spec.compactable]:
        con.execute(
            f"SET VARIABLE {_variable(spec.name, kind)} ="
            f" (SELECT list(file) FROM {listing} WHERE kind = '{kind}')"
        )


def session(lake: Lake, query: str) -> duckdb.DuckDBPyConnection:
    """A connection to this process's in-memory database, ready for `query`: no file, so
    nobody can lock it. The views, made once per process (making one binds it, which reads
    its files), hold no path: each connection hands them the current files of the tables
    its query names, listed now, so the query sees the lake as of this call."""
    pid, named = os.getpid(), tables_in(query)
    # A query that lists what the database holds sees every view (and no listing).
    wanted = list(TABLES.values()) if _INTROSPECTION.search(query) else named
    with _lock:
        if pid not in _databases:  # no file cache: a long-lived process would keep all it read
            _databases[pid] = duckdb.connect(config={"enable_external_file_cache": False})
        missing = [spec for spec in wanted if (pid, spec.name) not in _views]
        made = {spec.name for spec in wanted} | {t for p, t in _views if p == pid}
        views = [v for v in VIEWS.values() if set(v.tables) <= made and (pid, v.name) not in _views]
        if missing or views:
            maker = _databases[pid].cursor()
            try:
                handed = set()
                for spec in missing:
                    _hand_over(maker, lake, spec)
                    handed.add(spec.name)
                    maker.execute(view_sql(lake, spec, listing=_listing_name(spec)))
                    _views.add((pid, spec.name))
                for view in views:  # after the views of the tables under it, ...
                    for name in set(view.tables) - handed:  # ... which binding reads
                        _hand_over(maker, lake, TABLES[name])
                        handed.add(name)
                    maker.execute(f"CREATE OR REPLACE VIEW {view.name} AS {view.sql}")
                    _views.add((pid, view.name))
            finally:
                maker.close()
        con = _databases[pid].cursor()
    try:
        for spec in named:
            _hand_over(con, lake, spec)
    except BaseException:
        con.close()
        raise
    return con


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog file, as a notebook opens it."""
    return duckdb.connect(str(path), read_only=True)

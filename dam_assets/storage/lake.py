"""The Parquet lake: one replaceable file per partition, atomic writes, compaction.

Layout under `<data>/lake/<table>/`:

    units/<shard>/<key>.parquet   one file per partition (key = checksum); shard = key[:2]
    segments/<shard>.parquet      compacted units of one shard
    snapshot.parquet              whole-table tables (media_files)

A unit always wins over a segment row with the same checksum, so writing a unit replaces a
partition's rows whether or not it was compacted; the DuckDB views encode that rule. Every file
is written to a temporary name and renamed into place, so readers and killed runs never see a
half-written file. Unit writers hold a shared lock, compaction an exclusive one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schemas import TABLES, TableSpec

ANCHOR = "_anchor"  # zero-row file that keeps a glob valid (and typed) while a table is empty
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def shard_of(key: str) -> str:
    return key[:2] if re.match(r"^[0-9a-f]{2}", key) else "_"


class Lake:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    # -- paths -------------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / table

    def unit_path(self, table: str, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid unit key {key!r}")
        return self.table_dir(table) / "units" / shard_of(key) / f"{key}.parquet"

    def segment_path(self, table: str, shard: str) -> Path:
        return self.table_dir(table) / "segments" / f"{shard}.parquet"

    def snapshot_path(self, table: str) -> Path:
        return self.table_dir(table) / "snapshot.parquet"

    def unit_glob(self, table: str) -> str:
        return str(self.table_dir(table) / "units" / "*" / "*.parquet")

    def segment_glob(self, table: str) -> str:
        return str(self.table_dir(table) / "segments" / "*.parquet")

    # -- setup -------------------------------------------------------------------------------
    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table's folders and the empty, typed anchor files its view reads."""
        if spec.layout == "snapshot":
            if not self.snapshot_path(spec.name).exists():
                _atomic_write(spec.schema.empty_table(), self.snapshot_path(spec.name))
            return
        for anchor in (self.unit_path(spec.name, ANCHOR), self.segment_path(spec.name, ANCHOR)):
            existing = pq.read_schema(anchor) if anchor.exists() else None
            if existing is None or not existing.equals(spec.schema):
                _atomic_write(spec.schema.empty_table(), anchor)

    def ensure_all(self) -> None:
        for spec in TABLES.values():
            self.ensure_table(spec)

    # -- writes ------------------------------------------------------------------------------
    def write_unit(self, table: str, key: str, data: pa.Table) -> Path:
        """Replace the rows of one partition (zero rows is a valid, replacing write)."""
        spec = TABLES[table]
        data = _conform(data, spec.schema)
        if (
            spec.compactable
            and data.num_rows
            and not pc.all(pc.equal(data["checksum"], key)).as_py()
        ):
            raise ValueError(f"{table}: unit {key} holds rows of other checksums")
        path = self.unit_path(table, key)
        with self._lock(table, exclusive=False):
            _atomic_write(data, path)
        return path

    def clear_unit(self, table: str, key: str) -> None:
        """Make a partition's rows empty, compacted or not (an empty unit hides segment rows)."""
        self.write_unit(table, key, TABLES[table].schema.empty_table())

    def delete_unit(self, table: str, key: str) -> None:
        with self._lock(table, exclusive=False), contextlib.suppress(FileNotFoundError):
            self.unit_path(table, key).unlink()

    def write_snapshot(self, table: str, data: pa.Table) -> Path:
        spec = TABLES[table]
        path = self.snapshot_path(table)
        with self._lock(table, exclusive=True):
            _atomic_write(_conform(data, spec.schema), path)
        return path

    # -- reads -------------------------------------------------------------------------------
    def read_units(self, table: str, keys: Sequence[str]) -> pa.Table:
        """Current rows of the given partitions, from their units or else their segments."""
        spec = TABLES[table]
        parts: list[pa.Table] = []
        from_segments: dict[str, list[str]] = {}
        for key in keys:
            path = self.unit_path(table, key)
            try:
                parts.append(_conform(pq.read_table(path), spec.schema))
            except FileNotFoundError:
                from_segments.setdefault(shard_of(key), []).append(key)
        for shard, shard_keys in from_segments.items():
            seg = self.segment_path(table, shard)
            if seg.exists():
                rows = pq.read_table(seg, filters=[("checksum", "in", shard_keys)])
                parts.append(_conform(rows, spec.schema))
        if not parts:
            return spec.schema.empty_table()
        return pa.concat_tables(parts)

    def unit_keys(self, table: str) -> list[str]:
        units = self.table_dir(table) / "units"
        if not units.exists():
            return []
        return sorted(p.stem for p in units.glob("*/*.parquet") if p.stem != ANCHOR)

    # -- compaction --------------------------------------------------------------------------
    def compact(self, table: str, min_units: int = 1) -> dict[str, int]:
        """Merge loose unit files into their shard's segment, then delete them.

        Runs under the table's exclusive lock, so no unit is replaced while it is merged. A
        reader between the segment rename and the unit deletes sees both copies, and the
        view's unit-wins rule keeps exactly one.
        """
        spec = TABLES[table]
        if spec.layout != "units" or not spec.compactable:
            return {"units_merged": 0, "segments_written": 0}
        merged = written = 0
        with self._lock(table, exclusive=True):
            by_shard: dict[str, list[Path]] = {}
            for unit in (self.table_dir(table) / "units").glob("*/*.parquet"):
                if unit.stem != ANCHOR:
                    by_shard.setdefault(unit.parent.name, []).append(unit)
            if sum(len(v) for v in by_shard.values()) < min_units:
                return {"units_merged": 0, "segments_written": 0}
            for shard, units in sorted(by_shard.items()):
                keys = [u.stem for u in units]
                fresh = [_conform(pq.read_table(u), spec.schema) for u in units]
                seg = self.segment_path(table, shard)
                kept = spec.schema.empty_table()
                if seg.exists():
                    old = _conform(pq.read_table(seg), spec.schema)
                    mask = pc.invert(pc.is_in(old["checksum"], value_set=pa.array(keys)))
                    kept = old.filter(mask)
                combined = pa.concat_tables([kept, *fresh]).sort_by("checksum")
                _atomic_write(combined, seg)
                for unit in units:
                    unit.unlink()
                merged += len(units)
                written += 1
        return {"units_merged": merged, "segments_written": written}

    @contextlib.contextmanager
    def _lock(self, table: str, exclusive: bool) -> Iterator[None]:
        folder = self.table_dir(table)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Columns in schema order and type; missing columns become nulls (older files)."""
    columns = []
    for field in schema:
        if field.name in data.column_names:
            columns.append(data[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(data.num_rows, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _atomic_write(data: pa.Table, path: Path) -> None:
    """Write beside the target under a name no view glob matches, fsync, rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(data, tmp, compression="zstd")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise

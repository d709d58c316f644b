"""The Parquet lake: a file is never changed once written, so no query sees a change mid-way.

Layout under `<data>/lake/<table>/v2/`:

    units/<shard>/<key>@<gen>.parquet   one file per write of a partition (key = checksum)
    segments/<shard>@<gen>.parquet      one shard's partitions, merged by compaction
    snapshot@<gen>.parquet              whole-table tables (media_files, people, ...)

DuckDB lists a view's files and reads their footers when it binds a query, then reads the rows
at execution with those footers; it lists lazily, so two listings in one query see different
moments. A file renamed over another in between is read with the wrong footer (wrong counts,
"Invalid data", a missed partition) and a deleted one fails the query. So:

- Every write adds a file named by a generation: a nanosecond clock reading taken right before
  the file is linked into place (never over another), kept above every generation in its shard
  so the order never depends on the clock. A partition's newest unit is current if it is newer
  than its shard's newest segment, else the segment's rows are (none, if it was cleared): a
  re-materialized partition replaces its compacted rows, a zero-row unit clears them. Writers
  hold the table's shared lock while they pick a generation and link, compaction the exclusive.
- Compaction writes a new segment and deletes nothing; the units it merged are now older.
- A query reads the lake as of one moment: `Store.sql` lists the files in Python first and its
  views read only what that listing picks (catalog.session); the catalog file's views glob and
  ignore files whose generation is newer than the query's start.
- `purge` (run by `compact`, and by each write for its own partition) unlinks files superseded
  at least `grace_s` (10 minutes) ago, oldest first, holding the lake's readers lock
  exclusively and skipping when it is busy; `Store.sql` and `read_units` hold it shared. So a
  file a running query picked is never deleted under it.

A reader that takes no lock (a notebook) can still meet two things, both rare: DuckDB opens
every file its glob matches, picked or not, so a query overlapping the instant purge unlinks a
superseded file fails with "Cannot open file" (rerun it; no grace period can prevent this for a
reader that finds files by globbing, only a lock can); and a writer suspended between reading
the clock and linking, for longer than a query takes to bind, can make that query miss the
partition. It never sees a partition twice.

Lakes from before generations (`units/<shard>/<key>.parquet`, `segments/<shard>.parquet` and
`snapshot.parquet` beside `v2/`) are read as the oldest generation, merged into `v2/` by the
next compaction and then purged; their empty anchors stay so the old globs still match.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob as globbing
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schemas import TABLES, TableSpec

ANCHOR = "_anchor"  # zero-row file that keeps a glob valid (and typed) while a table is empty
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
GEN_WIDTH = 20
LEGACY_SEGMENT_GEN = "0" * GEN_WIDTH  # files from before generations: older than any new one,
LEGACY_UNIT_GEN = "0" * (GEN_WIDTH - 1) + "1"  # and a unit still beats its segment
DEFAULT_GRACE_S = 600.0
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def shard_of(key: str) -> str:
    return key[:2] if re.match(r"^[0-9a-f]{2}", key) else "_"


@dataclass(frozen=True, order=True)
class Version:
    gen: str  # "" for anchors: below every real generation
    path: str = field(compare=False)


@dataclass(frozen=True)
class Source:
    """A glob a view reads; `gen` is the generation of its files when their names carry none."""

    glob: str
    gen: str | None = None


@dataclass(frozen=True)
class Sources:
    units: tuple[Source, ...] = ()
    segments: tuple[Source, ...] = ()
    snapshots: tuple[Source, ...] = ()


@dataclass
class _Listing:
    units: dict[str, list[Version]]  # key -> versions, oldest first
    segments: dict[str, list[Version]]  # shard -> versions, oldest first

    def newest_segment(self, shard: str) -> Version | None:
        versions = self.segments.get(shard)
        return versions[-1] if versions else None

    def current_unit(self, key: str) -> Version | None:
        """The key's newest unit when it beats its shard's newest segment."""
        versions = self.units.get(key)
        if not versions:
            return None
        segment = self.newest_segment(shard_of(key))
        return versions[-1] if segment is None or versions[-1].gen > segment.gen else None


class Lake:
    def __init__(self, root: str | os.PathLike[str], grace_s: float = DEFAULT_GRACE_S):
        self.root = Path(root)
        self.grace_s = grace_s

    # -- paths -------------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / table

    def _dir(self, table: str) -> Path:
        return self.table_dir(table) / "v2"

    def _legacy(self, table: str) -> Path:
        return self.table_dir(table)

    def sources(self, table: str) -> Sources:
        """What the table's view globs: `v2/` always, the old layout while it has files."""
        spec, new, old = TABLES[table], self._dir(table), self._legacy(table)
        if spec.layout == "snapshot":
            legacy = old / "snapshot.parquet"
            return Sources(
                snapshots=(
                    Source(str(new / "snapshot*.parquet")),
                    *([Source(str(legacy), LEGACY_SEGMENT_GEN)] if legacy.exists() else []),
                )
            )
        units = [Source(str(new / "units" / "*" / "*.parquet"))]
        legacy_units = str(old / "units" / "*" / "*.parquet")
        if next(globbing.iglob(legacy_units), None):
            units.append(Source(legacy_units, LEGACY_UNIT_GEN))
        if not spec.compactable:
            return Sources(units=tuple(units))
        segments = [Source(str(new / "segments" / "*.parquet"))]
        legacy_segments = str(old / "segments" / "*.parquet")
        if next(globbing.iglob(legacy_segments), None):
            segments.append(Source(legacy_segments, LEGACY_SEGMENT_GEN))
        return Sources(units=tuple(units), segments=tuple(segments))

    # -- setup -------------------------------------------------------------------------------
    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table's folders and the empty, typed anchor files its view reads."""
        base = self._dir(spec.name)
        if spec.layout == "snapshot":
            anchors = [base / "snapshot.parquet"]
        else:
            anchors = [
                base / "units" / "_" / f"{ANCHOR}.parquet",
                base / "segments" / f"{ANCHOR}.parquet",
            ]
        for anchor in anchors:  # zero rows: replacing one mid-query changes no answer
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
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid unit key {key!r}")
        folder = self._dir(table) / "units" / shard_of(key)
        with _staged(data, folder) as tmp, self._lock(table, exclusive=False):
            path, listing = self._link_unit(table, key, tmp)
        self._purge_key(spec, listing, key)
        return path

    def _link_unit(self, table: str, key: str, staged: Path) -> tuple[Path, _Listing]:
        """Give a staged unit its generation and name (the caller holds the table's lock);
        returns it with the shard's files, itself included."""
        shard = shard_of(key)
        listing = self._scan(table, shards={shard})
        versions = listing.units.setdefault(key, [])
        floor = max(versions + listing.segments.get(shard, []), default=None)
        path = _link_new(staged, lambda gen: staged.parent / f"{key}@{gen}.parquet", floor)
        versions.append(Version(_parse(path.name, None)[1], str(path)))
        return path, listing

    def clear_unit(self, table: str, key: str) -> None:
        """Make a partition's rows empty, compacted or not (an empty unit hides segment rows)."""
        self.write_unit(table, key, TABLES[table].schema.empty_table())

    def delete_unit(self, table: str, key: str) -> None:
        """Forget a partition's unit: its compacted rows (if any) are current again."""
        spec = TABLES[table]
        with self._lock(table, exclusive=False):
            listing = self._scan(table, shards={shard_of(key)})
            versions = listing.units.get(key)
            if not versions or (not spec.compactable and _num_rows(versions[-1].path) == 0):
                return  # nothing to forget (or already forgotten)
            segment = listing.newest_segment(shard_of(key)) if spec.compactable else None
            rows = spec.schema.empty_table()
            if segment is not None:
                rows = _conform(
                    pq.read_table(segment.path, filters=[("checksum", "=", key)]), spec.schema
                )
            with _staged(rows, self._dir(table) / "units" / shard_of(key)) as tmp:
                _, listing = self._link_unit(table, key, tmp)  # nothing vanishes mid-query
        self._purge_key(spec, listing, key)

    def write_snapshot(self, table: str, data: pa.Table) -> Path:
        spec = TABLES[table]
        folder = self._dir(table)
        with _staged(_conform(data, spec.schema), folder) as tmp, self._lock(table, exclusive=True):
            floor = max(self._snapshots(table), default=None)
            path = _link_new(tmp, lambda gen: folder / f"snapshot@{gen}.parquet", floor)
        versions = self._snapshots(table)
        self._unlink(self._snapshot_victims(versions, self._cutoff()), wait_s=0)
        if sum(bool(v.gen) for v in versions) > 1:
            self._arm_purge(table)
        return path

    # -- reads -------------------------------------------------------------------------------
    def read_units(self, table: str, keys: Sequence[str]) -> pa.Table:
        """Current rows of the given partitions, from their units or else their segments."""
        spec = TABLES[table]
        parts: list[pa.Table] = []
        from_segments: dict[str, list[str]] = {}
        with self.reading():
            listing = self._scan(table, shards={shard_of(k) for k in keys})
            for key in keys:
                unit = listing.current_unit(key)
                segment = listing.newest_segment(shard_of(key))
                if unit is not None:
                    parts.append(_conform(pq.read_table(unit.path), spec.schema))
                elif segment is not None:
                    from_segments.setdefault(segment.path, []).append(key)
            for path, shard_keys in from_segments.items():
                rows = pq.read_table(path, filters=[("checksum", "in", shard_keys)])
                parts.append(_conform(rows, spec.schema))
        if not parts:
            return spec.schema.empty_table()
        return pa.concat_tables(parts)

    def read_snapshot(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """The current rows of a whole-table table (its newest snapshot)."""
        spec = TABLES[table]
        with self.reading():
            versions = self._snapshots(table)
            if not versions:
                return spec.schema.empty_table().select(columns or spec.schema.names)
            data = _conform(pq.read_table(versions[-1].path), spec.schema)
        return data.select(columns) if columns else data

    def unit_keys(self, table: str) -> list[str]:
        """Partitions whose current rows are in a unit file (not yet compacted)."""
        listing = self._scan(table)
        return sorted(k for k in listing.units if k != ANCHOR and listing.current_unit(k))

    def listing(self, table: str) -> pa.Table:
        """The table's current files and its anchors (file, kind, shard, key, gen): what
        `Store.sql` hands its views to pick from and read, instead of a glob (catalog.py)."""
        spec, base = TABLES[table], self._dir(table)
        if spec.layout == "snapshot":
            versions = self._snapshots(table)
            picked = [v for v in versions if not v.gen] + versions[-1:]
            rows = [(v.path, "snapshot", None, None, v.gen) for v in dict.fromkeys(picked)]
        else:
            found = self._scan(table)
            rows = [(str(base / "units" / "_" / f"{ANCHOR}.parquet"), "unit", "_", ANCHOR, "")]
            for key, versions in found.units.items():
                unit = found.current_unit(key) if spec.compactable else versions[-1]
                if unit is not None and key != ANCHOR:
                    rows.append((unit.path, "unit", _parent(unit.path), key, unit.gen))
            if spec.compactable:
                rows.append(
                    (str(base / "segments" / f"{ANCHOR}.parquet"), "segment", ANCHOR, None, "")
                )
                for shard, versions in found.segments.items():
                    if shard != ANCHOR:
                        rows.append((versions[-1].path, "segment", shard, None, versions[-1].gen))
        names = ["file", "kind", "shard", "key", "gen"]
        return pa.table(
            {n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)}
        )

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold while files listed from the lake are read: `purge` unlinks nothing meanwhile."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".readers.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- compaction --------------------------------------------------------------------------
    def compact(self, table: str, min_units: int = 1) -> dict[str, int]:
        """Merge each shard's current units into a new segment (after purging what is due);
        a shard whose segment is still in the old layout gets a new one too.

        Under the table's exclusive lock, so no unit is written while it is merged. Nothing is
        deleted here: the merged units are older than the new segment, so it is current.
        """
        spec = TABLES[table]
        self.purge(table)
        if spec.layout != "units" or not spec.compactable:
            return {"units_merged": 0, "segments_written": 0}
        merged = written = 0
        with self._lock(table, exclusive=True):
            listing = self._scan(table)
            by_shard: dict[str, list[tuple[str, Version]]] = {}
            newest: dict[str, Version] = {}  # each shard's newest unit
            for key, versions in listing.units.items():
                shard = shard_of(key)
                if shard not in newest or versions[-1] > newest[shard]:
                    newest[shard] = versions[-1]
                unit = listing.current_unit(key) if key != ANCHOR else None
                if unit is not None:
                    by_shard.setdefault(shard, []).append((key, unit))
            old_layout = [
                shard
                for shard, versions in listing.segments.items()
                if shard != ANCHOR and versions[-1].gen == LEGACY_SEGMENT_GEN
            ]
            if sum(len(v) for v in by_shard.values()) < min_units and not old_layout:
                return {"units_merged": 0, "segments_written": 0}
            for shard in old_layout:
                by_shard.setdefault(shard, [])
            folder = self._dir(table) / "segments"
            for shard, units in sorted(by_shard.items()):
                keys = [key for key, _ in units]
                fresh = [_conform(pq.read_table(u.path), spec.schema) for _, u in units]
                kept = spec.schema.empty_table()
                segment = listing.newest_segment(shard)
                if segment is not None:
                    old = _conform(pq.read_table(segment.path), spec.schema)
                    kept = old.filter(
                        pc.invert(pc.is_in(old["checksum"], pa.array(keys, pa.string())))
                    )
                combined = pa.concat_tables([kept, *fresh]).sort_by("checksum")
                below = listing.segments.get(shard, []) + (
                    [newest[shard]] if shard in newest else []
                )
                floor = max(below)
                with _staged(combined, folder) as tmp:
                    _link_new(tmp, lambda gen, s=shard: folder / f"{s}@{gen}.parquet", floor)
                merged += len(units)
                written += 1
        if written:
            self._arm_purge(table)
        return {"units_merged": merged, "segments_written": written}

    # -- purge -------------------------------------------------------------------------------
    def purge(self, table: str, wait_s: float = 2.0) -> int | None:
        """Delete the table's files that stopped being current `grace_s` ago or more.

        Returns how many were deleted, or None when readers kept the lock busy for `wait_s`.
        """
        return self._unlink(self._victims(table, self._cutoff()), wait_s)

    def _victims(self, table: str, cutoff: int) -> list[Version]:
        """The table's files superseded by a file made before `cutoff`, oldest first."""
        spec = TABLES[table]
        if spec.layout == "snapshot":
            return self._snapshot_victims(self._snapshots(table), cutoff)
        listing = self._scan(table)
        victims = []
        for shard, versions in listing.segments.items():
            if shard != ANCHOR:
                victims += _older_than_pivot(versions, versions, cutoff)
        for key in listing.units:
            victims += self._unit_victims(spec, listing, key, cutoff)
        return victims

    def purge_due(self) -> int:
        """Purge the tables where a compaction or a rewrite superseded files at least
        `grace_s` ago (cheap when none did: one missing marker file per table). `Store`
        runs this on every catalog refresh, so merged units go soon after their grace."""
        deleted = 0
        for table in TABLES:
            marker = self._dir(table) / ".purge-due"
            try:
                armed = marker.read_text()
            except FileNotFoundError:
                continue
            with contextlib.suppress(ValueError):
                if time.time() < float(armed):
                    continue
            superseded = len(self._victims(table, time.time_ns()))
            count = self.purge(table, wait_s=0)
            if count is None:
                continue  # readers hold the lock: the next refresh tries again
            deleted += count
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
            if superseded > count:  # superseded within the grace period: due later
                self._arm_purge(table)
        return deleted

    def _arm_purge(self, table: str) -> None:
        """Note that files of `table` become deletable after the grace period (unless noted)."""
        marker = self._dir(table) / ".purge-due"
        with contextlib.suppress(FileExistsError):
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{time.time() + self.grace_s:.3f}")

    def _purge_key(self, spec: TableSpec, listing: _Listing, key: str) -> None:
        """After a write: drop the key's files that are due, if no reader holds the lock, and
        note the version it superseded for a later purge."""
        self._unlink(self._unit_victims(spec, listing, key, self._cutoff()), wait_s=0)
        if len(listing.units.get(key, [])) > 1:
            self._arm_purge(spec.name)

    def _unit_victims(self, spec: TableSpec, listing: _Listing, key: str, cutoff: int) -> list:
        versions = listing.units.get(key, [])
        if key == ANCHOR or not versions:
            return []
        rivals = versions + listing.segments.get(shard_of(key), [])
        victims = _older_than_pivot(versions, rivals, cutoff)
        newest = versions[-1]
        if not spec.compactable and _gen_ns(newest.gen) <= cutoff and _num_rows(newest.path) == 0:
            victims = versions  # an error that was cleared: nothing left to show, oldest first
        return victims

    def _snapshot_victims(self, versions: list[Version], cutoff: int) -> list[Version]:
        return _older_than_pivot([v for v in versions if v.gen], versions, cutoff)

    def _cutoff(self) -> int:
        return time.time_ns() - int(self.grace_s * 1e9)

    def _unlink(self, victims: Iterable[Version], wait_s: float) -> int | None:
        victims = list(victims)
        if not victims:
            return 0
        with self._readers_exclusive(wait_s) as free:
            if not free:
                return None
            for victim in victims:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(victim.path)
        return len(victims)

    @contextlib.contextmanager
    def _readers_exclusive(self, wait_s: float) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        with open(self.root / ".readers.lock", "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.005)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- listing -----------------------------------------------------------------------------
    def _scan(self, table: str, shards: set[str] | None = None) -> _Listing:
        """The table's unit and segment files, new layout and old, optionally of some shards."""
        units: dict[str, list[Version]] = {}
        segments: dict[str, list[Version]] = {}
        layouts = (
            (self._dir(table), None, None),
            (self._legacy(table), LEGACY_UNIT_GEN, LEGACY_SEGMENT_GEN),
        )
        for base, unit_gen, segment_gen in layouts:
            root = str(base / "units")
            for sub in sorted(shards) if shards is not None else _names(root, dirs=True):
                folder = f"{root}/{sub}"
                for name in _names(folder):
                    key, gen = _parse(name, unit_gen)
                    units.setdefault(key, []).append(Version(gen, f"{folder}/{name}"))
            folder = str(base / "segments")
            for name in _names(folder):
                shard, gen = _parse(name, segment_gen)
                if shards is None or shard in shards:
                    segments.setdefault(shard, []).append(Version(gen, f"{folder}/{name}"))
        for versions in (*units.values(), *segments.values()):
            versions.sort()
        return _Listing(units, segments)

    def _snapshots(self, table: str) -> list[Version]:
        folder = str(self._dir(table))
        names = [n for n in _names(folder) if n.startswith("snapshot")]
        versions = [Version(_parse(n, None)[1], f"{folder}/{n}") for n in names]
        legacy = self._legacy(table) / "snapshot.parquet"
        if legacy.exists():
            versions.append(Version(LEGACY_SEGMENT_GEN, str(legacy)))
        return sorted(versions)

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


def _names(folder: str, dirs: bool = False) -> list[str]:
    """Sub-folders, or `.parquet` files (never temporaries), of a folder that may not exist."""
    try:
        with os.scandir(folder) as it:
            if dirs:
                return [e.name for e in it if e.is_dir()]
            return [e.name for e in it if e.name.endswith(".parquet") and not e.is_dir()]
    except FileNotFoundError:
        return []


def _parse(name: str, legacy_gen: str | None) -> tuple[str, str]:
    """(key or shard, generation) of `<name>@<gen>.parquet`; anchors carry the empty one."""
    stem = name.removesuffix(".parquet")
    if legacy_gen is not None:
        return stem, ("" if stem == ANCHOR else legacy_gen)
    key, _, gen = stem.partition("@")
    return key, gen


def _parent(path: str) -> str:
    return os.path.basename(os.path.dirname(path))


def _gen_ns(gen: str) -> int:
    return int(gen) if gen else 0


def _older_than_pivot(versions: list[Version], rivals: list[Version], cutoff: int) -> list:
    """`versions` older than the newest rival made before `cutoff`: every query that started
    within the grace period sees that rival (or a newer one), so none of them can pick these."""
    settled = [r for r in rivals if r.gen and _gen_ns(r.gen) <= cutoff]
    if not settled:
        return []
    pivot = max(settled)
    return [v for v in versions if v.gen and v.gen < pivot.gen]


def _num_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except FileNotFoundError:
        return -1


def _next_gen(floor: Version | None) -> str:
    last = _gen_ns(floor.gen) if floor is not None else -1
    return f"{max(time.time_ns(), last + 1):0{GEN_WIDTH}d}"


@contextlib.contextmanager
def _staged(data: pa.Table, folder: Path) -> Iterator[Path]:
    """The data written and fsynced under a temporary name no view glob matches."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".staged.{uuid.uuid4().hex[:12]}.tmp"
    try:
        _write_synced(data, tmp)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _link_new(staged: Path, path_for: Callable[[str], Path], floor: Version | None) -> Path:
    """Link a staged file under the next generation above `floor`; never replaces a file.

    The generation is read from the clock right before the link, so a file is in place by the
    time its generation has passed: the catalog's views ignore files newer than the query."""
    while True:
        gen = _next_gen(floor)
        target = path_for(gen)
        try:
            os.link(staged, target)  # fails instead of replacing when the name exists
            return target
        except FileExistsError:
            floor = Version(gen, target)
        except OSError as exc:  # a file system without hard links: rename to the free name
            if exc.errno not in _NO_LINKS or target.exists():
                raise
            os.rename(staged, target)
            return target


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Columns in schema order and type; missing columns become nulls (older files)."""
    columns = []
    for field_ in schema:
        if field_.name in data.column_names:
            columns.append(data[field_.name].cast(field_.type))
        else:
            columns.append(pa.nulls(data.num_rows, type=field_.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _write_synced(data: pa.Table, path: Path) -> None:
    pq.write_table(data, path, compression="zstd")
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _atomic_write(data: pa.Table, path: Path) -> None:
    """Write beside the target under a name no view glob matches, fsync, rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _write_synced(data, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise

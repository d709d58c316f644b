"""The two use cases: archive what a catalog condition selects, and verify recorded copies."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ... import settings
from ...storage import Store
from ...storage.paths import display_path, safe_text
from .copying import CopyFailed, hash_from_disk, place_copy
from .layout import ArchiveError, ArchiveRoot, layout_path
from .ledger import Ledger

Say = Callable[[str], None]

# The condition sees every column of media_files and, for probed files, of probe (the shared
# names are media_files'); files never probed (probe failed) are archived too when no
# condition excludes them: an original is worth keeping even when it does not decode.
_SELECT = """
WITH files AS (
    SELECT f.*, p.* EXCLUDE (checksum, path, size_bytes, media_kind)
    FROM media_files AS f LEFT JOIN probe AS p USING (checksum)
)
SELECT checksum, path, path_bytes, root, size_bytes FROM files
WHERE NOT missing AND ({where})
ORDER BY checksum, path
"""


@dataclass
class Outcome:
    checksum: str
    source: str | None
    destination: str | None
    size_bytes: int
    # archive: copied | found (the same content was there) | already (recorded, present) |
    # failed. verify: verified | mismatch | missing | unreadable | not_copied | unreachable |
    # original_gone (never copied, and no file holds that content any more: not a problem)
    result: str
    message: str | None = None


@dataclass
class ArchiveReport:
    root: Path
    archive_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    leftovers_removed: int = 0  # staged files of a run that was killed

    def count(self, result: str) -> int:
        return sum(o.result == result for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "failed"]

    @property
    def copied_bytes(self) -> int:
        return sum(o.size_bytes for o in self.outcomes if o.result == "copied")


@dataclass
class VerifyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # archive root -> why

    def count(self, result: str) -> int:
        return sum(o.result == result for o in self.outcomes)

    @property
    def problems(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result not in ("verified", "original_gone")]


def _now() -> datetime:
    return datetime.now(UTC)


def watched_folders(store: Store) -> list[str]:
    """The folders media is indexed from (configured now, or recorded for indexed files)."""
    recorded = store.sql("SELECT DISTINCT root FROM media_files WHERE root IS NOT NULL")
    return [str(p) for p in settings.watch_roots()] + recorded.column("root").to_pylist()


def select_sources(store: Store, where: str | None) -> dict[str, list[dict]]:
    """checksum -> its present paths (real names) with root and size, for the condition: one
    SQL expression (a job's `where` comes from the launchpad; a second statement there could
    write files)."""
    condition = where.strip() if where and where.strip() else "TRUE"
    query = _SELECT.format(where=condition)
    try:
        if len(duckdb.extract_statements(query)) != 1:
            raise ArchiveError(f"--where {where!r}: one condition, not SQL statements")
        rows = store.sql(query).to_pylist()
    except duckdb.Error as exc:
        raise ArchiveError(f"--where {where!r}: {exc}") from exc
    by_checksum: dict[str, list[dict]] = {}
    for row in rows:
        if row["path_bytes"]:
            row["path"] = os.fsdecode(row["path_bytes"])
        by_checksum.setdefault(row["checksum"], []).append(row)
    return by_checksum


class _Progress:
    """A line every 2 s while copying, as `dam ingest` does while hashing."""

    def __init__(self, say: Say | None, total: int):
        self.say, self.total, self.done, self.last = say, total, 0, 0.0
        self.name = ""

    def start(self, name: str) -> Callable[[int], None] | None:
        self.name = name
        base = self.done
        if self.say is None:
            return None

        def tick(copied: int) -> None:
            now = time.monotonic()
            if now - self.last >= 2:
                self.last = now
                self.say(
                    f"  copying {(base + copied) / 2**20:,.0f} / {self.total / 2**20:,.0f} MiB"
                    f"  {safe_text(self.name)}"
                )

        return tick


def archive_files(
    store: Store, dest: str | os.PathLike[str], where: str | None = None, say: Say | None = None
) -> ArchiveReport:
    """Copy every present original the condition selects (one copy per content) to `dest`,
    verified from disk, and record each in the ledger as soon as it is verified."""
    root = ArchiveRoot.open(dest, store.data_dir, create=True, watched=watched_folders(store))
    sources = select_sources(store, where)
    ledger = Ledger(store)
    with root.writing() as leftovers:
        report = ArchiveReport(root.path, root.archive_id, leftovers_removed=leftovers)
        known = {r["checksum"]: r for r in ledger.rows(root.archive_id)}
        todo = {ck: rows for ck, rows in sources.items() if not _still_archived(root, known, ck)}
        progress = _Progress(say, sum(rows[0]["size_bytes"] for rows in todo.values()))
        if say and root.created and root.on_system_disk():
            say(
                f"New archive at {safe_text(root.path)}, on the system disk: if an archive"
                " disk should be mounted there, it is not: stop this run, mount the disk"
                " and run again"
            )
        if say and todo:
            say(
                f"Archiving {len(todo)} content(s), {progress.total / 2**30:,.2f} GiB, to"
                f" {safe_text(root.path)}…"
            )
        for checksum, rows in sources.items():  # in checksum order, as the report lists them
            if checksum not in todo:
                report.outcomes.append(_already(root, ledger, known[checksum]))
                continue
            outcome = _archive_one(root, ledger, checksum, rows, progress, known.get(checksum))
            progress.done += rows[0]["size_bytes"]
            report.outcomes.append(outcome)
            if say and outcome.result == "failed":
                say(f"  failed: {safe_text(outcome.source)}: {outcome.message}")
    return report


def _still_archived(root: ArchiveRoot, known: dict[str, dict], checksum: str) -> bool:
    """Recorded as verified and still there with its size (`verify` re-hashes it)."""
    row = known.get(checksum)
    if row is None or row["status"] != "verified" or not row["relative_path"]:
        return False
    try:
        st = os.lstat(root.path / row["relative_path"])
    except OSError:
        return False
    return st.st_size == row["size_bytes"] and not os.path.islink(root.path / row["relative_path"])


def _already(root: ArchiveRoot, ledger: Ledger, row: dict) -> Outcome:
    where = root.path / row["relative_path"]
    if row["archive_root"] != display_path(str(root.path)):  # the disk is mounted elsewhere now
        moved = {**row, "archive_root": display_path(str(root.path))}
        ledger.record({**moved, "destination": display_path(str(where))})
    return Outcome(row["checksum"], row["source_path"], str(where), row["size_bytes"], "already")


def _archive_one(
    root: ArchiveRoot,
    ledger: Ledger,
    checksum: str,
    rows: list[dict],
    progress: _Progress,
    earlier: dict | None = None,
) -> Outcome:
    """Try each path that holds the content until one copy is verified; record the result (a
    failure keeps saying where an earlier copy that did not verify lies)."""
    errors: list[str] = []
    for row in rows:
        source, size = row["path"], row["size_bytes"]
        target = root.path / layout_path(source, row["root"])
        tick = progress.start(Path(source).name)
        try:
            originals = [r["path"] for r in rows]
            placed = place_copy(source, checksum, size, target, root.staging, tick, originals)
        except CopyFailed as exc:
            errors.append(f"{display_path(source)}: {exc}" if len(rows) > 1 else str(exc))
            continue
        now = _now()
        result = "copied" if placed.copied else "found"
        ledger.record(
            _row(root, checksum, placed.path, source, size, "verified", None)
            | {"copied_at": now if placed.copied else None, "verified_at": now}
        )
        return Outcome(checksum, display_path(source), str(placed.path), size, result)
    message = "; ".join(errors)
    kept = root.path / earlier["relative_path"] if earlier and earlier["relative_path"] else None
    source, size = rows[0]["path"], rows[0]["size_bytes"]
    ledger.record(_row(root, checksum, kept, source, size, "failed", message))  # verify sees it
    return Outcome(checksum, display_path(source), None, size, "failed", message)


def _row(
    root: ArchiveRoot,
    checksum: str,
    copy: Path | None,
    source: str,
    size: int,
    status: str,
    message: str | None,
) -> dict:
    return {
        "checksum": checksum,
        "archive_id": root.archive_id,
        "archive_root": display_path(str(root.path)),
        "destination": display_path(str(copy)) if copy else None,
        "relative_path": str(copy.relative_to(root.path)) if copy else None,
        "source_path": display_path(source),
        "size_bytes": size,
        "status": status,
        "message": message,
        "copied_at": None,
        "verified_at": None,
        "checked_at": _now(),
    }


# -- verify -------------------------------------------------------------------------------------
def verify_copies(
    store: Store, dest: str | os.PathLike[str] | None = None, say: Say | None = None
) -> VerifyReport:
    """Re-hash every recorded copy (of the archive at `dest`, else of every archive at the
    root it was last seen at) from disk and record what each is now. An archive that is not
    mounted is reported and its rows are left as they were: an absent disk is not lost
    copies."""
    ledger = Ledger(store)
    report = VerifyReport()
    if dest is not None:
        root = ArchiveRoot.open(dest, store.data_dir, create=False)
        roots: dict[str, ArchiveRoot | None] = {root.archive_id: root}
        rows = ledger.rows(root.archive_id)
    else:
        rows = ledger.rows()
        seen_at: dict[str, str] = {}
        for row in sorted(rows, key=lambda r: r["checked_at"]):
            seen_at[row["archive_id"]] = row["archive_root"]  # where it was seen last wins
        roots = {aid: _reachable(store, aid, path, report) for aid, path in seen_at.items()}
    total = sum(r["size_bytes"] for r in rows if roots.get(r["archive_id"]))
    if say and rows:
        say(f"Verifying {len(rows)} recorded cop(ies), {total / 2**30:,.2f} GiB…")
    held = store.sql("SELECT DISTINCT checksum FROM media_files WHERE NOT missing")
    present = set(held.column("checksum").to_pylist())
    checked, last = 0, time.monotonic()
    for n, row in enumerate(rows, 1):
        root = roots.get(row["archive_id"])
        if root is None:
            report.outcomes.append(_outcome(row, "unreachable", row["destination"]))
            continue
        report.outcomes.append(_verify_one(root, ledger, row, present))
        checked += row["size_bytes"]
        if say and time.monotonic() - last >= 10 and n < len(rows):  # hours on a big archive
            last = time.monotonic()
            done = f"{checked / 2**30:,.1f} / {total / 2**30:,.1f} GiB"
            say(f"  checked {n:,} / {len(rows):,} copies ({done})")
    return report


def _reachable(
    store: Store, archive_id: str, path: str, report: VerifyReport
) -> ArchiveRoot | None:
    try:
        root = ArchiveRoot.open(path, store.data_dir, create=False)
    except ArchiveError as exc:
        report.unreachable[path] = f"not reachable ({exc}); mount it, or give its new place:"
        report.unreachable[path] += " `dam archive verify DEST`"
        return None
    if root.archive_id != archive_id:
        report.unreachable[path] = (
            "holds another archive now; give this archive's place: `dam archive verify DEST`"
        )
        return None
    return root


def _outcome(row: dict, result: str, where: str | None, message: str | None = None) -> Outcome:
    return Outcome(row["checksum"], row["source_path"], where, row["size_bytes"], result, message)


def _verify_one(root: ArchiveRoot, ledger: Ledger, row: dict, present: set[str]) -> Outcome:
    if not row["relative_path"]:
        if row["checksum"] not in present:  # changed or deleted since: a new checksum, if any
            note = "never copied, and no file in the library holds that content any more"
            return _outcome(row, "original_gone", None, note)
        note = f"never copied: {row['message']}; run `dam archive {safe_text(root.path)}` again"
        return _outcome(row, "not_copied", None, note)
    path = root.path / row["relative_path"]
    shown = safe_text(path)
    status, message = "verified", None
    try:
        st = os.lstat(path)
        if os.path.islink(path) or not os.path.isfile(path):
            raise FileNotFoundError(path)
        digest = hash_from_disk(path) if st.st_size == row["size_bytes"] else None
    except FileNotFoundError:
        status = "missing"
        message = (
            f"the copy is gone from {shown}; `dam archive {safe_text(root.path)}` copies the"
            " original again"
        )
    except OSError as exc:
        status = "unreadable"
        message = f"the copy at {shown} cannot be read ({exc.strerror or exc}): the disk fails?"
    else:
        if digest != row["checksum"]:
            found = f"{st.st_size:,} bytes" if digest is None else f"BLAKE3 {digest[:16]}…"
            status = "mismatch"
            message = (
                f"the copy at {shown} no longer matches the original ({found}, recorded"
                f" {row['size_bytes']:,} bytes, BLAKE3 {row['checksum'][:16]}…): it is damaged."
                f" `dam archive {safe_text(root.path)}` writes a fresh copy beside it; the"
                " damaged file is kept until you delete it"
            )
    now = _now()
    updated = {
        **row,
        "archive_root": display_path(str(root.path)),
        "destination": display_path(str(path)),
        "status": status,
        "message": message,
        "checked_at": now,
        "verified_at": now if status == "verified" else row["verified_at"],
    }
    same_copy = row["relative_path"]
    ledger.record(
        updated,
        only_if=lambda current: current is not None and current["relative_path"] == same_copy,
    )
    return _outcome(row, status, str(path), message)

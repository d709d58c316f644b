"""Finding media under watched folders and giving each file its content checksum.

Shared by the storage sensor and `dam ingest`. A walk only stats files; only files the registry
has not seen with the same (size, mtime_ns, inode) are read, and a rename within a filesystem is
recognised by its inode without reading. No Dagster import.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .media.hashing import file_checksum
from .media.kinds import is_excluded_dir, is_hidden_or_partial, kind_for_path
from .storage import Store
from .storage.registry import FileStat

STILL_WRITING = "StillBeingWritten"
# A file that failed is skipped while unchanged, and tried again after this long (a fixed
# permission changes only ctime; a share may come back).
RETRY_ERRORS_AFTER_S = 3600.0
ProgressFn = Callable[[int, int, str], None]


@dataclass
class FoundFile:
    path: str
    stat: FileStat
    root: str
    kind: str


@dataclass
class ScanReport:
    seen: int = 0
    checksums: list[str] = field(default_factory=list)  # present files' checksums, unique
    by_path: dict[str, str] = field(default_factory=dict)
    hashed: int = 0
    hashed_bytes: int = 0
    renamed: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # path, type, message
    unsettled: list[str] = field(default_factory=list)
    backlog: list[str] = field(default_factory=list)  # left for a later pass (budget)
    missing_marked: int = 0
    roots_skipped: list[str] = field(default_factory=list)  # unmounted / empty / unreadable
    resume_after: str | None = None
    elapsed_s: float = 0.0

    @property
    def error_paths(self) -> set[str]:
        return {e[0] for e in self.errors}


def walk(root: Path, incomplete: set[str]) -> Iterator[os.DirEntry]:
    """Media files under root in a stable order. Unreadable folders go into `incomplete` so
    nothing beneath them is taken for deleted. Symlinked folders are not followed (loops)."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            incomplete.add(folder)
            continue
        subdirs = []
        for entry in entries:
            if is_hidden_or_partial(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not is_excluded_dir(entry.name):
                        subdirs.append(entry.path)
                elif entry.is_file() and kind_for_path(entry.name):
                    yield entry
            except OSError:
                incomplete.add(entry.path)
        stack.extend(reversed(subdirs))


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _file_stat(path: str, st: os.stat_result) -> FileStat:
    return FileStat(path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def explain_os_error(exc: OSError) -> tuple[str, str]:
    """An error type and a message a person can act on."""
    if isinstance(exc, PermissionError):
        return "PermissionDenied", (
            "Permission denied reading the file; give the indexing user read access."
        )
    if isinstance(exc, FileNotFoundError):
        return "Vanished", "The file disappeared before it could be read (moved or deleted)."
    if exc.errno == errno.EIO:
        return "IOError", "The storage reported an I/O error reading the file (bad disk or share)."
    return type(exc).__name__, f"Could not read the file: {exc.strerror or exc}"


def collect(
    paths: Iterable[Path], incomplete: set[str], report: ScanReport
) -> dict[str, tuple[list[FoundFile], bool]]:
    """Stat every media file under the given files/folders, grouped per root with a flag saying
    whether the root looked mounted (exists and is not empty)."""
    found: dict[str, tuple[list[FoundFile], bool]] = {}
    for raw in paths:
        root = Path(raw).expanduser().absolute()
        files: list[FoundFile] = []
        if root.is_file():
            kind = kind_for_path(root.name)
            if kind:
                st = root.stat()
                files.append(
                    FoundFile(str(root), _file_stat(str(root), st), str(root.parent), kind)
                )
            found[str(root)] = (files, False)  # a single file never implies others are gone
            continue
        if not root.is_dir():
            report.roots_skipped.append(f"{root} (not found or not mounted)")
            continue
        try:
            mounted = any(True for _ in os.scandir(root))
        except OSError:
            report.roots_skipped.append(f"{root} (unreadable)")
            continue
        for entry in walk(root, incomplete):
            try:
                st = entry.stat()
            except OSError as exc:  # vanished between listing and stat
                report.errors.append((entry.path, *explain_os_error(exc)))
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                continue
            files.append(
                FoundFile(
                    entry.path,
                    _file_stat(entry.path, st),
                    str(root),
                    kind_for_path(entry.name) or "",
                )
            )
        found[str(root)] = (files, mounted)
    return found


def scan(
    paths: Iterable[Path],
    store: Store,
    *,
    settle_seconds: float = 30.0,
    hash_budget_s: float | None = None,
    mark_missing: bool = True,
    resume_after: str | None = None,
    progress: ProgressFn | None = None,
    now: float | None = None,
) -> ScanReport:
    """Walk, checksum what is new, update the registry, and say what was found."""
    started = time.monotonic()
    now = time.time() if now is None else now
    report = ScanReport()
    incomplete: set[str] = set()
    registry = store.registry
    grouped = collect(paths, incomplete, report)
    for path, error_type, message in report.errors:  # vanished between listing and stat
        registry.record_error(path, None, None, error_type, message)
    all_files = [f for files, _ in grouped.values() for f in files]
    report.seen = len(all_files)
    known = registry.known_files()
    failed_before = registry.discovery_errors()

    unchanged: list[str] = []
    to_hash: list[FoundFile] = []
    recorded: list[tuple[FileStat, str, str | None, str | None]] = []
    for f in all_files:
        if not _encodable(f.path):
            report.errors.append(
                (
                    _printable(f.path),
                    "UnsupportedName",
                    (
                        "The file name is not valid UTF-8 (an old SMB/Latin-1 name?): rename it to"
                        " index it."
                    ),
                )
            )
            registry.record_error(*report.errors[-1][:1], None, None, *report.errors[-1][1:])
            continue
        k = known.get(f.path)
        s = f.stat
        if k and (k.size, k.mtime_ns) == (s.size, s.mtime_ns):
            report.by_path[f.path] = k.checksum
            if k.inode == s.inode:
                unchanged.append(f.path)
            else:  # remounted share or restore in place: same bytes, new inode; no re-read
                recorded.append((s, k.checksum, f.root, f.kind))
            continue
        before = failed_before.get(f.path)
        if before and before[:2] == (s.size, s.mtime_ns) and now - before[2] < RETRY_ERRORS_AFTER_S:
            report.errors.append((f.path, "KnownError", "recorded earlier; unchanged since"))
            continue
        if s.size == 0:
            report.errors.append(
                (f.path, "EmptyFile", "The file is empty (0 bytes): nothing to index.")
            )
            registry.record_error(f.path, s.size, s.mtime_ns, *report.errors[-1][1:])
            continue
        age = now - s.mtime_ns / 1e9
        if age < settle_seconds:
            report.unsettled.append(f.path)
            registry.record_error(
                f.path,
                None,
                None,
                STILL_WRITING,
                f"Modified {age:.0f}s ago: still being copied? It is indexed once it has been"
                f" unchanged for {settle_seconds:.0f}s.",
            )
            continue
        to_hash.append(f)

    # Hash in path order, continuing after the cursor so a budget-limited pass makes progress.
    to_hash.sort(key=lambda f: f.path)
    if resume_after:
        later = [f for f in to_hash if f.path > resume_after]
        to_hash = later + [f for f in to_hash if f.path <= resume_after]
    total_bytes = sum(f.stat.size for f in to_hash)
    for f in to_hash:
        if hash_budget_s is not None and time.monotonic() - started > hash_budget_s:
            report.backlog.append(f.path)
            continue
        checksum = registry.checksum_for_identity(f.stat)
        if checksum:
            report.renamed += 1
        else:
            try:
                checksum = file_checksum(f.path)
                after = os.stat(f.path)
            except OSError as exc:
                error_type, message = explain_os_error(exc)
                report.errors.append((f.path, error_type, message))
                registry.record_error(f.path, f.stat.size, f.stat.mtime_ns, error_type, message)
                continue
            if (after.st_size, after.st_mtime_ns) != (f.stat.size, f.stat.mtime_ns):
                report.unsettled.append(f.path)  # changed while we read it
                registry.record_error(
                    f.path,
                    None,
                    None,
                    STILL_WRITING,
                    "The file changed while it was being read; it is read again once settled.",
                )
                continue
            report.hashed += 1
            report.hashed_bytes += f.stat.size
            if progress:
                progress(report.hashed_bytes, total_bytes, f.path)
        recorded.append((f.stat, checksum, f.root, f.kind))
        report.by_path[f.path] = checksum
        report.resume_after = f.path
    if not report.backlog:
        report.resume_after = None

    registry.record_files(recorded, now=now)
    touched = registry.touch(unchanged, now=now)  # reappeared files, hourly last_seen
    if mark_missing:
        report.missing_marked = _mark_missing(grouped, known, incomplete, registry, now)
    report.checksums = list(dict.fromkeys(report.by_path[p] for p in sorted(report.by_path)))
    fresh_errors = any(e[1] != "KnownError" for e in report.errors)
    if recorded or touched or fresh_errors or report.unsettled or report.missing_marked:
        store.export_registry()  # keep `media_files` and `ingest_errors` current
    report.elapsed_s = time.monotonic() - started
    return report


def _mark_missing(grouped, known, incomplete: set[str], registry, now: float) -> int:
    """Registered files under a fully walked, mounted root that were not found are missing.
    A root that is absent or empty (an unmounted share) marks nothing."""
    gone: list[str] = []
    skip = tuple(p.rstrip("/") + "/" for p in incomplete)
    for root, (files, mounted) in grouped.items():
        if not mounted or not files:
            continue
        present = {f.path for f in files}
        prefix = root.rstrip("/") + "/"
        for path, k in known.items():
            if k.missing or not path.startswith(prefix) or path in present:
                continue
            if skip and path.startswith(skip):
                continue
            if os.path.exists(path):  # e.g. a file we no longer treat as media
                continue
            gone.append(path)
    return registry.mark_missing(gone, now=now) if gone else 0

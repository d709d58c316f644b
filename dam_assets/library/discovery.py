"""Finding media under watched folders and giving each file its content checksum.

Shared by the storage sensor and `dam ingest`. No Dagster import.

- A walk only stats files; only files the registry has not seen with the same (size,
  mtime_ns, inode) are read, and a rename within a filesystem is recognised by its inode.
- Settling is observed, never guessed from the file's mtime against our clock (camera and NAS
  clocks are wrong, copies stall): a file is read once its (size, mtime_ns, inode) stayed the
  same across two observations at least `settle_seconds` apart. The caller keeps the
  observations (the sensor in its cursor, `dam ingest` in memory while it waits).
- The walk visits paths in one total order (plain string order of the full path), so a pass
  cut short by its time budget resumes after the last path it finished, and files missing
  from a walked stretch of that order are marked missing without a full pass.
- Symbolic links are not followed out of the roots: a linked folder is never entered (the
  folder it names is walked where it really is, if it is under a root), and a linked file is
  indexed only when its target lies inside one of the roots being scanned.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..media.hashing import ChangedWhileReading, file_checksum
from ..media.kinds import is_excluded_dir, is_hidden_or_partial, kind_for_path
from ..storage import Store
from ..storage.paths import display_path
from ..storage.registry import FileStat

STILL_WRITING = "StillBeingWritten"
# A file that failed is skipped while unchanged, and tried again after this long (a fixed
# permission changes only ctime; a share may come back).
RETRY_ERRORS_AFTER_S = 3600.0
# Registry writes are flushed this often during a pass, so a killed tick keeps its work.
FLUSH_EVERY_S = 2.0
FLUSH_EVERY_FILES = 500
# Most files waiting to settle that one set of observations remembers (the sensor's cursor
# stays small); files beyond it are observed on a later pass.
MAX_OBSERVED = 5000
ProgressFn = Callable[[int, int, str], None]
# path -> [size, mtime_ns, inode, first seen with this stat (our clock, epoch seconds)]
Observations = dict[str, list]


@dataclass
class ScanReport:
    seen: int = 0
    checksums: list[str] = field(default_factory=list)  # present files' checksums, unique
    by_path: dict[str, str] = field(default_factory=dict)
    hashed: int = 0
    hashed_bytes: int = 0
    renamed: int = 0
    new_versions: int = 0  # paths that now hold other content than before
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # path, type, message
    waiting: list[str] = field(default_factory=list)  # new or changing: not settled yet
    # settled but too large to read within a tick: {path, root, size, mtime_ns, inode}
    deferred: list[dict] = field(default_factory=list)
    waiting_bytes: int = 0
    missing_marked: int = 0
    roots_skipped: list[str] = field(default_factory=list)  # unmounted / unreadable
    resume: dict | None = None  # {"root", "after"}: where a pass cut short continues
    elapsed_s: float = 0.0

    @property
    def unsettled(self) -> list[str]:
        return self.waiting

    @property
    def error_paths(self) -> set[str]:
        return {e[0] for e in self.errors}


def _key(entry: os.DirEntry, is_dir: bool) -> str:
    # Sorting a folder's entries by this key makes the depth-first walk visit full paths in
    # plain string order ("a b/x" < "a/x" < "ab").
    return entry.name + "/" if is_dir else entry.name


def walk(root: str, incomplete: set[str], after: str | None = None) -> Iterator[os.DirEntry]:
    """Media files under root, in string order of their full paths, starting after `after`.
    Unreadable folders go into `incomplete` so nothing beneath them is taken for deleted."""
    try:
        with os.scandir(root) as it:
            listed = list(it)
    except OSError:
        incomplete.add(root)
        return
    items = []
    for entry in listed:
        if is_hidden_or_partial(entry.name):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            incomplete.add(entry.path)
            continue
        if is_dir and is_excluded_dir(entry.name):
            continue
        items.append((_key(entry, is_dir), entry, is_dir))
    items.sort(key=lambda item: item[0])
    for _, entry, is_dir in items:
        if is_dir:
            prefix = entry.path + "/"
            if after is not None and after >= prefix and not after.startswith(prefix):
                continue  # the whole folder was walked before
            yield from walk(entry.path, incomplete, after)
        elif (after is None or entry.path > after) and kind_for_path(entry.name):
            yield entry


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


def _file_stat(path: str, st: os.stat_result) -> FileStat:
    return FileStat(path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


@dataclass
class _Root:
    path: str
    is_file: bool
    mounted: bool = True  # exists and is not empty


def usable_roots(paths: Iterable[Path | str], report: ScanReport) -> list[_Root]:
    """The roots that can be walked now, nested ones dropped (walked once, under the outer
    root). A root that is absent, stale or unreadable is skipped with the reason; the other
    roots are still scanned."""
    roots: list[_Root] = []
    for raw in paths:
        path = os.path.abspath(os.path.expanduser(os.fspath(raw)))
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            report.roots_skipped.append(f"{display_path(path)} (not found or not mounted)")
            continue
        except OSError as exc:  # EACCES, EIO, ESTALE (a dead NFS mount), ENOTCONN (SMB)
            report.roots_skipped.append(f"{display_path(path)} ({exc.strerror or exc})")
            continue
        if stat_mod.S_ISREG(st.st_mode):
            roots.append(_Root(path, is_file=True, mounted=False))  # implies nothing is gone
        elif stat_mod.S_ISDIR(st.st_mode):
            try:
                with os.scandir(path) as it:
                    mounted = any(True for _ in it)
            except OSError as exc:
                report.roots_skipped.append(f"{display_path(path)} ({exc.strerror or exc})")
                continue
            roots.append(_Root(path, is_file=False, mounted=mounted))
    folders = sorted({r.path for r in roots if not r.is_file})
    outer = [f for f in folders if not any(f.startswith(o.rstrip("/") + "/") for o in folders)]
    kept = {r.path: r for r in roots if r.is_file or r.path in outer}
    return [kept[p] for p in dict.fromkeys(r.path for r in roots) if p in kept]


def _root_folder(root: _Root) -> str:
    return os.path.dirname(root.path) if root.is_file else root.path


def _inside(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


class _Pass:
    """One scan: what it knows before it starts, the registry updates it buffers (flushed as
    it goes, so a killed tick keeps its work), and what it reports."""

    def __init__(
        self,
        store: Store,
        roots: list[_Root],
        observations: Observations,
        settle_seconds: float,
        now: float,
    ):
        self.registry = store.registry
        self.report = ScanReport()
        self.folders = [r.path for r in roots if not r.is_file]
        self.observations = observations
        self.settle_seconds = settle_seconds
        self.now = now
        self.known = self.registry.known_files()
        self.failed_before = self.registry.discovery_errors()
        self.recorded: list[tuple[FileStat, str, str | None, str | None]] = []
        self.unchanged: list[str] = []
        self.identities: dict[tuple[int, int, int, int], str] = {}
        self.touched = 0
        self.last_flush = time.monotonic()
        self.progress: ProgressFn | None = None
        self.progress_total = 0
        self.defer_over: int | None = None

    def flush(self, force: bool = False) -> None:
        pending = len(self.recorded) + len(self.unchanged)
        due = time.monotonic() - self.last_flush >= FLUSH_EVERY_S
        if not pending or not (force or due or pending >= FLUSH_EVERY_FILES):
            return
        self.report.new_versions += self.registry.record_files(self.recorded, now=self.now)
        self.touched += self.registry.touch(self.unchanged, now=self.now)
        self.recorded, self.unchanged = [], []
        self.last_flush = time.monotonic()

    def error(self, path: str, error_type: str, message: str, s: FileStat | None = None) -> None:
        self.report.errors.append((display_path(path) or path, error_type, message))
        size, mtime = (s.size, s.mtime_ns) if s else (None, None)
        self.registry.record_error(path, size, mtime, error_type, message)

    def visit(self, path: str, entry: os.DirEntry | str, root: _Root) -> None:
        report = self.report
        try:
            linked = isinstance(entry, os.DirEntry) and entry.is_symlink()
            if linked and not _inside(os.path.realpath(path), self.folders):
                return  # links are not followed out of the roots
            st = os.stat(path)
        except OSError as exc:  # vanished between listing and stat
            self.error(path, *explain_os_error(exc))
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return
        s = _file_stat(path, st)
        kind = kind_for_path(os.path.basename(path)) or ""
        k = self.known.get(path)
        if k and (k.size, k.mtime_ns) == (s.size, s.mtime_ns):
            report.by_path[path] = k.checksum
            self.observations.pop(path, None)
            if k.inode == s.inode:
                self.unchanged.append(path)
            else:  # remounted share or restore in place: same bytes, new inode; no re-read
                self.recorded.append((s, k.checksum, _root_folder(root), kind))
            return
        before = self.failed_before.get(path)
        if (
            before
            and before[:2] == (s.size, s.mtime_ns)
            and self.now - before[2] < RETRY_ERRORS_AFTER_S
        ):
            report.errors.append((display_path(path), "KnownError", "recorded earlier"))
            return
        if s.size == 0:
            self.error(path, "EmptyFile", "The file is empty (0 bytes): nothing to index.", s)
            return
        identity = (s.device, s.inode, s.size, s.mtime_ns)
        checksum = self.identities.get(identity) or self.registry.checksum_for_identity(s)
        if checksum:  # moved or renamed: the same file under another name, nothing to read
            report.renamed += 1
        elif not self.settled(path, s):
            return
        elif self.defer_over is not None and s.size > self.defer_over:
            report.deferred.append(
                {
                    "path": path,
                    "root": root.path,
                    "size": s.size,
                    "mtime_ns": s.mtime_ns,
                    "inode": s.inode,
                }
            )
            return
        else:
            try:
                checksum = file_checksum(path)
            except ChangedWhileReading:
                self.observations[path] = [s.size, s.mtime_ns, s.inode, self.now]
                self.still_writing(path, "It changed while it was being read", s)
                return
            except OSError as exc:
                self.error(path, *explain_os_error(exc), s)
                return
            report.hashed += 1
            report.hashed_bytes += s.size
            if self.progress:
                self.progress(report.hashed_bytes, self.progress_total, path)
        self.observations.pop(path, None)
        self.recorded.append((s, checksum, _root_folder(root), kind))
        self.identities[identity] = checksum  # a hard or symbolic link later in this pass
        report.by_path[path] = checksum

    def settled(self, path: str, s: FileStat) -> bool:
        """True once the file looked the same in two observations `settle_seconds` apart."""
        seen = self.observations.get(path)
        now_looks = [s.size, s.mtime_ns, s.inode]
        if seen and seen[:3] == now_looks:
            if self.now - seen[3] >= self.settle_seconds:
                return True
        elif self.settle_seconds <= 0:
            return True
        elif seen:  # it changed since the last look: still being written
            self.observations[path] = [*now_looks, self.now]
            self.still_writing(path, "It changed since it was last looked at", s)
            return False
        elif len(self.observations) < MAX_OBSERVED:
            self.observations[path] = [*now_looks, self.now]
        else:
            return False  # observed on a later pass, once earlier files have settled
        self.report.waiting.append(path)
        self.report.waiting_bytes += s.size
        return False

    def still_writing(self, path: str, why: str, s: FileStat) -> None:
        self.report.waiting.append(path)
        self.report.waiting_bytes += s.size
        self.registry.record_error(
            path,
            None,
            None,
            STILL_WRITING,
            f"{why} (still being copied?): it is read once it has stayed the same for"
            f" {self.settle_seconds:.0f}s.",
        )


def scan(
    paths: Iterable[Path | str],
    store: Store,
    *,
    settle_seconds: float = 30.0,
    observations: Observations | None = None,
    budget_s: float | None = None,
    resume: dict | None = None,
    mark_missing: bool = True,
    progress: ProgressFn | None = None,
    progress_total: int = 0,
    defer_larger_than: int | None = None,
    now: float | None = None,
) -> ScanReport:
    """Walk, checksum what is new and settled, update the registry, and say what was found.

    `observations` carries what earlier passes saw of files not yet read (the caller keeps
    it); with `settle_seconds=0` a file is read at first sight. A pass stops starting new work
    once `budget_s` is spent and says in `report.resume` where the next one continues. Settled
    files larger than `defer_larger_than` bytes are not read but listed in `report.deferred`
    (for `read_deferred`, in a run: one large file over a slow share can outlast a tick).
    """
    started = time.monotonic()
    skipped = ScanReport()
    roots = usable_roots(paths, skipped)
    observations = {} if observations is None else observations
    work = _Pass(store, roots, observations, settle_seconds, time.time() if now is None else now)
    work.progress, work.progress_total = progress, progress_total
    work.defer_over = defer_larger_than
    report = work.report
    report.roots_skipped = skipped.roots_skipped
    start_at = 0
    if resume and resume.get("root") in work.folders:
        start_at = next(i for i, r in enumerate(roots) if r.path == resume["root"])
    else:
        resume = None

    def over_budget() -> bool:
        return budget_s is not None and time.monotonic() - started > budget_s

    for index, root in enumerate(roots[start_at:], start_at):
        after = resume["after"] if resume and index == start_at else None
        incomplete: set[str] = set()
        seen: set[str] = set()
        last_done = after
        entries = _single(root.path) if root.is_file else walk(root.path, incomplete, after)
        stopped = False
        for n, entry in enumerate(entries):
            # every pass moves on by at least one file, however small its budget
            if n and (n % 256 == 0 or work.recorded) and over_budget():
                stopped = True
                break
            path = entry.path if isinstance(entry, os.DirEntry) else entry
            seen.add(path)
            work.visit(path, entry, root)
            last_done = path
            work.flush()
        if stopped:
            report.resume = {"root": root.path, "after": last_done}
        if mark_missing and root.mounted and not root.is_file:
            upper = last_done if stopped else None
            report.missing_marked += _mark_missing(root.path, seen, incomplete, after, upper, work)
        if stopped:
            break
    work.flush(force=True)
    _forget_vanished(observations, report)
    report.seen = len(report.by_path) + len(report.waiting) + len(report.errors)
    report.checksums = list(dict.fromkeys(report.by_path[p] for p in sorted(report.by_path)))
    fresh_errors = any(e[1] != "KnownError" for e in report.errors)
    changed = report.hashed or report.renamed or report.new_versions or report.missing_marked
    if changed or work.touched or fresh_errors or report.waiting:
        store.export_registry()  # keep `media_files`, `file_versions`, `ingest_errors` current
    report.elapsed_s = time.monotonic() - started
    return report


def read_deferred(files: list[dict], store: Store) -> ScanReport:
    """Hash files a sensor tick deferred (too large for its budget), as the tick saw them
    (`ScanReport.deferred`): a file that changed since is left for the sensor to see again."""
    work = _Pass(store, [], {}, 0.0, time.time())
    for f in files:
        try:
            st = os.stat(f["path"])
        except OSError as exc:
            work.error(f["path"], *explain_os_error(exc))
            continue
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (f["size"], f["mtime_ns"], f["inode"]):
            work.report.waiting.append(f["path"])
            continue
        work.visit(f["path"], f["path"], _Root(f["root"], is_file=False))
        work.flush(force=True)  # each large file is recorded as soon as it is read
    store.export_registry()
    work.report.checksums = list(dict.fromkeys(work.report.by_path.values()))
    return work.report


def _single(path: str) -> Iterator[str]:
    if kind_for_path(os.path.basename(path)):
        yield path


def _mark_missing(
    root: str,
    seen: set[str],
    incomplete: set[str],
    lower: str | None,
    upper: str | None,
    work: _Pass,
) -> int:
    """Registered files in the walked stretch (lower, upper] of a mounted root that were not
    found are missing. A root that is absent or empty (an unmounted share) marks nothing."""
    prefix = root.rstrip("/") + "/"
    skip = tuple(p.rstrip("/") + "/" for p in incomplete)
    gone = [
        path
        for path, k in work.known.items()
        if not k.missing
        and path.startswith(prefix)
        and path not in seen
        and (lower is None or path > lower)
        and (upper is None or path <= upper)
        and not (skip and path.startswith(skip))
        and not os.path.lexists(path)  # e.g. a file we no longer treat as media
    ]
    return work.registry.mark_missing(gone, now=work.now) if gone else 0


def _forget_vanished(observations: Observations, report: ScanReport) -> None:
    """Observations of files this pass no longer found (deleted before they settled)."""
    for path in list(observations):
        if path not in report.waiting and not os.path.lexists(path):
            del observations[path]


def scan_until_settled(
    paths: Iterable[Path | str],
    store: Store,
    *,
    settle_seconds: float,
    max_wait_s: float,
    on_wait: Callable[[ScanReport, float], None] | None = None,
    progress: ProgressFn | None = None,
) -> ScanReport:
    """`dam ingest`: scan, then wait for files seen new or changing to settle and scan
    again, until none is left or `max_wait_s` has passed. The report covers every pass."""
    paths = list(paths)
    observations: Observations = {}
    deadline = time.monotonic() + max_wait_s
    total = ScanReport()
    started = time.monotonic()
    while True:
        report = scan(
            paths,
            store,
            settle_seconds=settle_seconds,
            observations=observations,
            progress=progress,
            progress_total=total.waiting_bytes or 0,
        )
        total.hashed += report.hashed
        total.hashed_bytes += report.hashed_bytes
        total.renamed += report.renamed
        total.new_versions += report.new_versions
        total.missing_marked += report.missing_marked
        total.by_path.update(report.by_path)
        errors = {e[0]: e for e in total.errors}
        errors.update({e[0]: e for e in report.errors})
        total.errors = [e for p, e in errors.items() if p not in report.by_path]
        total.roots_skipped = report.roots_skipped
        total.waiting, total.waiting_bytes = report.waiting, report.waiting_bytes
        if not report.waiting or time.monotonic() >= deadline:
            break
        soonest = min(observations[p][3] for p in report.waiting if p in observations)
        pause = max(0.2, min(soonest + settle_seconds - time.time(), deadline - time.monotonic()))
        if on_wait:
            on_wait(report, pause)
        time.sleep(pause)
    for path in total.waiting:  # gave up waiting: say so where people look
        store.registry.record_error(
            path,
            None,
            None,
            STILL_WRITING,
            f"Still changing after {max_wait_s:.0f}s of waiting: still being copied? It is"
            " indexed once it has stayed the same (the sensor, or `dam ingest` again).",
        )
    if total.waiting:
        store.export_registry()
    total.seen = len(total.by_path) + len(total.waiting) + len(total.errors)
    total.checksums = list(dict.fromkeys(total.by_path[p] for p in sorted(total.by_path)))
    total.elapsed_s = time.monotonic() - started
    return total

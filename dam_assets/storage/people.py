"""People and which face track belongs to whom (`DAM_DATA_DIR/people.sqlite`).

The source of truth for names and user decisions; the `people` and `face_clusters` tables are
snapshots of it. SQLite so `dam faces label` and a clustering run can write at the same time:
a run replaces only machine-made assignments and never touches names.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator, Sequence

import numpy as np

from ..media.face_clusters import Assignment, PeopleState
from .sqlite import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    person_id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
    name TEXT,
    centroid BLOB,
    centroid_model TEXT,  -- vectors of another face model are not comparable
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    merged_into INTEGER
);
CREATE TABLE IF NOT EXISTS assignments (
    track_id TEXT PRIMARY KEY,
    person_id INTEGER NOT NULL,
    distance REAL,
    source TEXT NOT NULL DEFAULT 'auto'  -- auto | user
);
CREATE INDEX IF NOT EXISTS assignments_person ON assignments (person_id);
"""


class PersonNotFound(LookupError):
    pass


class PeopleStore(SqliteFile):
    def __init__(self, path):
        super().__init__(path, _SCHEMA)
        with self._connect() as con:  # databases made before centres remembered their model
            columns = {row[1] for row in con.execute("PRAGMA table_info(people)")}
            if "centroid_model" not in columns:
                con.execute("ALTER TABLE people ADD COLUMN centroid_model TEXT")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One clustering run at a time across processes (sensor runs, `dam ingest`, the
        nightly re-cluster): each reads the state, works, and saves on top of it."""
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def state(self, model_id: str | None = None) -> PeopleState:
        """Everything a clustering run needs, read in one transaction. Centres are given only
        for people whose centre was made by `model_id` (when given)."""
        with self._connect() as con:
            con.execute("BEGIN")
            people = con.execute(
                "SELECT person_id, name, centroid, centroid_model FROM people"
                " WHERE merged_into IS NULL"
            ).fetchall()
            rows = con.execute("SELECT track_id, person_id, distance, source FROM assignments")
            assignments = {t: Assignment(p, d or 0.0, s) for t, p, d, s in rows}
            seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'people'").fetchone()
            con.execute("COMMIT")
        return PeopleState(
            assignments=assignments,
            names={pid: name for pid, name, _, _ in people},
            centroids={
                pid: np.frombuffer(blob, dtype=np.float32)
                for pid, _, blob, model in people
                if blob and (model_id is None or model == model_id)
            },
            next_id=(seq[0] if seq else 0) + 1,
        )

    def save(
        self,
        assignments: dict[str, Assignment],
        centroids: dict[int, np.ndarray | None],
        dropped: list[int],
        considered: Sequence[str],
        existing: set[str],
        model_id: str | None,
    ) -> None:
        """Store a clustering run's result in one transaction. Only the run's own tracks
        (`considered`) lose their machine-made place, and tracks that no longer exist any
        place; user decisions made since the run read the state win; names are left as they
        are."""
        now = time.time()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            for pid, centre in centroids.items():
                blob = None if centre is None else np.asarray(centre, np.float32).tobytes()
                con.execute(
                    "INSERT INTO people (person_id, centroid, centroid_model, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (person_id) DO UPDATE SET"
                    " centroid = coalesce(excluded.centroid, centroid), centroid_model ="
                    " CASE WHEN excluded.centroid IS NULL THEN centroid_model"
                    " ELSE excluded.centroid_model END, updated_at = ?",
                    (pid, blob, model_id, now, now, now),
                )
            # a re-analysed file's tracks keep their ids where they continue (faces asset);
            # a placement of a track that no longer exists goes, a user's pin included
            mine = set(considered)
            stale = [
                (t,)
                for t, source in con.execute("SELECT track_id, source FROM assignments")
                if t not in existing or (t in mine and source == "auto")
            ]
            con.executemany("DELETE FROM assignments WHERE track_id = ?", stale)
            con.executemany(
                "INSERT OR IGNORE INTO assignments VALUES (?, ?, ?, ?)",
                [(t, a.person_id, a.distance, a.source) for t, a in assignments.items()],
            )
            # people merged by a user while the run was working: follow the merge
            con.execute(
                "UPDATE assignments SET person_id = (SELECT merged_into FROM people p WHERE"
                " p.person_id = assignments.person_id) WHERE person_id IN (SELECT person_id"
                " FROM people WHERE merged_into IS NOT NULL)"
            )
            con.executemany(
                "DELETE FROM people WHERE person_id = ? AND name IS NULL AND merged_into IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.person_id = ?)",
                [(pid, pid) for pid in dropped],
            )
            con.execute("COMMIT")

    def resolve(self, who: str) -> int:
        """A person id from an id or a name (case-insensitive); merged ids lead to the person
        they were merged into."""
        with self._connect() as con:
            if who.strip().isdigit():
                row = con.execute(
                    "SELECT person_id, merged_into FROM people WHERE person_id = ?", (int(who),)
                ).fetchone()
            else:
                row = con.execute(
                    "SELECT person_id, merged_into FROM people WHERE lower(name) = lower(?)"
                    " AND merged_into IS NULL",
                    (who.strip(),),
                ).fetchone()
            while row and row[1] is not None:
                row = con.execute(
                    "SELECT person_id, merged_into FROM people WHERE person_id = ?", (row[1],)
                ).fetchone()
        if not row:
            raise PersonNotFound(f"no person {who!r} (see `dam faces list`)")
        return int(row[0])

    def label(self, person_id: int, name: str) -> None:
        """Name a person and pin its tracks: re-clusters keep them together under this id.
        Names are unique (case-insensitive) and not all digits, so they resolve like ids."""
        name = name.strip()
        if not name or name.isdigit():
            raise ValueError(f"{name!r} cannot be a name (it would read as a person id)")
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            other = con.execute(
                "SELECT person_id, name FROM people WHERE lower(name) = lower(?) AND person_id != ?"
                " AND merged_into IS NULL",
                (name, person_id),
            ).fetchone()
            if other:
                con.execute("ROLLBACK")
                raise ValueError(
                    f"person {other[0]} is already {other[1]!r}; if they are the same person:"
                    f" dam faces merge {other[0]} {person_id}"
                )
            named = con.execute(
                "UPDATE people SET name = ?, updated_at = ? WHERE person_id = ?"
                " AND merged_into IS NULL",
                (name, time.time(), person_id),
            ).rowcount
            if not named:
                con.execute("ROLLBACK")
                raise PersonNotFound(f"no person {person_id} any more (see `dam faces list`)")
            con.execute("UPDATE assignments SET source = 'user' WHERE person_id = ?", (person_id,))
            con.execute("COMMIT")

    def merge(self, keep: int, other: int) -> str | None:
        """Move `other`'s tracks to `keep` (pinned). `keep` takes `other`'s name when it has
        none. Returns the name the person ends up with."""
        if keep == other:
            raise ValueError("cannot merge a person with itself")
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            names = dict(
                con.execute(
                    "SELECT person_id, name FROM people WHERE person_id IN (?, ?)"
                    " AND merged_into IS NULL",
                    (keep, other),
                ).fetchall()
            )
            if len(names) != 2:  # changed since the ids were resolved
                con.execute("ROLLBACK")
                missing = [p for p in (keep, other) if p not in names]
                raise PersonNotFound(f"no person {missing[0]} any more (see `dam faces list`)")
            name = names.get(keep) or names.get(other)
            now = time.time()
            con.execute(
                "UPDATE assignments SET person_id = ?, source = 'user' WHERE person_id IN (?, ?)",
                (keep, keep, other),
            )
            con.execute(
                "UPDATE people SET name = ?, updated_at = ? WHERE person_id = ?", (name, now, keep)
            )
            con.execute(
                "UPDATE people SET merged_into = ?, updated_at = ? WHERE person_id = ?",
                (keep, now, other),
            )
            con.execute("UPDATE people SET merged_into = ? WHERE merged_into = ?", (keep, other))
            con.execute("COMMIT")
        return name

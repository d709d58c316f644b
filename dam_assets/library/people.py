"""People across the library: cluster face tracks, keep the result, export it for the catalog.

Shared by the `face_clusters` asset and `dam faces`; no Dagster here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from ..media.face_clusters import ClusterParams, update_people
from ..storage import Store
from ..storage.schemas import FACE_CLUSTERS, PEOPLE, rows_to_table


@dataclass
class ClusterReport:
    tracks: int
    assigned: int
    people: int
    created: int
    dropped: int
    other_model_tracks: int
    model_id: str | None


def load_tracks(store: Store):
    """Track ids, mean vectors and the frames each was seen in, for the face model most tracks
    were made with (vectors of two models are not comparable), and every track id there is."""
    tracks = store.sql(
        "SELECT track_id, checksum, model_id FROM face_tracks ORDER BY checksum, start_s"
    ).to_pylist()
    models = Counter(t["model_id"] for t in tracks)
    model_id = models.most_common(1)[0][0] if models else None
    mine = [t for t in tracks if t["model_id"] == model_id]
    ids, vectors = store.track_vectors.vectors(model_id, [t["track_id"] for t in mine])
    present = set(ids)
    checksum_no = {ck: i for i, ck in enumerate(sorted({t["checksum"] for t in mine}))}
    frames: dict[str, set[int]] = {t: set() for t in ids}
    for row in store.sql(
        "SELECT track_id, checksum, time_s FROM faces WHERE track_id IS NOT NULL"
    ).to_pylist():
        if row["track_id"] in present:
            key = (checksum_no[row["checksum"]] << 32) | round(row["time_s"] * 1000)
            frames[row["track_id"]].add(key)
    everything = {t["track_id"] for t in tracks}
    return ids, vectors, [frozenset(frames[t]) for t in ids], model_id, everything


def cluster_people(
    store: Store,
    params: ClusterParams | None = None,
    full: bool = False,
    say: Callable[[str], None] = lambda _m: None,
) -> ClusterReport:
    people = store.people
    with people.exclusive():  # one run at a time: ids handed out once
        ids, vectors, frames, model_id, everything = load_tracks(store)
        other = len(everything) - len(ids)
        if other:
            say(f"{other} face tracks come from another face model; they join once re-indexed")
        state = people.state(model_id)
        say(f"{'re-clustering' if full else 'assigning'} {len(ids)} face tracks")
        outcome = update_people(ids, vectors, frames, state, params or ClusterParams(), full=full)
        people.save(
            outcome.assignments, outcome.centroids, outcome.dropped, ids, everything, model_id
        )
    export_people(store)
    return ClusterReport(
        tracks=len(ids),
        assigned=len(outcome.assignments),
        people=len(outcome.centroids),
        created=len(outcome.created),
        dropped=len(outcome.dropped),
        other_model_tracks=other,
        model_id=model_id,
    )


def export_people(store: Store) -> None:
    """Snapshot people.sqlite into the `people` and `face_clusters` tables."""
    state = store.people.state()
    tracks = {
        r["track_id"]: r
        for r in store.sql(
            "SELECT t.track_id, t.checksum, t.start_s, t.end_s, t.detections, t.best_crop,"
            " t.best_score, coalesce(p.creation_time, m.first_seen) AS seen FROM face_tracks t"
            " LEFT JOIN probe p USING (checksum) LEFT JOIN (SELECT checksum, min(first_seen)"
            " first_seen FROM media_files GROUP BY ALL) m USING (checksum)"
        ).to_pylist()
    }
    cluster_rows = []
    members: dict[int, list[dict]] = {}
    for track_id, a in sorted(state.assignments.items()):
        track = tracks.get(track_id)
        if track is None or a.person_id not in state.names:
            continue
        members.setdefault(a.person_id, []).append(track)
        cluster_rows.append(
            {
                "person_id": a.person_id,
                "track_id": track_id,
                "checksum": track["checksum"],
                "start_s": track["start_s"],
                "end_s": track["end_s"],
                "distance": a.distance,
                "source": a.source,
            }
        )
    people_rows = []
    for pid, name in sorted(state.names.items()):
        mine = members.get(pid, [])
        seen = [t["seen"] for t in mine if t["seen"] is not None]
        best = max(mine, key=lambda t: t["best_score"] or 0.0, default=None)
        people_rows.append(
            {
                "person_id": pid,
                "name": name,
                "faces": len(mine),
                "detections": sum(t["detections"] for t in mine),
                "files": len({t["checksum"] for t in mine}),
                "first_seen": min(seen, default=None),
                "last_seen": max(seen, default=None),
                "crop": best["best_crop"] if best else None,
            }
        )
    store.lake.write_snapshot("face_clusters", rows_to_table(FACE_CLUSTERS, cluster_rows))
    store.lake.write_snapshot("people", rows_to_table(PEOPLE, people_rows))


def appearances(
    store: Store, person_ids: list[int], join_gap_s: float = 1.0
) -> dict[int, list[dict]]:
    """Per person, the files they appear in with time ranges (tracks closer than `join_gap_s`
    joined), in one query."""
    tracks = store.frame(
        "SELECT c.person_id, c.checksum, c.start_s, c.end_s, any_value(m.path) path"
        " FROM face_clusters c LEFT JOIN media_files m ON m.checksum = c.checksum"
        " AND NOT m.missing WHERE list_contains($1, c.person_id) GROUP BY ALL",
        [list(person_ids) or [-1]],
    ).sort("person_id", "checksum", "start_s")
    file = ["person_id", "checksum"]
    # a track starting more than the gap after every earlier one of that file ends opens a range
    opens = pl.col("start_s") - pl.col("end_s").cum_max().shift(1).over(file) > join_gap_s
    ranges = (
        tracks.with_columns(run=opens.fill_null(True).cum_sum().over(file))
        .group_by([*file, "run"], maintain_order=True)
        .agg(pl.col("path").first(), pl.col("start_s").min(), pl.col("end_s").max())
    )
    out: dict[int, dict[str, dict]] = {p: {} for p in person_ids}
    for row in ranges.iter_rows(named=True):
        entry = out[row["person_id"]].setdefault(
            row["checksum"], {"checksum": row["checksum"], "path": row["path"], "ranges": []}
        )
        entry["ranges"].append([row["start_s"], row["end_s"]])
    return {p: list(files.values()) for p, files in out.items()}


def list_people(store: Store) -> list[dict]:
    """The people `dam faces list` and the library page show: anyone seen or named, most
    appearances first."""
    return store.sql(
        "SELECT person_id, name, faces, files, detections, first_seen, last_seen, crop"
        " FROM people WHERE faces > 0 OR name IS NOT NULL ORDER BY faces DESC, person_id"
    ).to_pylist()


def label_person(store: Store, who: str, name: str) -> tuple[int, str]:
    """Name a person (an id or a current name), then refresh the snapshots: `dam faces label`
    and the library page. Raises PersonNotFound or ValueError with the reason."""
    person = store.people.resolve(who)
    store.people.label(person, name)
    export_people(store)
    return person, name.strip()


def merge_people(store: Store, keep: str, other: str) -> tuple[int, int, str | None]:
    """`other` becomes part of `keep` (ids or names); (keep id, other id, the name kept)."""
    keep_id, other_id = store.people.resolve(keep), store.people.resolve(other)
    name = store.people.merge(keep_id, other_id)
    export_people(store)
    return keep_id, other_id, name

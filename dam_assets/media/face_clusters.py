"""People across the library: face tracks clustered into persons with stable ids.

The unit is a track's mean embedding (one appearance). Two paths:

- incremental (every run): new tracks join the nearest person within `max_distance` (cosine);
  the rest are clustered among themselves and a new person is made only from a group of at
  least `min_faces` tracks (Immich's defaults: 0.5 and 3). Ungrouped tracks wait.
- full re-cluster (on demand, nightly): average-linkage agglomerative clustering over all
  tracks. For unit vectors the average pairwise cosine similarity of two clusters is
  `sum_a · sum_b / (n_a n_b)`, so linkage is exact and merging is cheap. Candidate pairs come
  from each track's nearest neighbours (so clusters joined only through pairs outside every
  member's 24 nearest are not considered), which keeps memory linear; finding the neighbours
  is still one n × n product, done in blocks (about a minute at 100k tracks, make bench).

Whatever a user decided is kept: tracks placed by a user (labelling pins a person's tracks,
merging pins both) start as one locked cluster per person, two locked clusters never merge,
and a named person is never dropped or renamed. Unnamed clusters take the old id they share
the most tracks with. Two tracks seen in the same frame are never one person.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClusterParams:
    max_distance: float = 0.5  # cosine distance
    min_faces: int = 3  # tracks needed to make a new person
    neighbours: int = 24  # candidate pairs per track in the full re-cluster


@dataclass(frozen=True)
class Assignment:
    person_id: int
    distance: float
    source: str = "auto"  # auto | user


@dataclass
class PeopleState:
    assignments: dict[str, Assignment] = field(default_factory=dict)
    names: dict[int, str | None] = field(default_factory=dict)  # every live person
    centroids: dict[int, np.ndarray] = field(default_factory=dict)  # last known centres
    next_id: int = 1


@dataclass
class Outcome:
    assignments: dict[str, Assignment]
    centroids: dict[int, np.ndarray]  # every person kept, with its centre
    created: list[int]
    dropped: list[int]


def unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def knn_graph(x: np.ndarray, k: int, min_similarity: float, block: int = 1024) -> list[np.ndarray]:
    """For each row, up to `k` other rows at least `min_similarity` alike (exact, blockwise:
    one matrix product per block, then only the pairs over the threshold are sorted)."""
    n = x.shape[0]
    out: list[np.ndarray] = []
    for start in range(0, n, block):
        sims = x[start : start + block] @ x.T
        rows, cols = np.nonzero(sims >= min_similarity)
        values = sims[rows, cols]
        order = np.lexsort((-values, rows))  # by row, most similar first
        rows, cols = rows[order], cols[order]
        bounds = np.searchsorted(rows, np.arange(sims.shape[0] + 1))
        for r in range(sims.shape[0]):
            row = cols[bounds[r] : bounds[r + 1]]
            out.append(row[row != start + r][:k])
    return out


def average_linkage(
    x: np.ndarray,
    frames: Sequence[frozenset[int]],
    params: ClusterParams,
    seeds: Sequence[Sequence[int]] = (),
) -> list[list[int]]:
    """Clusters (lists of row numbers) of unit vectors `x`. `seeds` are groups that start as
    one cluster each and never merge with each other; rows sharing a frame never merge."""
    n = x.shape[0]
    if n == 0:
        return []
    root = np.arange(n)
    locked = np.zeros(n, bool)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    sums = x.astype(np.float64).copy()
    sizes = np.ones(n)
    seen: list[set[int]] = [set(f) for f in frames]
    for group in seeds:
        group = list(group)
        if not group:
            continue
        head = group[0]
        locked[head] = True
        for i in group[1:]:
            sums[head] += sums[i]
            sizes[head] += 1
            seen[head] |= seen[i]
            members[head] += members.pop(i)
            root[i] = head
    threshold = 1.0 - params.max_distance
    neighbours: dict[int, set[int]] = {c: set() for c in members}
    for i, row in enumerate(knn_graph(unit(x), params.neighbours, threshold)):
        a = root[i]
        for j in row:
            b = root[j]
            if a != b:
                neighbours[a].add(b)
                neighbours[b].add(a)
    version = np.zeros(n, np.int64)
    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int, others: list[int]) -> None:
        if not others:
            return
        sims = (sums[others] @ sums[a]) / (sizes[others] * sizes[a])
        for b, s in zip(others, sims, strict=True):
            if s >= threshold:
                heapq.heappush(heap, (-float(s), a, b, int(version[a]), int(version[b])))

    for a in list(members):
        push(a, [b for b in neighbours[a] if b > a])
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if a not in members or b not in members or version[a] != va or version[b] != vb:
            continue
        if (locked[a] and locked[b]) or not seen[a].isdisjoint(seen[b]):
            continue
        if len(members[a]) < len(members[b]):
            a, b = b, a
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        seen[a] |= seen[b]
        locked[a] |= locked[b]
        members[a] += members.pop(b)
        version[a] += 1
        joined = (neighbours[a] | neighbours.pop(b)) - {a, b}
        for c in joined:
            neighbours[c].discard(b)
            neighbours[c].add(a)
        neighbours[a] = joined
        push(a, sorted(joined))
    return list(members.values())


def _centres(
    ids: list[str], x: np.ndarray, assignments: dict[str, Assignment]
) -> dict[int, np.ndarray]:
    sums: dict[int, np.ndarray] = {}
    for i, track in enumerate(ids):
        if track in assignments:
            pid = assignments[track].person_id
            sums[pid] = sums.get(pid, 0) + x[i]
    return {pid: unit(s) for pid, s in sums.items()}


def update_people(
    track_ids: Sequence[str],
    vectors: np.ndarray,
    frames: Sequence[frozenset[int]],
    state: PeopleState,
    params: ClusterParams = ClusterParams(),
    full: bool = False,
) -> Outcome:
    """The new person of every track (incremental, or a full re-cluster), keeping ids."""
    ids = list(track_ids)
    x = unit(vectors) if len(ids) else np.zeros((0, 1), np.float32)
    index = {t: i for i, t in enumerate(ids)}
    present = {t: a for t, a in state.assignments.items() if t in index}
    next_id = state.next_id
    created: list[int] = []

    def new_id() -> int:
        nonlocal next_id
        created.append(next_id)
        next_id += 1
        return created[-1]

    if full:
        user: dict[int, list[int]] = {}
        for t, a in present.items():
            if a.source == "user":
                user.setdefault(a.person_id, []).append(index[t])
        for t, a in present.items():  # a named person none of whose tracks a user placed
            if state.names.get(a.person_id) and a.person_id not in user:
                user.setdefault(-a.person_id, []).append(index[t])
        user = {abs(p): rows for p, rows in user.items()}
        seed_ids = list(user)
        clusters = average_linkage(x, frames, params, [user[p] for p in seed_ids])
        head_of_seed = {user[p][0]: p for p in seed_ids}
        assignments: dict[str, Assignment] = {}
        unseeded = []
        for cluster in clusters:
            pid = next((head_of_seed[i] for i in cluster if i in head_of_seed), None)
            if pid is not None:
                for i in cluster:
                    old = present.get(ids[i])
                    source = "user" if old and old.source == "user" else "auto"
                    assignments[ids[i]] = Assignment(pid, 0.0, source)
            elif len(cluster) >= params.min_faces:
                unseeded.append(cluster)
        # unnamed clusters take the old id they share most tracks with (each id once)
        taken = set(seed_ids) | {p for p, n in state.names.items() if n}
        overlaps = []
        for c, cluster in enumerate(unseeded):
            counts: dict[int, int] = {}
            for i in cluster:
                old = present.get(ids[i])
                if old and old.person_id not in taken:
                    counts[old.person_id] = counts.get(old.person_id, 0) + 1
            overlaps += [(-n, pid, c) for pid, n in counts.items()]
        chosen: dict[int, int] = {}
        for _, pid, c in sorted(overlaps):
            if c not in chosen and pid not in taken:
                chosen[c] = pid
                taken.add(pid)
        for c, cluster in enumerate(unseeded):
            pid = chosen.get(c) or new_id()
            for i in cluster:
                assignments[ids[i]] = Assignment(pid, 0.0)
    else:
        assignments = dict(present)
        centres = _centres(ids, x, assignments)
        for pid, centre in state.centroids.items():  # people whose tracks are all gone
            if pid in state.names and pid not in centres and centre.shape == x.shape[1:]:
                centres[pid] = unit(centre)
        person_frames: dict[int, set[int]] = {}
        for t, a in assignments.items():
            person_frames.setdefault(a.person_id, set()).update(frames[index[t]])
        pending = [i for i, t in enumerate(ids) if t not in assignments]
        if pending and centres:
            pids = list(centres)
            sims = x[pending] @ np.stack([centres[p] for p in pids]).T
            still = []
            for row, i in enumerate(pending):
                placed = False
                for col in np.argsort(-sims[row]):
                    if sims[row, col] < 1.0 - params.max_distance:
                        break
                    pid = pids[col]
                    if person_frames.setdefault(pid, set()).isdisjoint(frames[i]):
                        assignments[ids[i]] = Assignment(pid, 0.0)
                        person_frames[pid].update(frames[i])
                        placed = True
                        break
                if not placed:
                    still.append(i)
            pending = still
        if pending:
            groups = average_linkage(x[pending], [frames[i] for i in pending], params)
            for group in groups:
                if len(group) >= params.min_faces:
                    pid = new_id()
                    for g in group:
                        assignments[ids[pending[g]]] = Assignment(pid, 0.0)

    centres = _centres(ids, x, assignments)
    kept: dict[int, np.ndarray] = {}
    dropped = []
    for pid in set(state.names) | set(centres):
        if pid in centres:
            kept[pid] = centres[pid]
        elif state.names.get(pid):  # a named person is never dropped
            kept[pid] = state.centroids.get(pid)
        else:
            dropped.append(pid)
    final = {
        t: Assignment(a.person_id, float(1.0 - x[index[t]] @ kept[a.person_id]), a.source)
        for t, a in assignments.items()
    }
    return Outcome(final, kept, created, sorted(dropped))

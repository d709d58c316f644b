"""Linking a video's face detections into tracks: one face followed through a shot.

Between consecutive samples, detections are matched to open tracks by the Hungarian method on
box overlap and appearance, gated (IoU ≥ 0.3 and cosine similarity ≥ 0.5) so a face never jumps
to another person or place. A track closes after about a second without a match or at a scene
cut; tracks shorter than three detections are dropped as noise. Each detection joins at most
one track and each track takes at most one detection per frame, so two faces in one frame are
never one track.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class FaceSample:
    time_s: float
    bbox: np.ndarray  # x1, y1, x2, y2
    vector: np.ndarray  # L2-normalised
    quality: float = 1.0  # for choosing the track's best crop
    track: int | None = None  # set by `link_tracks`


@dataclass
class Track:
    index: int
    members: list[FaceSample] = field(default_factory=list)
    vector_sum: np.ndarray | None = None

    @property
    def start_s(self) -> float:
        return self.members[0].time_s

    @property
    def end_s(self) -> float:
        return self.members[-1].time_s

    @property
    def vector(self) -> np.ndarray:
        return self.vector_sum / max(float(np.linalg.norm(self.vector_sum)), 1e-12)

    @property
    def best(self) -> FaceSample:
        return max(self.members, key=lambda s: s.quality)

    def add(self, sample: FaceSample) -> None:
        self.members.append(sample)
        if self.vector_sum is None:
            self.vector_sum = sample.vector.astype(np.float64)
        else:
            self.vector_sum = self.vector_sum + sample.vector


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (n × 4) with every box in `b` (m × 4)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def link_tracks(
    samples: list[FaceSample],
    cuts: list[float] = (),
    min_iou: float = 0.3,
    min_similarity: float = 0.5,
    max_gap_s: float = 1.0,
    min_length: int = 3,
) -> list[Track]:
    """Tracks (numbered from 0 in time order) over one video's detections; sets each kept
    sample's `track`. `cuts` are scene-cut times: no track crosses one."""
    cuts = sorted(cuts)
    by_time: dict[float, list[FaceSample]] = {}
    for sample in samples:
        by_time.setdefault(sample.time_s, []).append(sample)
    tracks: list[Track] = []
    open_: list[Track] = []
    for t in sorted(by_time):
        frame = by_time[t]
        open_ = [
            tr
            for tr in open_
            if t - tr.end_s <= max_gap_s + 1e-6
            and bisect.bisect_right(cuts, tr.end_s) == bisect.bisect_right(cuts, t)
        ]
        matched: set[int] = set()
        if open_:
            last = np.stack([tr.members[-1].bbox for tr in open_])
            boxes = np.stack([s.bbox for s in frame])
            iou = iou_matrix(last, boxes)
            sim = np.stack([tr.vector for tr in open_]) @ np.stack([s.vector for s in frame]).T
            allowed = (iou >= min_iou) & (sim >= min_similarity)
            cost = np.where(allowed, (1.0 - iou) + (1.0 - sim), 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if allowed[r, c]:
                    open_[r].add(frame[c])
                    matched.add(c)
        for c, sample in enumerate(frame):
            if c not in matched:
                track = Track(index=len(tracks))
                track.add(sample)
                tracks.append(track)
                open_.append(track)
    kept = [tr for tr in tracks if len(tr.members) >= min_length]
    for sample in samples:
        sample.track = None
    for number, track in enumerate(kept):
        track.index = number
        for sample in track.members:
            sample.track = number
    return kept


def carry_over(
    old: list[tuple[str, float, np.ndarray]],
    new: list[tuple[str, float, np.ndarray]],
    min_iou: float = 0.5,
) -> dict[str, str]:
    """Which new track continues which old one when a file is analysed again: (track id, time,
    box) detections of both runs, matched by how many sample times their boxes overlap. Only
    boxes are compared, so it holds across a change of face model. One-to-one, best first."""
    by_time: dict[float, list[tuple[str, np.ndarray]]] = {}
    for track, t, box in new:
        by_time.setdefault(round(t, 3), []).append((track, np.asarray(box, float)))
    votes: dict[tuple[str, str], int] = {}
    for track, t, box in old:
        for other, other_box in by_time.get(round(t, 3), []):
            if iou_matrix(np.asarray(box, float)[None], other_box[None])[0, 0] >= min_iou:
                votes[(track, other)] = votes.get((track, other), 0) + 1
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for (track, other), _ in sorted(votes.items(), key=lambda kv: -kv[1]):
        if track not in mapping and other not in taken:
            mapping[track] = other
            taken.add(other)
    return mapping


def stable_track_ids(
    old_ids: list[str], follows: dict[str, str], new_ids: list[str], prefix: str
) -> dict[str, str]:
    """Names for a new run's tracks (keyed by their provisional id): a track that continues
    an old one (`follows`: old -> new) keeps the old id, so people's placements and a user's
    pins stay valid without rewriting them; other tracks get numbers no old track used."""
    kept = {new: old for old, new in follows.items()}
    used = [int(t.rsplit(":t", 1)[1]) for t in old_ids if ":t" in t]
    fresh = iter(range(max(used, default=-1) + 1, 1 << 31))
    return {new: kept.get(new) or f"{prefix}:t{next(fresh)}" for new in new_ids}

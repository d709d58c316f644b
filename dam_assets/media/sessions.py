"""Capture sessions: segments of one rig that overlap in time, their takes (chapter chains),
and their offsets to the hero camera, solved jointly from pairwise audio sync."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from .audio_sync import Track, measure
from .timecode import parse_timecode, to_seconds

CONTINUITY_S = 2.0  # a file starting within this of the previous one's end continues the take
KEEP_BYTES = 96 << 20  # samples a session keeps of its short tracks (10 of 5 min); no more


def group_sessions(segments: list[dict], gap_s: float) -> list[list[dict]]:
    """Per rig, segments whose [start, start + duration] come within `gap_s` of each other."""
    sessions: list[list[dict]] = []
    by_rig: dict[str, list[dict]] = {}
    for seg in segments:
        if seg.get("capture_start") is not None:
            by_rig.setdefault(seg["rig"], []).append(seg)
    for rig_segments in by_rig.values():
        rig_segments.sort(key=lambda s: s["capture_start"])
        current: list[dict] = []
        end = None
        for seg in rig_segments:
            seg_end = seg["capture_start"] + timedelta(seconds=seg["duration_s"] or 0)
            if current and seg["capture_start"] <= end + timedelta(seconds=gap_s):
                current.append(seg)
                end = max(end, seg_end)
            else:
                if current:
                    sessions.append(current)
                current, end = [seg], seg_end
        if current:
            sessions.append(current)
    return sessions


def link_takes(segments: list[dict]) -> dict[str, str]:
    """checksum -> take id. GoPro chapters by their file number; other files join the previous
    file of the same camera when codec, size and frame rate match and the times continue."""
    takes: dict[str, str] = {}
    by_camera: dict[tuple[str, str], list[dict]] = {}
    for seg in segments:
        by_camera.setdefault((seg["rig"], seg["camera"]), []).append(seg)
    for (_rig, camera), segs in by_camera.items():
        segs.sort(key=lambda s: (s["capture_start"] is None, s["capture_start"], s["path"]))
        previous = None
        for seg in segs:
            if seg.get("chapter_group"):
                takes[seg["checksum"]] = f"{camera}:{seg['chapter_group']}"
            elif previous is not None and _continues(previous, seg):
                takes[seg["checksum"]] = takes[previous["checksum"]]
            else:
                takes[seg["checksum"]] = f"{camera}:{seg['checksum'][:12]}"
            previous = seg
    return takes


def _continues(a: dict, b: dict) -> bool:
    same = all(a.get(k) == b.get(k) for k in ("video_codec", "width", "height", "fps"))
    if not same or a["capture_start"] is None or b["capture_start"] is None:
        return False
    if a.get("timecode") and b.get("timecode") and a.get("fps"):
        try:
            gap = _tc_seconds(b) - (_tc_seconds(a) + (a["duration_s"] or 0))
            return abs(gap) <= 1.5 / a["fps"]
        except ValueError:
            pass
    expected = a["capture_start"] + timedelta(seconds=a["duration_s"] or 0)
    return abs((b["capture_start"] - expected).total_seconds()) <= CONTINUITY_S


def _tc_seconds(seg: dict) -> float:
    return to_seconds(parse_timecode(seg["timecode"], seg["fps"]), seg["fps"])


def solve_offsets(
    nodes: list[str], hero: str, pairs: list[tuple[str, str, float]], tolerance: float
) -> tuple[dict[str, float], dict[str, float], set[str]]:
    """Least squares on o_b − o_a = d_ab with the hero at 0. A pair that disagrees with the
    others by more than `tolerance` is dropped (worst first) and its segments reported, so one
    bad correlation cannot drag good offsets. Returns (offsets of nodes connected to the hero,
    each node's largest residual, nodes of dropped pairs)."""
    pairs = list(pairs)
    flagged: set[str] = set()
    while True:
        offsets, residual, worst = _least_squares(nodes, hero, pairs)
        if worst is None or worst[1] <= tolerance:
            return offsets, residual, flagged
        a, b, _ = pairs.pop(worst[0])
        flagged |= {a, b}


def _least_squares(nodes, hero, pairs):
    connected = {hero}
    changed = True
    while changed:
        changed = False
        for a, b, _ in pairs:
            if (a in connected) != (b in connected):
                connected |= {a, b}
                changed = True
    unknown = [n for n in nodes if n in connected and n != hero]
    index = {n: i for i, n in enumerate(unknown)}
    used = [(k, p) for k, p in enumerate(pairs) if p[0] in connected and p[1] in connected]
    offsets = {hero: 0.0}
    if unknown:
        matrix = np.zeros((len(used), len(unknown)))
        rhs = np.zeros(len(used))
        for row, (_, (a, b, d)) in enumerate(used):
            if b in index:
                matrix[row, index[b]] += 1
            if a in index:
                matrix[row, index[a]] -= 1
            rhs[row] = d
        solution, *_ = np.linalg.lstsq(matrix, rhs, rcond=None)
        offsets.update({n: float(solution[i]) for n, i in index.items()})
    residual: dict[str, float] = {}
    worst = None
    for k, (a, b, d) in used:
        r = float(abs(offsets[b] - offsets[a] - d))
        residual[a] = max(residual.get(a, 0.0), r)
        residual[b] = max(residual.get(b, 0.0), r)
        if worst is None or r > worst[1]:
            worst = (k, r)
    return offsets, residual, worst


@dataclass
class SyncRow:
    checksum: str
    offset_s: float | None
    method: str
    confidence: float | None
    drift_ppm: float | None
    consistent: bool | None
    note: str


def sync_session(
    segments: list[dict],
    load: Callable[[str], Track | None],
    min_confidence: float = 0.3,
) -> tuple[dict | None, list[SyncRow]]:
    """Offsets of every segment against the session's hero segment (the longest hero-camera
    file). Audio first (pairs solved together, > 1 frame of disagreement flagged), else
    timecode, else capture times. Every camera's `Track` is held at once, which is why a track
    holds its onset envelope, not its samples (`audio_sync`); short ones keep theirs while the
    session's total stays under KEEP_BYTES."""
    heroes = [s for s in segments if s["role"] == "hero"] or segments
    hero = max(heroes, key=lambda s: (s["duration_s"] or 0, -s["capture_start"].timestamp()))
    fps = hero.get("fps") or 25.0
    audio: dict[str, Track] = {}
    kept = 0
    for seg in segments:
        track = _load_or_none(load, seg["path"]) if seg.get("has_audio") else None
        if track is None or not track.length:
            continue
        if track.samples is not None:
            if kept + track.samples.nbytes > KEEP_BYTES:  # many short clips: read windows instead
                track.samples = None
            else:
                kept += track.samples.nbytes
        audio[seg["checksum"]] = track
    by_ck = {s["checksum"]: s for s in segments}
    measured: dict[tuple[str, str], tuple[float, float, float | None]] = {}
    for a, b in itertools.combinations(sorted(audio), 2):
        if not _may_overlap(by_ck[a], by_ck[b]):
            continue  # chapters of one take, say: nothing in common to correlate
        result = measure(audio[a], audio[b])
        measured[(a, b)] = (result.offset_s, result.confidence, result.drift_ppm)
    pairs = [(a, b, off) for (a, b), (off, conf, _) in measured.items() if conf >= min_confidence]
    nodes = [s["checksum"] for s in segments]
    offsets, _, flagged = solve_offsets(nodes, hero["checksum"], pairs, 1.0 / fps)
    rows = []
    for seg in segments:
        ck = seg["checksum"]
        direct = measured.get((hero["checksum"], ck)) or measured.get((ck, hero["checksum"]))
        confidence = direct[1] if direct else None
        drift = (
            direct[2]
            if direct and (hero["checksum"], ck) in measured
            else (-direct[2] if direct and direct[2] is not None else None)
        )
        if ck == hero["checksum"]:
            rows.append(SyncRow(ck, 0.0, "reference", 1.0, None, True, "hero"))
        elif ck in offsets:
            ok = ck not in flagged
            note = "" if ok else "a pairwise offset disagreed by more than a frame and was dropped"
            rows.append(SyncRow(ck, offsets[ck], "audio", confidence, drift, ok, note))
        else:
            why = (
                "no audio"
                if ck not in audio or hero["checksum"] not in audio
                else f"audio confidence {confidence or 0:.2f} < {min_confidence}"
            )
            offset, method = _fallback(seg, hero)
            rows.append(SyncRow(ck, offset, method, confidence, None, None, why))
    return hero, rows


def _load_or_none(load: Callable[[str], Track | None], path: str) -> Track | None:
    """A file gone or unreadable since it was indexed syncs by timecode or times instead of
    failing every session."""
    try:
        return load(path)
    except Exception:
        return None


def _may_overlap(a: dict, b: dict, margin_s: float = 60.0) -> bool:
    """Whether two recordings can share sound, by their capture times (clocks can be off by a
    minute; different takes of one camera never overlap)."""
    if a["camera"] == b["camera"] and a["rig"] == b["rig"]:
        return False
    if a["capture_start"] is None or b["capture_start"] is None:
        return True
    a0, b0 = a["capture_start"].timestamp(), b["capture_start"].timestamp()
    a1, b1 = a0 + (a["duration_s"] or 0), b0 + (b["duration_s"] or 0)
    return a0 - margin_s < b1 and b0 - margin_s < a1


def _fallback(seg: dict, hero: dict) -> tuple[float | None, str]:
    if seg.get("timecode") and hero.get("timecode") and seg.get("fps") and hero.get("fps"):
        try:
            return _tc_seconds(seg) - _tc_seconds(hero), "timecode"
        except ValueError:
            pass
    if seg["capture_start"] is not None and hero["capture_start"] is not None:
        delta = (seg["capture_start"] - hero["capture_start"]).total_seconds()
        return delta, f"times ({seg['start_source']})"
    return None, "none"

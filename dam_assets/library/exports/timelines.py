"""OpenTimelineIO timelines from rows the catalog holds: search moments, one file's scenes,
transcript, people and capture facts, and a capture session's audio-sync offsets.

Conventions every format relies on: a clip's source range is in its file's own frames,
counted from the file's start timecode (so the editing program relinks to the camera
original); markers are in that same source time; the timeline starts at frame 0 at the
timeline's rate; `metadata["dam"]` holds the facts behind each object.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import opentimelineio as otio
from opentimelineio import opentime

from ...storage import Store
from ..people import appearances
from .sources import Clock, ExportError, Source, load_sources
from .timecode import exact_rate, label

Color = otio.schema.MarkerColor
COLORS = {
    "moment": Color.RED,
    "scene": Color.BLUE,
    "transcript": Color.GREEN,
    "person": Color.PURPLE,
    "capture": Color.CYAN,
    "sync": Color.GREEN,
    "check": Color.RED,
    "drift": Color.ORANGE,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean(text: object) -> str:
    """One line of text fit for every format (XML refuses control characters)."""
    return _CONTROL.sub(" ", str(text)).strip()


def _time(frames: float, rate: Fraction) -> opentime.RationalTime:
    return opentime.RationalTime(frames, float(rate))


def _range(start: float, duration: float, rate: Fraction) -> opentime.TimeRange:
    return opentime.TimeRange(_time(start, rate), _time(duration, rate))


def _clip(source: Source, clock: Clock, first: int, count: int, **facts) -> otio.schema.Clip:
    """A clip of frames [first, first + count) of a file (counted from its start)."""
    ref = otio.schema.ExternalReference(
        target_url=source.url, available_range=_range(clock.start, clock.frames, clock.rate)
    )
    ref.name = source.name
    ref.metadata["dam"] = {
        **source.facts(),
        "drop_frame": clock.drop_frame,
        "rate": str(clock.rate),
        "has_video": source.has_video,
        "has_audio": source.has_audio,
    }
    clip = otio.schema.Clip(
        name=source.name,
        media_reference=ref,
        source_range=_range(clock.start + first, count, clock.rate),
    )
    clip.metadata["dam"] = {"checksum": source.checksum, "in_frame": first, **facts}
    return clip


def _marker(
    kind: str, name: str, clock: Clock, first: int, count: int, comment: str = "", **facts
) -> otio.schema.Marker:
    marker = otio.schema.Marker(
        name=clean(name),
        marked_range=_range(clock.start + first, max(count, 0), clock.rate),
        color=COLORS[kind],
    )
    marker.comment = clean(comment)
    marker.metadata["dam"] = {"kind": kind, **facts}
    return marker


def _gap(frames: float, rate: Fraction) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=_range(0, frames, rate))


def _timeline(name: str, rate: Fraction, tracks: list[otio.schema.Track], **facts):
    timeline = otio.schema.Timeline(name=clean(name))
    timeline.global_start_time = _time(0, rate)
    timeline.tracks.extend([t for t in tracks if any(isinstance(c, otio.schema.Clip) for c in t)])
    timeline.metadata["dam"] = {"rate": str(rate), **facts}
    return timeline


def _track(name: str, kind: str, **facts) -> otio.schema.Track:
    track = otio.schema.Track(name=name, kind=kind)
    track.metadata["dam"] = facts
    return track


def _timeline_rate(sources) -> Fraction:
    """The rate most of the video files have (the first one's on a tie)."""
    rates = [exact_rate(s.fps) for s in sources if s.has_video and s.fps]
    if not rates:
        return Fraction(25)
    counts = Counter(rates)
    return max(rates, key=lambda r: (counts[r], -rates.index(r)))


# -- handles --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Handles:
    """Extra media kept before and after each moment: seconds, or exact frames."""

    seconds: float = 2.0
    frames: int | None = None

    @classmethod
    def parse(cls, text: str) -> Handles:
        """'2', '1.5s' (seconds) or '48f' (frames of each file's own rate)."""
        value = text.strip().lower()
        try:
            if value.endswith("f"):
                frames = int(value[:-1])
                if frames < 0:
                    raise ValueError
                return cls(0.0, frames)
            seconds = float(value.removesuffix("s"))
            if not 0 <= seconds < 3600:
                raise ValueError
            return cls(seconds)
        except ValueError:
            raise ExportError(
                f"handles {text!r}: give seconds (2, 1.5s) or frames (48f), not negative"
                " and under an hour"
            ) from None

    def at(self, rate: Fraction) -> int:
        return self.frames if self.frames is not None else round(self.seconds * float(rate))


DEFAULT_HANDLES = Handles()


# -- moments --------------------------------------------------------------------------------------
def moments_timeline(
    store: Store,
    moments: list[dict],
    query: str,
    handles: Handles = DEFAULT_HANDLES,
    title: str | None = None,
) -> otio.schema.Timeline:
    """One clip per moment (`checksum`, `start`, `end` in seconds, optional `score`, `text`),
    in the order given: source in/out is the moment widened by the handles, and a marker on
    the moment itself carries the query, the score and the transcript line."""
    sources = load_sources(store, [m["checksum"] for m in moments])
    rate = _timeline_rate(sources.values())
    lines = _transcript_lines(store, [m for m in moments if not m.get("text")])
    video = _track("V1", otio.schema.TrackKind.Video)
    audio = _track("A1", otio.schema.TrackKind.Audio)
    skipped: list[str] = []
    placed = 0
    for rank, moment in enumerate(moments, 1):
        source = sources.get(moment["checksum"])
        if source is None:
            skipped.append(f"{moment['checksum'][:12]}: not in the catalog (not probed)")
            continue
        if not (source.has_video or source.has_audio):
            skipped.append(f"{source.name}: a still image has no place on a timeline")
            continue
        clock = source.clock(rate)
        first = clock.frame(moment["start"])
        last = clock.frame(max(moment["end"], moment["start"])) + 1
        pad = handles.at(clock.rate)
        a, b = max(0, first - pad), min(clock.frames, last + pad)
        line = moment.get("text") or lines.get(id(moment), "")
        score = moment.get("score")
        comment = " · ".join(
            part
            for part in (
                f"score {score:.4g}" if isinstance(score, int | float) else "",
                f"#{rank}",
                f"“{clean(line)}”" if line else "",
            )
            if part
        )
        marker = _marker(
            "moment",
            query,
            clock,
            first,
            last - first,
            comment,
            query=query,
            score=score,
            rank=rank,
            transcript=clean(line) or None,
            start_s=moment["start"],
            end_s=moment["end"],
        )
        facts = {"rank": rank, "score": score, "moment_in_frame": first, "moment_out_frame": last}
        for track, has in ((video, source.has_video), (audio, source.has_audio)):
            if not has:
                track.append(_gap(b - a, clock.rate))
                continue
            clip = _clip(source, clock, a, b - a, **facts)
            if track is video or not source.has_video:
                clip.markers.append(marker.clone())
            track.append(clip)
        placed += 1
    if not placed:
        why = "; ".join(skipped) if skipped else "nothing matched"
        raise ExportError(f"no moment can go on a timeline ({why}); nothing written")
    return _timeline(
        title or f"dam: {query}",
        rate,
        [video, audio],
        kind="moments",
        query=query,
        moments=placed,
        handles_s=handles.seconds if handles.frames is None else None,
        handles_frames=handles.frames,
        skipped=skipped,
        drop_frame=_drop_frame(sources.values(), rate),
    )


def _transcript_lines(store: Store, moments: list[dict]) -> dict[int, str]:
    """For moments found by picture, the speech heard during them (overlapping segments)."""
    checksums = list({m["checksum"] for m in moments})
    if not checksums:
        return {}
    rows = store.sql(
        "SELECT checksum, start_s, end_s, text FROM transcript_segments"
        " WHERE list_contains($1, checksum) ORDER BY checksum, start_s",
        [checksums],
    ).to_pylist()
    out = {}
    for m in moments:
        heard = [
            r["text"].strip()
            for r in rows
            if r["checksum"] == m["checksum"]
            and r["start_s"] <= max(m["end"], m["start"])
            and r["end_s"] >= m["start"]
        ]
        if heard:
            out[id(m)] = " ".join(heard)
    return out


def _drop_frame(sources, rate: Fraction) -> bool:
    """Label the timeline drop-frame when the files at its rate are."""
    clocks = [s.clock(rate) for s in sources if s.has_video and exact_rate(s.fps) == rate]
    return bool(clocks) and all(c.drop_frame for c in clocks)


# -- one file -------------------------------------------------------------------------------------
def file_timeline(
    store: Store, checksum: str, subclips: bool = False, unnamed_people: bool = False
) -> otio.schema.Timeline:
    """One clip (or one per scene) with markers: each scene cut, each transcript segment (its
    text), each appearance of a named person (all people with `unnamed_people`), and the
    capture facts at the first frame."""
    source = load_sources(store, [checksum]).get(checksum)
    if source is None:
        raise ExportError(f"{checksum[:12]} has not been probed (run `dam ingest` on it first)")
    if not (source.has_video or source.has_audio):
        raise ExportError(f"{source.name} is a still image: it has no timeline")
    clock = source.clock()
    markers = [_capture_marker(store, source, clock)]
    scenes = store.sql(
        "SELECT scene_index, start_frame, end_frame, start_s, end_s, fps FROM scenes"
        " WHERE checksum = ? ORDER BY scene_index",
        [checksum],
    ).to_pylist()
    tags = _scene_tags(store, checksum)
    bounds = []
    for s in scenes:
        exact = s["fps"] and exact_rate(s["fps"]) == clock.rate
        first = int(s["start_frame"]) if exact else clock.frame(s["start_s"])
        last = int(s["end_frame"]) if exact else round(s["end_s"] * float(clock.rate))
        first, last = min(first, clock.frames - 1), min(max(last, first + 1), clock.frames)
        bounds.append((first, last))
        number = s["scene_index"] + 1
        tagged = tags.get(s["scene_index"], "")
        markers.append(
            _marker(
                "scene",
                f"Scene {number}",
                clock,
                first,
                0,
                f"{label(last - first, clock.rate)} long" + (f" · {tagged}" if tagged else ""),
                scene=number,
                in_frame=first,
                out_frame=last,
            )
        )
    for seg in store.sql(
        "SELECT segment_index, start_s, end_s, text FROM transcript_segments"
        " WHERE checksum = ? ORDER BY segment_index",
        [checksum],
    ).to_pylist():
        first = clock.frame(seg["start_s"])
        last = max(first + 1, min(round(seg["end_s"] * float(clock.rate)), clock.frames))
        markers.append(
            _marker(
                "transcript",
                seg["text"],
                clock,
                first,
                last - first,
                f"said at {seg['start_s']:.2f}–{seg['end_s']:.2f} s",
                segment=seg["segment_index"],
                start_s=seg["start_s"],
                end_s=seg["end_s"],
            )
        )
    markers += _people_markers(store, checksum, clock, unnamed_people)
    markers.sort(key=lambda m: m.marked_range.start_time.value)
    pieces = bounds if subclips and bounds else [(0, clock.frames)]
    video = _track("V1", otio.schema.TrackKind.Video)
    audio = _track("A1", otio.schema.TrackKind.Audio)
    starts = [first for first, _ in pieces]
    held: list[list[otio.schema.Marker]] = [[] for _ in pieces]
    for m in markers:  # each marker on the piece its first frame falls in
        frame = m.marked_range.start_time.value - clock.start
        held[max(bisect.bisect_right(starts, frame) - 1, 0)].append(m)
    for index, ((first, last), inside) in enumerate(zip(pieces, held, strict=True)):
        facts = {"scene": index + 1} if subclips else {}
        for track, has in ((video, source.has_video), (audio, source.has_audio)):
            if has:
                clip = _clip(source, clock, first, last - first, **facts)
                if track is video or not source.has_video:
                    clip.markers.extend(m.clone() for m in inside)
                track.append(clip)
    return _timeline(
        source.name,
        clock.rate,
        [video, audio],
        kind="file",
        checksum=checksum,
        subclips=len(pieces) if subclips else 0,
        drop_frame=clock.drop_frame,
    )


def _scene_tags(store: Store, checksum: str) -> dict[int, str]:
    rows = store.sql(
        "SELECT scene_index, tag, max(score) AS score FROM tags WHERE checksum = ?"
        " AND scene_index IS NOT NULL AND rank <= 3 GROUP BY ALL ORDER BY scene_index, score DESC",
        [checksum],
    ).to_pylist()
    out: dict[int, list[str]] = {}
    for r in rows:
        out.setdefault(r["scene_index"], []).append(f"{r['tag']} {r['score']:.2f}")
    return {k: "tags: " + ", ".join(v[:3]) for k, v in out.items()}


def _capture_marker(store: Store, source: Source, clock: Clock) -> otio.schema.Marker:
    facts = source.facts()
    parts = []
    if source.creation_time:
        parts.append(f"captured {source.creation_time}")
    if clock.timecode:
        parts.append(f"timecode {clock.timecode}")
    if source.has_video:
        parts.append(f"{float(clock.rate):.3f} fps" + (" (variable)" if source.vfr else ""))
        parts.append(f"{source.width}×{source.height} {source.video_codec or ''}".strip())
    if source.has_audio:
        parts.append(f"audio {source.audio_channels or '?'} ch {source.audio_rate or '?'} Hz")
    camera = " ".join(x for x in (source.make, source.model) if x)
    if camera:
        parts.append(camera)
    rig = store.sql(
        "SELECT rig, camera, role, capture_start, start_source FROM capture_segments"
        " WHERE checksum = ?",
        [source.checksum],
    ).to_pylist()
    if rig:
        r = rig[0]
        parts.append(f"rig {r['rig']} camera {r['camera']} ({r['role']})")
        if r["capture_start"]:
            parts.append(f"start {r['capture_start'].isoformat()} from {r['start_source']}")
        facts.update(rig=r["rig"], camera=r["camera"], role=r["role"])
    return _marker("capture", "Capture facts", clock, 0, 0, " · ".join(parts), capture=facts)


def _people_markers(
    store: Store, checksum: str, clock: Clock, unnamed: bool
) -> list[otio.schema.Marker]:
    people = {
        r["person_id"]: r["name"]
        for r in store.sql(
            "SELECT DISTINCT c.person_id, p.name FROM face_clusters c"
            " LEFT JOIN people p USING (person_id) WHERE c.checksum = ?",
            [checksum],
        ).to_pylist()
        if r["name"] or unnamed
    }
    found = appearances(store, list(people))
    markers = []
    for person, files in found.items():
        name = people[person] or f"person {person}"
        for entry in files:
            if entry["checksum"] != checksum:
                continue
            for start_s, end_s in entry["ranges"]:
                first = clock.frame(start_s)
                last = max(first + 1, min(round(end_s * float(clock.rate)) + 1, clock.frames))
                markers.append(
                    _marker(
                        "person",
                        name,
                        clock,
                        first,
                        last - first,
                        f"person {person} on screen {start_s:.2f}–{end_s:.2f} s",
                        person_id=person,
                        person=people[person],
                        start_s=start_s,
                        end_s=end_s,
                    )
                )
    return markers


# -- capture sessions -----------------------------------------------------------------------------
def session_timeline(store: Store, session_id: str) -> otio.schema.Timeline:
    """A synced multicam timeline: a video track per camera (and an audio track per camera
    or recorder with sound), each file placed at its measured offset to the hero camera.
    Offsets not measured by audio, that disagreed, or never found are marked to check; clock
    drift is noted on the clip."""
    rows = store.sql("SELECT * FROM capture_sessions WHERE session_id = ?", [session_id])
    if not rows.num_rows:
        raise ExportError(f"no session {session_id!r} (see `dam rigs sessions`)")
    session = rows.to_pylist()[0]
    sync = store.sql(
        "SELECT s.*, g.duration_s AS segment_duration_s FROM capture_sync s"
        " LEFT JOIN capture_segments g USING (checksum) WHERE s.session_id = ?"
        " ORDER BY s.camera, s.offset_s",
        [session_id],
    ).to_pylist()
    sources = load_sources(store, [r["checksum"] for r in sync])
    hero = sources.get(session["hero_checksum"])
    rate = exact_rate(session["fps"]) or (hero.clock().rate if hero else Fraction(25))
    known = [r["offset_s"] for r in sync if r["offset_s"] is not None and r["checksum"] in sources]
    origin = min(known, default=0.0)
    order = {"hero": 0, "witness": 1, "audio": 2}
    cameras: dict[str, list[dict]] = {}
    skipped = []
    for row in sorted(sync, key=lambda r: (order.get(r["role"], 3), r["camera"])):
        if row["checksum"] in sources:
            cameras.setdefault(row["camera"], []).append(row)
        else:
            skipped.append(f"{row['checksum'][:12]} (camera {row['camera']}): not probed")
    tracks: list[otio.schema.Track] = []
    angles = []
    for camera, files in cameras.items():
        files.sort(key=lambda r: r["offset_s"] if r["offset_s"] is not None else origin)
        lanes: list[list[tuple[dict, int]]] = []
        for row in files:
            start = round(((row["offset_s"] if row["offset_s"] is not None else origin) - origin)
                          * float(rate))  # fmt: skip
            for lane in lanes:
                prev, prev_start = lane[-1]
                prev_clock = sources[prev["checksum"]].clock(rate)
                if prev_start + prev_clock.frames * rate / prev_clock.rate <= start:
                    lane.append((row, start))
                    break
            else:
                lanes.append([(row, start)])
        for n, lane in enumerate(lanes):
            angle = camera if n == 0 else f"{camera} ({n + 1})"
            role = lane[0][0]["role"]
            with_video = any(sources[r["checksum"]].has_video for r, _ in lane)
            with_audio = any(sources[r["checksum"]].has_audio for r, _ in lane)
            kinds = [otio.schema.TrackKind.Video] if with_video else []
            kinds += [otio.schema.TrackKind.Audio] if with_audio else []
            for kind in kinds:
                track = _track(angle, kind, camera=camera, role=role, angle=angle)
                _place(track, lane, sources, rate, primary=kind == kinds[0])
                tracks.append(track)
            angles.append({"angle": angle, "camera": camera, "role": role})
    if not tracks:
        raise ExportError(f"session {session_id!r} has no file the catalog can place")
    return _timeline(
        session_id,
        rate,
        tracks,
        kind="session",
        session_id=session_id,
        rig=session["rig"],
        hero_checksum=session["hero_checksum"],
        multicam=True,
        angles=angles,
        origin_s=origin,
        skipped=skipped,
        drop_frame=hero.clock(rate).drop_frame if hero else False,
    )


def _place(track, lane, sources, rate: Fraction, primary: bool) -> None:
    """Files of one lane at their record frames, gaps between (at the timeline's rate)."""
    end = Fraction(0)  # timeline frames used so far
    for row, start in lane:
        source = sources[row["checksum"]]
        video = track.kind == otio.schema.TrackKind.Video
        kind_ok = source.has_video if video else source.has_audio
        clock = source.clock(rate)
        if start > end:
            track.append(_gap(float(start - end), rate))
            end = Fraction(start)
        length = clock.frames * rate / clock.rate
        if not kind_ok:  # e.g. a camera file without sound on its audio track
            track.append(_gap(float(length), rate))
            end += length
            continue
        offset = row["offset_s"]
        facts = {
            "camera": row["camera"],
            "role": row["role"],
            "take": row["take"],
            "offset_s": offset,
            "offset_frames": None if offset is None else offset * float(rate),
            "record_frame": start,
            "method": row["method"],
            "confidence": row["confidence"],
            "drift_ppm": row["drift_ppm"],
            "consistent": row["consistent"],
            "note": row["note"],
        }
        clip = _clip(source, clock, 0, clock.frames, **facts)
        if primary:
            clip.markers.extend(_sync_markers(row, clock, rate))
        track.append(clip)
        end += length


def _sync_markers(row: dict, clock: Clock, rate: Fraction) -> list[otio.schema.Marker]:
    method, confidence = row["method"], row["confidence"]
    conf = f"confidence {confidence:.2f}" if confidence is not None else "no confidence"
    markers = []
    if row["offset_s"] is None:
        markers.append(
            _marker(
                "check",
                "NOT SYNCED: placed at the session start",
                clock,
                0,
                0,
                f"no offset could be found ({row['note'] or method}); line it up by hand",
                method=method,
            )
        )
    elif method in ("reference", "audio") and row["consistent"] is not False:
        what = "hero (reference)" if method == "reference" else f"audio, {conf}"
        exact = row["offset_s"] * float(rate)
        late = (round(exact) - exact) / float(rate)  # a clip starts on a frame boundary
        slip = f"; slip its sound {-late * 1000:+.1f} ms for sample-exact sync" if late else ""
        markers.append(
            _marker(
                "sync",
                f"Sync: {what}",
                clock,
                0,
                0,
                f"offset {row['offset_s']:+.4f} s ({exact:+.2f} frames){slip}",
                method=method,
            )
        )
    else:
        why = row["note"] or (
            "pairwise offsets disagreed" if row["consistent"] is False else f"synced by {method}"
        )
        markers.append(
            _marker(
                "check",
                f"CHECK SYNC: {method}, not audio" if method != "audio" else "CHECK SYNC",
                clock,
                0,
                0,
                f"offset {row['offset_s']:+.4f} s by {method} ({conf}): {why}",
                method=method,
            )
        )
    drift = row["drift_ppm"]
    if drift is not None and row["offset_s"] is not None:
        seconds = clock.frames / float(clock.rate)
        slip = drift * 1e-6 * seconds
        markers.append(
            _marker(
                "drift",
                f"Drift {drift:+.1f} ppm",
                clock,
                max(clock.frames - 1, 0),
                0,
                f"clock drift {drift:+.1f} ppm: {slip * 1000:+.1f} ms"
                f" ({slip * float(rate):+.2f} frames) by the end of this clip",
                drift_ppm=drift,
            )
        )
    return markers


# -- walking a timeline (formats share this) ------------------------------------------------------
@dataclass
class Placed:
    """One clip where it sits: the track it is on, its first frame on the timeline (exact,
    in seconds), and whether it brings picture, sound or both (a video file's clip on V1
    and its twin on A1 are one item)."""

    clip: otio.schema.Clip
    track: otio.schema.Track
    track_index: int
    start: Fraction
    video: bool
    audio: bool
    markers: list


def seconds(t: opentime.RationalTime) -> Fraction:
    return Fraction(t.value) / exact_rate(t.rate)


def placed_clips(timeline: otio.schema.Timeline) -> list[Placed]:
    """Every clip with its position, twins (same file, same range, same place) merged."""
    seen: dict[tuple, Placed] = {}
    out = []
    for index, track in enumerate(timeline.tracks):
        position = Fraction(0)
        for item in track:
            if isinstance(item, otio.schema.Clip):
                key = (
                    item.media_reference.target_url,
                    item.source_range.start_time.value,
                    item.source_range.duration.value,
                    position,
                )
                is_video = track.kind == otio.schema.TrackKind.Video
                if key in seen:
                    twin = seen[key]
                    twin.video |= is_video
                    twin.audio |= not is_video
                    twin.markers += list(item.markers)
                else:
                    placed = Placed(
                        item, track, index, position, is_video, not is_video, list(item.markers)
                    )
                    seen[key] = placed
                    out.append(placed)
            position += seconds(item.duration())
    return sorted(out, key=lambda p: (p.start, p.track_index))


def clip_rate(clip: otio.schema.Clip) -> Fraction:
    return exact_rate(clip.source_range.start_time.rate)

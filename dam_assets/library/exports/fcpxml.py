"""FCPXML 1.8 (Final Cut Pro, DaVinci Resolve) written from an OpenTimelineIO timeline.

OpenTimelineIO's own FCP X adapter (otio-fcpx-xml-adapter 1.0.0) cannot be used for this:
it looks frame durations up by `int(rate)`, so 23.976 and 29.97 fps get an empty
`frameDuration` (Final Cut refuses the file), it truncates times to whole frames of
`int(rate)` when reading, and it has no multicam. This writer takes the same OTIO timeline
the other formats are made from and writes every time as an exact rational of the clip's
own frame duration: `start` in the file's timecode-based time, `offset` and `duration` on
the sequence's frame grid. A capture session becomes a multicam clip (one angle per camera
track) used by one project, plus a second project with the cameras on lanes.
"""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from xml.dom import minidom
from xml.etree.ElementTree import Element, SubElement, tostring

import opentimelineio as otio

from .timecode import exact_rate, rational_seconds
from .timelines import Placed, clip_rate, placed_clips

VERSION = "1.8"
_RATE_NAMES = {
    Fraction(24000, 1001): "2398",
    Fraction(24): "24",
    Fraction(25): "25",
    Fraction(30000, 1001): "2997",
    Fraction(30): "30",
    Fraction(50): "50",
    Fraction(60000, 1001): "5994",
    Fraction(60): "60",
}
_SIZE_NAMES = {(1280, 720): "720", (1920, 1080): "1080", (3840, 2160): "3840x2160"}


def fcpxml_bytes(timeline: otio.schema.Timeline) -> bytes:
    return _Document(timeline).render()


def _format_name(rate: Fraction, width: int | None, height: int | None) -> str | None:
    size, speed = _SIZE_NAMES.get((width, height)), _RATE_NAMES.get(rate)
    return f"FFVideoFormat{size}p{speed}" if size and speed else None


class _Document:
    def __init__(self, timeline: otio.schema.Timeline):
        self.timeline = timeline
        facts = dict(timeline.metadata.get("dam", {}))
        self.facts = facts
        start = timeline.global_start_time
        self.rate = Fraction(facts["rate"]) if "rate" in facts else exact_rate(start.rate)
        self.tc_format = "DF" if facts.get("drop_frame") else "NDF"
        self.root = Element("fcpxml", version=VERSION)
        self.resources = SubElement(self.root, "resources")
        self._ids = itertools.count(1)
        self._formats: dict[tuple, str] = {}
        self._assets: dict[str, str] = {}
        self.placed = placed_clips(timeline)

    # -- resources -------------------------------------------------------------------------
    def _id(self) -> str:
        return f"r{next(self._ids)}"

    def format_id(self, rate: Fraction, width: int | None, height: int | None) -> str:
        key = (rate, width, height)
        if key not in self._formats:
            attrs = {"id": self._id()}
            name = _format_name(rate, width, height)
            if name:
                attrs["name"] = name
            attrs["frameDuration"] = rational_seconds(1, rate)
            if width and height:
                attrs.update(width=str(width), height=str(height))
            SubElement(self.resources, "format", attrs)
            self._formats[key] = attrs["id"]
        return self._formats[key]

    def asset_id(self, clip: otio.schema.Clip) -> str:
        ref = clip.media_reference
        if ref.target_url in self._assets:
            return self._assets[ref.target_url]
        facts = ref.metadata.get("dam", {})
        rate = clip_rate(clip)
        available = ref.available_range
        attrs = {
            "id": self._id(),
            "name": ref.name or clip.name,
            "uid": (facts.get("checksum") or "")[:32].upper(),
            "src": ref.target_url,
            "start": rational_seconds(int(available.start_time.value), rate),
            "duration": rational_seconds(int(available.duration.value), rate),
            "hasVideo": "1" if facts.get("has_video") else "0",
            "hasAudio": "1" if facts.get("has_audio") else "0",
        }
        if not attrs["uid"]:
            del attrs["uid"]
        if facts.get("has_video"):
            attrs["format"] = self.format_id(rate, facts.get("width"), facts.get("height"))
            attrs["videoSources"] = "1"
        if facts.get("has_audio"):
            attrs["audioSources"] = "1"
            attrs["audioChannels"] = str(facts.get("audio_channels") or 2)
            attrs["audioRate"] = str(facts.get("audio_rate") or 48000)
        SubElement(self.resources, "asset", attrs)
        self._assets[ref.target_url] = attrs["id"]
        return attrs["id"]

    # -- story elements --------------------------------------------------------------------
    def grid(self, seconds: Fraction) -> int:
        """A time on the sequence's frame grid (FCP places edits on frame boundaries)."""
        return round(seconds * self.rate)

    def span(self, placed: Placed) -> tuple[int, int]:
        """(first sequence frame, sequence frames) a clip occupies."""
        clip = placed.clip
        length = Fraction(int(clip.source_range.duration.value)) / clip_rate(clip)
        first = self.grid(placed.start)
        return first, max(self.grid(placed.start + length) - first, 1)

    def asset_clip(self, placed: Placed, offset: int, length: int, lane: int | None = None):
        clip = placed.clip
        facts = clip.media_reference.metadata.get("dam", {})
        rate = clip_rate(clip)
        attrs = {"ref": self.asset_id(clip)}
        if lane is not None:
            attrs["lane"] = str(lane)
        attrs.update(
            offset=rational_seconds(offset, self.rate),
            name=clip.name,
            start=rational_seconds(int(clip.source_range.start_time.value), rate),
            duration=rational_seconds(length, self.rate),
            tcFormat="DF" if facts.get("drop_frame") else "NDF",
        )
        if placed.audio and not placed.video and facts.get("has_video"):
            attrs["srcEnable"] = "audio"
        elif placed.video and not placed.audio and facts.get("has_audio"):
            attrs["srcEnable"] = "video"
        element = Element("asset-clip", attrs)
        first = int(clip.source_range.start_time.value)
        last = first + int(clip.source_range.duration.value)
        for marker in placed.markers:
            at = int(marker.marked_range.start_time.value)
            if not first <= at < last:
                continue
            frames = min(max(int(marker.marked_range.duration.value), 1), last - at)
            m = {
                "start": rational_seconds(at, rate),
                "duration": rational_seconds(frames, rate),
                "value": marker.name,
            }
            if marker.comment:
                m["note"] = marker.comment
            if marker.metadata.get("dam", {}).get("kind") == "check":
                m["completed"] = "0"  # a to-do marker: someone has to look at this
            SubElement(element, "marker", m)
        return element

    def gap(self, offset: int, length: int) -> Element:
        return Element(
            "gap",
            name="Gap",
            offset=rational_seconds(offset, self.rate),
            start="0s",
            duration=rational_seconds(length, self.rate),
        )

    def storyline(self, parent: Element, items: list[Placed]) -> int:
        """Items one after the other, with gaps between; returns the end frame."""
        cursor = 0
        for placed in items:
            first, length = self.span(placed)
            first = max(first, cursor)
            if first > cursor:
                parent.append(self.gap(cursor, first - cursor))
            parent.append(self.asset_clip(placed, first, length))
            cursor = first + length
        return cursor

    def overlapping(self) -> bool:
        end = -1
        for placed in self.placed:
            first, length = self.span(placed)
            if first < end:
                return True
            end = first + length
        return False

    def sequence(self, project: Element) -> Element:
        first_video = next(
            (p.clip for p in self.placed if p.video),
            None,
        )
        facts = first_video.media_reference.metadata.get("dam", {}) if first_video else {}
        return SubElement(
            project,
            "sequence",
            format=self.format_id(self.rate, facts.get("width"), facts.get("height")),
            tcStart="0s",
            tcFormat=self.tc_format,
            audioLayout="stereo",
            audioRate="48k",
        )

    def lanes(self, spine: Element, total: int) -> None:
        """Every track on its own lane above one gap (tracks may overlap in time)."""
        holder = self.gap(0, total)
        spine.append(holder)
        numbers: dict[int, int] = {}
        for placed in self.placed:
            lane = numbers.setdefault(placed.track_index, len(numbers) + 1)
            first, length = self.span(placed)
            holder.append(self.asset_clip(placed, first, length, lane=lane))

    def end_frame(self) -> int:
        return max((sum(self.span(p)) for p in self.placed), default=0)

    # -- document --------------------------------------------------------------------------
    def render(self) -> bytes:
        event = SubElement(SubElement(self.root, "library"), "event", name=self.timeline.name)
        total = self.end_frame()
        if self.facts.get("multicam"):
            media = self.multicam()
            mc_attrs = {
                "ref": media.get("id"),
                "name": self.timeline.name,
                "start": "0s",
                "duration": rational_seconds(total, self.rate),
            }
            browser = SubElement(event, "mc-clip", mc_attrs)
            SubElement(browser, "mc-source", angleID=self.hero_angle, srcEnable="all")
            project = SubElement(event, "project", name=f"{self.timeline.name} multicam")
            sequence = self.sequence(project)
            sequence.set("duration", rational_seconds(total, self.rate))
            spine = SubElement(sequence, "spine")
            clip = SubElement(spine, "mc-clip", {**mc_attrs, "offset": "0s"})
            SubElement(clip, "mc-source", angleID=self.hero_angle, srcEnable="all")
            project = SubElement(event, "project", name=f"{self.timeline.name} tracks")
            sequence = self.sequence(project)
            sequence.set("duration", rational_seconds(total, self.rate))
            self.lanes(SubElement(sequence, "spine"), total)
        else:
            project = SubElement(event, "project", name=self.timeline.name)
            sequence = self.sequence(project)
            spine = SubElement(sequence, "spine")
            if self.overlapping():
                self.lanes(spine, total)
            else:
                total = self.storyline(spine, self.placed)
            sequence.set("duration", rational_seconds(total, self.rate))
        # resources first, in the order FCP expects: formats, assets, media
        order = {"format": 0, "asset": 1, "media": 2}
        self.resources[:] = sorted(self.resources, key=lambda e: order[e.tag])
        pretty = minidom.parseString(tostring(self.root, encoding="unicode")).toprettyxml(
            indent="  "
        )
        body = pretty.split("\n", 1)[1]
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + body).encode()

    def multicam(self) -> Element:
        """One angle per camera track (a camera's video and sound are one angle)."""
        media = SubElement(self.resources, "media", id=self._id(), name=self.timeline.name)
        first_video = next((p.clip for p in self.placed if p.video), None)
        facts = first_video.media_reference.metadata.get("dam", {}) if first_video else {}
        multicam = SubElement(
            media,
            "multicam",
            format=self.format_id(self.rate, facts.get("width"), facts.get("height")),
            tcStart="0s",
            tcFormat=self.tc_format,
        )
        by_angle: dict[str, list[Placed]] = {}
        for placed in sorted(self.placed, key=lambda p: (p.track_index, p.start)):  # hero first
            angle = placed.track.metadata.get("dam", {}).get("angle") or placed.track.name
            by_angle.setdefault(angle, []).append(placed)
        self.hero_angle = ""
        for number, (angle, items) in enumerate(by_angle.items(), 1):
            angle_id = f"angle-{number}-" + re.sub(r"[^A-Za-z0-9]+", "-", angle).strip("-")
            element = SubElement(multicam, "mc-angle", name=angle, angleID=angle_id)
            self.storyline(element, sorted(items, key=lambda p: p.start))
            if not self.hero_angle:
                self.hero_angle = angle_id
        return media

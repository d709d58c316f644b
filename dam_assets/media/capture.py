"""When a camera file was captured, and which files are chapters of one take.

Capture start, in order of trust: the timecode of the video or tmcd stream (time of day; the
date from creation_time or the file), a maker's sidecar XML (Sony NonRealTimeMeta), the
container's creation_time (some cameras write it at stop: the rig config can say so), a date
and time in the file name, and last the file's mtime less the duration.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .probe import parse_datetime
from .timecode import parse_timecode, to_seconds

_GOPRO = re.compile(r"^G([HXLS])(\d{2})(\d{4})\.MP4$", re.IGNORECASE)
_GOPRO_FIRST = re.compile(r"^GOPR(\d{4})\.MP4$", re.IGNORECASE)
_GOPRO_LEGACY = re.compile(r"^GP(\d{2})(\d{4})\.MP4$", re.IGNORECASE)
_NAME_TIME = re.compile(
    r"(?<!\d)(20\d{2}|19\d{2})[-_.]?(\d{2})[-_.]?(\d{2})[ _T.-]?(\d{2})[-_.:]?(\d{2})[-_.:]?(\d{2})"
)


@dataclass(frozen=True)
class Chapter:
    group: str  # files of one take share it
    index: int  # 1 for the first file


def gopro_chapter(name: str) -> Chapter | None:
    """GoPro splits long takes: GH010123.MP4, GH020123.MP4 (HERO6+: G[HXLS]CCNNNN), and the
    legacy GOPR0123.MP4 followed by GP010123.MP4, GP020123.MP4."""
    if m := _GOPRO.match(name):
        return Chapter(f"gopro-{m.group(3)}", int(m.group(2)))
    if m := _GOPRO_FIRST.match(name):
        return Chapter(f"gopro-{m.group(1)}", 1)
    if m := _GOPRO_LEGACY.match(name):
        return Chapter(f"gopro-{m.group(2)}", int(m.group(1)) + 1)
    return None


def filename_time(name: str) -> datetime | None:
    """VID_20240301_123045.mp4, DJI_20240301123045_0001.MP4, 2024-03-01 12.30.45.mov …"""
    m = _NAME_TIME.search(name)
    if not m:
        return None
    try:
        return datetime(*(int(g) for g in m.groups()), tzinfo=UTC)
    except ValueError:
        return None


def sony_sidecar(path: Path) -> tuple[datetime | None, str | None]:
    """Creation date and start timecode from a Sony `<clip>M01.XML` beside the clip."""
    candidates = [path.with_name(f"{path.stem}M01.XML"), path.with_name(f"{path.stem}.XML")]
    for candidate in candidates:
        for real in (candidate, candidate.with_suffix(".xml")):
            if real.is_file():
                return _parse_sony(real)
    return None, None


def _parse_sony(xml: Path) -> tuple[datetime | None, str | None]:
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError:
        return None, None
    created = tc = None
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "CreationDate" and el.get("value"):
            created = parse_datetime(el.get("value"))
        if tag == "LtcChange" and tc is None and el.get("value"):
            v = el.get("value")  # FFSSMMHH, BCD digits
            if re.fullmatch(r"\d{8}", v):
                tc = f"{v[6:8]}:{v[4:6]}:{v[2:4]}:{v[0:2]}"
    return created, tc


@dataclass
class CaptureStart:
    start: datetime | None
    source: str
    timecode: str | None = None
    drop_frame: bool | None = None


def capture_start(
    path: Path,
    timecode: str | None,
    fps: float | None,
    creation_time: datetime | None,
    duration_s: float | None,
    mtime_ns: int | None,
    creation_time_is_stop: bool = False,
) -> CaptureStart:
    duration = timedelta(seconds=duration_s or 0.0)
    side_created, side_tc = sony_sidecar(path)
    tc_text = timecode or side_tc
    if tc_text and fps:
        try:
            tc = parse_timecode(tc_text, fps)
        except ValueError:
            tc = None
        if tc is not None:
            day_ref = (
                side_created
                or creation_time
                or (datetime.fromtimestamp(mtime_ns / 1e9, UTC) if mtime_ns else None)
            )
            start = None
            if day_ref is not None:
                midnight = day_ref.astimezone(UTC).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                start = midnight + timedelta(seconds=to_seconds(tc, fps))
                if start - day_ref > timedelta(hours=12):  # timecode of the previous day
                    start -= timedelta(days=1)
                elif day_ref - start > timedelta(hours=12):
                    start += timedelta(days=1)
            return CaptureStart(start, "timecode", str(tc), tc.drop_frame)
    if side_created:
        return CaptureStart(side_created, "sidecar")
    if creation_time:
        if creation_time_is_stop:
            return CaptureStart(creation_time - duration, "creation_time_at_stop")
        return CaptureStart(creation_time, "creation_time")
    named = filename_time(path.name)
    if named:
        return CaptureStart(named, "filename")
    if mtime_ns:
        return CaptureStart(datetime.fromtimestamp(mtime_ns / 1e9, UTC) - duration, "mtime")
    return CaptureStart(None, "unknown")

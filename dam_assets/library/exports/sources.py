"""What an editing program needs to know about a file, from the catalog: where it is (the real
bytes of its name, as a URL), its frame rate, start timecode and length in frames."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import quote

from ...storage import Store
from ...storage.paths import display_path, safe_text
from .timecode import exact_rate, start_frame

# A file without its own rate (audio) takes the timeline's; a timeline of audio alone, this.
AUDIO_ONLY_RATE = Fraction(25)


class ExportError(Exception):
    """An export that cannot be made, with a message a person can act on."""


@dataclass(frozen=True)
class Clock:
    """How one file counts frames on a timeline: rate, first frame number (its start
    timecode, else 0), length in frames, drop-frame labels."""

    rate: Fraction
    start: int
    frames: int
    drop_frame: bool
    timecode: str | None

    def frame(self, seconds: float) -> int:
        """Frame index from the file's start (not from its timecode), kept inside the file."""
        return min(max(round(seconds * float(self.rate)), 0), max(self.frames - 1, 0))


@dataclass(frozen=True)
class Source:
    checksum: str
    path: str  # as the OS has it (lone surrogates for bytes that are not UTF-8)
    kind: str  # video | audio | image
    fps: float | None
    video_frames: int | None
    duration_s: float
    timecode: str | None
    has_video: bool
    has_audio: bool
    width: int | None
    height: int | None
    audio_channels: int | None
    audio_rate: int | None
    make: str | None
    model: str | None
    creation_time: str | None
    video_codec: str | None
    vfr: bool
    present: bool

    @property
    def name(self) -> str:
        """The original file name, readable (odd bytes and control characters escaped)."""
        return safe_text(os.path.basename(display_path(self.path) or ""))

    @property
    def url(self) -> str:
        """Absolute file URL of the real name's bytes, so the NLE finds the very file."""
        return "file://" + quote(os.fsencode(os.path.abspath(self.path)), safe="/")

    def clock(self, timeline_rate: Fraction | None = None) -> Clock:
        rate = exact_rate(self.fps) if self.has_video else None
        rate = rate or timeline_rate or AUDIO_ONLY_RATE
        if self.has_video and self.video_frames:
            frames = int(self.video_frames)
        else:
            frames = max(round((self.duration_s or 0) * float(rate)), 1)
        start = start_frame(self.timecode, rate)
        return Clock(
            rate,
            start[0] if start else 0,
            frames,
            start[1] if start else False,
            self.timecode if start else None,
        )

    def facts(self) -> dict:
        """Plain facts for timeline metadata (JSON-friendly)."""
        return {
            "checksum": self.checksum,
            "path": display_path(self.path),
            "kind": self.kind,
            "timecode": self.timecode,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "vfr": self.vfr,
            "audio_channels": self.audio_channels,
            "audio_rate": self.audio_rate,
            "make": self.make,
            "model": self.model,
            "creation_time": self.creation_time,
            "video_codec": self.video_codec,
            "present": self.present,
        }


def load_sources(store: Store, checksums) -> dict[str, Source]:
    """Sources of these contents that probe has read, with the path the registry knows."""
    wanted = list(dict.fromkeys(checksums))
    if not wanted:
        return {}
    rows = store.sql(
        "SELECT p.*, v.frames AS video_frames, coalesce(m.present, false) AS present"
        " FROM probe p"
        " LEFT JOIN (SELECT checksum, arg_min(frames, stream_index) AS frames FROM streams"
        "   WHERE stream_type = 'video' GROUP BY checksum) v USING (checksum)"
        " LEFT JOIN (SELECT checksum, bool_or(content_present) AS present FROM media_files"
        "   GROUP BY checksum) m USING (checksum)"
        " WHERE list_contains($1, p.checksum)",
        [wanted],
    ).to_pylist()
    paths = store.registry.paths_for_checksums(wanted)
    out = {}
    for r in rows:
        path = paths.get(r["checksum"]) or r["path"]
        if not path:
            continue
        created = r["creation_time"]
        out[r["checksum"]] = Source(
            checksum=r["checksum"],
            path=path,
            kind=r["media_kind"] or "unknown",
            fps=r["fps_avg"] or r["fps_real"],
            video_frames=r["video_frames"],
            duration_s=r["duration_s"] or 0.0,
            timecode=r["timecode"],
            has_video=(r["video_streams"] or 0) > 0 and r["media_kind"] == "video",
            has_audio=(r["audio_streams"] or 0) > 0,
            width=r["display_width"] or r["width"],
            height=r["display_height"] or r["height"],
            audio_channels=r["audio_channels"],
            audio_rate=r["audio_sample_rate"],
            make=r["make"],
            model=r["model"],
            creation_time=created.isoformat() if created else None,
            video_codec=r["video_codec"],
            vfr=bool(r["is_vfr"]),
            present=bool(r["present"]),
        )
    return out


def find_checksum(store: Store, given: str) -> str:
    """A file named by its path (as registered) or by its checksum (or a unique prefix of at
    least 8 hex digits)."""
    text = given.strip()
    if re.fullmatch(r"[0-9a-fA-F]{8,64}", text):
        rows = store.sql(
            "SELECT DISTINCT checksum FROM probe WHERE starts_with(checksum, ?)", [text.lower()]
        ).column("checksum")
        if len(rows) == 1:
            return rows[0].as_py()
        if len(rows) > 1:
            raise ExportError(f"{text} is the start of {len(rows)} checksums: give more digits")
    path = os.path.abspath(os.path.expanduser(text))
    known = store.registry.known_files([os.path.dirname(path)]).get(path)
    if known is not None:
        return known.checksum
    shown = safe_text(text)
    if os.path.exists(path):
        raise ExportError(f"{shown} is not in the catalog yet: run `dam ingest {shown}` first")
    raise ExportError(f"{shown}: no such file, and no indexed file has that checksum")

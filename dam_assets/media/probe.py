"""Deep technical metadata with PyAV (plus Pillow for still-image EXIF).

Reads the container header, the demuxer's sample index and the first keyframe of the first
video stream (for the display rotation); never the whole file.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from .errors import MediaError, diagnose_unreadable, is_access_error
from .frames import first_keyframe
from .kinds import kind_for_path

# How many packets to demux for frame timing when the container has no sample index.
_TIMING_PACKETS = 600

# FFmpeg's own names (as ffprobe prints them) for the colour enums; 2 means "unspecified".
COLOR_PRIMARIES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
COLOR_TRANSFERS = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}
COLOR_SPACES = {
    0: "gbr",
    1: "bt709",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    11: "smpte2085",
    14: "ictcp",
}
COLOR_RANGES = {1: "tv", 2: "pc"}
_HDR_TRANSFERS = {16: "HDR10 (PQ)", 18: "HLG"}


@dataclass
class ProbeResult:
    file: dict[str, Any]
    streams: list[dict[str, Any]] = field(default_factory=list)


def _name(table: dict[int, str], value: int | None) -> str | None:
    return table.get(int(value)) if value is not None else None


def _fps(rate: Fraction | None) -> float | None:
    return round(float(rate), 6) if rate else None


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def frame_timing(stream: av.video.stream.VideoStream, container) -> tuple[float | None, bool, int]:
    """(real fps, variable-frame-rate?, frames seen). Uses the sample index (MP4/MOV: every
    frame, no I/O) or else demuxes the first packets. VFR means frame durations differ by more
    than 10% of the median, which is what trips editors' timelines."""
    stamps = [e.timestamp for e in stream.index_entries] if len(stream.index_entries) > 2 else []
    if len(stamps) < 3 or len(stamps) != (stream.frames or len(stamps)):
        stamps = []
        for packet in container.demux(stream):
            if packet.dts is not None:
                stamps.append(packet.dts)
            if len(stamps) >= _TIMING_PACKETS:
                break
        container.seek(0)
    stamps = sorted(stamps)
    deltas = [b - a for a, b in itertools.pairwise(stamps) if b > a]
    if len(deltas) < 2:
        return None, False, len(stamps)
    median = statistics.median(deltas)
    vfr = (max(deltas) - min(deltas)) > 0.1 * median
    span = (stamps[-1] - stamps[0]) * stream.time_base
    real = (len(stamps) - 1) / float(span) if span else None
    return (round(real, 6) if real else None), vfr, len(stamps)


def _first_picture(container, stream) -> av.VideoFrame | None:
    """The first keyframe, for the display rotation (its matrix): its packet alone decoded, not
    the frames a decoder with a reorder delay reads first (0.9 s on 4K H.264)."""
    try:
        return first_keyframe(container, stream)
    except av.error.FFmpegError as exc:
        if is_access_error(exc):  # the share, not the picture: never guess 0
            raise
        return None


def _video_row(container, stream, first: bool) -> dict[str, Any]:
    cc = stream.codec_context
    trc = cc.color_trc
    real, vfr, counted = frame_timing(stream, container) if first else (None, False, 0)
    picture = _first_picture(container, stream) if first else None
    rotation = round(picture.rotation or 0) % 360 if picture is not None else 0
    fmt = cc.format
    bit_depth = max((c.bits for c in fmt.components), default=None) if fmt else None
    hdr_format = _HDR_TRANSFERS.get(trc) if trc in _HDR_TRANSFERS else None
    sar = stream.sample_aspect_ratio
    return {
        "codec": cc.name,
        "codec_long": cc.codec.long_name,
        "profile": stream.profile,
        "pix_fmt": fmt.name if fmt else None,
        "bit_depth": bit_depth,
        "width": cc.width,
        "height": cc.height,
        "sample_aspect_ratio": f"{sar.numerator}:{sar.denominator}" if sar else None,
        "rotation": rotation if first else None,
        "fps_avg": _fps(stream.average_rate),
        "fps_real": real or _fps(stream.base_rate),
        "is_vfr": vfr,
        "frames": stream.frames or counted or None,
        "color_primaries": _name(COLOR_PRIMARIES, cc.color_primaries),
        "color_transfer": _name(COLOR_TRANSFERS, trc),
        "color_space": _name(COLOR_SPACES, cc.colorspace),
        "color_range": _name(COLOR_RANGES, cc.color_range),
        "hdr": hdr_format is not None,
        "_hdr_format": hdr_format,
    }


def _audio_row(stream) -> dict[str, Any]:
    cc = stream.codec_context
    layout = cc.layout
    return {
        "codec": cc.name,
        "codec_long": cc.codec.long_name,
        "profile": stream.profile,
        "channels": layout.nb_channels if layout else None,
        "channel_layout": layout.name if layout else None,
        "sample_rate": cc.sample_rate,
        "sample_fmt": cc.format.name if cc.format else None,
    }


def _stream_rows(container) -> list[dict[str, Any]]:
    rows = []
    first_video = True
    for stream in container.streams:
        meta = dict(stream.metadata)
        row: dict[str, Any] = {
            "stream_index": stream.index,
            "stream_type": stream.type,
            "duration_s": _seconds(stream.duration, stream.time_base),
            "bit_rate": stream.codec_context.bit_rate or None if stream.codec_context else None,
            "language": _clean_language(stream.language or meta.get("language")),
            "title": meta.get("title") or meta.get("handler_name"),
            "is_default": bool(stream.disposition & 1),
            "is_forced": bool(stream.disposition & 0x40),
            "tags_json": json.dumps(meta, sort_keys=True) if meta else None,
        }
        if stream.type == "video" and stream.codec_context is not None:
            row.update(_video_row(container, stream, first_video))
            first_video = False
        elif stream.type == "audio" and stream.codec_context is not None:
            row.update(_audio_row(stream))
        else:
            cc = stream.codec_context
            row["codec"] = cc.name if cc else meta.get("handler_name")
            row["codec_long"] = cc.codec.long_name if cc else None
        rows.append(row)
    return rows


def _clean_language(value: str | None) -> str | None:
    return None if not value or value.lower() in ("und", "unknown") else value


def parse_iso6709(value: str) -> tuple[float | None, float | None]:
    """'+37.3349-122.0090+000.000/' (QuickTime/Android location tags) -> (lat, lon)."""
    m = re.match(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)", value.strip())
    if not m:
        return None, None
    return float(m.group(1)), float(m.group(2))


def parse_datetime(value: str | None) -> datetime | None:
    """creation_time as ISO 8601 (Z or offset) or EXIF 'YYYY:MM:DD hh:mm:ss'."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if re.match(r"^\d{4}:\d{2}:\d{2} ", text):
        text = text.replace(":", "-", 2)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.year < 1971:  # QuickTime's zero date (1904) means "not set"
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first(tags: dict[str, str], *keys: str) -> str | None:
    lowered = {k.lower(): v for k, v in tags.items()}
    for key in keys:
        if lowered.get(key.lower()):
            return lowered[key.lower()]
    return None


def _image_exif(path: Path) -> dict[str, str]:
    """Make, model, date and GPS from a still's EXIF, in the same tag names as video."""
    from PIL import ExifTags, Image

    try:
        with Image.open(path) as img:
            exif = img.getexif()
            size = img.size
    except Exception as exc:
        if is_access_error(exc):
            raise
        return {}
    tags: dict[str, str] = {"_width": str(size[0]), "_height": str(size[1])}
    base = {ExifTags.TAGS.get(k, str(k)): v for k, v in exif.items()}
    sub = {ExifTags.TAGS.get(k, str(k)): v for k, v in exif.get_ifd(ExifTags.IFD.Exif).items()}
    for key in ("Make", "Model"):
        if base.get(key):
            tags[key.lower()] = str(base[key]).strip("\x00 ")
    when = sub.get("DateTimeOriginal") or base.get("DateTime")
    if when:
        tags["creation_time"] = str(when)
    if base.get("Orientation"):
        tags["orientation"] = str(base["Orientation"])
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    try:
        lat = _dms(gps[2], gps[1])
        lon = _dms(gps[4], gps[3])
        tags["location"] = f"{lat:+.6f}{lon:+.6f}/"
    except (KeyError, TypeError, ZeroDivisionError):
        pass
    return tags


def _dms(values, ref: str) -> float:
    deg = float(values[0]) + float(values[1]) / 60 + float(values[2]) / 3600
    return -deg if ref in ("S", "W") else deg


# EXIF orientation -> counter-clockwise display rotation (mirrored variants map to their turn).
_ORIENTATION_ROTATION = {"1": 0, "2": 0, "3": 180, "4": 180, "5": 270, "6": 270, "7": 90, "8": 90}


def probe_file(path: str | Path) -> ProbeResult:
    """Everything we can learn about one file without decoding it. Raises MediaError with a
    message meant for people when the file cannot be read as media."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise MediaError("EmptyFile", "The file is empty (0 bytes): nothing to index.")
    diagnose_unreadable(path, opened=True)  # truncated ISO-BMFF files, before FFmpeg guesses
    try:
        # FFmpeg's full stream probing, not `open_input`: it decodes a little of each stream for
        # what headers leave out (pixel format, AAC profile); readers that decode skip it
        container = av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        if is_access_error(exc):  # EIO, ESTALE, ETIMEDOUT…: says nothing about the content
            raise
        raise diagnose_unreadable(path, opened=False, cause=exc) from exc
    with container:
        streams = _stream_rows(container)
        tags: dict[str, str] = dict(container.metadata)
        for s in container.streams:  # timecode lives on the tmcd/video stream in QuickTime
            for key in ("timecode", "creation_time"):
                if key in s.metadata and key not in tags:
                    tags[key] = s.metadata[key]
        duration = container.duration / av.time_base if container.duration else None
        if not duration:  # e.g. MediaRecorder WebM, a crashed recorder's MKV: use the streams
            durations = [s["duration_s"] for s in streams if s.get("duration_s")]
            duration = max(durations) if durations else None
        start = container.start_time / av.time_base if container.start_time else None
        fmt = container.format
        bit_rate = container.bit_rate or None

    kind = kind_for_path(path) or "video"
    videos = [s for s in streams if s["stream_type"] == "video"]
    audios = [s for s in streams if s["stream_type"] == "audio"]
    if kind == "image" or (videos and not audios and (duration or 0) == 0 and len(videos) == 1):
        exif = _image_exif(path)
        tags.update({k: v for k, v in exif.items() if not k.startswith("_")})
        if videos and exif.get("orientation"):
            videos[0]["rotation"] = _ORIENTATION_ROTATION.get(exif["orientation"], 0)
    if kind == "video" and not videos and audios:
        kind = "audio"  # an .mp4 holding only sound
    if kind == "audio" and videos and not audios:
        kind = "video"
    if not videos and not audios:
        raise MediaError(
            "NoMediaStreams",
            "The container opened but holds no video or audio stream to index.",
        )

    main_video = videos[0] if videos else None
    main_audio = audios[0] if audios else None
    rotation = (main_video or {}).get("rotation") or 0
    width = main_video["width"] if main_video else None
    height = main_video["height"] if main_video else None
    swapped = rotation in (90, 270)
    sar = (main_video or {}).get("sample_aspect_ratio")
    if width and sar and sar not in ("1:1", "0:1"):  # anamorphic (HDV 1440x1080, DVCPRO HD)
        num, den = (int(x) for x in sar.split(":"))
        width = round(width * num / den) if den else width
    location = _first(tags, "location", "com.apple.quicktime.location.ISO6709", "location-eng")
    lat, lon = parse_iso6709(location) if location else (None, None)
    file_row = {
        "media_kind": kind,
        "container": fmt.name,
        "container_long": fmt.long_name,
        "duration_s": None if kind == "image" else duration,
        "size_bytes": size,
        "bit_rate": bit_rate,
        "start_time_s": start,
        "video_streams": len(videos),
        "audio_streams": len(audios),
        "subtitle_streams": sum(1 for s in streams if s["stream_type"] == "subtitle"),
        "video_codec": main_video["codec"] if main_video else None,
        "audio_codec": main_audio["codec"] if main_audio else None,
        "width": main_video["width"] if main_video else None,
        "height": height,
        "display_width": (height if swapped else width) if main_video else None,
        "display_height": (width if swapped else height) if main_video else None,
        "rotation": rotation if main_video else None,
        "fps_avg": main_video["fps_avg"] if main_video and kind == "video" else None,
        "fps_real": main_video["fps_real"] if main_video and kind == "video" else None,
        "is_vfr": bool(main_video and kind == "video" and main_video["is_vfr"]),
        "bit_depth": main_video["bit_depth"] if main_video else None,
        "hdr": bool(main_video and main_video["hdr"]),
        "hdr_format": main_video["_hdr_format"] if main_video else None,
        "audio_channels": main_audio["channels"] if main_audio else None,
        "audio_sample_rate": main_audio["sample_rate"] if main_audio else None,
        "creation_time": parse_datetime(
            _first(tags, "creation_time", "com.apple.quicktime.creationdate", "date")
        ),
        "make": _first(tags, "make", "com.apple.quicktime.make", "manufacturer"),
        "model": _first(tags, "model", "com.apple.quicktime.model"),
        "timecode": _first(tags, "timecode"),
        "location": location,
        "latitude": lat,
        "longitude": lon,
        "tags_json": json.dumps(tags, sort_keys=True) if tags else None,
    }
    for s in streams:
        s.pop("_hdr_format", None)
    return ProbeResult(file=file_row, streams=streams)

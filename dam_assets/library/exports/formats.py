"""One timeline, every editing program's format: the extension chooses, bytes come out, and a
file is written atomically where the person asked (never over another unless forced).

What each OpenTimelineIO adapter needs, read from its source (versions pinned in
pyproject.toml):
- `.otio` (OTIO JSON): everything, as built.
- `.xml` (FCP 7 / Premiere Pro, otio-fcp-adapter): rates as timebase + NTSC flag, so 23.976
  and 29.97 are exact; drop-frame and the reel come from the media reference's `fcp_xml`
  timecode metadata; clip in/out are written relative to the media's start, but markers are
  written as given, so they are moved to media-relative frames here.
- `.edl` (CMX 3600, otio-cmx3600-adapter): one rate and one video track; timecodes at that
  rate (29.97 is always drop-frame there); markers become `* LOC:` lines (upper-cased, one
  line each); no FCM line is written, so one is added.
- `.ale` (Avid, otio-ale-adapter): one FPS for the whole file, no markers (their text goes in
  a Comments column), and values must not hold tabs (the adapter does not strip them).
- `.fcpxml`: our writer (see fcpxml.py).
- `.csv`, `.json`: one row per clip and per marker, for spreadsheets and scripts.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import unicodedata
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from .fcpxml import fcpxml_bytes
from .sources import ExportError
from .timecode import exact_rate, is_drop_rate, label
from .timelines import clean, clip_rate, placed_clips


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    media_type: str
    single_rate: bool = False  # one frame rate for the whole file (EDL, ALE)
    single_video_track: bool = False
    noun: str = ""  # "an EDL", for messages
    timecode: bool = False  # counts in SMPTE timecode (24, 25, 30, 48, 50, 60 and NTSC rates)


FORMATS = {
    f.name: f
    for f in (
        Format("otio", "OpenTimelineIO", "application/json"),
        Format("fcpxml", "Final Cut Pro / DaVinci Resolve (FCPXML 1.8)", "application/xml"),
        Format(
            "xml",
            "Premiere Pro / Final Cut Pro 7 (XML)",
            "application/xml",
            noun="an FCP 7 XML",
            timecode=True,
        ),
        Format("edl", "CMX 3600 EDL", "text/plain", True, True, "an EDL", timecode=True),
        Format("ale", "Avid Log Exchange", "text/plain", True, False, "an ALE", timecode=True),
        Format("csv", "CSV, one row per clip and marker", "text/csv"),
        Format("json", "JSON, clips with their markers", "application/json"),
    )
}


def format_for(path: str | os.PathLike[str] | None, fmt: str | None = None) -> Format:
    """The format named, else the one the file's extension names."""
    name = (fmt or Path(path or "").suffix.lstrip(".")).lower()
    if name not in FORMATS:
        known = ", ".join(f".{n}" for n in FORMATS)
        if not fmt and not path:
            raise ExportError(f"say which format: one of {known}")
        given = f"'{fmt}'" if fmt else f"the extension of {path}"
        raise ExportError(f"{given} is not a format dam exports; use one of {known}")
    return FORMATS[name]


def render(timeline: otio.schema.Timeline, fmt: str | Format) -> bytes:
    """The timeline in one format, as bytes (what a web handler sends, what a file holds)."""
    spec = fmt if isinstance(fmt, Format) else format_for(None, fmt)
    _check_fits(timeline, spec)
    if spec.name == "otio":
        return otio.adapters.write_to_string(timeline, "otio_json").encode()
    if spec.name == "fcpxml":
        return fcpxml_bytes(timeline)
    if spec.name == "xml":
        return _fcp7(timeline)
    if spec.name == "edl":
        return _edl(timeline).encode()
    if spec.name == "ale":
        return _ale(timeline).encode()
    rows = rows_of(timeline)
    if spec.name == "json":
        facts = plain(timeline.metadata.get("dam", {}))
        document = {"timeline": timeline.name, **facts, "rows": rows}
        return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _check_fits(timeline: otio.schema.Timeline, spec: Format) -> None:
    if spec.timecode:
        odd = {c.name: clip_rate(c) for c in timeline.find_clips() if not _smpte(clip_rate(c))}
        if odd:
            names = sorted(odd)
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            raise ExportError(
                f"{spec.noun} counts SMPTE timecode, which has no {float(odd[names[0]]):g} fps"
                f" (the rate of {', '.join(names[:3])}{more}): export .otio, .fcpxml, .csv or"
                " .json instead"
            )
    if spec.single_video_track:
        video = [t for t in timeline.video_tracks() if any(True for _ in t.find_clips())]
        if len(video) > 1:
            raise ExportError(
                f"{spec.noun} holds one video track and this timeline has"
                f" {len(video)} (one per camera): export .fcpxml, .xml or .otio instead"
            )
    if spec.single_rate:
        rates: dict[Fraction, set[str]] = {}
        for clip in timeline.find_clips():
            rates.setdefault(clip_rate(clip), set()).add(clip.name)
        if len(rates) > 1:
            listed = "; ".join(
                f"{float(r):.3f} fps: {', '.join(sorted(names)[:3])}"
                + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                for r, names in sorted(rates.items())
            )
            raise ExportError(
                f"{spec.noun} holds one frame rate and these clips have"
                f" {len(rates)} ({listed}): export .fcpxml, .xml or .otio, or narrow the"
                " selection to one rate"
            )


def _smpte(rate: Fraction | None) -> bool:
    return rate is not None and otio.opentime.RationalTime.is_smpte_timecode_rate(float(rate))


def _rate(timeline: otio.schema.Timeline) -> Fraction:
    facts = timeline.metadata.get("dam", {})
    return Fraction(facts["rate"]) if "rate" in facts else exact_rate(timeline.duration().rate)


def _single_rate(timeline: otio.schema.Timeline) -> Fraction:
    rates = {clip_rate(c) for c in timeline.find_clips()}
    return rates.pop() if len(rates) == 1 else _rate(timeline)


def _drop(clip: otio.schema.Clip) -> bool:
    return bool(clip.media_reference.metadata.get("dam", {}).get("drop_frame"))


def _reel(clip: otio.schema.Clip) -> str:
    """An 8-character tape name from the file name (CMX 3600 and Avid keep 8)."""
    stem = Path(clip.name).stem
    return (re.sub(r"[^A-Za-z0-9]+", "", stem)[:8] or "AX").upper()


# -- FCP 7 XML ------------------------------------------------------------------------------------
_MARKER_ORDER = {"name": 0, "comment": 1, "in": 2, "out": 3}


def _fcp7(timeline: otio.schema.Timeline) -> bytes:
    text = otio.adapters.write_to_string(_for_fcp7(timeline), "fcp_xml")
    root = ET.fromstring(text)
    for marker in root.iter("marker"):  # the adapter puts metadata (comment) before the name
        marker[:] = sorted(marker, key=lambda e: _MARKER_ORDER.get(e.tag, 9))
    ET.indent(root, space="    ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(
        root, encoding="utf-8"
    )


def _for_fcp7(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    copy = timeline.deepcopy()
    for clip in copy.find_clips():
        ref = clip.media_reference
        timecode = {"displayformat": "DF" if _drop(clip) else "NDF", "reel": {"name": _reel(clip)}}
        ref.metadata["fcp_xml"] = {"timecode": timecode}
        start = ref.available_range.start_time
        for marker in clip.markers:
            marked = marker.marked_range
            shifted = marked.start_time - start  # media-relative, as FCP 7 counts markers
            marker.marked_range = otio.opentime.TimeRange(shifted, marked.duration)
            if marker.comment:
                marker.metadata["fcp_xml"] = {"comment": marker.comment}
    return copy


# -- CMX 3600 -------------------------------------------------------------------------------------
def _edl(timeline: otio.schema.Timeline) -> str:
    copy = timeline.deepcopy()
    rate = _single_rate(copy)
    video = [t for t in copy.tracks if t.kind == otio.schema.TrackKind.Video]
    [track] = video[:1] or copy.tracks[:1]  # the picture track, else (sound alone) the sound
    copy.tracks.remove(track)
    edl = otio.schema.Timeline(name=_ascii(copy.name)[:70])
    edl.tracks.append(track)
    if track.kind != otio.schema.TrackKind.Video:  # the adapter wants one video track
        edl.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Video))
    for clip in edl.find_clips():
        clip.metadata["cmx_3600"] = {"reel": _reel(clip)}
        for marker in clip.markers:
            marker.name = _ascii(f"{marker.name} {marker.comment}")[:120]
    text = otio.adapters.write_to_string(edl, "cmx_3600", rate=float(rate))
    # the adapter labels 29.97 and 59.94 drop-frame, whatever the source's own labels
    fcm = "FCM: DROP FRAME" if is_drop_rate(rate) else "FCM: NON-DROP FRAME"
    title, _, rest = text.partition("\n")
    return f"{title}\n{fcm}\n{rest}" if title.startswith("TITLE:") else f"{fcm}\n{text}"


def _ascii(text: str) -> str:
    """EDLs are read as ASCII by many programs: accents dropped, dashes and dots plain."""
    text = clean(text).translate({0x00B7: "-", 0x2013: "-", 0x2014: "-", 0x00D7: "x"})
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", folded).strip()


# -- ALE ------------------------------------------------------------------------------------------
ALE_COLUMNS = [
    "Tape",
    "Tracks",
    "Image Size",
    "Source Path",
    "Scene",
    "Camera",
    "Comments",
    "Checksum",
]


def _ale(timeline: otio.schema.Timeline) -> str:
    copy = timeline.deepcopy()
    rate = _single_rate(copy)
    log = otio.schema.SerializableCollection(name=copy.name)
    for placed in placed_clips(copy):
        clip = placed.clip
        facts = clip.media_reference.metadata.get("dam", {})
        tracks = ("V" if placed.video else "") + (
            "".join(f"A{n}" for n in range(1, min(facts.get("audio_channels") or 2, 8) + 1))
            if placed.audio
            else ""
        )
        notes = [f"{m.name}: {m.comment}" if m.comment else m.name for m in placed.markers]
        clip.metadata["ALE"] = {
            "Tape": _reel(clip),
            "Tracks": tracks,
            "Source Path": _tab_free(unquote(urlparse(clip.media_reference.target_url).path)),
            "Scene": str(clip.metadata.get("dam", {}).get("scene") or ""),
            "Camera": _tab_free(clip.metadata.get("dam", {}).get("camera") or ""),
            "Comments": _tab_free(" | ".join(notes))[:2000],
            "Checksum": facts.get("checksum") or "",
            "Image Size": f"{facts['width']}x{facts['height']}" if facts.get("width") else "",
        }
        clip.name = _tab_free(clip.name)
        clip.media_reference.target_url = clip.name  # Avid's Source File is the file name
        clip.markers.clear()
        log.append(clip.deepcopy())
    text = otio.adapters.write_to_string(
        log, "ale", columns=["Name", "Source File", "Start", "End", "Duration", *ALE_COLUMNS],
        fps=float(rate),
    )  # fmt: skip
    nominal = f"{float(rate):.3f}".rstrip("0").rstrip(".")
    return re.sub(r"(?m)^FPS\t.*$", f"FPS\t{nominal}", text, count=1)


def _tab_free(text: str) -> str:
    return re.sub(r"[\t\r\n]+", " ", str(text)).strip()


# -- CSV / JSON -----------------------------------------------------------------------------------
ROW_FIELDS = [
    "row",
    "kind",
    "track",
    "name",
    "comment",
    "marker_kind",
    "record_in",
    "record_out",
    "source_in",
    "source_out",
    "source_in_frame",
    "source_out_frame",
    "start_s",
    "end_s",
    "rate",
    "drop_frame",
    "path",
    "url",
    "checksum",
]


def plain(value):
    """OTIO metadata (AnyDictionary, AnyVector) as plain dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if not isinstance(value, str | bytes) and hasattr(value, "__iter__"):
        return [plain(v) for v in value]
    return value


def rows_of(timeline: otio.schema.Timeline) -> list[dict]:
    """Clips in timeline order, each followed by its markers. Source timecodes are the file's
    own; frames and seconds count from the file's start; record times from the timeline's."""
    rate = _rate(timeline)
    rows = []
    for placed in placed_clips(timeline):
        clip = placed.clip
        own = clip_rate(clip)
        drop = _drop(clip)
        origin = int(clip.media_reference.available_range.start_time.value)
        first = int(clip.source_range.start_time.value)
        count = int(clip.source_range.duration.value)
        record = round(placed.start * rate)
        record_len = round(Fraction(count) / own * rate)
        facts = clip.media_reference.metadata.get("dam", {})
        base = {
            "track": placed.track.name,
            "rate": f"{float(own):.6g}",
            "drop_frame": drop,
            "path": facts.get("path"),
            "url": clip.media_reference.target_url,
            "checksum": facts.get("checksum"),
        }
        rows.append(
            {
                **base,
                "kind": "clip",
                "name": clip.name,
                "comment": "",
                "marker_kind": "",
                "record_in": label(record, rate, _rate_drop(timeline, rate)),
                "record_out": label(record + record_len, rate, _rate_drop(timeline, rate)),
                **_source_fields(first, first + count, origin, own, drop),
                "facts": plain(clip.metadata.get("dam", {})),
            }
        )
        for marker in placed.markers:
            at = int(marker.marked_range.start_time.value)
            length = int(marker.marked_range.duration.value)
            rows.append(
                {
                    **base,
                    "kind": "marker",
                    "name": marker.name,
                    "comment": marker.comment,
                    "marker_kind": marker.metadata.get("dam", {}).get("kind", ""),
                    "record_in": label(
                        record + round(Fraction(at - first) / own * rate),
                        rate,
                        _rate_drop(timeline, rate),
                    ),
                    "record_out": "",
                    **_source_fields(at, at + length, origin, own, drop),
                    "facts": plain(marker.metadata.get("dam", {})),
                }
            )
    for n, row in enumerate(rows, 1):
        row["row"] = n
    return rows


def _rate_drop(timeline: otio.schema.Timeline, rate: Fraction) -> bool:
    return bool(timeline.metadata.get("dam", {}).get("drop_frame")) and rate.denominator == 1001


def _source_fields(first: int, last: int, origin: int, rate: Fraction, drop: bool) -> dict:
    return {
        "source_in": label(first, rate, drop),
        "source_out": label(last, rate, drop),
        "source_in_frame": first - origin,
        "source_out_frame": last - origin,
        "start_s": round((first - origin) / float(rate), 6),
        "end_s": round((last - origin) / float(rate), 6),
    }


# -- writing a file -------------------------------------------------------------------------------
def write_atomic(path: str | os.PathLike[str], data: bytes, force: bool = False) -> Path:
    """Write `data` to `path` whole or not at all: a temporary file in the same folder,
    flushed to disk, then renamed in. An existing file is replaced only with `force`."""
    path = Path(path).expanduser().absolute()
    folder = path.parent
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such folder (create it first)")
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name such as {path / 'export.otio'}")
    if not force and (path.exists() or path.is_symlink()):
        raise ExportError(f"{path} exists; add --force to replace it")
    tmp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if force:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
        _sync_folder(folder)
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(
            f"cannot write {path}: {exc.strerror or exc} (nothing was written)"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _link_new(tmp: Path, path: Path) -> None:
    """Put `tmp` at `path` only if nothing is there, even if a file appeared meanwhile."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ExportError(f"{path} exists; add --force to replace it") from None
    except OSError as exc:  # a filesystem without hard links (FAT, some shares)
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
            raise
        if path.exists():
            raise ExportError(f"{path} exists; add --force to replace it") from None
        os.replace(tmp, path)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

"""Getting a few frames out of a video cheaply: seek, decode one keyframe, scale in swscale."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
from PIL import Image

from .containers import open_input
from .errors import is_access_error


@dataclass
class Frame:
    time: float
    image: Image.Image  # upright (display rotation applied), RGB
    scale: float = 1.0  # source pixels per image pixel (the image may be downscaled)


def _raise_if_access(exc: BaseException) -> None:
    """Damaged data ends a decode quietly (what was decoded stands); a share or disk error
    does not: it is not the content's fault, so it must reach the caller as itself."""
    if is_access_error(exc):
        raise exc


def start_offset(stream) -> float:
    """Media time 0 is the stream's first timestamp (MTS/TS and some MKV start far from 0)."""
    return float(stream.start_time * stream.time_base) if stream.start_time else 0.0


def _scaled(frame: av.VideoFrame, max_side: int | None) -> Image.Image:
    w, h = frame.width, frame.height
    if max_side and max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
        image = frame.reformat(width=w, height=h, format="rgb24").to_image()
    else:
        image = frame.to_image()
    rotation = round(frame.rotation or 0) % 360
    if rotation:
        image = image.rotate(rotation, expand=True)  # both counter-clockwise
    return image


def _shrunk(image: Image.Image, max_side: int | None) -> Image.Image:
    if not max_side or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    w, h = (max(2, round(v * scale / 2) * 2) for v in image.size)
    return image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)


def picture_of(frame: av.VideoFrame, offset: float, max_side: int | None) -> Frame:
    image = _scaled(frame, max_side)
    return Frame(
        float(frame.time or 0.0) - offset, image, max(frame.width, frame.height) / max(image.size)
    )


def frames_along(
    path: str | Path, times: Iterable[float], max_side: int | None = 1280, seek_gap_s: float = 2.0
) -> Iterator[Frame]:
    """The frame on screen at each requested time, in time order, each picture once. Seeks
    when the next request is further away than the keyframe interval (as measured while
    decoding; `seek_gap_s` until two keyframes were seen) and decodes forward otherwise: long-GOP
    H.264 at 2 requests a second is one pass over its reference frames (`_needed_frames`),
    intra-only ProRes or MJPEG decodes about one frame per request. Only the chosen frames are
    converted to RGB."""
    targets = sorted(set(max(0.0, t) for t in times))
    if not targets:
        return
    with open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        offset = start_offset(stream)
        start = stream.start_time or 0
        i, decoder, prev, position, sought = 0, None, None, None, None
        last_key, key_interval = None, None
        emitted: set[int] = set()

        def emit(frame) -> Iterator[Frame]:
            if frame.pts not in emitted:
                emitted.add(frame.pts)
                yield picture_of(frame, offset, max_side)

        while i < len(targets):
            t = targets[i]
            gap = key_interval if key_interval is not None else seek_gap_s
            far = position is not None and t - position > gap and sought != t
            if decoder is None or far:  # (a GOP can be longer than the gap: seek once per t)
                sought = t
                try:
                    container.seek(int(t / stream.time_base) + start, stream=stream, backward=True)
                except av.error.FFmpegError as exc:
                    _raise_if_access(exc)
                    return
                decoder, prev, position = _needed_frames(container, stream, targets), None, None
                last_key = None  # keyframe spacing is measured within one decoding run
            try:
                frame = next(decoder, None)
            except av.error.FFmpegError as exc:
                _raise_if_access(exc)
                frame = None  # damaged tail: what was decoded so far stands
            if frame is None:
                if prev is not None:
                    yield from emit(prev)
                return
            if frame.pts is None:
                continue
            position = float(frame.time or 0.0) - offset
            if frame.key_frame:
                if last_key is not None and position > last_key:
                    key_interval = max(key_interval or 0.0, position - last_key)
                last_key = position
            if position <= t + 1e-6:
                prev = frame
                continue
            yield from emit(prev if prev is not None else frame)  # prev is on screen at t
            while i < len(targets) and targets[i] < position:
                i += 1
            prev = frame


def _needed_frames(container, stream, targets: list[float]) -> Iterator[av.VideoFrame]:
    """Decoded frames from the current position, leaving out the non-reference frames (most
    B-frames of long-GOP footage: half of the decode work or more) that no request needs: a
    packet is decoded in full when a requested time falls within its display interval, so
    every frame on screen at a requested time is still there. Packets without a duration are
    always decoded."""
    offset, base = start_offset(stream), stream.time_base
    context = stream.codec_context
    for packet in container.demux(stream):
        needed = True
        if packet.pts is not None and packet.duration:
            begin = float(packet.pts * base) - offset
            k = bisect.bisect_left(targets, begin - 1e-6)
            needed = k < len(targets) and targets[k] < begin + float(packet.duration * base)
        context.skip_frame = "DEFAULT" if needed or not packet.size else "NONREF"
        yield from stream.decode(packet)


def keyframes_at(
    path: str | Path,
    times: Iterable[float],
    max_side: int | None = 1280,
    decoded: dict[float, Frame] | None = None,
) -> Iterator[Frame]:
    """For each requested time, the keyframe at or before it (decoding nothing else).
    Neighbouring requests that land on the same keyframe yield it once, decoded once; a
    keyframe in `decoded` (by time, from an earlier call at the same or a larger size) is
    not decoded again but scaled down from there."""
    with open_input(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        stream.thread_type = "SLICE"
        seen: set[int] = set()
        offset = start_offset(stream)
        at = lambda pts: float(pts * stream.time_base) - offset  # noqa: E731
        for t in sorted(times):
            target = int(max(0.0, t) / stream.time_base) + (stream.start_time or 0)
            try:
                container.seek(target, stream=stream, backward=True)
                found = _keyframe_after_seek(
                    container, stream, target, seen, lambda pts: decoded and at(pts) in decoded
                )
            except (av.error.FFmpegError, StopIteration) as exc:
                _raise_if_access(exc)
                continue
            if found is None:
                continue
            pts, frame = found
            seen.add(pts)
            if frame is None:  # decoded before: scaled from that picture
                earlier = decoded[at(pts)]
                yield Frame(earlier.time, _shrunk(earlier.image, max_side))
            else:
                yield Frame(at(pts), _scaled(frame, max_side))


def _keyframe_after_seek(
    container, stream, target: int, seen: set[int], known=lambda pts: False
) -> tuple[int, av.VideoFrame | None] | None:
    """The keyframe a seek landed on, as (pts, frame); None when it was yielded already.

    Its packet alone is decoded, then the decoder is drained: a decoder with a reorder delay
    (H.264 and HEVC with B-frames) otherwise holds the keyframe back until it has decoded the
    next keyframes too, several per request in long-GOP footage. Streams whose packets carry
    no keyframe flag are decoded as the decoder finds their keyframes."""
    packet = next((p for p in container.demux(stream) if p.size and p.is_keyframe), None)
    if packet is None or (packet.pts if packet.pts is not None else packet.dts) is None:
        container.seek(target, stream=stream, backward=True)  # no flags: the decoder finds it
        frame = next(container.decode(stream), None)
        if frame is None or frame.pts is None or frame.pts in seen:
            return None
        return frame.pts, frame
    pts = packet.pts if packet.pts is not None else packet.dts
    if pts in seen:
        return None
    if known(pts):
        return pts, None  # the caller has this picture already
    frames = [*stream.decode(packet), *stream.decode(None)]
    stream.codec_context.flush_buffers()
    return (pts, frames[0]) if frames else None


def first_keyframe(container, stream) -> av.VideoFrame | None:
    """The stream's first keyframe, its packet alone decoded (no reorder delay to wait out)."""
    context = stream.codec_context
    skip, context.skip_frame = context.skip_frame, "NONKEY"
    try:
        target = stream.start_time or 0
        container.seek(target, stream=stream, backward=True)
        found = _keyframe_after_seek(container, stream, target, set())
    finally:
        context.skip_frame = skip
    return found[1] if found else None


def interval_times(duration: float | None, every_s: float) -> list[float]:
    """Sample times every `every_s` seconds, centred in each interval (never 0 exactly, where
    fades and slates sit)."""
    if not duration or duration <= 0:
        return [0.0]
    count = max(1, int(duration // every_s))
    step = duration / count
    return [round(step * (i + 0.5), 3) for i in range(count)]


def first_frame(path: str | Path, max_side: int | None = None) -> Frame | None:
    """The first decodable picture (still images PyAV can read but Pillow cannot)."""
    try:
        with open_input(path) as container:
            for frame in container.decode(video=0):
                return picture_of(frame, 0.0, max_side)
    except av.error.FFmpegError as exc:
        _raise_if_access(exc)
        return None
    return None


def decode_all(path: str | Path) -> int:
    """Decode every frame once (the benchmark baseline). Returns the frame count."""
    with open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))

"""Small H.264 proxies for originals a browser cannot play (ProRes, DNxHD, HEVC, MXF, 10-bit or
4:2:2 H.264), so the library page can play every video.

Which files need one is decided from `probe`'s facts alone (no decoding). A proxy is one pass
over the file: decode, scale to at most 640 px, x264 `veryfast` at CRF 28 with a keyframe
every 2 s (seeking stays quick), AAC stereo, `+faststart` (the index comes first, so the page
can seek before the whole file has arrived). Times are the original's media times (0 is the
first frame, as everywhere else in the index), so a moment's start seeks the proxy to the same
picture. Written under a temporary name and renamed: a killed run leaves no half proxy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .containers import open_input
from .output import _replace_via_tmp

MAX_SIDE = 640
PRESET = "veryfast"
CRF = 28
KEYFRAME_S = 2.0
AUDIO_RATE = 48000
AUDIO_BIT_RATE = 128_000

# What Chromium, Firefox and Safari all play in an MP4/MOV container (8-bit 4:2:0 H.264 only:
# High 10 and 4:2:2 profiles, common in camera codecs like XAVC, do not play).
BROWSER_VIDEO = {"h264", "av1", "vp9"}
BROWSER_AUDIO = {"aac", "mp3", "opus", "flac", None}
BROWSER_PIX_FMTS = {"yuv420p", "yuvj420p", None}
MP4_FAMILY = "mov,mp4"
WEBM_VIDEO, WEBM_AUDIO = {"vp8", "vp9", "av1"}, {"opus", "vorbis", None}
CODEC_NAMES = {
    "prores": "ProRes",
    "dnxhd": "DNxHD/DNxHR",
    "hevc": "HEVC (H.265)",
    "mpeg2video": "MPEG-2",
    "mjpeg": "Motion JPEG",
    "h264": "H.264",
}


def proxy_path(proxies_dir: Path, checksum: str) -> Path:
    """Where a file's proxy lives: sharded like the thumbnails, named by the checksum."""
    return proxies_dir / checksum[:2] / f"{checksum}.mp4"


def proxy_reason(probe: dict, video_stream: dict | None = None) -> str | None:
    """Why this file needs a proxy for a browser to play it, or None when it plays as it is
    (or is not a video). `probe` is its `probe` row; `video_stream` its main video stream's
    `streams` row (pix_fmt)."""
    if probe.get("media_kind") != "video" or not probe.get("video_codec"):
        return None
    container = probe.get("container") or ""
    video, audio = probe["video_codec"], probe.get("audio_codec")
    pix_fmt = (video_stream or {}).get("pix_fmt")
    name = CODEC_NAMES.get(video, video)
    if container.startswith(MP4_FAMILY):
        if video not in BROWSER_VIDEO:
            return f"{name} video does not play in web browsers"
        deep = (probe.get("bit_depth") or 8) > 8
        if video == "h264" and (pix_fmt not in BROWSER_PIX_FMTS or deep):
            return f"H.264 in {pix_fmt} (10-bit or 4:2:2) does not play in web browsers"
        if audio not in BROWSER_AUDIO:
            return f"its {audio} audio does not play in web browsers"
        return None
    path = str(probe.get("path") or "").lower()
    if path.endswith(".webm") and video in WEBM_VIDEO and audio in WEBM_AUDIO:
        return None
    kind = container.split(",")[0] or "this"
    return f"the {kind} container does not play in web browsers"


@dataclass
class ProxyResult:
    path: Path
    bytes: int
    width: int
    height: int
    frames: int
    seconds: float  # encoding time


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def make_proxy(
    source: str | Path, dest: Path, rotation: int = 0, max_side: int = MAX_SIDE
) -> ProxyResult:
    """Encode `source` as a small H.264/AAC MP4 at `dest` (atomically), keeping its display
    rotation (`probe`'s)."""
    started = time.monotonic()
    counts = {"frames": 0, "size": (0, 0)}

    def encode(tmp: Path) -> None:
        with (
            open_input(source) as src,
            av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out,
        ):
            counts.update(_transcode(src, out, rotation, max_side))

    _replace_via_tmp(dest, encode)
    width, height = counts["size"]
    return ProxyResult(
        dest, dest.stat().st_size, width, height, counts["frames"], time.monotonic() - started
    )


def _transcode(src, out, rotation: int, max_side: int) -> dict:
    v_in = src.streams.video[0]
    v_in.thread_type = "AUTO"
    a_in = src.streams.audio[0] if src.streams.audio else None
    rate = v_in.average_rate or v_in.guessed_rate or Fraction(25)
    width, height = _fit(v_in.codec_context.width, v_in.codec_context.height, max_side)
    v_out = out.add_stream("libx264", rate=rate)
    v_out.width, v_out.height, v_out.pix_fmt = width, height, "yuv420p"
    v_out.codec_context.time_base = v_in.time_base
    v_out.codec_context.gop_size = max(1, round(float(rate) * KEYFRAME_S))
    v_out.options = {"preset": PRESET, "crf": str(CRF)}
    if rotation:
        v_out.set_display_rotation(rotation)
    v_offset = v_in.start_time or 0
    a_out = resampler = None
    if a_in is not None:
        a_out = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        a_out.bit_rate = AUDIO_BIT_RATE
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
    # audio starts where the video does: media time 0 is the first video timestamp
    a_skip = 0
    if a_in is not None and v_in.start_time is not None and a_in.start_time is not None:
        a_skip = max(0.0, float(v_in.start_time * v_in.time_base))
    frames = samples = 0
    for packet in src.demux(*[s for s in (v_in, a_in) if s is not None]):
        for frame in packet.decode():
            if packet.stream is v_in:
                if frame.pts is None:
                    continue
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts, picture.time_base = frame.pts - v_offset, v_in.time_base
                out.mux(v_out.encode(picture))
                frames += 1
            else:
                if frame.time is not None and frame.time < a_skip:
                    continue
                for chunk in resampler.resample(frame):
                    samples = _encode_audio(out, a_out, chunk, samples)
    out.mux(v_out.encode(None))
    if a_out is not None:
        for chunk in resampler.resample(None):
            samples = _encode_audio(out, a_out, chunk, samples)
        out.mux(a_out.encode(None))
    return {"frames": frames, "size": (width, height)}


def _encode_audio(out, stream, chunk: av.AudioFrame, samples: int) -> int:
    """Audio on a gapless clock from 0 (the sample count), in step with the video's."""
    chunk.pts, chunk.time_base = samples, Fraction(1, AUDIO_RATE)
    out.mux(stream.encode(chunk))
    return samples + chunk.samples

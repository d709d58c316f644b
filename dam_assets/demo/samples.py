"""Sample media made with PyAV and Pillow: colour bars, tones, rotation, VFR, bad files.

Used by `make demo`, the tests and the benchmarks; everything is generated, nothing downloaded.
"""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

BARS = np.array(
    [
        [192, 192, 192],
        [192, 192, 0],
        [0, 192, 192],
        [0, 192, 0],
        [192, 0, 192],
        [192, 0, 0],
        [0, 0, 192],
        [16, 16, 16],
    ],
    dtype=np.uint8,
)


def bars_frame(width: int, height: int, index: int, shift: int = 0) -> np.ndarray:
    """SMPTE-like bars with a moving square, so frames differ and have detail."""
    cols = (np.arange(width) * len(BARS) // width + shift) % len(BARS)
    img = np.repeat(BARS[cols][None, :, :], height, axis=0)
    size = max(4, height // 6)
    x = (index * 7) % max(1, width - size)
    y = height // 2 - size // 2
    img[y : y + size, x : x + size] = 255
    # texture keeps frames "sharp" for the quality score
    img[::4, ::4] = 255 - img[::4, ::4]
    return img


def flat_frame(width: int, height: int, value: int) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def tone(seconds: float, rate: int = 48000, freq: float = 440.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.tile(mono, (channels, 1))


def _mux(container, stream, frame=None) -> None:
    """Encode one frame (None: flush the encoder) and write its packets."""
    for packet in stream.encode(frame):
        container.mux(packet)


def _add_audio(container, seconds: float, rate: int = 48000, codec: str = "aac"):
    stream = container.add_stream(codec, rate=rate, layout="stereo")
    return stream, tone(seconds, rate)


def _mux_audio(container, stream, samples: np.ndarray) -> None:
    fmt = stream.codec_context.format.name
    frame_size = stream.codec_context.frame_size or 1024
    rate = stream.codec_context.sample_rate
    if fmt.startswith("s16"):
        samples = (samples * 32767).astype(np.int16)
    for start in range(0, samples.shape[1], frame_size):
        chunk = samples[:, start : start + frame_size]
        if fmt.endswith("p"):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format=fmt, layout="stereo"
            )
        else:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk.T.reshape(1, -1)), format=fmt, layout="stereo"
            )
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        _mux(container, stream, frame)
    _mux(container, stream)


def make_video(
    path: str | os.PathLike[str],
    seconds: float = 2.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    codec: str = "libx264",
    audio: bool = True,
    rotation: int = 0,
    gop: int | None = None,
    frames: list[np.ndarray] | None = None,
    metadata: dict[str, str] | None = None,
    black_intro_s: float = 0.0,
    bframes: int = 0,
) -> Path:
    """An H.264/AAC (or ProRes/PCM with codec='prores_ks') clip of colour bars; `bframes`
    gives H.264 the reorder delay camera files have."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as container:
        if metadata:
            container.metadata.update(metadata)
        vs = container.add_stream(codec, rate=fps)
        vs.width, vs.height = width, height
        if codec == "prores_ks":
            vs.pix_fmt = "yuv422p10le"
            vs.options = {"profile": "2"}
        else:
            vs.pix_fmt = "yuv420p"
            vs.options = {"preset": "ultrafast"}
            if bframes:
                vs.options = {**vs.options, "x264-params": f"bframes={bframes}"}
            vs.codec_context.gop_size = gop or fps
        if rotation:
            vs.set_display_rotation(rotation)
        a_stream = samples = None
        if audio:
            a_stream, samples = _add_audio(
                container, seconds, codec="pcm_s16le" if codec == "prores_ks" else "aac"
            )
        count = len(frames) if frames is not None else round(seconds * fps)
        for i in range(count):
            if frames is not None:
                img = frames[i]
            elif i < black_intro_s * fps:
                img = flat_frame(width, height, 0)
            else:
                img = bars_frame(width, height, i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            _mux(container, vs, frame)
        _mux(container, vs)
        if a_stream is not None:
            _mux_audio(container, a_stream, samples)
    return path


def make_vfr_video(path: str | os.PathLike[str], size: tuple[int, int] = (160, 120)) -> Path:
    """H.264 in MP4 whose frame durations alternate 1/30 s and 1/10 s (variable frame rate)."""
    path = Path(path)
    width, height = size
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "bf": "0"}
        vs.codec_context.time_base = Fraction(1, 90)
        pts = 0
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(bars_frame(width, height, i), format="rgb24")
            frame.pts = pts
            frame.time_base = Fraction(1, 90)
            pts += 3 if i % 2 == 0 else 9
            _mux(container, vs, frame)
        _mux(container, vs)
    return path


def make_audio(
    path: str | os.PathLike[str], seconds: float = 2.0, codec: str = "aac", silent: bool = False
) -> Path:
    """A 440 Hz tone (or digital silence) in an audio-only file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream, samples = _add_audio(container, seconds, codec=codec)
        _mux_audio(container, stream, samples * 0 if silent else samples)
    return path


def make_still(
    path: str | os.PathLike[str],
    size: tuple[int, int] = (640, 480),
    make: str = "TestCam",
    model: str = "Model 1",
    orientation: int = 1,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(bars_frame(size[0], size[1], 3))
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0112] = orientation
    exif[0x0132] = "2024:05:06 07:08:09"
    image.save(path, "JPEG", quality=90, exif=exif)
    return path


def _h264_stream(container, width: int, height: int, fps: int):
    vs = container.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
    vs.options = {"preset": "ultrafast"}
    return vs


def _encode_bars(container, vs, count: int) -> None:
    """`count` frames of moving colour bars, then the encoder's flush."""
    fps = int(vs.average_rate or vs.codec_context.framerate or 25)
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(bars_frame(vs.width, vs.height, i), format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        _mux(container, vs, frame)
    _mux(container, vs)


def speech_samples(
    text: str, rate: int = 48000, words_per_minute: int = 140, voice: str | None = None
) -> np.ndarray:
    """Synthesized speech (espeak-ng, its default voice unless `voice`), float32 mono at
    `rate`."""
    import shutil
    import subprocess
    import tempfile

    if not shutil.which("espeak-ng"):
        raise RuntimeError("espeak-ng is needed to synthesize speech: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        voice_args = ["-v", voice] if voice else []
        subprocess.run(
            ["espeak-ng", *voice_args, "-s", str(words_per_minute), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        with av.open(str(wav)) as container:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(audio=0)
                for out in resampler.resample(frame)
            ]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def make_speech_video(
    path: str | os.PathLike[str],
    text: str,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    lead_s: float = 0.5,
) -> Path:
    """H.264 colour bars with AAC speech of `text`, starting after `lead_s` of silence."""
    rate = 48000
    speech = speech_samples(text, rate)
    audio = np.concatenate(
        [np.zeros(int(lead_s * rate), np.float32), speech, np.zeros(int(0.5 * rate), np.float32)]
    )
    seconds = len(audio) / rate
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as container:
        vs = _h264_stream(container, width, height, fps)
        a_stream = container.add_stream("aac", rate=rate, layout="stereo")
        _encode_bars(container, vs, int(seconds * fps))
        _mux_audio(container, a_stream, np.tile(audio * 0.8, (2, 1)))
    return path


def make_cut_video(
    path: str | os.PathLike[str],
    cuts: list[int],
    frames: int,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
) -> Path:
    """Hard cuts at the given frame numbers: each shot has its own look (shifted, inverted
    bars), and a square moves within a shot so frames are not identical."""
    width, height = size
    bounds = [0, *cuts, frames]
    images = []
    for shot, (start, end) in enumerate(itertools.pairwise(bounds)):
        for i in range(start, end):
            img = bars_frame(width, height, i, shift=shot * 3)
            images.append(255 - img if shot % 2 else img)
    return make_video(path, fps=fps, size=size, frames=images, audio=False)


def texture(width: int, height: int, seed: int) -> np.ndarray:
    """A grey picture with detail at every scale (fine grain to broad shapes), levels about
    30-220: what a sharp, well exposed shot looks like to the quality measures."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((height, width), np.float32)
    for sigma, weight in ((0.8, 0.35), (3.0, 0.35), (12.0, 0.3)):
        layer = cv2.GaussianBlur(
            rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), sigma
        )
        img += weight * layer / (layer.std() or 1.0)
    return np.clip(125 + 40 * img, 0, 255).astype(np.uint8)


QUALITY_LOOKS = ("normal", "dark", "bright", "blurred", "shaky")
_TINTS = ((1.0, 1.0, 1.0), (1.0, 0.75, 0.5), (0.5, 0.75, 1.0), (0.6, 1.0, 0.6), (1.0, 0.6, 1.0))


def make_quality_video(
    path: str | os.PathLike[str],
    looks: tuple[str, ...] = QUALITY_LOOKS,
    shot_seconds: float = 2.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    loud: tuple[bool, ...] | None = None,
    seed: int = 10,
) -> Path:
    """One shot per look, separated by hard cuts (each its own texture and tint): "normal"
    pans slowly over a sharp texture, "dark" is crushed to near black, "bright" blown out,
    "blurred" out of focus, "shaky" jitters by up to 4% of the width from frame to frame.
    Audio: a tone during the shots marked `loud` (default every other one, from the first),
    digital silence in the others. Another `seed`, other pictures."""
    import cv2

    width, height = size
    margin = width // 8
    per_shot = round(shot_seconds * fps)
    rng = np.random.default_rng(1)
    images = []
    for shot, look in enumerate(looks):
        canvas = texture(width + 4 * margin, height + 4 * margin, seed=seed + shot)
        tint = np.array(_TINTS[shot % len(_TINTS)], np.float32)
        for i in range(per_shot):
            if look == "shaky":
                x, y = (int(v) for v in rng.integers(0, 2 * margin, 2))
            else:
                x, y = margin + i % (2 * margin), margin  # a steady pan, 1 px a frame
            grey = canvas[y : y + height, x : x + width].astype(np.float32)
            if look == "blurred":
                grey = cv2.GaussianBlur(grey, (0, 0), 5.0)
            colour = grey[..., None] * tint
            if look == "dark":
                colour = colour * 0.04
            elif look == "bright":
                colour = colour * 3.0 + 90
            images.append(np.clip(colour, 0, 255).astype(np.uint8))
    loud = loud if loud is not None else tuple(i % 2 == 0 for i in range(len(looks)))
    rate = 48000
    audio = np.concatenate(
        [
            tone(per_shot / fps, rate, channels=1)[0] * (1.0 if on else 0.0)
            for on in loud[: len(looks)]
        ]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        vs = _h264_stream(container, width, height, fps)
        a_stream = container.add_stream("aac", rate=rate, layout="stereo")
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            _mux(container, vs, frame)
        _mux(container, vs)
        _mux_audio(container, a_stream, np.tile(audio, (2, 1)))
    return path


def make_derivative(
    source: str | os.PathLike[str],
    path: str | os.PathLike[str],
    scale: float = 1.0,
    crop: float = 0.0,
    start_s: float = 0.0,
    end_s: float | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """A re-encoded copy of `source`'s picture (H.264, no sound): resized by `scale`, `crop`
    of the width and height cut from each side (then scaled back), trimmed to
    [start_s, end_s), with encoder `options` (e.g. {"b": "150k"} for a low bit rate)."""
    import cv2

    path = Path(path)
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = src.streams.video[0]
        fps = stream.average_rate or 25
        vs, index = None, 0
        for frame in src.decode(stream):
            if frame.time < start_s - 1e-6 or (end_s is not None and frame.time >= end_s):
                continue
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            if crop:
                img = img[
                    round(h * crop) : h - round(h * crop), round(w * crop) : w - round(w * crop)
                ]
            size = (round(w * scale) // 2 * 2, round(h * scale) // 2 * 2)
            if size != (img.shape[1], img.shape[0]):
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            if vs is None:
                vs = out.add_stream("libx264", rate=fps)
                vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
                vs.options = {"preset": "veryfast", **(options or {"crf": "20"})}
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            new.pts, new.time_base = index, Fraction(1, fps)
            index += 1
            _mux(out, vs, new)
        if vs is not None:
            _mux(out, vs)
    return path


# Fully saturated colours: the tiny test face pack (media/face_pack_tiny.py) sees each as one
# "person" (its recognizer embeds hue).
FACE_COLOURS = {"red": (250, 10, 10), "green": (10, 250, 10), "blue": (10, 10, 250)}


def draw_face(img: np.ndarray, centre: tuple[int, int], colour: str, scale: int = 1) -> None:
    """A 64·scale px "face" (coloured square with dark eyes and mouth) at `centre` (x, y)."""
    x, y = centre

    def box(x0: int, x1: int, y0: int, y1: int, value) -> None:
        img[y + y0 * scale : y + y1 * scale, x + x0 * scale : x + x1 * scale] = value

    box(-32, 32, -32, 32, FACE_COLOURS[colour])
    box(-18, -10, -14, -6, 0)
    box(10, 18, -14, -6, 0)
    box(-12, 12, 12, 18, 0)


def make_face_video(
    path: str | os.PathLike[str],
    shots: list[list[tuple[str, tuple[int, int]]]],
    shot_seconds: float = 3.0,
    fps: int = 10,
    size: tuple[int, int] = (640, 360),
    scale: int = 1,
    grain: int = 0,
) -> Path:
    """Shots separated by hard cuts (a new background each), each showing these faces
    (colour, centre). Faces drift a few pixels during a shot; centres on the 32 px grid are
    where the tiny detector's anchors are (at `scale` 2, 128 px faces on a 64 px grid for
    frames the detector sees at half size). `grain` adds moving noise to the background, so
    decoding costs what camera footage does."""
    width, height = size
    images = []
    rng = np.random.default_rng(0)
    per_shot = round(shot_seconds * fps)
    for shot, faces in enumerate(shots):
        background = (60, 160, 100, 200)[shot % 4]
        for i in range(per_shot):
            img = np.full((height, width, 3), background, np.uint8)
            if grain:
                noise = rng.integers(-grain, grain + 1, (height, width, 1), dtype=np.int16)
                img = np.clip(img + noise, 0, 255).astype(np.uint8)
            drift = round(6 * scale * (2 * i / max(per_shot - 1, 1) - 1))  # -6 … +6 px
            for colour, (x, y) in faces:
                draw_face(img, (x + drift, y), colour, scale)
            images.append(img)
    return make_video(path, fps=fps, size=size, frames=images, audio=False)


# -- bad inputs ---------------------------------------------------------------------------------
def make_zero_byte(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_text_as_video(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.write_text("These are my shot notes, not a movie.\n" * 20)
    return path


def make_truncated(source: Path, path: str | os.PathLike[str], keep: float = 0.6) -> Path:
    """The first `keep` of a finished file, as an interrupted copy leaves it."""
    path = Path(path)
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_corrupt(path: str | os.PathLike[str], size: int = 20000, seed: int = 7) -> Path:
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def age(path: Path, seconds: float = 3600) -> Path:
    """Backdate mtime so the file counts as settled (not still being copied)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - int(seconds * 1e9)))
    return path


def make_library(root: str | os.PathLike[str], settled: bool = True) -> dict[str, Path]:
    """A small library with one of each kind, as the demo and the end-to-end tests use."""
    root = Path(root)
    files = {
        "h264": make_video(
            root / "clips" / "bars_h264.mp4",
            seconds=3,
            metadata={
                "creation_time": "2024-03-01T10:00:00.000000Z",
                "make": "DemoCam",
                "model": "DC-1",
            },
        ),
        "prores": make_video(
            root / "clips" / "bars_prores.mov", seconds=1, codec="prores_ks", size=(256, 144)
        ),
        "rotated": make_video(root / "phone" / "portrait.mp4", seconds=2, rotation=90),
        "vfr": make_vfr_video(root / "phone" / "screen_recording.mp4"),
        "audio": make_audio(root / "audio" / "tone.m4a"),
        "still": make_still(root / "stills" / "photo.jpg"),
    }
    if settled:
        for p in files.values():
            age(p)
    return files


# -- camera rigs ----------------------------------------------------------------------------------
def clap_track(seconds: float, rate: int = 48000, seed: int = 0) -> np.ndarray:
    """A shared sound stage: a low noise floor with claps (decaying noise bursts) at random
    intervals, and a few tone bursts. Mono float32."""
    rng = np.random.default_rng(seed)
    track = rng.normal(0, 0.002, int(seconds * rate)).astype(np.float32)
    t = 0.4
    while t < seconds - 0.5:
        start, length = int(t * rate), int(0.08 * rate)
        burst = rng.normal(0, 0.5, length) * np.exp(-np.arange(length) / (0.01 * rate))
        track[start : start + length] += burst.astype(np.float32)
        if rng.random() < 0.2:
            tone_len = int(0.3 * rate)
            tt = np.arange(tone_len) / rate
            end = min(len(track), start + length + tone_len)
            track[start + length : end] += (0.2 * np.sin(2 * np.pi * rng.uniform(300, 900) * tt))[
                : end - start - length
            ].astype(np.float32)
        t += rng.uniform(0.3, 1.4)
    return track


def make_rig_clip(
    path: str | os.PathLike[str],
    master: np.ndarray | None,
    master_rate: int,
    start_s: float,
    seconds: float,
    rate: int = 48000,
    drift_ppm: float = 0.0,
    metadata: dict[str, str] | None = None,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
) -> Path:
    """A camera file that heard `master` from `start_s` on (its clock `drift_ppm` fast), at its
    own sample rate; no audio when master is None."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as container:
        if metadata:
            container.metadata.update(metadata)
        vs = _h264_stream(container, width, height, fps)
        a_stream = None
        if master is not None:
            a_stream = container.add_stream("aac", rate=rate, layout="stereo")
        _encode_bars(container, vs, int(seconds * fps))
        if a_stream is not None:
            times = start_s + np.arange(int(seconds * rate)) / rate / (1 + drift_ppm * 1e-6)
            heard = np.interp(times, np.arange(len(master)) / master_rate, master)
            _mux_audio(container, a_stream, np.tile(heard.astype(np.float32), (2, 1)))
    return path

"""Footage that costs what camera files cost to decode, generated with numpy, OpenCV and PyAV.

Colour bars decode at well over 1,000 fps; camera files do not. What makes a decoder work is
detail and change the encoder cannot predict away, at a camera's bit rate. Each clip here is:

- shots of 8–40 s with hard cuts between them, each a camera moving over a detailed picture
  (fractal texture with edges and shapes, a colour grade of its own): a slow pan, a push-in or
  pull-out, and hand-held shake (a random walk of position and a fraction of a degree of roll);
- film grain on every frame (fresh noise, slightly soft, as grain is), so no two frames match;
- two "faces" (the coloured squares the test face pack detects) in some shots, for the faces
  step, and camera audio: speech with room tone (see `sound.py`);
- encoded as cameras do: long-GOP H.264 High with B-frames and CABAC at 50 Mbit/s (1080p) or
  100 Mbit/s (2160p), HEVC Main 10 (`yuv420p10le`, libx265), or ProRes 422 HQ (intra only,
  `yuv422p10le`). The 10-bit files are made from 8-bit pictures.

Generating is expensive (a 10-minute 1080p file takes minutes), so each file is kept in a cache
folder (the benchmark's `<out>/footage-cache`, default `/tmp/dam-footage`) under a name that
carries its spec and this generator's version: a changed spec or generator makes a new file, an
unchanged one is reused.

Not a test module: pytest collects nothing here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from dam_assets.demo.samples import FACE_COLOURS

from . import sound

GENERATOR_VERSION = 4
DEFAULT_CACHE = Path("/tmp/dam-footage")


@dataclass(frozen=True)
class Codec:
    name: str  # PyAV encoder
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    bitrate_per_pixel: float = 0.0  # bit/s per pixel of one frame at 25 fps (0: the codec's)
    container: str = "mp4"


CODECS = {
    "h264": Codec(
        "libx264",
        "yuv420p",
        {"preset": "superfast", "profile": "high", "bf": "3", "x264-params": "keyint_min=25"},
        bitrate_per_pixel=24.1,  # 50 Mbit/s at 1920x1080, 100 at 3840x2160 (~12 per pixel)
    ),
    "hevc10": Codec(
        "libx265",
        "yuv420p10le",
        {"preset": "ultrafast", "x265-params": "log-level=error:bframes=4:sao=1"},
        bitrate_per_pixel=12.0,  # 25 Mbit/s at 1080p, 100 at 2160p: HEVC needs about half
        container="mov",
    ),
    "prores": Codec("prores", "yuv422p10le", {"profile": "3"}, container="mov"),  # 422 HQ
}


@dataclass(frozen=True)
class Spec:
    """One clip: what it shows and how it is encoded; its cache name follows from it."""

    name: str
    codec: str  # a key of CODECS
    size: tuple[int, int]
    seconds: float
    fps: int = 25
    gop: int = 120
    faces: bool = True
    speech: bool = True
    seed: int = 1
    unique_s: float | None = None  # the picture repeats after this long (None: never)

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def segment_frames(self) -> int:
        """Frames generated and encoded; the rest of the clip repeats them by stream copy."""
        if self.unique_s is None or self.unique_s >= self.seconds:
            return self.frames
        gop = self.gop if self.codec != "prores" else 1
        return max(gop, round(self.unique_s * self.fps) // gop * gop)

    def segment(self) -> Spec:
        """What is generated and encoded: the same pictures for every clip length that
        repeats them, so a longer clip reuses a shorter one's segment from the cache."""
        return replace(self, name="segment", seconds=self.segment_frames / self.fps, speech=False)

    def bitrate(self) -> int | None:
        per_pixel = CODECS[self.codec].bitrate_per_pixel
        if not per_pixel:
            return None
        pixels = self.size[0] * self.size[1]
        scale = 1.0 if pixels <= 1920 * 1080 else 0.5  # 2160p: twice 1080p's, not four times
        return int(per_pixel * pixels * scale * self.fps / 25)

    def key(self) -> str:
        fields = {**asdict(self), "seconds": float(self.seconds), "v": GENERATOR_VERSION}
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.blake2s(blob, digest_size=5).hexdigest()

    def path(self, cache: Path) -> Path:
        return cache / f"{self.name}-{self.key()}.{CODECS[self.codec].container}"

    def describe(self) -> str:
        w, h = self.size
        if self.codec == "prores":
            codec = "ProRes 422 HQ (intra, 10-bit 4:2:2)"
        else:
            name = {"h264": "H.264 High", "hevc10": "HEVC Main 10"}[self.codec]
            codec = f"{name}, GOP {self.gop}, {(self.bitrate() or 0) / 1e6:.0f} Mbit/s"
        repeat = ""
        if self.segment_frames < self.frames:
            repeat = f" (picture repeats every {self.segment_frames / self.fps:g} s)"
        length = f"{self.seconds / 60:g} min" if self.seconds >= 60 else f"{self.seconds:g} s"
        return f"{w}x{h} {self.fps} fps {codec}, {length}{repeat}"


# -- pictures -----------------------------------------------------------------------------------
def texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A detailed RGB picture: fractal noise over six octaves (fine detail stays), edges of a
    few dozen shapes and lines, and a colour grade of its own."""
    luma = np.zeros((height, width), np.float32)
    amplitude, total = 1.0, 0.0
    for octave in range(6):
        cells = 4 * 2**octave
        small = rng.normal(size=(max(2, height * cells // width), cells)).astype(np.float32)
        luma += amplitude * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        total += amplitude
        amplitude *= 0.62
    luma = (luma / total) * 0.35 + 0.5
    canvas = np.clip(luma * 255, 0, 255).astype(np.uint8)
    canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)
    for _ in range(40):
        colour = tuple(int(c) for c in rng.integers(30, 225, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(width // 60, width // 8))
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (x, y), (x + size, y + size // 2), colour, -1)
        else:
            end = (x + int(rng.integers(-size, size)), y + int(rng.integers(-size, size)))
            cv2.line(canvas, (x, y), end, colour, max(1, width // 800))
    fine = rng.normal(0, 10, (height, width, 1)).astype(np.float32)  # texture of surfaces
    grade = rng.uniform(0.75, 1.15, 3).astype(np.float32)
    picture = (canvas.astype(np.float32) + fine) * grade
    return np.clip(picture, 0, 255).astype(np.uint8)


@dataclass
class Shot:
    frames: int
    picture: np.ndarray  # larger than the frame: the camera moves over it
    pan: tuple[float, float]  # pixels per frame
    zoom: tuple[float, float]  # scale at the first and the last frame
    faces: bool


def shots(spec: Spec, rng: np.random.Generator) -> list[Shot]:
    """Cuts every 8–40 s; the camera's path and the picture are new in each shot."""
    w, h = spec.size
    out, left = [], spec.frames
    while left > 0:
        frames = min(left, int(rng.uniform(8, 40) * spec.fps))
        if left - frames < 2 * spec.fps:
            frames = left  # no sliver of a shot at the end
        margin = 1.45
        picture = texture(int(w * margin), int(h * margin), rng)
        speed = rng.uniform(0.3, 2.5) * w / 1920
        angle = rng.uniform(0, 2 * np.pi)
        z0 = rng.uniform(1.0, 1.15)
        out.append(
            Shot(
                frames,
                picture,
                (speed * np.cos(angle), speed * np.sin(angle)),
                (z0, z0 + rng.choice([-1, 1]) * rng.uniform(0.02, 0.12)),
                spec.faces and rng.random() < 0.5,
            )
        )
        left -= frames
    return out


def grain_bank(width: int, height: int, rng: np.random.Generator, count: int = 24):
    """`count` grain fields (soft gaussian noise, sigma ~5 levels), as the positive and negative
    parts OpenCV adds and subtracts with saturation; each frame takes one at random."""
    bank = []
    for _ in range(count):
        noise = rng.normal(0, 7.0, (height, width)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), 0.6)
        up = np.clip(noise, 0, 255).astype(np.uint8)
        down = np.clip(-noise, 0, 255).astype(np.uint8)
        bank.append((cv2.merge([up] * 3), cv2.merge([down] * 3)))
    return bank


def _faces(img: np.ndarray, t: float) -> None:
    """Two coloured squares (the test face pack's "people"), drifting slowly, 1/10 of the
    frame's height as a face in a medium shot is."""
    h, w = img.shape[:2]
    side = h // 10
    drift = int(side * 0.2 * np.sin(t * 0.5))
    for colour, (fx, fy) in (("red", (0.33, 0.4)), ("blue", (0.66, 0.45))):
        x, y = int(w * fx) + drift, int(h * fy)
        img[y - side // 2 : y + side // 2, x - side // 2 : x + side // 2] = FACE_COLOURS[colour]
        eye = side // 8
        for ex in (-side // 4, side // 4):
            img[y - side // 5 : y - side // 5 + eye, x + ex - eye // 2 : x + ex + eye // 2] = 0
        img[y + side // 5 : y + side // 5 + eye, x - side // 4 : x + side // 4] = 0


def frames(spec: Spec):
    """The frames of the clip's generated segment as RGB, in order."""
    rng = np.random.default_rng(spec.seed)
    w, h = spec.size
    bank = grain_bank(w, h, rng)
    spec = replace(spec, seconds=spec.segment_frames / spec.fps)
    shake = np.zeros(3)
    n = 0
    for shot in shots(spec, rng):
        ph, pw = shot.picture.shape[:2]
        for i in range(shot.frames):
            shake = 0.9 * shake + rng.normal(0, [0.8 * w / 1920, 0.8 * w / 1920, 0.02])
            progress = i / max(1, shot.frames - 1)
            scale = shot.zoom[0] + (shot.zoom[1] - shot.zoom[0]) * progress
            cx = pw / 2 + shot.pan[0] * (i - shot.frames / 2) + shake[0]
            cy = ph / 2 + shot.pan[1] * (i - shot.frames / 2) + shake[1]
            # keep the view inside the picture
            half_w, half_h = w / 2 / scale, h / 2 / scale
            cx = float(np.clip(cx, half_w, pw - half_w))
            cy = float(np.clip(cy, half_h, ph - half_h))
            matrix = cv2.getRotationMatrix2D((cx, cy), float(shake[2]), scale)
            matrix[:, 2] += (w / 2 - cx, h / 2 - cy)
            img = cv2.warpAffine(shot.picture, matrix, (w, h), flags=cv2.INTER_LINEAR)
            if shot.faces:
                _faces(img, n / spec.fps)
            up, down = bank[int(rng.integers(len(bank)))]
            cv2.add(img, up, dst=img)
            cv2.subtract(img, down, dst=img)
            yield img
            n += 1


# -- files --------------------------------------------------------------------------------------
def _video_stream(container, spec: Spec):
    codec = CODECS[spec.codec]
    stream = container.add_stream(codec.name, rate=spec.fps)
    stream.width, stream.height = spec.size
    stream.pix_fmt = codec.pix_fmt
    stream.time_base = Fraction(1, spec.fps)
    options = dict(codec.options)
    if spec.codec != "prores":
        stream.codec_context.gop_size = spec.gop
        options.setdefault("g", str(spec.gop))
        if spec.codec == "h264":
            options["x264-params"] += f":keyint={spec.gop}:scenecut=40"
        else:
            options["x265-params"] += f":keyint={spec.gop}:min-keyint=25"
        stream.bit_rate = spec.bitrate()
    stream.options = options
    stream.thread_type = "AUTO"
    return stream


def _mux(container, stream, frame=None) -> None:
    for packet in stream.encode(frame):
        container.mux(packet)


def _encode_segment(spec: Spec, path: Path) -> None:
    """The generated frames, video only: what the clip repeats."""
    with av.open(str(path), "w", format=CODECS[spec.codec].container) as container:
        video = _video_stream(container, spec)
        for n, img in enumerate(frames(spec)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = n
            frame.time_base = Fraction(1, spec.fps)
            _mux(container, video, frame)
        _mux(container, video)


def _assemble(spec: Spec, segment: Path, path: Path) -> str:
    """The segment's packets, repeated with shifted timestamps up to the clip's length (each
    repeat starts at a keyframe: the file decodes as one long encode does), interleaved with
    the clip's own audio, which never repeats. Returns the words spoken in it."""
    audio, text = sound.camera_audio(spec.seconds, seed=spec.seed) if spec.speech else (None, "")
    with (
        av.open(str(segment)) as src,
        av.open(str(path), "w", format=CODECS[spec.codec].container) as dst,
    ):
        dst.metadata["comment"] = f"dam_assets footage {spec.name} {spec.key()}"
        source = src.streams.video[0]
        video = dst.add_stream_from_template(source)
        audio_stream = pending = None
        if audio is not None:
            audio_stream = dst.add_stream("aac", rate=sound.RATE, layout="stereo")
            audio_stream.bit_rate = 192_000
            pending = sound.aac_frames(audio)
        per_frame = round(1 / (spec.fps * source.time_base))
        audio_t, written = 0.0, 0
        while written < spec.frames:
            shift = written * per_frame
            src.seek(0)
            for packet in src.demux(source):
                if packet.dts is None or written >= spec.frames:
                    continue
                packet.pts += shift
                packet.dts += shift
                packet.stream = video
                dst.mux(packet)
                written += 1
                t = float(packet.dts * source.time_base)
                while audio_stream is not None and audio_t <= t + 1:
                    chunk = next(pending, None)
                    if chunk is None:
                        break
                    _mux(dst, audio_stream, chunk)
                    audio_t = chunk.pts / sound.RATE
        if audio_stream is not None:
            for chunk in pending:
                _mux(dst, audio_stream, chunk)
            _mux(dst, audio_stream)
    return text


def transcript_path(path: Path) -> Path:
    """The words spoken in a generated clip, kept beside it."""
    return path.with_name(path.name + ".txt")


def write(spec: Spec, path: Path, log=None) -> Path:
    """Encode the clip to `path` (through temporary names: a killed run leaves no clip); its
    picture segment is cached beside it (`.segment-<key>`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    segment = spec.segment().path(path.parent).with_name(f".segment-{spec.segment().key()}")
    segment = segment.with_suffix(f".{CODECS[spec.codec].container}")
    try:
        if not segment.exists():
            if log:
                log(f"  encoding its {spec.segment_frames} frames of pictures (cached)")
            part = segment.with_name(f"{segment.name}.{os.getpid()}.tmp")
            try:
                _encode_segment(spec, part)
                os.replace(part, segment)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
        text = _assemble(spec, segment, tmp)
        transcript_path(path).write_text(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def ensure(spec: Spec, cache: Path = DEFAULT_CACHE, log=None) -> Path:
    """The cached clip for `spec`, generated first when it is not there yet."""
    path = spec.path(cache)
    if path.exists():
        return path
    if log:
        log(f"generating {path.name}: {spec.describe()} (cached for later runs)")
    return write(spec, path, log)


def ensure_speech(seconds: float, cache: Path = DEFAULT_CACHE, seed: int = 3, log=None) -> Path:
    """A camera's audio alone (AAC in .m4a; its words in `transcript_path`), for transcription
    of long speech without the cost of generating as many minutes of pictures."""
    blob = json.dumps({"speech": float(seconds), "seed": seed, "v": GENERATOR_VERSION}).encode()
    path = cache / f"speech-{hashlib.blake2s(blob, digest_size=5).hexdigest()}.m4a"
    if path.exists():
        return path
    if log:
        log(f"generating {path.name}: {seconds / 60:g} min of camera audio (cached)")
    cache.mkdir(parents=True, exist_ok=True)
    audio, text = sound.camera_audio(seconds, seed=seed)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format="ipod") as dst:
            stream = dst.add_stream("aac", rate=sound.RATE, layout="stereo")
            stream.bit_rate = 192_000
            for chunk in sound.aac_frames(audio):
                _mux(dst, stream, chunk)
            _mux(dst, stream)
        transcript_path(path).write_text(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path

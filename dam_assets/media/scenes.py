"""Scene cuts with PySceneDetect, and one keyframe per scene picked by the thumbnail score.

Cuts come from PySceneDetect's own SceneManager with the chosen detector, its automatic
downscaling and the chosen decoding backend, so they equal what `scenedetect.detect()` reports
for the same settings. A second, passive detector scores sampled frames as they stream past
(on the already downscaled picture), and the stream keeps the decoded frame of each scene's
best sample so far (scene_pictures), so the keyframes cost no decode of their own. A third
(frame_stats.FrameStats)
measures every frame for the per-second timeline, the per-scene quality and the hashes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scenedetect import (
    AdaptiveDetector,
    ContentDetector,
    FrameTimecode,
    HashDetector,
    SceneDetector,
    SceneManager,
    open_video,
)

from .errors import MediaError
from .frame_stats import FrameStats, SceneQuality, SecondStats, per_second, scene_quality
from .frames import Frame, frames_along
from .output import save_jpeg
from .quality import bgr_luma, luma_quality
from .scene_pictures import BestPictures, PictureStream, ReportingDetector

DetectorName = Literal["content", "adaptive", "hash"]
KEYFRAME_SIDE = 640
SAMPLE_EVERY = 5  # frames: how often the keyframe score is taken


@dataclass(frozen=True)
class SceneSettings:
    """Detector choice and parameters; None means PySceneDetect's own default."""

    detector: DetectorName = "content"
    threshold: float | None = None  # content 27, hash 0.35; adaptive: adaptive_threshold 3.0
    min_scene_len: int = 15  # frames
    luma_only: bool = False  # content, adaptive
    window_width: int = 2  # adaptive
    min_content_val: float = 15.0  # adaptive
    hash_size: int = 8  # hash
    lowpass: int = 2  # hash
    backend: Literal["pyav", "opencv"] = "pyav"  # measured faster at 1080p (make bench)

    def build(self) -> SceneDetector:
        if self.detector == "content":
            return ContentDetector(
                threshold=27.0 if self.threshold is None else self.threshold,
                min_scene_len=self.min_scene_len,
                luma_only=self.luma_only,
            )
        if self.detector == "adaptive":
            return AdaptiveDetector(
                adaptive_threshold=3.0 if self.threshold is None else self.threshold,
                min_scene_len=self.min_scene_len,
                window_width=self.window_width,
                min_content_val=self.min_content_val,
                luma_only=self.luma_only,
            )
        if self.detector == "hash":
            return HashDetector(
                threshold=0.35 if self.threshold is None else self.threshold,
                size=self.hash_size,
                lowpass=self.lowpass,
                min_scene_len=self.min_scene_len,
            )
        raise ValueError(f"unknown scene detector {self.detector!r}")

    def params(self) -> dict:
        """The parameters that matter for the chosen detector (stored with every row)."""
        keep = {"detector", "threshold", "min_scene_len", "backend"}
        keep |= {
            "content": {"luma_only"},
            "adaptive": {"luma_only", "window_width", "min_content_val"},
            "hash": {"hash_size", "lowpass"},
        }[self.detector]
        values = {k: v for k, v in asdict(self).items() if k in keep}
        if values["threshold"] is None:
            values["threshold"] = {"content": 27.0, "adaptive": 3.0, "hash": 0.35}[self.detector]
        return values

    def fingerprint(self) -> str:
        blob = json.dumps(self.params(), sort_keys=True).encode()
        return hashlib.blake2s(blob, digest_size=4).hexdigest()


class QualitySampler(SceneDetector):
    """Never reports a cut; scores every `every`-th frame it is shown, and offers the decoded
    frame (when the stream keeps it) to `pictures`."""

    def __init__(
        self,
        every: int = SAMPLE_EVERY,
        stream: PictureStream | None = None,
        pictures: BestPictures | None = None,
    ):
        super().__init__()
        self.every, self.stream, self.pictures = every, stream, pictures
        self.samples: list[tuple[int, float]] = []  # (frame number, score)

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list:
        number = timecode.frame_num
        if number % self.every == 0:
            score = luma_quality(bgr_luma(frame_img)).score
            self.samples.append((number, score))
            decoded = self.stream.take(number) if self.stream else None
            if decoded is not None and self.pictures is not None:
                self.pictures.offer(number, score, decoded)
        return []


@dataclass
class Scene:
    index: int
    start_frame: int
    end_frame: int  # exclusive: the next scene's first frame, as PySceneDetect reports
    start_s: float
    end_s: float
    best_frame: int
    best_score: float | None
    keyframe_path: str | None = None
    keyframe_time_s: float | None = None
    quality: SceneQuality | None = None


@dataclass
class SceneDetection:
    scenes: list[Scene] = field(default_factory=list)
    fps: float = 0.0
    frames: int = 0
    seconds: list[SecondStats] = field(default_factory=list)  # the picture's timeline
    # the chosen frames, kept from the pass (scene_pictures), by frame number
    pictures: dict[int, Frame] = field(default_factory=dict, repr=False)


def detect_scenes(path: str | Path, settings: SceneSettings = SceneSettings()) -> SceneDetection:
    """Cuts and per-scene best frames. A video without a cut is one scene."""
    try:
        if settings.backend == "pyav":
            # Keep FFmpeg's log callback as PyAV set it (quiet); the default would re-route
            # every later encoder's chatter to stderr for the whole process. Frame threads, as
            # every other decode here: PySceneDetect's default (slice threads) leaves one core
            # idle on a file with one slice per frame (1.5x one decode of 4K HEVC; 1.3x with
            # frame threads, the same frames).
            video = PictureStream(
                str(path), SAMPLE_EVERY, suppress_output=True, threading_mode="AUTO"
            )
        else:
            video = open_video(str(path), backend=settings.backend)
    except Exception as exc:  # VideoOpenFailure and codec errors
        raise MediaError(
            "SceneDetectionFailed", f"Could not open the video to find scenes: {exc}"
        ) from exc
    stream = video if isinstance(video, PictureStream) else None
    lag = settings.min_scene_len + settings.window_width + SAMPLE_EVERY  # how late a cut comes
    pictures = BestPictures(lag, KEYFRAME_SIDE, stream.offset) if stream else None
    manager = SceneManager()
    detector = settings.build()
    manager.add_detector(ReportingDetector(detector, pictures.cut) if pictures else detector)
    sampler = QualitySampler(SAMPLE_EVERY, stream, pictures)
    manager.add_detector(sampler)
    stats = FrameStats()
    manager.add_detector(stats)
    frames = manager.detect_scenes(video=video)
    if pictures:
        pictures.finish()
    fps = float(video.frame_rate)
    scene_list = manager.get_scene_list(start_in_scene=True)
    scores = sampler.samples
    scenes = []
    for i, (start, end) in enumerate(scene_list):
        inside = [(f, s) for f, s in scores if start.frame_num <= f < end.frame_num]
        if inside:
            best_frame, best_score = max(inside, key=lambda fs: fs[1])
        else:
            best_frame, best_score = (start.frame_num + end.frame_num) // 2, None
        scenes.append(
            Scene(
                i,
                start.frame_num,
                end.frame_num,
                start.seconds,
                end.seconds,
                best_frame,
                best_score,
                quality=scene_quality(stats, start.frame_num, end.frame_num),
            )
        )
    kept = pictures.pictures if pictures else {}
    chosen = {s.best_frame: kept[s.best_frame] for s in scenes if s.best_frame in kept}
    return SceneDetection(scenes, fps, frames, per_second(stats, fps), chosen)


def write_keyframes(path: str | Path, detection: SceneDetection, out_dir: Path) -> None:
    """Save each scene's chosen frame as `scene_NNNN.jpg`: the picture kept from the
    detection pass, else decoded now, in one forward pass over the reference frames
    (`frames_along`), not one seek and GOP per scene."""
    if not detection.scenes or not detection.fps:
        return
    keep = set()

    def save(scene: Scene, picture: Frame) -> None:
        target = out_dir / f"scene_{scene.index:04d}.jpg"
        save_jpeg(picture.image, target)
        scene.keyframe_path = str(target)
        scene.keyframe_time_s = picture.time
        keep.add(target.name)

    missing = []
    for scene in detection.scenes:
        kept = detection.pictures.get(scene.best_frame)
        if kept is not None:
            save(scene, kept)
        else:
            missing.append(scene)
    # Aim at the middle of the frame's display interval so rounding never lands a frame early.
    wanted = sorted(
        (((s.best_frame + 0.5) / detection.fps, s) for s in missing), key=lambda w: w[0]
    )
    pictures = (
        frames_along(path, [t for t, _ in wanted], max_side=KEYFRAME_SIDE) if wanted else iter(())
    )
    picture, upcoming = None, next(pictures, None)
    for t, scene in wanted:
        while upcoming is not None and (picture is None or upcoming.time <= t + 1e-6):
            picture, upcoming = upcoming, next(pictures, None)  # the last one shown by t
        if picture is None:
            break
        if picture.time < scene.start_s - 1e-3:
            continue  # decoding stopped (damaged data) before this scene: no keyframe for it
        save(scene, picture)
    for old in out_dir.glob("scene_*.jpg"):
        if old.name not in keep:
            old.unlink()
